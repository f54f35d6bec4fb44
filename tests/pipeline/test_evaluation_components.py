"""The evaluation pipeline's components: the decision table, drift statistics, new-span selection,
the once-only retraining trigger, and the Vertex AI calls (patched)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from kfp import dsl

from contracts.generate import Drift, generate_records, sample_profile
from contracts.tables import EVALUATIONS
from local.adapters import LocalPipelineRuns
from local.environment import LocalEnvironment
from local.warehouse import append_rows, connect, query
from pipeline_src.cloud.batch_prediction import predict_vertex
from pipeline_src.cloud.pipeline_runs import VertexPipelineRuns
from pipeline_src.components.assess import feature_drift, jensen_shannon, psi
from pipeline_src.components.new_data import new_rows_query
from pipeline_src.components.trigger import (
    EVALUATION_LOG_EVENT,
    decide,
    decide_and_trigger,
    retraining_run_id,
)
from pipeline_src.components.validate import feature_statistics
from pipeline_src.evaluation import COMPONENTS
from pipeline_src.ports import PredictionJob, TrainingRun
from tests.pipeline.test_spec import test_component_source_is_self_contained as self_contained

KEY = "projects/p/locations/l/keyRings/r/cryptoKeys/k"
BARS = {"min_new_rows": 200, "min_accuracy": 0.85, "max_degradation": 0.05}


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.name)
def test_component_source_is_self_contained(component):
    self_contained(component)


@pytest.mark.parametrize(
    ("rows", "accuracy", "test_accuracy", "triggered", "decision", "why"),
    [
        (199, 0.5, 0.98, "", "not_enough_data", "199 new labelled rows; at least 200"),
        (400, 0.95, 0.98, "", "healthy", "within 0.050"),
        (400, 0.93, 0.98, "", "healthy", "drop 0.050"),  # exactly the allowed drop
        (400, 0.80, 0.82, "", "degraded", "below the bar of 0.850"),
        (400, 0.90, 0.98, "", "degraded", "a drop beyond the allowed 0.050"),
        (400, 0.60, 0.98, "retrain-x", "already_triggered", "retraining retrain-x was already"),
        (400, 0.95, 0.98, "retrain-x", "healthy", "within"),  # a pass never says triggered
    ],
)
def test_decision_table(rows, accuracy, test_accuracy, triggered, decision, why):
    got, reason = decide(
        rows, BARS["min_new_rows"], accuracy, test_accuracy, BARS["min_accuracy"],
        BARS["max_degradation"], triggered,
    )  # fmt: skip
    assert got == decision
    assert why in reason


def test_psi_and_jensen_shannon_measure_distance():
    rng = np.random.default_rng(0)
    base = rng.normal(50, 5, 5000)
    edges = np.unique(np.quantile(base, np.linspace(0, 1, 11)))
    histogram = {"edges": edges.tolist(), "counts": np.histogram(base, bins=edges)[0].tolist()}
    assert psi(histogram, rng.normal(50, 5, 2000)) < 0.05
    assert psi(histogram, rng.normal(57, 5, 2000)) > 0.5  # far beyond the 0.2 bar
    # Values beyond the training range fall in the open-ended outer bins, not out of the count.
    assert psi(histogram, np.full(100, 1000.0)) > 5
    shares = {"Biscoe": 0.5, "Dream": 0.3, "Torgersen": 0.2}
    same = pd.Series(["Biscoe"] * 50 + ["Dream"] * 30 + ["Torgersen"] * 20)
    assert jensen_shannon(shares, same) == pytest.approx(0.0, abs=1e-9)
    assert jensen_shannon({"a": 1.0}, pd.Series(["b"] * 10)) == pytest.approx(1.0)


def test_feature_drift_flags_shifted_numeric_features_only(spec):
    profile = sample_profile(_contract())
    baseline = feature_statistics(pd.DataFrame(generate_records(profile, 2000, seed=1)), spec)
    clean = pd.DataFrame(generate_records(profile, 1000, seed=2))
    shifted = pd.DataFrame(generate_records(profile, 1000, seed=2, drift=Drift(shift=1.5)))
    assert not any(e["drifted"] for e in feature_drift(baseline, clean).values())
    drift = feature_drift(baseline, shifted)
    assert {n for n, e in drift.items() if e["drifted"]} == {
        "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g",
    }  # fmt: skip
    assert (
        drift["island"]["statistic"] == "jensen_shannon"
        and drift["bill_length_mm"]["mean"] > (drift["bill_length_mm"]["baseline_mean"])
    )


def _contract():
    from local.environment import LocalEnvironment

    return LocalEnvironment().contract


def test_new_rows_are_unjudged_batches_after_the_training_snapshot(local_env, spec):
    """Batches before the model's snapshot and batches an earlier verdict covered are left out;
    a batch only seen by a not_enough_data evaluation stays new; a re-sent key counts once."""
    profile = sample_profile(local_env.contract)
    trained_until = datetime.now(UTC)
    schema = local_env.contract.bigquery_schema(lineage=True)
    with connect(local_env.warehouse_path) as con:
        for batch, seed, rows in (("b1", 1, 10), ("b2", 2, 10), ("b3", 3, 10), ("b4", 3, 2)):
            # b4 re-sends b3's first two keys (a correction): each key counts once, newest.
            lineage = {"_source_uri": f"gs://landing/{batch}.csv", "_source_generation": 1,
                       "_batch_id": batch, "_ingested_at": datetime.now(UTC)}  # fmt: skip
            records = [{**r, **lineage} for r in generate_records(profile, rows, seed=seed)]
            append_rows(con, local_env.dataset, "penguins", schema, records)
        judged = [
            {"evaluation_id": "e1", "batch_ids": json.dumps(["b1"]), "decision": "healthy",
             "evaluated_at": datetime.now(UTC)},
            {"evaluation_id": "e2", "batch_ids": json.dumps(["b2"]),
             "decision": "not_enough_data", "evaluated_at": datetime.now(UTC)},
        ]  # fmt: skip
        append_rows(con, local_env.dataset, "evaluations", EVALUATIONS.schema, judged)
        sql = new_rows_query(spec, local_env.dataset, "penguins", "evaluations")
        until = datetime.now(UTC) + timedelta(seconds=1)
        rows = query(con, sql, {"trained_until": trained_until, "until": until}).to_pandas()
    assert sorted(rows["_batch_id"].unique()) == ["b2", "b3", "b4"]  # not the sample, not b1
    assert len(rows) == 10 + 10  # b2, and b3 with two of its keys superseded by b4
    assert rows["penguin_id"].is_unique


def test_retraining_id_names_the_spans_not_their_order():
    assert retraining_run_id(["b2", "b1"]) == retraining_run_id(["b1", "b2"])
    assert retraining_run_id(["b1"]) != retraining_run_id(["b1", "b2"])
    assert retraining_run_id(["b1"]).startswith("retrain-") and len(retraining_run_id([])) <= 128


def test_claim_is_atomic_and_once(tmp_path):
    runs = LocalPipelineRuns(LocalEnvironment(root=tmp_path))
    run = TrainingRun(spec={}, parameters={})
    assert runs.start("retrain-1", {"batch_ids": ["b1"]}, run) is True
    assert runs.start("retrain-1", {"batch_ids": ["b1"]}, run) is False
    assert json.loads((tmp_path / "retraining" / "retrain-1.json").read_text())["status"] == (
        "requested"
    )


def _assessment(artifact, accuracy: float) -> dsl.Artifact:
    out = artifact(dsl.Artifact, f"assessment-{accuracy}")
    document = {
        "model": "m@1", "metric": "accuracy", "value": accuracy, "test_value": 0.98,
        "drift": {"bill_length_mm": {"statistic": "psi", "value": 2.5, "drifted": True}},
    }  # fmt: skip
    with open(out.path, "w") as f:
        json.dump(document, f)
    return out


def test_decide_and_trigger_starts_retraining_once_per_spans(local_backend, artifact, capsys):
    local_env = local_backend

    def evaluate(accuracy: float, evaluation_id: str, batches: list):
        return decide_and_trigger.python_func(
            assessment=_assessment(artifact, accuracy), rows=400, batch_ids=json.dumps(batches),
            until="2030-01-01T00:00:00+00:00", evaluation_id=evaluation_id, **BARS,
            project="p", location="l", bq_location="", dataset=local_env.dataset,
            training_spec={}, training_parameters="{}", pipeline_root="", service_account="",
        )  # fmt: skip

    first = evaluate(0.6, "e1", ["b1", "b2"])
    # The structured line the deployment's retraining alert matches (resources/monitoring.py).
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert line["event"] == EVALUATION_LOG_EVENT and line["decision"] == "degraded"
    assert line["triggered_run"] == first.triggered_run
    again = evaluate(0.6, "e2", ["b2", "b1"])  # a retry or a concurrent run on the same spans
    other = evaluate(0.6, "e3", ["b3"])
    healthy = evaluate(0.97, "e4", ["b4"])
    assert first.decision == "degraded" and first.triggered_run == retraining_run_id(["b1", "b2"])
    assert again.decision == "already_triggered" and again.triggered_run == ""
    assert first.triggered_run in again.reason
    assert other.decision == "degraded" and other.triggered_run not in ("", first.triggered_run)
    assert healthy.decision == "healthy" and healthy.triggered_run == ""
    requests = sorted(p.stem for p in (local_env.root / "retraining").iterdir())
    assert requests == sorted([first.triggered_run, other.triggered_run])
    request = json.loads(
        (local_env.root / "retraining" / f"{first.triggered_run}.json").read_text()
    )
    assert request["snapshot_time"] == "2030-01-01T00:00:00+00:00"
    assert "below the bar" in request["reason"]
    with connect(local_env.warehouse_path, read_only=True) as con:
        rows = con.sql(
            f"SELECT evaluation_id, decision, triggered_run, drift FROM {local_env.dataset}"
            ".evaluations ORDER BY evaluation_id"
        ).fetchall()
    assert [r[:2] for r in rows] == [
        ("e1", "degraded"), ("e2", "already_triggered"), ("e3", "degraded"), ("e4", "healthy"),
    ]  # fmt: skip
    assert json.loads(rows[0][3]) == {"bill_length_mm": 2.5}


def test_submit_vertex_uses_the_spans_job_id_and_reports_an_existing_job(tmp_path):
    from google.api_core.exceptions import AlreadyExists

    with (
        mock.patch("google.cloud.aiplatform.init"),
        mock.patch("google.cloud.aiplatform.PipelineJob") as job,
    ):
        started = VertexPipelineRuns("p", "europe-west4").start(
            "retrain-abc", {}, TrainingRun(
                {"pipelineSpec": 1}, {"table": "penguins", "snapshot_time": "t"}, "gs://b/root",
                "runner@p.iam.gserviceaccount.com", {"managed-by": "evaluation-pipeline"}, KEY,
            ),
        )  # fmt: skip
        kwargs = job.call_args.kwargs
        assert started is True
        assert (
            kwargs["job_id"] == "retrain-abc" and kwargs["parameter_values"]["table"] == "penguins"
        )
        job.return_value.submit.assert_called_once_with(
            service_account="runner@p.iam.gserviceaccount.com"
        )
        job.return_value.submit.side_effect = AlreadyExists("exists")
        runs = VertexPipelineRuns("p", "l")
        assert runs.start("retrain-abc", {}, TrainingRun({"x": 1}, {})) is False
    with pytest.raises(ValueError, match="compiled training pipeline"):
        runs.start("retrain-abc", {}, TrainingRun({}, {}))


def test_predict_vertex_matches_results_to_rows_whatever_their_order(tmp_path, spec):
    frame = pd.DataFrame(generate_records(sample_profile(_contract()), 3, seed=1))
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)  # a duplicate row
    output = tmp_path / "job" / "output"

    def batch_predict(**kwargs):
        text = (tmp_path / "job" / "instances.jsonl").read_text()
        lines = [json.loads(line) for line in text.splitlines()]
        assert kwargs["instances_format"] == "jsonl" and len(lines) == 4
        assert kwargs["encryption_spec_key_name"] == KEY
        # Exactly the predict contract's fields: the serving container refuses any other.
        assert all(set(line) == {f["name"] for f in spec["features"]} for line in lines)
        output.mkdir(parents=True)
        with open(output / "prediction.results-00000-of-00001", "w") as out:
            for line in reversed(lines[:3]):  # any order; numbers echoed in their own way
                echoed = {k: int(v) if isinstance(v, float) and v.is_integer() else v
                          for k, v in line.items()}  # fmt: skip
                prediction = {"class": f"bill {line['bill_length_mm']}", "probabilities": {}}
                out.write(json.dumps({"instance": echoed, "prediction": prediction}) + "\n")
        return SimpleNamespace(output_info=SimpleNamespace(gcs_output_directory=str(output)))

    with (
        mock.patch("google.cloud.aiplatform.init"),
        mock.patch("google.cloud.aiplatform.Model") as model,
    ):
        model.return_value.batch_predict.side_effect = batch_predict
        job = PredictionJob(str(tmp_path / "job"), "n1", "", KEY)
        results = predict_vertex("p", "l", "projects/p/models/m@2", frame, spec, job)
    assert [r["class"] for r in results] == [f"bill {v}" for v in frame["bill_length_mm"]]
    model.assert_called_once_with("projects/p/models/m@2")


def test_report_plots_every_measured_evaluation_and_embeds_them(tmp_path):
    from pipeline_src.components.evaluation_report import history_plots, render_evaluation_report

    history = pd.DataFrame(
        {
            "model_version": ["m@1", "m@1", "m@2"],
            "decision": ["healthy", "degraded", "not_enough_data"],
            "value": [0.97, 0.68, None],
            "baseline_value": [0.98, 0.98, None],
            "drift": [json.dumps({"bill": 0.01}), json.dumps({"bill": 2.5}), None],
            "evaluated_at": pd.to_datetime(["2026-11-29T10:00Z", "2026-11-30T10:00Z",
                                            "2026-12-01T10:00Z"]),
        }
    )  # fmt: skip
    plots = history_plots(history, 0.85, [], str(tmp_path))
    assert sorted(plots) == ["accuracy_over_time", "drift_over_time"]
    result = {
        "model": "m@1", "value": 0.68, "test_value": 0.98,
        "metrics": {"balanced_accuracy": 0.6, "f1_macro": 0.6, "recall": {"Adelie": 0.5}},
        "per_batch_accuracy": {"batch-1": 0.68},
        "drift": {"bill": {"statistic": "psi", "value": 2.5, "drifted": True}},
    }  # fmt: skip
    page = render_evaluation_report(
        result, "degraded", "accuracy 0.68 < 0.85", plots, {"k": "v"}, {"batch-1": "june.csv"}
    )
    assert page.count("data:image/png;base64,") == 2
    assert '<span class="badge bad">degraded</span>' in page
    assert "<td>june.csv</td>" in page and "batch-1" not in page  # batches by their file
    assert "<td>psi</td><td>2.500</td>" in page
    assert history_plots(history.iloc[2:], 0.85, [], str(tmp_path / "none")) == {}  # none measured


def test_distributions_show_categorical_features_beside_numeric_ones(tmp_path):
    from matplotlib.image import imread

    from pipeline_src.components.evaluation_report import distribution_plots

    baseline = {
        "features": {
            "bill": {"kind": "numeric", "histogram": {"edges": [30, 40, 50, 60],
                                                      "counts": [10, 20, 10]}},
            "island": {"kind": "categorical", "frequencies": {"Biscoe": 0.5, "Dream": 0.5}},
        }
    }  # fmt: skip
    frame = pd.DataFrame({"bill": [35.0, 45.0, 70.0], "island": ["Dream", "Dream", "Biscoe"]})
    plots = distribution_plots(baseline, frame, str(tmp_path))
    height, width, _ = imread(plots["distributions"]).shape
    assert width > 700 and height > 300  # two panels side by side, readable size


def test_bigquery_queries_type_their_parameters():
    from pipeline_src.cloud.bigquery import BigQueryWarehouse

    moment = datetime(2030, 1, 1, tzinfo=UTC)
    with mock.patch("google.cloud.bigquery.Client") as client:
        BigQueryWarehouse("p", "EU", "ds", "evaluation").read(
            "SELECT 1", {"until": moment, "run_id": "retrain-x"}
        )
    client.assert_called_once_with(project="p", location="EU")
    (sql,) = client.return_value.query.call_args.args
    config = client.return_value.query.call_args.kwargs["job_config"]
    assert sql == "SELECT 1"
    assert {(p.name, p.type_, p.value) for p in config.query_parameters} == {
        ("until", "TIMESTAMP", moment), ("run_id", "STRING", "retrain-x"),
    }  # fmt: skip


def test_the_served_model_on_vertex_is_the_endpoint_model_with_most_traffic():
    from pipeline_src.cloud.endpoints import VertexEndpoints
    from pipeline_src.components.new_data import served_model

    def endpoint(name):
        served = {
            "prod": [SimpleNamespace(id="1", model="models/m", model_version_id="3"),
                     SimpleNamespace(id="2", model="models/m", model_version_id="4")],
        }.get(name, [])  # fmt: skip
        return SimpleNamespace(list_models=lambda: served, traffic_split={"1": 90, "2": 10})

    def model(name, version):
        digest = SimpleNamespace(name="MODEL_SHA256", value=f"sha-{version}")
        return SimpleNamespace(
            versioned_resource_name=f"{name}@{version}", uri=f"gs://b/models/{version}",
            gca_resource=SimpleNamespace(container_spec=SimpleNamespace(env=[digest])),
        )  # fmt: skip

    with (
        mock.patch("google.cloud.aiplatform.init"),
        mock.patch("google.cloud.aiplatform.Endpoint", side_effect=endpoint),
        mock.patch("google.cloud.aiplatform.Model", side_effect=model),
    ):
        endpoints = VertexEndpoints("p", "l")
        assert served_model(endpoints, "prod", "staging", "evaluate") == (
            "models/m@3", "/gcs/b/models/3", "prod", "sha-3",
        )  # fmt: skip
        assert endpoints.serving("staging") is None
        with pytest.raises(ValueError, match="no endpoint serves a model"):
            served_model(endpoints, "staging", "", "evaluate")
