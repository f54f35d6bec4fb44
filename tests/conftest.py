"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest

from stacks.offline import StackRecord, declare, run_program

STACKS = ("staging", "prod")


@pytest.fixture
def pulumi_mocks():
    """Declare resources under the recording mocks: `pulumi_mocks(lambda: Component(...))`.

    Returns the record of every resource registered. Pulumi's global state is reset after each
    declaration, so tests never leak mocks or config into each other.
    """
    return declare


@pytest.fixture(scope="session")
def stack_records() -> dict[str, StackRecord]:
    """The committed stacks' offline plans, computed once per test session."""
    return {stack: run_program(stack) for stack in STACKS}


@pytest.fixture(params=STACKS)
def stack_record(request, stack_records) -> StackRecord:
    """Each committed stack's plan in turn: invariants run against both."""
    return stack_records[request.param]
