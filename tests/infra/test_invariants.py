"""Invariants over every resource both committed stacks declare (the recorded offline plan).

Each test states a rule of the platform and checks it against all resources of its kind, so a new
resource is held to the rules without a new test.
"""

from __future__ import annotations

import pytest

from resources.access import BASIC_ROLES, IMPERSONATION_ROLES
from tests.infra.records import (
    assert_waits_for_apis,
    bindings,
    config_of,
    held_by,
    resource_labels,
)

PUBLIC = ("allUsers", "allAuthenticatedUsers")


def custom(record, type_=None):
    return [
        r
        for r in record.resources
        if r.custom and not r.type.startswith("pulumi:providers:") and type_ in (None, r.type)
    ]


def test_every_bucket_is_private_and_uniform(stack_record):
    buckets = custom(stack_record, "gcp:storage/bucket:Bucket")
    assert len(buckets) >= 4
    for bucket in buckets:
        assert bucket.inputs["uniformBucketLevelAccess"] is True, bucket.name
        assert bucket.inputs["publicAccessPrevention"] == "enforced", bucket.name


def test_every_data_bucket_logs_access_to_the_log_bucket_and_keeps_versions(stack_record):
    logs = stack_record.named("data-lake-access-logs").inputs
    assert "logging" not in logs  # it would log its own log writes
    for bucket in custom(stack_record, "gcp:storage/bucket:Bucket"):
        if bucket.name != "data-lake-access-logs":
            assert bucket.inputs["logging"]["logBucket"] == logs["name"], bucket.name
    versioned = {"landing", "quarantine", "artifacts", "access-logs"}
    for name in versioned:
        assert stack_record.named(f"data-lake-{name}").inputs["versioning"] == {"enabled": True}


def test_quarantine_is_versioned_and_never_expires(stack_record):
    quarantine = stack_record.named("data-lake-quarantine")
    assert quarantine.inputs["versioning"] == {"enabled": True}
    assert not quarantine.inputs.get("lifecycleRules")


def test_nothing_is_granted_to_the_public(stack_record):
    for res in custom(stack_record):
        text = repr(res.inputs)
        assert not any(f"'{public}'" in text for public in PUBLIC), res.name
    assert bindings(stack_record), "the stack grants nothing: the IAM invariants test nothing"


def test_no_basic_roles_and_no_project_wide_impersonation(stack_record):
    for binding in bindings(stack_record):
        assert binding.role not in BASIC_ROLES, binding.record.name
        if binding.target == "project":
            assert binding.role not in IMPERSONATION_ROLES, binding.record.name
    for role in custom(stack_record, "gcp:projects/iAMCustomRole:IAMCustomRole"):
        assert not any("*" in p or "setIamPolicy" in p for p in role.inputs["permissions"])


def test_no_workload_runs_as_the_compute_default_account(stack_record):
    for res in custom(stack_record):
        assert "-compute@developer.gserviceaccount.com" not in repr(res.inputs), res.name
    function = stack_record.named("ingestion-function").inputs
    assert function["serviceConfig"]["serviceAccountEmail"].startswith("ingest-")
    assert function["eventTrigger"]["serviceAccountEmail"].startswith("ingest-trigger-")
    assert "/serviceAccounts/fn-build-" in function["buildConfig"]["serviceAccount"]


def test_everything_that_takes_labels_carries_the_stack(stack_record):
    labelled = 0
    for res in custom(stack_record):
        labels = resource_labels(res)
        if labels is None:
            continue
        labelled += 1
        assert labels.get("stack") == stack_record.stack, res.name
        assert labels.get("app") == "tabular-mlops", res.name
    assert labelled >= 15


def test_every_resource_waits_for_the_api_it_needs(stack_record):
    assert_waits_for_apis(stack_record)


def test_stateful_resources_follow_the_protection_config(stack_record):
    config = config_of(stack_record).platform
    for bucket in custom(stack_record, "gcp:storage/bucket:Bucket"):
        assert bucket.inputs["forceDestroy"] is config.data_lake.force_destroy
        assert bucket.protect is not config.data_lake.force_destroy, bucket.name
    dataset = stack_record.named("warehouse-dataset")
    assert dataset.inputs["deleteContentsOnDestroy"] is not config.warehouse.deletion_protection
    for res in [dataset, *custom(stack_record, "gcp:bigquery/table:Table")]:
        assert res.protect is config.warehouse.deletion_protection, res.name
    for table in custom(stack_record, "gcp:bigquery/table:Table"):
        assert table.inputs["deletionProtection"] is config.warehouse.deletion_protection


def test_prod_protects_its_data(stack_records):
    prod = stack_records["prod"]
    stateful = custom(prod, "gcp:storage/bucket:Bucket") + [
        r for r in custom(prod) if r.type.startswith("gcp:bigquery/") and "IamMember" not in r.type
    ]
    assert len(stateful) >= 9
    assert all(r.protect for r in stateful)
    assert not any(r.inputs.get("forceDestroy") for r in stateful)


def test_function_trigger_listens_to_the_landing_bucket(stack_record):
    function = stack_record.named("ingestion-function").inputs
    trigger = function["eventTrigger"]
    landing = stack_record.named("data-lake-landing").inputs
    assert trigger["eventType"] == "google.cloud.storage.object.v1.finalized"
    assert trigger["eventFilters"] == [{"attribute": "bucket", "value": landing["name"]}]
    assert trigger["triggerRegion"] == landing["location"].lower()
    assert trigger["retryPolicy"] == "RETRY_POLICY_RETRY"
    service = function["serviceConfig"]
    assert service["ingressSettings"] == "ALLOW_INTERNAL_ONLY"
    config = config_of(stack_record).platform.ingestion
    assert service["maxInstanceCount"] == config.max_instances


