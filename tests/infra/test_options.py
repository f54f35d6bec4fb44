"""What optional config switches on or off: CMEK, alert email, Workbench; and their checks."""

from __future__ import annotations

import copy

import pytest

from resources.access import Grantee
from resources.identities import Identities
from stacks.config import (
    PROJECT_ROOT,
    ConfigError,
    load_stack_file,
    parse_stack_config,
    stack_config_values,
)
from tests.infra.records import assert_waits_for_apis
from tooling.plan.offline import bq_service_agent, gcs_service_agent, project_number, run_program

KEY = "projects/acme-security/locations/europe-west4/keyRings/ml/cryptoKeys/data"


def _staging(**platform) -> dict:
    config = copy.deepcopy(stack_config_values("staging"))
    config["tabular-mlops:platform"].update(platform)
    return config


@pytest.fixture(scope="module")
def cmek_record():
    return run_program("staging", config=_staging(kms_key=KEY))


def test_cmek_key_is_applied_wherever_supported(cmek_record):
    def inputs(name):
        return cmek_record.named(name).inputs

    for bucket in ("landing", "quarantine", "artifacts"):
        assert inputs(f"data-lake-{bucket}")["encryption"] == {"defaultKmsKeyName": KEY}
    assert inputs("warehouse-dataset")["defaultEncryptionConfiguration"] == {"kmsKeyName": KEY}
    for table in cmek_record.of_type("gcp:bigquery/table:Table"):
        assert table.inputs["encryptionConfiguration"] == {"kmsKeyName": KEY}
    assert inputs("serving-endpoint")["encryptionSpec"] == {"kmsKeyName": KEY}
    assert inputs("ingestion-function")["kmsKeyName"] == KEY
    assert inputs("ingestion-images")["kmsKeyName"] == KEY
    disks = inputs("workbench-instance")["gceSetup"]
    for disk in (disks["bootDisk"], disks["dataDisks"]):
        assert (disk["diskEncryption"], disk["kmsKey"]) == ("CMEK", KEY)


def test_cmek_agents_may_use_the_key_before_anything_is_encrypted(cmek_record):
    grants = [
        g
        for g in cmek_record.of_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
        if cmek_record.parent(g).type == "tabular-mlops:kms:Encryption"
    ]
    project = cmek_record.project
    number = project_number(project)
    assert {g.inputs["member"] for g in grants} == {
        f"serviceAccount:{gcs_service_agent(project)}",
        f"serviceAccount:{bq_service_agent(project)}",
        f"serviceAccount:service-{number}@gcp-sa-aiplatform.iam.gserviceaccount.com",
        f"serviceAccount:service-{number}@gcp-sa-artifactregistry.iam.gserviceaccount.com",
        f"serviceAccount:service-{number}@gcf-admin-robot.iam.gserviceaccount.com",
        f"serviceAccount:service-{number}@compute-system.iam.gserviceaccount.com",
    }
    assert all(g.inputs["cryptoKeyId"] == KEY and g.retain_on_delete for g in grants)
    grant_urns = {g.urn for g in grants}
    for name in ("data-lake-landing", "warehouse-dataset", "serving-endpoint", "ingestion-function",
                 "workbench-instance"):  # fmt: skip
        assert grant_urns <= cmek_record.depends_on(cmek_record.named(name)), name
    assert "cloudkms.googleapis.com" in {
        r.inputs["service"] for r in cmek_record.of_type("gcp:projects/service:Service")
    }


def test_with_a_key_every_resource_still_waits_for_its_api(cmek_record):
    assert_waits_for_apis(cmek_record)


def test_without_a_key_nothing_is_customer_encrypted(stack_records):
    stack_record = stack_records["staging"]  # prod's example names a key
    assert stack_record.of_type("tabular-mlops:kms:Encryption") == []
    assert "defaultKmsKeyName" not in repr(stack_record.named("data-lake-landing").inputs)
    # The KMS API is on only for the CI accounts' secrets key (resources/ci.py), not for CMEK.
    kms_api = "cloudkms.googleapis.com" in {
        r.inputs["service"] for r in stack_record.of_type("gcp:projects/service:Service")
    }
    config = load_stack_file(PROJECT_ROOT / f"Pulumi.{stack_record.stack}.yaml")
    assert kms_api == bool(config.platform.ci.secrets_key)


