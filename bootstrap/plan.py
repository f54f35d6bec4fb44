"""The bootstrap program's offline plan: `make plan-bootstrap` (docs/bootstrap.md).

    python -m bootstrap.plan              # first run: state, key, environments, protection
    python -m bootstrap.plan --wired      # once the stacks exist: + the Actions variables

Runs bootstrap/__main__.py under the platform's recording mocks (tooling/plan/offline.py), with
answers for what only GitHub knows (user and team ids); the stacks' outputs it reads through stack
references are those of the stacks' own offline plans, deployed before it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from pulumi.runtime import mocks as pulumi_mocks

from tooling.plan.offline import Organisation, PlatformMocks, StackRecord, run_program

PROGRAM = Path(__file__).resolve().parent / "__main__.py"
NAMESPACE = "tabular-mlops-bootstrap"
# The platform's stacks in their deploy order: prod's identities first, staging reads them.
STACKS_ORDER = ("prod", "staging")


def _github_id(name: str) -> str:
    """A stable numeric id per login or team (GitHub's are numbers)."""
    return str(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))


class BootstrapMocks(PlatformMocks):
    """PlatformMocks (stack references answered from the organisation's deployed stacks) plus
    GitHub's data sources: users and teams by name, with stable numeric ids."""

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        if args.token == "github:index/getUser:getUser":
            login = args.args["username"]
            return {"id": _github_id(login), "login": login, "username": login}
        if args.token == "github:index/getTeam:getTeam":
            slug = args.args["slug"]
            return {"id": _github_id(slug), "slug": slug, "name": slug}
        return super().call(args)


def plan(wired: bool = False, organisation: Organisation | None = None) -> StackRecord:
    """The bootstrap's plan, deployed into `organisation`. `wired` reads the stacks' outputs
    through stack references: by default both committed stacks, deployed in the documented order
    (prod, then staging); a stack not deployed fails the plan, as it fails `pulumi up`."""
    if organisation is None:
        organisation = Organisation()
        for stack in STACKS_ORDER if wired else ():
            run_program(stack, organisation=organisation)
    config = {
        f"{NAMESPACE}:wire_stacks": wired,
        f"{NAMESPACE}:stacks_project": "organization/tabular-mlops",
    }
    mocks = BootstrapMocks("bootstrap", organisation)
    return run_program(
        "bootstrap", config=config, program=PROGRAM, mocks=mocks, organisation=organisation
    )


def main(argv: list[str] | None = None) -> int:
    from tooling.plan.cli import render_summary, render_table

    parser = argparse.ArgumentParser(prog="make plan-bootstrap", description=__doc__.split("\n")[0])
    parser.add_argument("--wired", action="store_true", help="with the stacks' outputs (phase 2)")
    args = parser.parse_args(argv)
    record = plan(wired=args.wired)
    print(render_table(record))
    print(render_summary(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
