"""The cloud lifecycle page: where the pipelines write it, who may write and read it, and that
the dashboard links that very object (pipeline_src/lifecycle_page.py PAGE_OBJECT)."""

from __future__ import annotations

import json

from pipeline_src.lifecycle_page import PAGE_OBJECT, REPORTS_PREFIX
from stacks.config import PROJECT_ROOT, load_stack_file
from tests.infra.records import bindings, job_of
from tooling.plan.iam_conditions import Request, holds

WRITE_ROLES = {"roles/storage.objectUser", "roles/storage.objectCreator", "roles/storage.admin"}


def _granted(record, bucket: str, member: str, roles: set[str], request: Request) -> bool:
    """Whether any of `member`'s grants on `bucket` with one of `roles` holds for `request`."""
    return any(
        (b.record.inputs.get("condition") or {}).get("expression") is None
        or holds(b.record.inputs["condition"]["expression"], request)
        for b in bindings(record)
        if b.member == member and b.target == bucket and b.role in roles
    )


def test_the_pipelines_may_write_the_page_and_reports_and_nothing_expires_them(stack_record):
    artifacts = stack_record.named("data-lake-artifacts").inputs
    bucket = artifacts["name"]
    runner = stack_record.outputs["model_readers"]["pipeline_runner"]
    for name in (PAGE_OBJECT, f"{REPORTS_PREFIX}tabular-mlops-training-20261207.html"):
        assert _granted(stack_record, bucket, runner, WRITE_ROLES, Request.read(bucket, name))
    # The same grant still keeps pipeline code away from the function's source archives.
    sources = Request.read(bucket, "sources/ingest.zip")
    assert not _granted(stack_record, bucket, runner, WRITE_ROLES, sources)
    # Run artifacts expire; the page and the reports it links are kept.
    for rule in artifacts["lifecycleRules"]:
        prefixes = rule["condition"].get("matchesPrefixes") or []
        assert not any(PAGE_OBJECT.startswith(p) for p in prefixes), rule


def test_stakeholders_read_the_page_the_dashboard_links(stack_record):
    bucket = stack_record.named("data-lake-artifacts").inputs["name"]
    config = load_stack_file(PROJECT_ROOT / f"Pulumi.{stack_record.stack}.yaml")
    stakeholders = config.platform.access.stakeholders
    assert stakeholders
    for member in stakeholders:
        for name in (PAGE_OBJECT, f"{REPORTS_PREFIX}run.html"):
            viewer = {"roles/storage.objectViewer"}
            assert _granted(stack_record, bucket, member, viewer, Request.read(bucket, name))
    dashboard = json.dumps(
        json.loads(stack_record.named("monitoring-dashboard").inputs["dashboardJson"])
    )
    assert f"https://storage.cloud.google.com/{bucket}/{PAGE_OBJECT})" in dashboard


def test_every_training_and_evaluation_run_publishes_where_the_dashboard_links(stack_record):
    bucket = stack_record.named("data-lake-artifacts").inputs["name"]
    training = job_of(stack_record, "pipelines-training-schedule")["runtimeConfig"]
    evaluation = job_of(stack_record, "pipelines-evaluation-schedule")["runtimeConfig"]
    expected = f"gs://{bucket}/{PAGE_OBJECT.removesuffix('/index.html')}"
    assert training["parameterValues"]["lifecycle_uri"] == expected
    assert evaluation["parameterValues"]["lifecycle_uri"] == expected
    # A retraining the evaluation starts publishes there too (the schedule's parameters).
    retraining = json.loads(evaluation["parameterValues"]["training_parameters"])
    assert retraining["lifecycle_uri"] == expected
