"""The local Model Registry and endpoint state: Vertex AI's version, alias and traffic rules."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from local.registry import LocalEndpoint, LocalModelRegistry, RegistryError, _rescale

MODEL = "tabular-mlops-local-penguins"


@pytest.fixture
def bundle(tmp_path) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"model")
    (folder / "evaluation.json").write_text(json.dumps({"model": {"accuracy": 0.97}}))
    return folder


@pytest.fixture
def registry(tmp_path) -> LocalModelRegistry:
    return LocalModelRegistry(tmp_path / "registry")


def upload(registry, bundle, **fields):
    return registry.upload(MODEL, bundle, display_name="penguins", **fields)


def test_versions_are_numbered_and_hold_a_copy_of_the_artifacts(registry, bundle):
    first = upload(registry, bundle, labels={"accuracy": "0_97"}, version_description="first")
    (bundle / "model.joblib").write_bytes(b"changed after upload")
    second = upload(registry, bundle)
    assert (first.version_id, second.version_id) == ("1", "2")
    assert (first.artifact_path / "model.joblib").read_bytes() == b"model"
    assert first.artifact_path != Path(first.source_artifact_uri)
    assert registry.get(MODEL, "1").labels == {"accuracy": "0_97"}
    assert [v.version_id for v in registry.versions(MODEL)] == ["1", "2"]
    assert registry.get(f"{MODEL}@1").version_description == "first"
    assert first.resource_name == f"{MODEL}@1"


def test_the_default_alias_follows_default_uploads_and_always_names_one_version(registry, bundle):
    upload(registry, bundle, is_default_version=False)  # the first version is the default anyway
    assert registry.get(MODEL).version_id == "1"
    upload(registry, bundle, is_default_version=False)
    assert registry.get(MODEL).version_id == "1"
    upload(registry, bundle)
    assert registry.get(MODEL).version_id == "3"
    assert registry.get(MODEL, "1").version_aliases == ()


def test_an_alias_moves_to_the_version_it_is_given_to(registry, bundle):
    upload(registry, bundle, version_aliases=["staging"])
    upload(registry, bundle, version_aliases=["staging", "candidate"])
    assert registry.get(MODEL, "staging").version_id == "2"
    assert registry.get(MODEL, "1").version_aliases == ()
    registry.add_version_aliases(MODEL, "1", ["prod"])
    assert registry.get(MODEL, "prod").version_aliases == ("prod",)
    assert registry.get(MODEL, "2").version_aliases == ("candidate", "default", "staging")


def test_bad_requests_say_what_is_wrong(registry, bundle, tmp_path):
    with pytest.raises(RegistryError, match="is not in the registry"):
        registry.get(MODEL)
    upload(registry, bundle)
    with pytest.raises(RegistryError, match=r"no version or alias 'prod' \(aliases: default\)"):
        registry.get(MODEL, "prod")
    with pytest.raises(RegistryError, match="aliases start with a letter"):
        upload(registry, bundle, version_aliases=["2"])
    with pytest.raises(RegistryError, match="model id 'Penguins!'"):
        registry.upload("Penguins!", bundle, display_name="x")
    with pytest.raises(RegistryError, match="does not exist"):
        registry.upload(MODEL, tmp_path / "missing", display_name="x")


def test_concurrent_uploads_get_distinct_versions(registry, bundle):
    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = list(pool.map(lambda _: upload(registry, bundle).version_id, range(8)))
    assert sorted(versions, key=int) == [str(n) for n in range(1, 9)]
    assert registry.get(MODEL).version_id in versions  # the alias record stayed whole


def test_an_endpoint_moves_traffic_and_keeps_its_history(registry, bundle, tmp_path):
    endpoint = LocalEndpoint(tmp_path / "endpoints", "staging")
    assert endpoint.serving() is None and endpoint.traffic_split == {}
    v1, v2, v3 = (upload(registry, bundle) for _ in range(3))

    first = endpoint.deploy(v1, traffic_percentage=30)  # the first model takes everything
    assert endpoint.traffic_split == {first.id: 100}
    canary = endpoint.deploy(v2, traffic_percentage=10)
    assert endpoint.traffic_split == {first.id: 90, canary.id: 10}
    assert endpoint.serving().version_id == "1"
    third = endpoint.deploy(v3, traffic_percentage=100)
    assert endpoint.traffic_split == {first.id: 0, canary.id: 0, third.id: 100}

    with pytest.raises(RegistryError, match="still receives 100% of the traffic"):
        endpoint.undeploy(third.id)
    endpoint.undeploy(first.id)
    endpoint.undeploy(canary.id)
    assert endpoint.serving().resource_name == f"{MODEL}@3"
    assert [h["action"] for h in endpoint.history()] == [
        "deploy", "deploy", "deploy", "undeploy", "undeploy"
    ]  # fmt: skip
    state = json.loads(endpoint.path.read_text())  # the file the local server reads
    assert state["deployed_models"][0]["artifact_uri"] == v3.artifact_uri


def test_traffic_rescaling_keeps_proportions_and_totals():
    assert _rescale([50, 50], 90) == [45, 45]
    assert _rescale([1, 1, 1], 100) == [34, 33, 33]
    assert _rescale([0, 0], 40) == [20, 20]
    assert sum(_rescale([7, 13, 80], 33)) == 33
