"""The whole pipeline run by kfp.local on the sample: a better model deploys, a worse one not."""

from __future__ import annotations

import json

import pytest

from local.environment import LocalEnvironment
from local.registry import LocalEndpoint, LocalModelRegistry
from local.run_training import PipelineFailed, run, summary
from local.warehouse import connect
from pipeline_src.components.register import BUNDLE_FILES


def test_the_gate_deploys_a_better_model_and_keeps_the_champion_against_a_worse(tmp_path):
    env = LocalEnvironment(root=tmp_path / "state")
    progress: list[str] = []

    first = run(env, say=progress.append)
    assert first.decision == "deploy", first.reason
    assert first.seconds < 60
    assert any("ingested the sample (344 rows)" in line for line in progress)
    finished = [line.split()[0] for line in progress if " done in " in line]
    # record-metrics and deploy both follow register; either may run first. Publishing the
    # report and the lifecycle page waits for both.
    assert finished[:7] == ["extract", "validate", "split", "train", "evaluate", "gate", "register"]
    assert sorted(finished[7:9]) == ["deploy", "record-metrics"] and finished[9:] == ["publish"]
    model, baseline = first.evaluation["model"], first.evaluation["baseline"]
    assert model["accuracy"] > 0.95 and baseline["accuracy"] < 0.5
    assert first.report.suffix == ".html" and first.report.parent == env.root / "reports"
    first_page = first.report.read_text(encoding="utf-8")
    assert first_page.startswith("<!DOCTYPE html>")
    # The report leads with what happened, and which version, run and commit it was.
    assert first_page.index('<span class="badge good">deployed</span>') < first_page.index("<h2>")
    assert f"<td>{env.model_id}@1</td>" in first_page and first.report.stem in first_page

    registry = LocalModelRegistry(env.registry_dir)
    champion = registry.get(env.model_id, "staging")
    assert first.serving == champion.resource_name == f"{env.model_id}@1"
    assert sorted(p.name for p in champion.artifact_path.iterdir()) == sorted(BUNDLE_FILES)
    baseline_stats = json.loads((champion.artifact_path / "baseline.json").read_text())
    assert baseline_stats["rows"] == 344 and "bill_length_mm" in baseline_stats["features"]

    # A deliberately weak challenger that still clears a lowered bar: the champion must stay.
    progress.clear()
    second = run(env, say=progress.append, max_iter=1, learning_rate=0.01, min_accuracy=0.3)
    assert second.decision == "keep_champion"
    # Each branch has its own tasks (kfp's record-metrics-3, publish-3), shown by their names.
    assert [line.split()[0] for line in progress if " done in " in line][-2:] == [
        "record-metrics", "publish"
    ]  # fmt: skip
    assert f"does not beat champion {champion.resource_name}" in second.reason
    assert '<span class="badge neutral">kept the champion</span>' in second.report.read_text()
    # The lifecycle page lists both runs, newest first, each linking its report.
    index = (env.root / "index.html").read_text()
    assert index.index(second.report.name) < index.index(first.report.name)
    assert second.serving == first.serving
    assert [v.version_id for v in registry.versions(env.model_id)] == ["1"]

    with connect(env.warehouse_path, read_only=True) as con:
        decisions = con.sql(
            f"SELECT decision, model_version, count(*) FROM {env.dataset}.model_metrics "
            "WHERE metric = 'accuracy' AND split = 'test' GROUP BY ALL ORDER BY decision"
        ).fetchall()
    assert decisions == [("deploy", champion.resource_name, 1), ("keep_champion", None, 1)]


def test_where_promotion_deploys_a_better_model_is_registered_and_never_deployed(tmp_path):
    env = LocalEnvironment(root=tmp_path / "state")
    progress: list[str] = []
    # Published as a stack publishes: under the artifacts bucket's lifecycle/ (here its folder).
    bucket = env.artifacts_bucket
    outcome = run(
        env, say=progress.append, endpoint="prod", deploy_by="promotion", model_alias="candidate",
        lifecycle_uri=f"gs://{bucket}/lifecycle",
    )  # fmt: skip
    assert outcome.decision == "register", outcome.reason
    published = env.root / "buckets" / bucket / "lifecycle"
    assert outcome.report == published / "reports" / f"{outcome.report.stem}.html"
    head = outcome.report.read_text(encoding="utf-8").split("<h2>")[0]
    assert '<span class="badge candidate">registered as a candidate</span>' in head
    page = (published / "index.html").read_text(encoding="utf-8")
    browser = f"https://storage.cloud.google.com/{bucket}/lifecycle/reports/"
    assert f'<a href="{browser}{outcome.report.name}">report</a>' in page
    assert "registered as a candidate for QA" in outcome.reason
    finished = {line.split()[0] for line in progress if " done in " in line}
    assert {"register", "record-metrics"} <= finished and "deploy" not in finished

    candidate = LocalModelRegistry(env.registry_dir).get(env.model_id, "candidate")
    assert candidate.resource_name == f"{env.model_id}@1"
    for endpoint in ("prod", "staging"):  # untouched: prod is QA's, by promotion
        assert not LocalEndpoint(env.endpoints_dir, endpoint).path.exists()
    assert outcome.serving is None and outcome.candidate == candidate.resource_name
    assert f"awaiting promotion: make promote MODEL={candidate.resource_name}" in summary(outcome)
    log = outcome.log.read_text(encoding="utf-8")
    assert (
        f"registered {candidate.resource_name}; the endpoint serves by promotion: "
        f"make promote MODEL={candidate.resource_name}"
    ) in log
    with connect(env.warehouse_path, read_only=True) as con:
        recorded = con.sql(
            f"SELECT DISTINCT decision, model_version FROM {env.dataset}.model_metrics"
        ).fetchall()
    assert recorded == [("register", candidate.resource_name)]


def test_unfit_data_stops_the_run_with_the_validation_message(tmp_path):
    env = LocalEnvironment(root=tmp_path / "state")
    with pytest.raises(PipelineFailed) as failed:
        run(env, say=lambda _: None, min_rows_per_class=1000)
    message = str(failed.value)
    assert message.startswith("task validate failed: ValueError: snapshot")
    assert "class 'Adelie' has 152 rows; at least 1000 are needed" in message
    assert "full log:" in message
    assert not LocalModelRegistry(env.registry_dir).exists(env.model_id)
