"""register, record_metrics and deploy: local adapters for real, Vertex AI and BigQuery patched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
from kfp import dsl

import pipeline_src.cloud.registry as cloud_registry
from local.registry import LocalEndpoint, LocalModelRegistry
from local.warehouse import connect
from pipeline_src.components.deploy import deploy
from pipeline_src.components.record_metrics import metric_rows, record_metrics
from pipeline_src.components.register import BUNDLE_FILES, register
from pipeline_src.serving.server import DEFAULT_ROUTES

EVALUATION = {
    "model": {"accuracy": 0.9855, "log_loss": 0.0946, "roc_auc_ovr": 0.9976, "f1_macro": 0.98},
    "baseline": {"accuracy": 0.4348, "log_loss": 1.0538},
    "per_class": {
        "Adelie": {"precision": 0.97, "recall": 1.0},
        "Gentoo": {"precision": 1.0, "recall": 0.96},
    },
}


@pytest.fixture
def run_outputs(tmp_path, trained_model_dir):
    """The artifacts register consumes, as the upstream tasks leave them."""
    evaluation = dsl.Artifact(name="evaluation", uri=str(tmp_path / "evaluation"))
    Path(evaluation.path).write_text(json.dumps(EVALUATION))
    baseline = dsl.Artifact(name="baseline", uri=str(tmp_path / "baseline"))
    Path(baseline.path).write_text(json.dumps({"rows": 344, "features": {}}))
    report = dsl.HTML(name="report", uri=str(tmp_path / "report"))
    Path(report.path).write_text("<!DOCTYPE html><title>report</title>")
    model = dsl.Model(name="model", uri=str(trained_model_dir))
    return {"model": model, "evaluation": evaluation, "baseline": baseline, "report": report}


def call_register(tmp_path, run_outputs, name="registered", **overrides):
    arguments = dict(
        project="acme-mlops-staging", location="europe-west4",
        model_id="tabular-mlops-test-penguins", display_name="penguins model", alias="staging",
        serving_image="registry/pipeline:deps-1",
        models_uri="gs://acme-artifacts/models", snapshot_id="20240501t030000z",
        git_commit="0123456789ab", run_id="tabular-mlops-training-20240501",
        gate_reason="no champion", labels={"stack": "staging"},
    )  # fmt: skip
    registered = dsl.Model(name=name, uri=str(tmp_path / name))
    outputs = register.python_func(
        registered=registered, **run_outputs, **{**arguments, **overrides}
    )
    return outputs, registered


def test_register_locally_adds_a_version_with_its_bundle_labels_and_alias(
    tmp_path, run_outputs, local_backend
):
    local_env = local_backend
    common = dict(model_id=local_env.model_id)
    first, registered = call_register(tmp_path, run_outputs, "first", **common)
    second, _ = call_register(tmp_path, run_outputs, "second", **common)
    assert (first.version, second.version) == ("1", "2")
    assert second.model == f"{local_env.model_id}@2"

    registry = LocalModelRegistry(local_env.registry_dir)
    latest = registry.get(local_env.model_id)  # the default version
    assert latest.version_id == "2" and latest.version_aliases == ("default", "staging")
    assert registry.get(local_env.model_id, "1").version_aliases == ()
    assert sorted(p.name for p in latest.artifact_path.iterdir()) == sorted(BUNDLE_FILES)
    assert latest.labels["data_snapshot"] == "20240501t030000z"
    assert latest.labels["git_commit"] == "0123456789ab"
    assert latest.labels["accuracy"] == "0_9855" and latest.labels["stack"] == "staging"
    assert latest.serving_container_image_uri == "registry/pipeline:deps-1"
    assert "Test accuracy 0.986 (baseline 0.435)" in latest.version_description
    assert registered.metadata["version"] == "1"


class FakeVertexModel:
    """Stands in for `aiplatform.Model`: a registry of model ids, and the uploads made."""

    existing: ClassVar[set[str]] = set()
    uploads: ClassVar[list[dict]] = []

    def __init__(self, model_name, version=None):
        from google.api_core.exceptions import NotFound

        if model_name not in self.existing:
            raise NotFound(f"model {model_name} not found")
        self.resource_name = f"projects/p/locations/l/models/{model_name}"

    @classmethod
    def upload(cls, **fields):
        cls.uploads.append(fields)
        model = object.__new__(cls)
        model.version_id = str(len(cls.uploads))
        model.versioned_resource_name = f"projects/p/locations/l/models/m@{model.version_id}"
        cls.existing.add(fields.get("model_id") or "")
        return model


@pytest.fixture
def vertex(monkeypatch, tmp_path):
    """The Vertex AI SDK patched; gs:// paths mapped into a scratch folder (the /gcs mount)."""
    from google.cloud import aiplatform

    FakeVertexModel.existing, FakeVertexModel.uploads = set(), []
    monkeypatch.setattr(aiplatform, "init", lambda **kwargs: None)
    monkeypatch.setattr(aiplatform, "Model", FakeVertexModel)
    mount = tmp_path / "gcs"
    monkeypatch.setattr(
        cloud_registry, "gcs_fuse_path", lambda uri: str(mount / uri.removeprefix("gs://"))
    )
    return mount


