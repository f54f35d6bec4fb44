"""The offline plans as Terraform plan JSON: every resource accounted for, named as in Terraform."""

from __future__ import annotations

import pytest

from tooling.plan.offline import StackRecord
from tooling.terraform_types import load
from tooling.tfplan import GCP_PROVIDER, ExportError, argument_name, export, terraform_values


@pytest.fixture(scope="module")
def exports(stack_records):
    return {stack: export(record) for stack, record in stack_records.items()}


def _planned(plan: dict, address: str) -> dict:
    resources = plan["planned_values"]["root_module"]["resources"]
    return next(r for r in resources if r["address"] == address)


def test_every_resource_of_the_plan_is_exported_or_listed_without_twin(stack_record, exports):
    exported = exports[stack_record.stack]
    custom = [r for r in stack_record.resources if r.custom]
    assert exported.planned == len(custom)
    assert len(exported.addresses) + sum(exported.no_twin.values()) == len(custom)
    # Only what the Terraform google provider has no resource for goes without a twin.
    assert all(t == GCP_PROVIDER or not t.startswith("gcp:") for t in exported.no_twin)
    resources = exported.plan["planned_values"]["root_module"]["resources"]
    assert len(resources) == len(exported.addresses) == len(exported.plan["resource_changes"])


def test_types_come_from_pulumi_gcps_mapping(exports):
    plan = exports["staging"].plan
    types = {r["address"]: r["type"] for r in plan["planned_values"]["root_module"]["resources"]}
    # Tokens whose Terraform name is not the module and name run together.
    assert types["google_storage_bucket.data-lake-landing"] == "google_storage_bucket"
    assert any(t == "google_bigquery_table_iam_member" for t in types.values())
    assert any(t == "google_project_iam_member" for t in types.values())
    assert "google_cloudfunctions2_function.ingestion-function" in types
    mapping = load()
    for address, type_ in types.items():
        assert mapping[exports["staging"].addresses[address]].name == type_


def test_arguments_are_named_and_shaped_as_terraform_has_them(exports):
    bucket = _planned(exports["prod"].plan, "google_storage_bucket.data-lake-landing")["values"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["versioning"] == [{"enabled": True}]  # one block: a list of one
    assert bucket["lifecycle_rule"][0]["condition"][0]["days_since_noncurrent_time"] > 0
    assert bucket["labels"]["cost-center"] == "ml-prod"  # a map: its keys as they are


def test_names_singular_only_where_pulumi_pluralized_a_list():
    blocks = {"lifecycle_rule": {"one": False}, "access": {"one": False}, "policy": {"one": True}}
    assert argument_name("lifecycleRules", blocks) == "lifecycle_rule"
    assert argument_name("accesses", blocks) == "access"
    assert argument_name("policies", blocks) == "policies"  # a one-block is never pluralized
    assert argument_name("enableVtpm", {}) == "enable_vtpm"
    assert argument_name("status", {}) == "status"


def test_values_keep_map_keys_and_reveal_secrets():
    blocks = {"gce_setup": {"one": True, "blocks": {"network_interfaces": {"one": False}}}}
    values = terraform_values(
        {
            "gceSetup": {"metadata": {"idle-timeout-seconds": "3600"}, "networkInterfaces": [{}]},
            "password": {"secret": "s"},
            "__defaults": [],
        },
        blocks,
    )
    assert values == {
        "gce_setup": [{"metadata": {"idle-timeout-seconds": "3600"}, "network_interfaces": [{}]}],
        "password": "s",
    }


def test_references_connect_a_subnetwork_to_its_network(exports):
    configured = exports["staging"].plan["configuration"]["root_module"]["resources"]
    subnet = next(r for r in configured if r["address"].endswith("subnetwork.workbench-subnet"))
    references = subnet["expressions"]["network"]["references"]
    assert "google_compute_network.workbench-network" in references


def test_an_unmapped_gcp_type_is_an_error_not_a_silent_drop(stack_records):
    record = stack_records["staging"]
    bucket = next(r for r in record.resources if r.type == "gcp:storage/bucket:Bucket")
    strange = StackRecord(
        stack="odd", resources=[type(bucket)(**{**vars(bucket), "type": "gcp:nowhere/x:X"})]
    )
    with pytest.raises(ExportError, match=r"gcp:nowhere/x:X .* no Terraform type"):
        export(strange)