def test_function_accounts_hold_only_what_they_need(stack_record):
    project = config_of(stack_record).project
    stack = stack_record.stack

    def account(name):
        return f"serviceAccount:{name}-{stack}@{project}.iam.gserviceaccount.com"

    landing, quarantine, artifacts = (
        stack_record.named(f"data-lake-{b}").inputs["name"]
        for b in ("landing", "quarantine", "artifacts")
    )
    dataset = stack_record.named("warehouse-dataset").inputs["datasetId"]
    assert held_by(stack_record, account("ingest")) == {
        ("storage", "roles/storage.objectViewer", landing),
        # Only its load jobs' staging copies: objects under tmp/ingestion/.
        ("storage", "roles/storage.objectUser", artifacts),
        ("storage", "roles/storage.objectCreator", quarantine),
        ("storage", "roles/storage.objectViewer", quarantine),
        ("bigquery", "roles/bigquery.dataEditor", dataset),
        ("projects", "roles/bigquery.jobUser", "project"),
    }
    function = stack_record.named("ingestion-function").outputs["serviceConfig"]["service"]
    assert held_by(stack_record, account("ingest-trigger")) == {
        ("projects", "roles/eventarc.eventReceiver", "project"),
        ("cloudrunv2", "roles/run.invoker", function),
    }
    build = held_by(stack_record, account("fn-build"))
    assert {(kind, role) for kind, role, _ in build} == {
        ("projects", "roles/logging.logWriter"),
        ("projects", "roles/storage.objectUser"),
        ("artifactregistry", "roles/artifactregistry.writer"),
    }
    staging = stack_record.named("data-lake-artifacts-ingestion-storage-objectuser")
    assert staging.inputs["condition"]["expression"] == (
        f'resource.name.startsWith("projects/_/buckets/{artifacts}/objects/tmp/ingestion/")'
    )
    conditioned = stack_record.named("ingestion-project-function-build-storage-objectuser")
    assert "gcf-v2-sources-" in conditioned.inputs["condition"]["expression"]


def test_no_account_is_created_that_nothing_runs_as(stack_record):
    """A schedule has no caller field (its runs are created with the deployer's authority and run
    as the pipeline runner): a 'schedule caller' account would hold grants for nothing."""
    accounts = {
        r.inputs["accountId"] for r in custom(stack_record, "gcp:serviceaccount/account:Account")
    }
    assert not any(account.startswith("schedules-") for account in accounts)
    assert "schedule_caller" not in stack_record.outputs


def test_workbench_is_private_shielded_and_stops_when_idle(stack_record):
    config = config_of(stack_record).platform.workbench
    instances = custom(stack_record, "gcp:workbench/instance:Instance")
    if not config.enabled:
        assert instances == []
        return
    (instance,) = instances
    setup = instance.inputs["gceSetup"]
    assert setup["disablePublicIp"] is True
    assert set(setup["shieldedInstanceConfig"].values()) == {True}
    assert setup["metadata"]["idle-timeout-seconds"] == str(config.idle_shutdown_minutes * 60)
    assert setup["metadata"]["enable-guest-attributes"] == "TRUE"
    assert instance.inputs["instanceOwners"] == [config.owner]
    assert setup["serviceAccounts"][0]["email"].startswith("workbench-")
    subnet = stack_record.named("workbench-subnet").inputs
    assert subnet["privateIpGoogleAccess"] is True
    assert setup["networkInterfaces"][0]["subnet"].endswith(f"/subnetworks/{subnet['name']}")
    assert not any("accessConfigs" in nic for nic in setup["networkInterfaces"])


def test_endpoint_logs_to_the_warehouse_and_leaves_traffic_to_deployments(stack_record):
    config = config_of(stack_record)
    endpoint = stack_record.named("serving-endpoint")
    assert "trafficSplit" in endpoint.ignore_changes
    logging = endpoint.inputs.get("predictRequestResponseLoggingConfig")
    if not config.platform.serving.request_logging:
        assert logging is None
        return
    dataset = stack_record.named("warehouse-dataset").inputs["datasetId"]
    # A dataset, never a table: Vertex creates the table and fails if it already exists.
    assert logging["bigqueryDestination"]["outputUri"] == f"bq://{config.project}.{dataset}"
    assert logging["samplingRate"] == config.platform.serving.logging_sampling_rate


@pytest.mark.parametrize("key", ["quarantine", "function-errors", "pipeline-failures"])
def test_alerts_reach_the_configured_email(stack_record, key):
    channel = stack_record.named("monitoring-email")
    email = config_of(stack_record).platform.monitoring.notification_email
    assert channel.inputs["labels"] == {"email_address": email}
    policy = stack_record.named(f"monitoring-{key}").inputs
    assert policy["notificationChannels"] == [channel.outputs["name"]]
    assert policy["conditions"]


def test_pipeline_code_cannot_swap_the_function_source(stack_record):
    artifacts = stack_record.named("data-lake-artifacts").inputs["name"]
    # The stack's own runner (another stack's, a model reader, only reads models/).
    runner = f"serviceAccount:pipelines-{stack_record.stack}@"
    (grant,) = [
        b for b in bindings(stack_record) if b.member.startswith(runner) and b.target == artifacts
    ]
    expression = grant.record.inputs["condition"]["expression"]
    assert (
        expression
        == f'!resource.name.startsWith("projects/_/buckets/{artifacts}/objects/sources/")'
    )
    assert stack_record.named("ingestion-source").inputs["name"].startswith("sources/")