def test_register_on_vertex_copies_the_bundle_then_uploads_a_version(tmp_path, run_outputs, vertex):
    _, registered = call_register(tmp_path, run_outputs, "first")
    second, _ = call_register(tmp_path, run_outputs, "second")

    create, add = FakeVertexModel.uploads
    destination = (
        "gs://acme-artifacts/models/tabular-mlops-test-penguins/tabular-mlops-training-20240501"
    )
    assert create["model_id"] == "tabular-mlops-test-penguins" and "parent_model" not in create
    assert add["parent_model"] == "projects/p/locations/l/models/tabular-mlops-test-penguins"
    assert create["artifact_uri"] == destination
    assert create["version_aliases"] == ["staging"] and create["is_default_version"] is True
    assert create["serving_container_image_uri"] == "registry/pipeline:deps-1"
    # The image serves the model with pipeline_src/serving, on the routes its server answers.
    assert create["serving_container_command"] == ["python", "-m", "pipeline_src.serving"]
    assert create["serving_container_predict_route"] == DEFAULT_ROUTES.predict
    assert create["serving_container_health_route"] == DEFAULT_ROUTES.health
    assert create["labels"]["pipeline_run"] == "tabular-mlops-training-20240501"
    copied = vertex / destination.removeprefix("gs://")
    assert sorted(p.name for p in copied.iterdir()) == sorted(BUNDLE_FILES)
    assert second.version == "2" and registered.metadata["artifact_uri"] == destination


def test_a_candidate_for_promotion_says_how_to_promote_it_by_the_project_id(
    tmp_path, run_outputs, vertex, capsys
):
    outputs, registered = call_register(
        tmp_path, run_outputs, project="acme-mlops-prod", alias="candidate", deploy_by="promotion"
    )
    (upload,) = FakeVertexModel.uploads
    assert upload["version_aliases"] == ["candidate"]
    # Vertex AI names the project by number (here "p"); the prod stack file takes its id.
    assert outputs.model == "projects/p/locations/l/models/m@1"
    name = "projects/acme-mlops-prod/locations/europe-west4/models/tabular-mlops-test-penguins@1"
    assert registered.metadata["promote"] == f"make promote MODEL={name}"
    assert (
        f"registered {name}; the endpoint serves by promotion: make promote MODEL={name}"
        in capsys.readouterr().out
    )


def test_register_on_vertex_needs_a_serving_image_and_a_gcs_destination(
    tmp_path, run_outputs, vertex
):
    with pytest.raises(ValueError, match="needs the serving image"):
        call_register(tmp_path, run_outputs, "a", serving_image="")
    with pytest.raises(ValueError, match="must be a gs:// location"):
        call_register(tmp_path, run_outputs, "b", models_uri="/tmp/models")
    assert FakeVertexModel.uploads == []


# --- deploy -------------------------------------------------------------------------------------


def test_deploy_locally_moves_all_traffic_then_retires_the_previous_model(
    tmp_path, run_outputs, local_backend
):
    local_env = local_backend
    common = dict(model_id=local_env.model_id)
    first, _ = call_register(tmp_path, run_outputs, "first", **common)
    second, _ = call_register(tmp_path, run_outputs, "second", **common)
    target = dict(project="", location="", endpoint="staging")

    assert deploy.python_func(model=first.model, **target).undeployed == []
    outputs = deploy.python_func(model=second.model, **target)
    assert outputs.undeployed == ["1"]
    endpoint = LocalEndpoint(local_env.endpoints_dir, "staging")
    assert endpoint.traffic_split == {outputs.deployed_model_id: 100}
    assert endpoint.serving().resource_name == second.model
    assert [h["action"] for h in endpoint.history()] == ["deploy", "deploy", "undeploy"]