def test_without_an_email_alerts_exist_but_notify_no_one():
    config = _staging()
    del config["tabular-mlops:platform"]["monitoring"]["notification_email"]
    record = run_program("staging", config=config)
    assert record.of_type("gcp:monitoring/notificationChannel:NotificationChannel") == []
    policies = record.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    assert len(policies) == 5  # ingestion 2, pipelines 1, continuous evaluation 2
    assert all(not p.inputs.get("notificationChannels") for p in policies)


def test_dashboard_covers_ingestion_pipelines_and_the_endpoint(stack_record):
    import json

    dashboard = json.loads(stack_record.named("monitoring-dashboard").inputs["dashboardJson"])
    filters = [
        tile["widget"]["xyChart"]["dataSets"][0]["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
        for tile in dashboard["mosaicLayout"]["tiles"]
        if "xyChart" in tile["widget"]
    ]
    text = "\n".join(filters)
    function = stack_record.outputs["ingestion_function"]
    assert f'service_name="{function}"' in text
    assert f'endpoint_id="{stack_record.outputs["endpoint"]}"' in text
    for metric in ("ingestion_outcomes", "pipeline_runs", "prediction_count", "error_count",
                   "prediction_latencies", "run.googleapis.com/request_count"):  # fmt: skip
        assert metric in text, metric


def test_prod_has_no_workbench_and_no_workbench_identity(stack_records):
    prod = stack_records["prod"]
    assert prod.of_type("tabular-mlops:vertex:Workbench") == []
    assert "notebooks.googleapis.com" not in {
        r.inputs["service"] for r in prod.of_type("gcp:projects/service:Service")
    }
    assert not any(r.inputs.get("accountId", "").startswith("workbench-") for r in prod.resources)


def test_identities_expose_every_workload_account(pulumi_mocks):
    from resources.identities import IdentitiesArgs

    created = {}

    def declare():
        created["identities"] = Identities(
            "ids",
            IdentitiesArgs(
                project="acme-test",
                account_ids={
                    Grantee.PIPELINE_RUNNER: "pipelines-t",
                    Grantee.INGESTION: "ingest-t",
                    Grantee.INGESTION_TRIGGER: "trig-t",
                    Grantee.FUNCTION_BUILD: "build-t",
                },
                display_prefix="t",
                members={},
            ),
        )

    record = pulumi_mocks(declare)
    identities = created["identities"]
    assert identities.workbench is None
    assert set(identities.accounts) == set(identities.members) and len(identities.accounts) == 4
    assert identities.accounts[Grantee.PIPELINE_RUNNER] is identities.pipeline_runner
    accounts = record.of_type("gcp:serviceaccount/account:Account")
    assert {r.inputs["accountId"] for r in accounts} == {
        "pipelines-t",
        "ingest-t",
        "trig-t",
        "build-t",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"kms_key": KEY.replace("europe-west4", "us-central1")},
            "tabular-mlops:platform.kms_key: the key is in 'us-central1' but the stack's "
            "resources are in europe-west4",
        ),
        (
            {"workbench": {"enabled": True, "owner": "a@example.com", "zone": "us-east1-b"}},
            "tabular-mlops:platform.workbench.zone: 'us-east1-b' is not in the stack's region",
        ),
        (
            {"access": {"deployers": ["deployer@example.com"]}},
            "tabular-mlops:platform.access.deployers[0]: 'deployer@example.com' is not an IAM "
            "member",
        ),
    ],
)
def test_cross_section_mistakes_name_the_key_to_change(change, message):
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(_staging(**change), source="Pulumi.staging.yaml")
    assert f"Pulumi.staging.yaml: {message}" in str(caught.value)


def test_the_dashboard_links_the_lifecycle_page_in_the_artifacts_bucket(stack_record):
    """Stakeholders (readers of the artifacts bucket) open one page from their dashboard."""
    import json

    from pipeline_src.lifecycle_page import PAGE_OBJECT

    dashboard = json.loads(stack_record.named("monitoring-dashboard").inputs["dashboardJson"])
    about = dashboard["mosaicLayout"]["tiles"][0]["widget"]["text"]["content"]
    bucket = stack_record.outputs["artifacts_bucket"]
    assert f"(https://storage.cloud.google.com/{bucket}/{PAGE_OBJECT})" in about
