"""The endpoint under test: the one given with --endpoint, or a local server for the session.

    pytest tests/acceptance --endpoint http://127.0.0.1:8080 [--expect-model MODEL@VERSION]
    pytest tests/acceptance --endpoint projects/P/locations/L/endpoints/ID  # QA or CD on Vertex
    pytest tests/acceptance --endpoint staging   # the local endpoint `make serve` serves (.local/)

Without --endpoint (as in `make test`), a model is fitted on the sample, registered in a scratch
local registry, deployed to a local "staging" endpoint and served by a real server process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_src.serving.client import EndpointClient, endpoint_client

GOLDEN = Path(__file__).with_name("golden.json")


@dataclass(frozen=True)
class Target:
    client: EndpointClient
    expected_model: str | None
    """`<model>@<version>` the endpoint must serve, when known."""
    p95_ms: float


@pytest.fixture(scope="session")
def target(request, tmp_path_factory) -> Iterator[Target]:
    options = request.config.option
    if options.endpoint and not options.endpoint.startswith(("http://", "https://", "projects/")):
        yield from _local_endpoint_target(options)
        return
    if options.endpoint:
        client = endpoint_client(options.endpoint)
        yield Target(client, options.expect_model, options.p95_ms)
        client.close()
        return

    from local.environment import LocalEnvironment
    from local.registry import LocalEndpoint, LocalModelRegistry
    from local.serving import serve_endpoint

    model_dir = request.getfixturevalue("sample_model_dir")
    env = LocalEnvironment(
        root=tmp_path_factory.mktemp("acceptance"), contract_path=_contract_path(options)
    ).ensure()
    version = LocalModelRegistry(env.registry_dir).upload(
        env.model_id, model_dir, display_name="acceptance sample model"
    )
    LocalEndpoint(env.endpoints_dir, "staging").deploy(version)
    with serve_endpoint(env, "staging") as server:
        client = endpoint_client(server.url)
        yield Target(client, options.expect_model or version.resource_name, options.p95_ms)
        client.close()


def _local_endpoint_target(options) -> Iterator[Target]:
    """A local endpoint by name (as `make serve ENDPOINT=staging` takes it): served for the
    session from the local state, expected to serve what its state says it does."""
    from local.environment import LocalEnvironment
    from local.registry import LocalEndpoint
    from local.serving import serve_endpoint

    env, name = LocalEnvironment(contract_path=_contract_path(options)), options.endpoint
    serving = LocalEndpoint(env.endpoints_dir, name).serving()
    if serving is None:
        # One line instead of the same error in every test: the fix is to deploy something.
        pytest.exit(
            f"ENDPOINT={name}: the local endpoint {name} (.local/endpoints/) serves no model; "
            "run `make pipeline` or `make demo` first, or give a URL (http://127.0.0.1:8080) or "
            "a Vertex AI endpoint (projects/P/locations/L/endpoints/ID)",
            returncode=2,
        )
    with serve_endpoint(env, name) as server:
        client = endpoint_client(server.url)
        yield Target(client, options.expect_model or serving.resource_name, options.p95_ms)
        client.close()


@pytest.fixture(scope="session")
def client(target) -> EndpointClient:
    return target.client


def _contract_path(options) -> Path:
    from local.environment import stack_contract_path

    return Path(options.contract) if options.contract else stack_contract_path()


@pytest.fixture(scope="session")
def dataset(request) -> str:
    """The contract's name: golden examples and the invalid inputs are the penguins'."""
    from contracts import load_contract

    return load_contract(_contract_path(request.config.option)).name


@pytest.fixture(scope="session")
def golden(request, dataset) -> list[dict]:
    """The golden examples; for another contract, two rows per class of its shipped sample, as
    instances whose answers' shape is checked (their expected classes are not asserted)."""
    if dataset == "penguins":
        return json.loads(GOLDEN.read_text(encoding="utf-8"))["examples"]
    from contracts import load_contract
    from contracts.sample import load_sample

    contract = load_contract(_contract_path(request.config.option))
    rows = load_sample(contract).groupby(contract.label_column).head(2)
    features = rows[contract.feature_columns].astype(object)
    return [
        {"expected": str(label), "instance": {k: (None if v != v else v) for k, v in row.items()}}
        for label, row in zip(rows[contract.label_column], features.to_dict("records"), strict=True)
    ]
