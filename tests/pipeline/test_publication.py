"""Publishing a run in the cloud's layout: the decided report and the lifecycle page under
gs://<artifacts>/lifecycle, read back through the storage port's file view."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline_src.cloud.endpoints import VertexEndpoints
from pipeline_src.components.publish import publish
from pipeline_src.lifecycle_page import (
    PAGE_OBJECT,
    REPORTS_PREFIX,
    EndpointView,
    headed_by_decision,
)
from pipeline_src.ports import BACKEND_VARIABLE, backend_setting
from pipeline_src.publication import (
    endpoint_views,
    provenance,
    publish_page,
    publish_report,
    report_link,
)

BUCKET = "acme-mlops-staging-staging-artifacts"
LIFECYCLE = f"gs://{BUCKET}/lifecycle"
MODEL = "projects/123/locations/europe-west4/models/penguins-staging"
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class BucketFolders:
    """Artifact storage as the local backend keeps it: gs://bucket/name under a folder."""

    def __init__(self, root: Path):
        self.root, self.written = root, {}

    def path(self, uri: str) -> str:
        return str(self.root / uri.removeprefix("gs://"))

    def write_text(self, uri: str, text: str, content_type: str = "text/html") -> str:
        target = Path(self.path(uri))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        self.written[uri] = content_type
        return uri


def _rows(table: str) -> list[dict]:
    """What the warehouse holds: two training runs (newest first), one evaluation, one file."""
    if table == "model_metrics":
        run = {"data_snapshot": "s", "split": "test", "metric": "accuracy"}
        return [
            {**run, "run_id": "train-2", "model_version": None, "decision": "keep_champion",
             "reason": "does not beat it", "value": 0.97, "recorded_at": T0 + timedelta(hours=1)},
            {**run, "run_id": "train-1", "model_version": f"{MODEL}@1", "decision": "deploy",
             "reason": "clears the bar", "value": 0.986, "recorded_at": T0},
        ]  # fmt: skip
    if table == "evaluations":
        return [
            {"evaluation_id": "eval-1", "model_version": f"{MODEL}@1", "rows": 400,
             "value": 0.68, "baseline_value": 0.986, "drift": json.dumps({"island": 0.4}),
             "decision": "degraded", "reason": "drop 0.306", "triggered_run": "",
             "evaluated_at": T0 + timedelta(minutes=30)},
        ]  # fmt: skip
    return [
        {"source_uri": "gs://landing/incoming/june.csv", "status": "LOADED", "rows_loaded": 344,
         "rows_in_file": 344, "reason": None, "quarantine_uri": None, "started_at": T0},
    ]  # fmt: skip


def test_the_report_leads_with_the_decision_and_its_provenance():
    report = "<!DOCTYPE html><html><body><h1>penguins model report</h1><h2>Test metrics</h2>"
    facts = provenance("", "train-2", "abc123", T0)
    page = headed_by_decision(report, "keep_champion", "does not beat champion m@1", facts)
    head = page[: page.index("<h2>")]
    assert '<span class="badge neutral">kept the champion</span>' in head
    assert "does not beat champion m@1" in head
    for shown in ("none registered", "train-2", "abc123", "2026-12-07 09:00 UTC"):
        assert f"<td>{shown}</td>" in head


def test_reports_are_kept_beside_the_page_and_linked_by_their_browser_address(tmp_path):
    storage = BucketFolders(tmp_path)
    where = publish_report(storage, LIFECYCLE, "train-1", "<h1>report</h1>")
    assert where == f"gs://{BUCKET}/{REPORTS_PREFIX}train-1.html"
    assert storage.written[where].startswith("text/html")
    link = report_link(LIFECYCLE, "train-1")
    assert link == f"https://storage.cloud.google.com/{BUCKET}/{REPORTS_PREFIX}train-1.html"
    assert report_link("/home/me/.local", "train-1") == "reports/train-1.html"
    with pytest.raises(ValueError, match="run id"):
        publish_report(storage, LIFECYCLE, "../index", "<h1>x</h1>")


def test_the_page_is_written_where_the_dashboard_links_it_from_the_warehouse_rows(tmp_path):
    storage = BucketFolders(tmp_path)
    for run in ("train-1", "eval-1"):  # train-2 predates publishing: no report to link
        publish_report(storage, LIFECYCLE, run, f"<h1>{run}</h1>")
    tables = []

    def read(sql: str, table: str) -> list[dict]:
        assert f"`tabular_mlops_staging`.`{table}`" in sql
        tables.append(table)
        return _rows(table)

    views = endpoint_views(
        lambda name: {f"{MODEL}@1": 100} if name.endswith("/1") else {},
        [f"{MODEL.replace('models/penguins-staging', 'endpoints/1')}", "", "prod"],
    )
    assert [v.name.rsplit("/", 1)[-1] for v in views] == ["1", "prod"]
    where = publish_page(
        read, storage, dataset="tabular_mlops_staging", endpoints=views,
        lifecycle_uri=LIFECYCLE, title="penguins: the model's lifecycle", now=T0,
    )  # fmt: skip
    assert where == f"gs://{BUCKET}/{PAGE_OBJECT}"
    assert sorted(tables) == ["evaluations", "ingestion_log", "model_metrics"]
    page = (tmp_path / BUCKET / PAGE_OBJECT).read_text()
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "Generated 2026-12-07 09:00 UTC" in text
    assert page.index(">kept the champion<") < page.index(">deployed<")  # newest first
    browser = f"https://storage.cloud.google.com/{BUCKET}/{REPORTS_PREFIX}"
    assert f'<a href="{browser}train-1.html">report</a>' in page
    assert f'<a href="{browser}eval-1.html">report</a>' in page
    assert f"{browser}train-2.html" not in page
    assert "penguins-staging@1 100%" in text and "nothing deployed" in text
    assert "june.csv" in text and "344 of 344" in text


