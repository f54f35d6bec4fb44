"""What broke or misbehaved on a real first `pulumi up` (docs/deploy.md), one test per defect.

Each test reads the committed stacks' offline plans (or the code path behind a setting) and fails
on the code before the fix: the endpoint's id, the wait before alert policies, staging's readers
derived from prod's outputs, the models bucket's listing, the schedules' code version and
concurrency, the ML engineers' Cloud Build path, the stack files' secrets provider.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from pipeline_src.compile import CODE_PATHS, code_version
from resources.monitoring import METRIC_VISIBILITY_WAIT
from stacks.config import PROJECT_ROOT, load_stack_file
from stacks.naming import Naming
from tests.infra.records import config_of, held_by
from tooling.plan.deploy_checks import METRIC_WAIT, check_record, closure
from tooling.plan.fresh import plan_fresh
from tooling.plan.iam_conditions import Request, holds
from tooling.plan.offline import Organisation
from tooling.plan.provider_rules import PlanError


def test_the_endpoint_id_is_numeric_stable_and_exported(stack_record):
    """D1: the API takes the id from the create call and accepts only digits (no leading zero,
    at most 10); left unset, pulumi-gcp auto-names it `serving-endpoint-<hex>`."""
    endpoint = stack_record.named("serving-endpoint").inputs["name"]
    assert re.fullmatch(r"[1-9][0-9]{0,9}", endpoint)
    config = config_of(stack_record)
    assert endpoint == Naming(config.project, stack_record.stack).endpoint_id()
    assert stack_record.outputs["endpoint"] == endpoint


def test_alert_policies_on_new_metrics_wait_for_them(stack_record):
    """D2: Monitoring finds a new log-based metric minutes after it is created."""
    sleeps = stack_record.of_type("time:index/sleep:Sleep")
    assert [s.inputs["createDuration"] for s in sleeps] == [METRIC_VISIBILITY_WAIT]
    metrics = {m.urn for m in stack_record.of_type("gcp:logging/metric:Metric")}
    assert metrics <= closure(stack_record, sleeps[0])
    readers = [
        a for a in stack_record.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
        if "logging.googleapis.com/user/" in str(a.inputs["conditions"])
    ]  # fmt: skip
    assert readers
    assert all(sleeps[0].urn in closure(stack_record, a) for a in readers)
    organisation = Organisation()
    assert not [f for f in check_record(stack_record, organisation) if f.rule is METRIC_WAIT]


def test_staging_reads_its_model_readers_from_prods_outputs(stack_records):
    """D3: no hand-typed prod identity (nor placeholder project number) in staging's file; the
    members are prod's exported identities, which exist once prod is deployed."""
    text = (PROJECT_ROOT / "Pulumi.staging.yaml").read_text(encoding="utf-8")
    assert "@acme-mlops-prod" not in text and "123456789012" not in text
    offered = stack_records["prod"].outputs["model_readers"]
    assert set(offered) == {"deployer", "pipeline_runner", "vertex_agent"}
    staging = stack_records["staging"]
    granted = {r.inputs["member"] for r in staging.resources if "-model-readers-" in r.name}
    assert granted == set(offered.values())
    (reference,) = [r for r in staging.resources if r.type == "pulumi:pulumi:StackReference"]
    assert reference.inputs["name"] == "organization/tabular-mlops/prod"
    agent = stack_records["prod"].named("serving-vertex-agent")
    assert agent.outputs["member"] == offered["vertex_agent"]


def test_a_fresh_organisation_deploys_in_the_documented_order():
    """D3: prod's identities first (no model yet), then staging, then prod with its model; in
    the other order staging's reference to prod fails the plan."""
    with pytest.raises(PlanError, match="not deployed"):
        plan_fresh((("staging", "first"), ("prod", "then")))
    first, staging, promoted = plan_fresh()
    assert not first.of_type("pulumi-python:dynamic/vertex:Promotion")
    assert staging.of_type("pulumi:pulumi:StackReference")
    assert promoted.of_type("pulumi-python:dynamic/vertex:Promotion")


