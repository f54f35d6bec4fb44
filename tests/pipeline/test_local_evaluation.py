"""The evaluation pipeline run by kfp.local on generated batches ingested by the function: a clean
batch (healthy), a drifted batch (degraded: retraining, the new model reaches staging), then
nothing new (not enough data: the same spans never trigger twice)."""

from __future__ import annotations

import json

from local.batches import ingest_generated
from local.environment import LocalEnvironment
from local.run_evaluation import run as evaluate
from local.run_evaluation import summary
from local.run_training import run as train
from local.warehouse import connect

NUMERIC = {"bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"}


def test_drift_is_detected_and_retrains_clean_data_passes(tmp_path):
    env = LocalEnvironment(root=tmp_path / "state")
    quiet = lambda _: None  # noqa: E731
    first = train(env, say=quiet)
    assert first.serving == f"{env.model_id}@1"

    clean = ingest_generated(env, 300, seed=21)  # through the ingestion function
    healthy = evaluate(env, say=quiet)
    assert healthy.decision == "healthy", healthy.record["reason"]
    assert healthy.record["value"] >= 0.9 and healthy.retraining is None
    assert json.loads(healthy.record["batch_ids"]) == [clean["batch_id"]]
    assert max(healthy.drift.values()) < 0.2
    assert healthy.report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    drifted = ingest_generated(env, 400, seed=22, drift="shift=1.5")
    progress: list[str] = []
    degraded = evaluate(env, say=progress.append)
    record = degraded.record
    assert degraded.decision == "degraded", record["reason"]
    assert json.loads(record["batch_ids"]) == [
        drifted["batch_id"]
    ]  # the clean batch was judged already
    assert record["value"] < 0.85 and record["baseline_value"] > 0.95
    assert {name for name, value in degraded.drift.items() if value > 0.2} == NUMERIC
    assert record["triggered_run"] and any("requested" in line for line in progress)
    retrained = degraded.retraining
    assert retrained.decision == "deploy", retrained.reason
    assert retrained.serving == f"{env.model_id}@2"
    request = json.loads((env.root / "retraining" / f"{record['triggered_run']}.json").read_text())
    assert request["status"] == "done" and request["staging_serves"] == retrained.serving
    assert any("retraining" in line for line in summary(degraded))

    # The new model was trained on everything up to the drifted batch: nothing new to judge, so
    # the same spans can never trigger again.
    after = evaluate(env, say=quiet)
    assert after.decision == "not_enough_data" and after.record["model_version"].endswith("@2")
    assert after.retraining is None

    with connect(env.warehouse_path, read_only=True) as con:
        decisions = con.sql(
            f"SELECT decision FROM {env.dataset}.evaluations ORDER BY evaluated_at"
        ).fetchall()
        snapshot_rows = con.sql(
            f"SELECT count(*) FROM {env.dataset}.model_metrics WHERE metric = 'accuracy' "
            "AND split = 'test'"
        ).fetchall()
    assert [d[0] for d in decisions] == [
        "healthy", "degraded", "not_enough_data",
    ]  # fmt: skip
    assert snapshot_rows == [(2,)]
