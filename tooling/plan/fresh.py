"""Both stacks planned from nothing, in the order a new organisation deploys them.

    python -m tooling.plan.fresh        (make plan-fresh)

1. prod without a model (its identities: deployer, pipeline runner, Vertex AI agent),
2. staging, which reads them through a stack reference and grants them the read of its models,
3. prod with the model its stack file names (the promotion).

Each step runs under the offline mocks in one `Organisation` that starts empty and resolves
nothing by itself: a stack reference or a member of a stack not yet deployed fails the step, as
it fails `pulumi up` (docs/first-deploy.md).
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from stacks.config import NAMESPACE, stack_config_values
from tooling.plan.offline import Organisation, StackRecord, run_program
from tooling.plan.provider_rules import PlanError

FIRST_DEPLOY: tuple[tuple[str, str], ...] = (
    ("prod", "no model yet: its identities"),
    ("staging", "reads prod's identities"),
    ("prod", "with its model: the promotion"),
)


def without_model(config: dict[str, Any]) -> dict[str, Any]:
    """A stack's config with `serving.model: null` (a prod that serves nothing yet)."""
    config = copy.deepcopy(config)
    config[f"{NAMESPACE}:platform"]["serving"]["model"] = None
    return config


def plan_fresh(order: tuple[tuple[str, str], ...] = FIRST_DEPLOY) -> list[StackRecord]:
    """Each step's record, in order; PlanError at the first step `pulumi up` would refuse."""
    organisation = Organisation(resolve=False)
    records = []
    for i, (stack, _) in enumerate(order):
        config = stack_config_values(stack)
        first_of_stack = all(s != stack for s, _ in order[:i])
        if first_of_stack and any(s == stack for s, _ in order[i + 1 :]):
            config = without_model(config)
        records.append(run_program(stack, config=config, organisation=organisation))
    return records


def main() -> int:
    try:
        records = plan_fresh()
    except PlanError as error:
        print(error, file=sys.stderr)
        return 2
    for step, ((stack, why), record) in enumerate(zip(FIRST_DEPLOY, records, strict=True), 1):
        resources = sum(1 for r in record.resources if r.custom)
        print(f"{step}. {stack:<8} {why:<34} {resources} resources, "
              f"{len(record.warnings)} warning(s)")  # fmt: skip
    print("a new organisation deploys in this order (docs/first-deploy.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