def test_prods_readers_can_list_and_read_the_models_bucket(stack_records):
    """D4: a condition on object names never holds for a listing (checked on the bucket): the
    readers get the whole dedicated models bucket."""
    staging = stack_records["staging"]
    models = staging.named("data-lake-models")
    bucket = models.inputs["name"]
    assert models.inputs["retentionPolicy"]["retentionPeriod"] == str(30 * 86400)
    assert not models.inputs["lifecycleRules"], "bundles never expire"
    runner = stack_records["prod"].outputs["model_readers"]["pipeline_runner"]
    grants = [
        g for g in staging.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
        if g.inputs["member"] == runner and g.inputs["bucket"] == bucket
    ]  # fmt: skip
    assert grants
    for request in (Request.read(bucket, "penguins/run-1/model.pkl"), Request.listing(bucket, "")):
        expression = (grants[0].inputs.get("condition") or {}).get("expression")
        assert expression is None or holds(expression, request)
    uri = staging.outputs["training_pipeline"]["parameters"]["models_uri"]
    assert uri == f"gs://{bucket}"


def test_the_code_version_is_a_digest_of_the_code_not_of_history(tmp_path):
    """D6: in CI's one-commit checkout `git log -- <paths>` names HEAD after any merge."""
    for name in CODE_PATHS:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    (tmp_path / "README.md").write_text("docs changed: not the code\n")
    version = code_version(tmp_path)
    assert version == code_version(PROJECT_ROOT) and version.startswith("src-")
    (tmp_path / "pipeline_src" / "training.py").write_text("# changed\n", encoding="utf-8")
    assert code_version(tmp_path) != version


def test_schedules_limit_running_runs_not_only_starting_ones(stack_record):
    """D8: max_concurrent_run_count limits starting requests; the active-run limit keeps a
    second run from starting while one runs."""
    for schedule in stack_record.of_type("gcp:colab/schedule:Schedule"):
        assert schedule.inputs["maxConcurrentActiveRunCount"] == "1", schedule.name


def test_ml_engineers_can_run_the_documented_cloud_build(stack_record):
    """D12: pipeline_src/cloudbuild.yaml's command creates a build that runs as fn-build-STACK."""
    config = config_of(stack_record)
    build = f"fn-build-{stack_record.stack}@{config.project}.iam.gserviceaccount.com"
    for engineer in config.platform.access.ml_engineers:
        held = held_by(stack_record, engineer)
        assert ("projects", "roles/cloudbuild.builds.editor", "project") in held
        assert (
            "serviceaccount",
            "roles/iam.serviceAccountUser",
            f"projects/{config.project}/serviceAccounts/{build}",
        ) in held


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_stack_files_name_the_kms_secrets_provider(stack):
    """D13: without `secretsprovider` CI falls back to a passphrase it does not have."""
    path = PROJECT_ROOT / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    key = load_stack_file(path).platform.ci.secrets_key
    assert document.get("secretsprovider") == f"gcpkms://{key}"


def test_evaluation_alerts_match_the_decision_line_however_vertex_stores_it(stack_record):
    """D11: Cloud Run's JSON stdout becomes jsonPayload (documented); for Vertex AI custom jobs
    that is not confirmed, so the filters also match the line kept as text."""
    printed = json.dumps({"event": "evaluation", "decision": "degraded"})  # as trigger prints
    metric = stack_record.named("monitoring-evaluations").inputs["filter"]
    alert = stack_record.named("monitoring-retraining-triggered").inputs["conditions"][0]
    degraded = alert["conditionMatchedLog"]["filter"]
    for text in ('"event": "evaluation"', '"decision": "degraded"'):
        assert text in printed
        escaped = text.replace('"', '\\"')
        for where in ("jsonPayload.message", "textPayload"):
            assert f'{where}:"{escaped}"' in (degraded if "decision" in text else metric)
    assert 'jsonPayload.event="evaluation"' in metric
