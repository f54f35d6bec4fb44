"""The bootstrap program's offline plan: `make plan-bootstrap` (docs/bootstrap.md).

    python -m bootstrap.plan              # first run: state, key, environments, protection
    python -m bootstrap.plan --wired      # once the stacks exist: + the Actions variables

Runs bootstrap/__main__.py under the platform's recording mocks (stacks/offline.py), with answers
for what only GitHub or the state backend know: user and team ids, and the stacks' outputs read
through stack references (here: the stacks' own offline plans).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks

from stacks.offline import PlatformMocks, StackRecord, run_program

PROGRAM = Path(__file__).resolve().parent / "__main__.py"
NAMESPACE = "tabular-mlops-bootstrap"
STACK_REFERENCE = "pulumi:pulumi:StackReference"


def _github_id(name: str) -> str:
    """A stable numeric id per login or team (GitHub's are numbers)."""
    return str(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))


class BootstrapMocks(PlatformMocks):
    """PlatformMocks plus GitHub's data sources and the platform stacks' outputs."""

    def __init__(self, project: str, stack_outputs: Mapping[str, Mapping[str, Any]]):
        super().__init__(project)
        self.stack_outputs = stack_outputs

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        if args.typ == STACK_REFERENCE:
            stack = args.inputs["name"].rsplit("/", 1)[-1]
            outputs = dict(self.stack_outputs.get(stack, {}))
            return args.inputs["name"], {**args.inputs, "outputs": outputs}
        return super().new_resource(args)

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        if args.token == "github:index/getUser:getUser":
            login = args.args["username"]
            return {"id": _github_id(login), "login": login, "username": login}
        if args.token == "github:index/getTeam:getTeam":
            slug = args.args["slug"]
            return {"id": _github_id(slug), "slug": slug, "name": slug}
        return super().call(args)


def plan(
    wired: bool = False, stack_outputs: Mapping[str, Mapping[str, Any]] | None = None
) -> StackRecord:
    """The bootstrap's plan; `wired` reads the stacks' outputs (their offline plans by default)."""
    if wired and stack_outputs is None:
        stack_outputs = {stack: run_program(stack).outputs for stack in ("staging", "prod")}
    config = {
        f"{NAMESPACE}:wire_stacks": wired,
        f"{NAMESPACE}:stacks_project": "organization/tabular-mlops",
    }
    mocks = BootstrapMocks("bootstrap", stack_outputs or {})
    return run_program("bootstrap", config=config, program=PROGRAM, mocks=mocks)


def main(argv: list[str] | None = None) -> int:
    from stacks.plan import render_summary, render_table

    parser = argparse.ArgumentParser(prog="make plan-bootstrap", description=__doc__.split("\n")[0])
    parser.add_argument("--wired", action="store_true", help="with the stacks' outputs (phase 2)")
    args = parser.parse_args(argv)
    record = plan(wired=args.wired)
    print(render_table(record))
    print(render_summary(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
