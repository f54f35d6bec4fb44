"""train, evaluate and gate: their logic directly and through `component.python_func`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pytest
from kfp import dsl

from local.registry import LocalEndpoint, LocalModelRegistry
from pipeline_src.cloud.endpoints import VertexEndpoints
from pipeline_src.cloud.registry import VertexModelRegistry
from pipeline_src.components.common import compute_threads, model_inputs
from pipeline_src.components.evaluate import evaluate
from pipeline_src.components.gate import champion, decide, gate
from pipeline_src.components.train import build_model

HYPERPARAMETERS = dict(
    learning_rate=0.1, max_iter=100, max_leaf_nodes=15, min_samples_leaf=10, l2_regularization=0.0
)


# --- train --------------------------------------------------------------------------------------


def test_the_model_takes_raw_features_as_serving_sends_them(trained_model_dir, spec):
    model = joblib.load(trained_model_dir / "model.joblib")
    requests = pd.DataFrame(
        [
            {"island": "Biscoe", "bill_length_mm": 47.5, "bill_depth_mm": 15.0,
             "flipper_length_mm": 218, "body_mass_g": 4950, "sex": "male"},
            {"island": "Torgersen", "bill_length_mm": None, "bill_depth_mm": 18.4,
             "flipper_length_mm": None, "body_mass_g": 3400, "sex": None},
            {"island": "Atlantis", "bill_length_mm": 50.0, "bill_depth_mm": 19.5,
             "flipper_length_mm": 196, "body_mass_g": 3900, "sex": "female"},
        ]
    )  # fmt: skip
    with compute_threads(len(requests)):  # as serving should: one thread for a few rows
        assert list(model.predict(requests)[:2]) == ["Gentoo", "Adelie"]
        probabilities = model.predict_proba(requests)
    assert np.allclose(probabilities.sum(axis=1), 1)  # an unknown island is no error

    signature = json.loads((trained_model_dir / "model.json").read_text())
    assert [f["name"] for f in signature["features"]] == [f["name"] for f in spec["features"]]
    assert signature["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert signature["hyperparameters"]["max_iter"] == 100
    assert signature["estimator"] == "HistGradientBoostingClassifier"


def test_training_is_seeded(splits, spec):
    train = splits["train"]
    test = model_inputs(splits["test"], spec)
    with compute_threads(len(train)):
        fitted = [
            build_model(spec, seed=3, **HYPERPARAMETERS).fit(
                model_inputs(train, spec), train["species"]
            )
            for _ in range(2)
        ]
        assert np.array_equal(fitted[0].predict_proba(test), fitted[1].predict_proba(test))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("learning_rate", 0.0, "learning_rate must be in"),
        ("max_iter", 0, "max_iter must be at least 1"),
        ("max_leaf_nodes", 1, "max_leaf_nodes must be at least 2"),
        ("l2_regularization", -1.0, "l2_regularization must be >= 0"),
    ],
)
def test_bad_hyperparameters_are_named(spec, name, value, message):
    with pytest.raises(ValueError, match=message):
        build_model(spec, seed=1, **{**HYPERPARAMETERS, name: value})


# --- evaluate -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, contract, splits, trained_model_dir):
    root = tmp_path_factory.mktemp("evaluate")
    artifacts = {
        name: kind(name=name, uri=str(root / name))
        for name, kind in (
            ("evaluation", dsl.Artifact),
            ("metrics", dsl.Metrics),
            ("confusion", dsl.ClassificationMetrics),
            ("report", dsl.HTML),
            ("plots", dsl.Artifact),
        )
    }
    data = {}
    for name in ("train", "test"):
        data[name] = dsl.Dataset(name=name, uri=str(root / name), metadata={"snapshot_id": "s1"})
        splits[name].to_parquet(data[name].path, index=False)
    model = dsl.Model(name="model", uri=str(trained_model_dir))
    evaluate.python_func(
        contract=contract, model=model, train_data=data["train"], test_data=data["test"],
        **artifacts,
    )  # fmt: skip
    return artifacts


def test_evaluation_beats_the_baseline_and_holds_every_metric(evaluated, splits, spec):
    evaluation = json.loads(Path(evaluated["evaluation"].path).read_text())
    model, baseline = evaluation["model"], evaluation["baseline"]
    assert model["accuracy"] > 0.95 and baseline["accuracy"] < 0.5
    assert model["log_loss"] < baseline["log_loss"]
    assert baseline["roc_auc_ovr"] == pytest.approx(0.5)
    assert set(evaluation["per_class"]) == {"Adelie", "Chinstrap", "Gentoo"}
    matrix = np.asarray(evaluation["confusion_matrix"]["matrix"])
    assert matrix.sum() == len(splits["test"]) == evaluation["rows"]["test"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(model["accuracy"])
    importance = evaluation["feature_importance"]
    assert [e["mean"] for e in importance] == sorted((e["mean"] for e in importance), reverse=True)
    assert {e["feature"] for e in importance} == {f["name"] for f in spec["features"]}
    assert importance[0]["feature"] in ("bill_length_mm", "island")
    assert evaluation["snapshot_id"] == "s1"


def test_evaluation_logs_console_metrics(evaluated):
    assert {"accuracy", "log_loss", "roc_auc_ovr", "baseline_accuracy"} <= set(
        evaluated["metrics"].metadata
    )
    matrix = evaluated["confusion"].metadata["confusionMatrix"]
    assert [a["displayName"] for a in matrix["annotationSpecs"]] == [
        "Adelie",
        "Chinstrap",
        "Gentoo",
    ]


def test_report_is_one_page_with_metrics_and_plots(evaluated):
    page = Path(evaluated["report"].path).read_text()
    assert page.startswith("<!DOCTYPE html>") and "penguins" in page
    assert page.count('src="data:image/png;base64,') == 4
    assert "baseline" in page and "Chinstrap" in page
    plots = sorted(p.name for p in Path(evaluated["plots"].path).iterdir())
    assert plots == [
        "confusion_matrix.png", "feature_importance.png", "precision_recall_curves.png",
        "roc_curves.png",
    ]  # fmt: skip


# --- gate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "decision", "says"),
    [
        (0.85, None, 0.0, "keep_champion", "below the bar of 0.900"),
        (0.95, None, 0.0, "deploy", "no champion to compare with"),
        (0.97, 0.95, 0.0, "deploy", "beats champion m@1"),
        (0.95, 0.95, 0.0, "keep_champion", "does not beat"),
        (0.94, 0.95, 0.0, "keep_champion", "does not beat"),
        (0.96, 0.95, 0.02, "keep_champion", "margin of 0.020"),
        (0.97, 0.95, 0.02, "deploy", "by 0.020"),
        (0.89, 0.50, 0.0, "keep_champion", "below the bar"),  # better, yet not good enough
    ],
)
def test_decide(challenger, champion, margin, decision, says):
    made, reason = decide(challenger, champion, 0.9, margin, "m@1", "served by endpoint staging")
    assert made == decision and says in reason
    # Where the endpoint is deployed by promotion, the same winner is registered, not deployed.
    made, reason = decide(challenger, champion, 0.9, margin, "m@1", "served", "promotion")
    assert made == {"deploy": "register"}.get(decision, decision) and says in reason
    assert ("registered as a candidate for QA" in reason) == (made == "register")


def write_bundle(source: Path, target: Path, accuracy: float, **signature_changes) -> Path:
    """A registered model directory: the trained model plus an evaluation record."""
    shutil.copytree(source, target)
    signature = json.loads((target / "model.json").read_text())
    (target / "model.json").write_text(json.dumps({**signature, **signature_changes}))
    (target / "evaluation.json").write_text(json.dumps({"model": {"accuracy": accuracy}}))
    return target


@pytest.fixture
def gate_inputs(tmp_path, splits, local_backend):
    local_env = local_backend
    test = dsl.Dataset(name="test", uri=str(tmp_path / "test"))
    splits["test"].to_parquet(test.path, index=False)

    def run(challenger_accuracy: float, min_improvement: float = 0.0, **deployment):
        evaluation = dsl.Artifact(name="evaluation", uri=str(tmp_path / "evaluation.json"))
        Path(evaluation.path).write_text(json.dumps({"model": {"accuracy": challenger_accuracy}}))
        return gate.python_func(
            contract=local_env.contract.model_dump(mode="json", exclude_none=True),
            evaluation=evaluation, test_data=test, project="", location="",
            model_id=local_env.model_id, min_accuracy=0.9, min_improvement=min_improvement,
            **{"endpoint": "staging", **deployment},
        )  # fmt: skip

    return run


def champion_on_staging(env, bundle: Path) -> str:
    version = LocalModelRegistry(env.registry_dir).upload(
        env.model_id, bundle, display_name="penguins", version_aliases=["staging"]
    )
    LocalEndpoint(env.endpoints_dir, "staging").deploy(version)
    return version.resource_name


def test_gate_deploys_a_good_first_model(gate_inputs):
    outputs = gate_inputs(0.95)
    assert outputs.decision == "deploy" and outputs.champion == ""
    assert outputs.champion_accuracy == -1.0 and "nothing on endpoint staging" in outputs.reason


def test_gate_rescores_the_champion_on_the_same_test_split(
    gate_inputs, local_env, trained_model_dir, tmp_path, splits, spec
):
    # The recorded 0.5 is ignored: the champion is scored again on this run's test rows.
    name = champion_on_staging(local_env, write_bundle(trained_model_dir, tmp_path / "b", 0.5))
    model = joblib.load(trained_model_dir / "model.joblib")
    truth = splits["test"]["species"]
    with compute_threads(len(truth)):
        rescored = float((model.predict(model_inputs(splits["test"], spec)) == truth).mean())

    worse = gate_inputs(rescored - 0.02)
    assert worse.decision == "keep_champion" and worse.champion == name
    assert worse.champion_accuracy == pytest.approx(rescored)
    assert "on the same test split" in worse.reason
    assert gate_inputs(1.0).decision == "deploy"
    assert gate_inputs(1.0, min_improvement=0.5).decision == "keep_champion"


def test_gate_falls_back_to_the_recorded_accuracy_of_an_incomparable_champion(
    gate_inputs, local_env, trained_model_dir, tmp_path
):
    bundle = write_bundle(
        trained_model_dir, tmp_path / "old", 0.93, features=[{"name": "beak_colour"}]
    )
    champion_on_staging(local_env, bundle)
    outputs = gate_inputs(0.95)
    assert outputs.decision == "deploy" and outputs.champion_accuracy == pytest.approx(0.93)
    assert "recorded at registration, as it was trained on other features" in outputs.reason


def test_gate_uses_the_registry_default_when_the_endpoint_serves_nothing(
    gate_inputs, local_env, trained_model_dir, tmp_path
):
    LocalModelRegistry(local_env.registry_dir).upload(
        local_env.model_id, write_bundle(trained_model_dir, tmp_path / "b", 0.9),
        display_name="penguins",
    )  # fmt: skip
    outputs = gate_inputs(0.95)
    assert outputs.decision == "keep_champion" and outputs.champion.endswith("@1")
    assert "the registry's default version" in outputs.reason


def test_in_a_stack_deployed_by_promotion_the_champion_is_what_the_endpoint_serves(
    gate_inputs, local_env, trained_model_dir, tmp_path
):
    registry = LocalModelRegistry(local_env.registry_dir)
    promoted = registry.upload(
        local_env.model_id, write_bundle(trained_model_dir, tmp_path / "p", 0.5),
        display_name="penguins",
    )  # fmt: skip
    LocalEndpoint(local_env.endpoints_dir, "prod").deploy(promoted)
    # A later candidate, better on record, is the registry's default but awaits promotion.
    candidate = registry.upload(
        local_env.model_id, write_bundle(trained_model_dir, tmp_path / "c", 0.99),
        display_name="penguins", version_aliases=["candidate"],
    )  # fmt: skip
    assert registry.get(local_env.model_id).version_id == candidate.version_id
    outputs = gate_inputs(1.0, endpoint="prod", deploy_by="promotion")
    assert outputs.decision == "register" and outputs.champion == promoted.resource_name
    assert "served by endpoint prod" in outputs.reason
    assert LocalEndpoint(local_env.endpoints_dir, "prod").serving().version_id == "1"


def test_the_gate_refuses_an_unknown_deployment(gate_inputs):
    with pytest.raises(ValueError, match=r"deploy_by must be 'pipeline' .* got 'qa'"):
        gate_inputs(0.95, deploy_by="qa")


class FakeDeployed:
    def __init__(self, id_, model, version):
        self.id, self.model, self.model_version_id = id_, model, version


def test_vertex_champion_is_the_deployed_model_with_the_most_traffic(monkeypatch):
    from google.api_core.exceptions import NotFound
    from google.cloud import aiplatform

    endpoints = {
        "e1": ([FakeDeployed("11", "models/m", "3"), FakeDeployed("12", "models/m", "4")],
               {"11": 10, "12": 90}),
        "e2": ([], {}),
    }  # fmt: skip
    models = {"m"}

    class Endpoint:
        def __init__(self, name):
            self.deployed, self.traffic_split = endpoints[name]

        def list_models(self):
            return self.deployed

    class Model:
        def __init__(self, name, version=None):
            if name.split("/")[-1] not in models:
                raise NotFound("no such model")
            self.versioned_resource_name = f"projects/p/locations/l/models/m@{version or 7}"
            self.uri = f"gs://bucket/models/m/{version or 7}"
            digest = SimpleNamespace(name="MODEL_SHA256", value=f"sha-{version or 7}")
            self.gca_resource = SimpleNamespace(container_spec=SimpleNamespace(env=[digest]))

    monkeypatch.setattr(aiplatform, "init", lambda **kwargs: None)
    monkeypatch.setattr(aiplatform, "Endpoint", Endpoint)
    monkeypatch.setattr(aiplatform, "Model", Model)

    name, directory, where, digest = champion(
        VertexEndpoints("p", "l"), VertexModelRegistry("p", "l"), "e1", "m"
    )
    assert name.endswith("m@4") and directory == "/gcs/bucket/models/m/4"
    assert where == "served by endpoint e1" and digest == "sha-4"
    name, _, where, _ = champion(
        VertexEndpoints("p", "l"), VertexModelRegistry("p", "l"), "e2", "m"
    )
    assert name.endswith("m@7") and where == "the registry's default version"
    models.clear()
    assert champion(VertexEndpoints("p", "l"), VertexModelRegistry("p", "l"), "e2", "m") is None
