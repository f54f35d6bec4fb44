"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tooling.plan.offline import Organisation, StackRecord, declare, run_program

STACKS = ("staging", "prod")


def pytest_addoption(parser):
    # Here rather than in tests/acceptance/: pytest reads options from the root conftest only.
    group = parser.getgroup("acceptance", "QA acceptance suite (tests/acceptance)")
    group.addoption(
        "--endpoint",
        help="run the acceptance suite against this endpoint: a URL (http://127.0.0.1:8080), "
        "a Vertex AI endpoint (projects/P/locations/L/endpoints/ID) or a local endpoint's name "
        "(staging, prod: served from .local/); default: a local server started for the session",
    )
    group.addoption(
        "--expect-model",
        help="the model version the endpoint must serve: <model>@<version> (as in the predict "
        "response's model and modelVersionId)",
    )
    group.addoption(
        "--contract",
        help="data contract of the model under test (default: the staging stack's); golden "
        "examples and the penguin-specific invalid inputs run for the penguins contract only",
    )
    group.addoption(
        "--p95-ms", type=float, default=500.0, help="latency budget: 95th percentile in ms"
    )


@pytest.fixture
def pulumi_mocks():
    """Declare resources under the recording mocks: `pulumi_mocks(lambda: Component(...))`.

    Returns the record of every resource registered. Pulumi's global state is reset after each
    declaration, so tests never leak mocks or config into each other.
    """
    return declare


@pytest.fixture(scope="session")
def stack_records() -> dict[str, StackRecord]:
    """The committed stacks' offline plans, computed once per test session, deployed into one
    organisation in the documented order (prod's identities first: staging reads them)."""
    organisation = Organisation()
    planned = {
        stack: run_program(stack, organisation=organisation) for stack in ("prod", "staging")
    }
    return {stack: planned[stack] for stack in STACKS}


@pytest.fixture(params=STACKS)
def stack_record(request, stack_records) -> StackRecord:
    """Each committed stack's plan in turn: invariants run against both."""
    return stack_records[request.param]


@pytest.fixture(scope="session")
def sample_model_dir(request, tmp_path_factory) -> Path:
    """A model directory as the train component writes it, fitted once on the whole sample.

    For serving and promotion tests, which need a real model quickly rather than the pipeline's
    evaluation of one: the train component's own code, on the contract's shipped sample
    (penguins by default).
    """
    from kfp import dsl

    from contracts import load_contract
    from contracts.sample import load_sample
    from local.environment import stack_contract_path
    from pipeline_src.components.train import train

    contract = load_contract(request.config.option.contract or stack_contract_path())
    frame = load_sample(contract)
    root = tmp_path_factory.mktemp("sample-model")
    data = {}
    for name, rows in (("train", frame), ("validation", frame.head(0))):
        data[name] = dsl.Dataset(name=name, uri=str(root / name), metadata={"snapshot_id": "s"})
        rows.to_parquet(data[name].path, index=False)
    model = dsl.Model(name="model", uri=str(root / "model"))
    train.python_func(
        contract=contract.model_dump(mode="json", exclude_none=True),
        train_data=data["train"],
        validation_data=data["validation"],
        model=model,
        metrics=dsl.Metrics(name="metrics", uri=str(root / "metrics")),
    )
    return Path(model.path)
