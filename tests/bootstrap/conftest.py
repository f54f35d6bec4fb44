"""The bootstrap's plans, shared by its tests."""

from __future__ import annotations

import pytest

from bootstrap import plan as bootstrap_plan
from tooling.plan.offline import Organisation, StackRecord


@pytest.fixture(scope="session")
def first_run() -> StackRecord:
    """The first run: before the stacks exist."""
    return bootstrap_plan.plan(wired=False)


@pytest.fixture(scope="session")
def wired(stack_records) -> StackRecord:
    """The second run, once both committed stacks are deployed (the session's plans)."""
    organisation = Organisation()
    for stack in bootstrap_plan.STACKS_ORDER:
        organisation.deploy(stack_records[stack])
    return bootstrap_plan.plan(wired=True, organisation=organisation)
