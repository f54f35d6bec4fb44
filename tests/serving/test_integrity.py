"""The bundle's digest: recorded at registration, checked before anything unpickles the bundle.

Whoever can write the models' storage must not run code where a model is loaded (prod's serving
container, the pipeline runner's gate and evaluation): a bundle changed after its registration is
refused everywhere, and nothing is unpickled first.
"""

from __future__ import annotations

import shutil

import joblib
import pandas as pd
import pytest

from local.adapters import LocalBatchPrediction
from local.environment import LocalEnvironment
from local.registry import LocalEndpoint, LocalModelRegistry, RegistryError
from pipeline_src.components.common import feature_spec
from pipeline_src.components.gate import champion_accuracy
from pipeline_src.ports import PredictionJob
from pipeline_src.serving.__main__ import expected_digest
from pipeline_src.serving.integrity import bundle_digest, verify_bundle
from pipeline_src.serving.server import EndpointSource, ModelSource, Unavailable

PENGUIN = {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
           "flipper_length_mm": 192, "body_mass_g": 3500, "sex": "female"}  # fmt: skip


@pytest.fixture
def env(tmp_path) -> LocalEnvironment:
    return LocalEnvironment(root=tmp_path / "state").ensure()


@pytest.fixture
def unpickled(monkeypatch) -> list:
    """Every joblib.load from here on (the refusals must come before any)."""
    calls = []
    load = joblib.load
    monkeypatch.setattr(joblib, "load", lambda path: calls.append(path) or load(path))
    return calls


def tamper(directory) -> None:
    with (directory / "model.joblib").open("ab") as bundle:
        bundle.write(b"\x00")  # one byte more is enough


def test_the_registry_records_the_digest_of_what_it_copied(env, sample_model_dir, tmp_path):
    registry = LocalModelRegistry(env.registry_dir)
    version = registry.upload(env.model_id, sample_model_dir, display_name="m")
    assert version.bundle_sha256 == bundle_digest(str(sample_model_dir))
    assert registry.get(version.resource_name).bundle_sha256 == version.bundle_sha256
    deployed = LocalEndpoint(env.endpoints_dir, "staging").deploy(version)
    assert deployed.bundle_sha256 == version.bundle_sha256
    with pytest.raises(RegistryError, match="not the 0000 it was uploaded with"):
        registry.upload(
            env.model_id, sample_model_dir, display_name="m",
            serving_container_environment_variables={"MODEL_SHA256": "0000"},
        )  # fmt: skip


def test_a_tampered_bundle_is_refused_by_the_local_endpoint_server(
    env, sample_model_dir, unpickled
):
    registry = LocalModelRegistry(env.registry_dir)
    version = registry.upload(env.model_id, sample_model_dir, display_name="m")
    endpoint = LocalEndpoint(env.endpoints_dir, "staging")
    endpoint.deploy(version)
    tamper(version.artifact_path)
    source = EndpointSource(endpoint)
    with pytest.raises(Unavailable, match="refusing to unpickle it"):
        source.predict({"instances": [PENGUIN]})
    with pytest.raises(Unavailable, match="refusing to unpickle it"):
        source.health()
    assert unpickled == []


@pytest.mark.parametrize(
    "recorded, message",
    [("", "no MODEL_SHA256 was recorded"), ("f" * 64, "refusing to unpickle it")],
)
def test_the_container_refuses_a_bundle_without_or_off_its_digest(
    sample_model_dir, unpickled, recorded, message
):
    source = ModelSource(sample_model_dir, recorded)
    with pytest.raises(Unavailable, match=message):
        source.health()
    assert unpickled == []
    good = ModelSource(sample_model_dir, bundle_digest(str(sample_model_dir)))
    assert good.predict({"instances": [PENGUIN]})["predictions"][0]["class"] == "Chinstrap"


def test_only_a_directory_given_by_hand_may_be_served_unverified(tmp_path):
    # On Vertex AI (AIP_STORAGE_URI) the digest comes from the environment, "" if missing.
    assert expected_digest(None, {"AIP_STORAGE_URI": "gs://b/m"}) == ""
    assert expected_digest(None, {"MODEL_SHA256": "abc"}) == "abc"
    assert expected_digest(tmp_path, {"MODEL_SHA256": "abc"}) == "abc"
    assert expected_digest(tmp_path, {}) is None


def test_gate_and_evaluation_refuse_a_tampered_champion(sample_model_dir, tmp_path, unpickled):
    bundle = tmp_path / "bundle"
    shutil.copytree(sample_model_dir, bundle)
    digest = bundle_digest(str(bundle))
    tamper(bundle)
    with pytest.raises(ValueError, match="refusing to unpickle it"):
        verify_bundle(str(bundle), digest)
    spec = feature_spec(LocalEnvironment().contract.model_dump(mode="json", exclude_none=True))
    frame = pd.DataFrame([{**PENGUIN, "species": "Chinstrap"}])
    _, basis = champion_accuracy(str(bundle), digest, frame, spec)
    assert "could not be loaded (ValueError: model bundle" in basis
    served = {"model": "m@1", "artifact_dir": str(bundle), "sha256": digest}
    with pytest.raises(ValueError, match="refusing to unpickle it"):  # the local batch prediction
        LocalBatchPrediction().predictor(served, spec, PredictionJob(str(tmp_path / "job")))(frame)
    assert unpickled == []