def test_deploy_on_vertex_undeploys_only_after_the_new_model_serves(monkeypatch):
    from google.cloud import aiplatform

    calls = []

    class Deployed:
        model, model_version_id = "projects/p/locations/l/models/m", "1"  # what the adapter lists

        def __init__(self, id_):
            self.id = id_

    deployed_models = [Deployed("old-1"), Deployed("old-2")]

    class Endpoint:
        def __init__(self, name):
            calls.append(("endpoint", name))
            self.traffic_split = {}  # read by the rollout's adapter (the old models' shares)

        def list_models(self):
            return list(deployed_models)

        def deploy(self, **kwargs):
            calls.append(("deploy", kwargs))
            deployed_models.append(Deployed("new"))

        def undeploy(self, deployed_model_id):
            calls.append(("undeploy", deployed_model_id))

    monkeypatch.setattr(aiplatform, "init", lambda **kwargs: None)
    monkeypatch.setattr(aiplatform, "Endpoint", Endpoint)
    monkeypatch.setattr(aiplatform, "Model", lambda name: f"Model({name})")
    outputs = deploy.python_func(
        model="projects/p/locations/l/models/m@3", project="p", location="l",
        endpoint="projects/p/locations/l/endpoints/42", machine_type="n1-standard-4",
        min_replicas=2, max_replicas=5, service_account="serving@p.iam.gserviceaccount.com",
    )  # fmt: skip
    kinds = [kind for kind, _ in calls]
    assert kinds == ["endpoint", "deploy", "undeploy", "undeploy"]
    deployed = calls[1][1]
    assert deployed["model"] == "Model(projects/p/locations/l/models/m@3)"
    assert deployed["traffic_percentage"] == 100 and deployed["sync"] is True
    assert (deployed["min_replica_count"], deployed["max_replica_count"]) == (2, 5)
    assert deployed["service_account"] == "serving@p.iam.gserviceaccount.com"
    assert outputs.deployed_model_id == "new" and outputs.undeployed == ["old-1", "old-2"]


def test_deploy_refuses_impossible_replicas():
    with pytest.raises(ValueError, match="min_replicas <= max_replicas"):
        deploy.python_func(
            model="m@1", project="p", location="l", endpoint="e", min_replicas=3, max_replicas=2
        )


# --- record_metrics -----------------------------------------------------------------------------


def metrics_inputs(tmp_path):
    evaluation = dsl.Artifact(name="evaluation", uri=str(tmp_path / "evaluation"))
    Path(evaluation.path).write_text(json.dumps(EVALUATION))
    training = dsl.Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    training.log_metric("train_accuracy", 1.0)
    training.log_metric("validation_log_loss", 0.05)
    return {"evaluation": evaluation, "training_metrics": training}


def test_metric_rows_cover_test_per_class_baseline_champion_and_training_scores():
    rows = metric_rows(EVALUATION, {"validation_accuracy": 0.99}, 0.97, {"run_id": "r"})
    by_metric = {(r["metric"], r["split"]): r["value"] for r in rows}
    assert by_metric[("accuracy", "test")] == 0.9855
    assert by_metric[("recall/Gentoo", "test")] == 0.96
    assert by_metric[("baseline/accuracy", "test")] == 0.4348
    assert by_metric[("champion/accuracy", "test")] == 0.97
    assert by_metric[("accuracy", "validation")] == 0.99
    assert all(r["run_id"] == "r" for r in rows)
    no_champion = metric_rows(EVALUATION, {}, -1.0, {})
    assert not any(r["metric"] == "champion/accuracy" for r in no_champion)


def test_record_metrics_appends_to_the_local_model_metrics_table(tmp_path, local_backend):
    local_env = local_backend
    common = dict(
        snapshot_id="s1", project="", bq_location="", dataset=local_env.dataset,
        champion_accuracy=-1.0,
    )  # fmt: skip
    deployed = record_metrics.python_func(
        **metrics_inputs(tmp_path), decision="deploy", reason="better", model_version="m@1",
        run_id="run-1", **common,
    )  # fmt: skip
    kept = record_metrics.python_func(
        **metrics_inputs(tmp_path), decision="keep_champion", reason="worse", model_version="",
        run_id="run-2", **common,
    )  # fmt: skip
    with connect(local_env.warehouse_path, read_only=True) as con:
        rows = con.sql(
            f"SELECT run_id, model_version, decision, count(*) FROM {local_env.dataset}"
            ".model_metrics GROUP BY ALL ORDER BY run_id"
        ).fetchall()
    assert rows == [("run-1", "m@1", "deploy", deployed), ("run-2", None, "keep_champion", kept)]


def test_record_metrics_on_bigquery_appends_with_a_load_job(monkeypatch, tmp_path):
    from google.cloud import bigquery

    loads = []

    class Client:
        def __init__(self, project, location):
            self.project = project

        def load_table_from_json(self, rows, table, job_config):
            loads.append((rows, table, job_config))
            return type("Job", (), {"result": lambda self: None})()

    monkeypatch.setattr(bigquery, "Client", Client)
    count = record_metrics.python_func(
        **metrics_inputs(tmp_path), decision="deploy", reason="r", champion_accuracy=0.9,
        model_version="projects/p/locations/l/models/m@2", snapshot_id="s", run_id="run",
        project="acme-mlops-prod", bq_location="EU", dataset="tabular_mlops_prod",
    )  # fmt: skip
    ((rows, table, config),) = loads
    assert table == "acme-mlops-prod.tabular_mlops_prod.model_metrics" and len(rows) == count
    assert config.write_disposition == "WRITE_APPEND"
    assert config.create_disposition == "CREATE_NEVER" and config.autodetect is False
    json.dumps(rows)  # a load job sends JSON: every value must serialise