def test_an_endpoint_view_per_named_endpoint():
    seen = []
    views = endpoint_views(lambda name: seen.append(name) or {}, ["staging", "prod", "staging"])
    assert views == [EndpointView("staging", {}), EndpointView("prod", {})] and len(seen) == 2


class CloudLayout:
    """The ports a cloud run's publish step uses, standing in for BigQuery, Vertex AI and Cloud
    Storage: the warehouse's rows, one endpoint serving, buckets as folders."""

    def __init__(self, root: str):
        self.storage = BucketFolders(Path(root))

    def warehouse(self, project, location, dataset, job_label):
        def read(sql, params=None, tables=()):
            assert len(tables) == 1 and f"`{dataset}`.`{tables[0]}`" in sql
            return SimpleNamespace(to_pylist=lambda: _rows(tables[0]))

        return SimpleNamespace(read=read)

    def endpoints(self, project, location):
        return SimpleNamespace(traffic=lambda name: {f"{MODEL}@1": 100} if name else {})

    def artifacts(self):
        return self.storage


def test_the_publish_step_heads_the_report_and_refreshes_the_page_in_the_bucket(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(
        BACKEND_VARIABLE, backend_setting(f"{__name__}:CloudLayout", root=str(tmp_path))
    )
    produced = tmp_path / "pipeline-root" / "report"
    produced.parent.mkdir()
    produced.write_text("<html><body><h1>penguins model report</h1><h2>Test metrics</h2>")
    common = {
        "contract": {"name": "penguins"}, "project": "acme-mlops-staging",
        "location": "europe-west4", "bq_location": "EU", "dataset": "tabular_mlops_staging",
        "lifecycle_uri": LIFECYCLE, "endpoint": "projects/p/locations/l/endpoints/42",
    }  # fmt: skip
    kept = publish.python_func(
        **common, run_id="train-3", report=SimpleNamespace(path=str(produced)),
        decision="register", reason="beats the champion; registered as a candidate for QA",
        model_version=f"{MODEL}@2", git_commit="0123456789ab",
    )  # fmt: skip
    assert kept == f"gs://{BUCKET}/{REPORTS_PREFIX}train-3.html"
    report = (tmp_path / BUCKET / REPORTS_PREFIX / "train-3.html").read_text()
    head = report[: report.index("<h2>")]
    assert '<span class="badge candidate">registered as a candidate</span>' in head
    assert f"<td>{MODEL}@2</td>" in head and "<td>0123456789ab</td>" in head
    page = (tmp_path / BUCKET / PAGE_OBJECT).read_text()
    assert "<title>penguins: the model&#x27;s lifecycle</title>" in page
    assert ">kept the champion<" in page and "june.csv" in page  # the warehouse's rows
    assert "penguins-staging@1</code> 100%" in page  # what endpoint 42 serves

    # A run without a report (an evaluation short of new data) still refreshes the page.
    (tmp_path / BUCKET / PAGE_OBJECT).unlink()
    assert publish.python_func(**common, run_id="eval-2") == ""
    assert (tmp_path / BUCKET / PAGE_OBJECT).is_file()


def test_vertex_endpoint_traffic_names_each_served_version(monkeypatch):
    from google.cloud import aiplatform

    deployed = [
        SimpleNamespace(id="11", model=MODEL, model_version_id="1"),
        SimpleNamespace(id="12", model=MODEL, model_version_id="2"),
        SimpleNamespace(id="13", model=MODEL, model_version_id="3"),
    ]

    class Endpoint:
        def __init__(self, name):
            self.traffic_split = {"11": 90, "12": 10, "13": 0} if name == "e1" else {}

        def list_models(self):
            return deployed if self.traffic_split else []

    monkeypatch.setattr(aiplatform, "init", lambda **kwargs: None)
    monkeypatch.setattr(aiplatform, "Endpoint", Endpoint)
    endpoints = VertexEndpoints("p", "l")
    assert endpoints.traffic("e1") == {f"{MODEL}@1": 90, f"{MODEL}@2": 10}
    assert endpoints.traffic("e2") == {}
