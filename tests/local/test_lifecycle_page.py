"""`.local/index.html`: every ingestion, training run, evaluation and endpoint, newest first."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

from contracts.tables import EVALUATIONS, INGESTION_LOG, MODEL_METRICS
from local.environment import LocalEnvironment
from local.lifecycle import write_index
from local.registry import LocalEndpoint, LocalModelRegistry
from local.warehouse import append_rows, connect

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _metric_rows(run_id: str, at: int, decision: str, reason: str, version: str, accuracy: float):
    common = {"run_id": run_id, "model_version": version, "data_snapshot": "s", "split": "test",
              "decision": decision, "reason": reason, "recorded_at": _at(at)}  # fmt: skip
    return [
        {**common, "metric": "accuracy", "value": accuracy},
        {**common, "metric": "baseline/accuracy", "value": 0.435},
    ]


def _fill(env: LocalEnvironment) -> None:
    ingestions = [
        {"batch_id": "b1", "source_uri": "gs://landing/incoming/june.csv", "source_generation": 1,
         "attempt_id": "a1", "status": "LOADED", "rows_loaded": 344, "rows_in_file": 344,
         "started_at": _at(0)},
        {"batch_id": "b2", "source_uri": "gs://landing/incoming/notes.csv", "source_generation": 1,
         "attempt_id": "a2", "status": "REJECTED", "rows_loaded": 0, "rows_in_file": 10,
         "reason": "column species: 'Emperor' is not a species", "started_at": _at(1)},
        {"batch_id": "b3", "source_uri": "gs://landing/incoming/july.csv", "source_generation": 1,
         "attempt_id": "a3", "status": "STARTED", "started_at": _at(2)},
    ]  # fmt: skip
    # Every attempt writes a STARTED row first; the page shows its outcome instead.
    ingestions += [{**row, "status": "STARTED", "rows_loaded": None} for row in ingestions[:2]]
    metrics = _metric_rows("train-1", 5, "deploy", "clears the bar", "m@1", 0.986)
    metrics += _metric_rows("train-2", 20, "keep_champion", "does not beat m@1", "", 0.97)
    evaluation = {
        "evaluation_id": "eval-1", "model_version": "m@1", "rows": 400, "value": 0.677,
        "baseline_value": 0.986, "drift": json.dumps({"bill_length_mm": 3.7, "island": 0.01}),
        "decision": "degraded", "reason": "drop 0.309", "triggered_run": "retrain-1",
        "evaluated_at": _at(10),
    }  # fmt: skip
    with connect(env.warehouse_path) as con:
        append_rows(con, env.dataset, "ingestion_log", INGESTION_LOG.schema, ingestions)
        append_rows(con, env.dataset, "model_metrics", MODEL_METRICS.schema, metrics)
        append_rows(con, env.dataset, "evaluations", EVALUATIONS.schema, [evaluation])
    reports = env.root / "reports"
    reports.mkdir()
    for run in ("train-1", "train-2", "eval-1"):
        (reports / f"{run}.html").write_text("<h1>report</h1>")


def test_the_page_shows_every_step_newest_first_with_links_and_badges(tmp_path, sample_model_dir):
    env = LocalEnvironment(root=tmp_path / "state").ensure()
    _fill(env)
    version = LocalModelRegistry(env.registry_dir).upload(
        env.model_id, sample_model_dir, display_name="penguins"
    )
    LocalEndpoint(env.endpoints_dir, "staging").deploy(version)

    page = write_index(env).read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    # What each endpoint serves; prod serves nothing yet.
    assert f"{version.resource_name} 100%" in " ".join(text.split())
    assert "nothing deployed" in page
    # Training runs newest first, each with its decision and report.
    assert page.index(">kept the champion<") < page.index(">deployed<")
    assert '<a href="reports/train-2.html">report</a>' in page
    assert '<a href="reports/train-1.html">report</a>' in page
    # The evaluation: verdict, the drift that explains it, the retraining it started.
    assert '<span class="badge bad">degraded</span>' in page
    assert "bill_<wbr>length_<wbr>mm<br>3.70" in page and "retrain-1" in page
    assert '<a href="reports/eval-1.html">report</a>' in page
    # Ingestions, newest first: the rejection and why, then the load.
    assert page.index("july.csv") < page.index("notes.csv") < page.index("june.csv")
    # One row per attempt: an outcome, or a start with none (cut short, or still running).
    assert page.count(">no outcome<") == 1 and page.count("june.csv") == 1
    assert "'Emperor' is not a species" in html.unescape(page) and "344 of 344" in page


def test_a_fresh_platform_gets_a_page_that_says_what_to_run(tmp_path):
    env = LocalEnvironment(root=tmp_path / "fresh")
    page = write_index(env).read_text()
    assert "no training run yet: make pipeline" in page
    assert "no evaluation yet: make evaluate" in page
