"""The endpoint under test: the one given with --endpoint, or a local server for the session.

    pytest tests/acceptance --endpoint http://127.0.0.1:8080 [--expect-model MODEL@VERSION]
    pytest tests/acceptance --endpoint projects/P/locations/L/endpoints/ID  # QA or CD on Vertex

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
    if options.endpoint:
        client = endpoint_client(options.endpoint)
        yield Target(client, options.expect_model, options.p95_ms)
        client.close()
        return

    from local.environment import LocalEnvironment
    from local.registry import LocalEndpoint, LocalModelRegistry
    from local.serving import serve_endpoint

    model_dir = request.getfixturevalue("sample_model_dir")
    env = LocalEnvironment(root=tmp_path_factory.mktemp("acceptance")).ensure()
    version = LocalModelRegistry(env.registry_dir).upload(
        env.model_id, model_dir, display_name="acceptance sample model"
    )
    LocalEndpoint(env.endpoints_dir, "staging").deploy(version)
    with serve_endpoint(env, "staging") as server:
        client = endpoint_client(server.url)
        yield Target(client, options.expect_model or version.resource_name, options.p95_ms)
        client.close()


@pytest.fixture(scope="session")
def client(target) -> EndpointClient:
    return target.client


@pytest.fixture(scope="session")
def golden() -> list[dict]:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))["examples"]
