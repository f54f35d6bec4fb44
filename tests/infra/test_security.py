"""Safe defaults the policy engine asked for (make compliance), held by the plan itself."""

from __future__ import annotations

import copy

import pulumi
import pytest

from resources.access import PROJECT
from resources.ci import DEPLOYER_PERMISSIONS
from stacks.config import PROJECT_ROOT, load_stack_file, stack_config_values
from tooling.plan.offline import project_number, run_program


def test_workbench_network_denies_by_default_and_logs(stack_records):
    staging = stack_records["staging"]
    rules = {r.name: r.inputs for r in staging.of_type("gcp:compute/firewall:Firewall")}
    network = staging.named("workbench-network")
    assert all(rule["network"].endswith(network.inputs["name"]) for rule in rules.values())
    deny_in, allow_out = rules["workbench-deny-ingress"], rules["workbench-allow-https-egress"]
    assert deny_in["denies"] == [{"protocol": "all"}] and deny_in["sourceRanges"] == ["0.0.0.0/0"]
    assert allow_out["allows"] == [{"protocol": "tcp", "ports": ["443"]}]
    deny_out = rules["workbench-deny-egress"]
    # The explicit denials lose to any rule added for a reason, and beat GCP's implied ones.
    assert deny_out["priority"] == deny_in["priority"] == 65534 > allow_out["priority"]
    assert all(rule["logConfig"]["metadata"] == "INCLUDE_ALL_METADATA" for rule in rules.values())
    assert staging.named("workbench-subnet").inputs["logConfig"]["flowSampling"] > 0


def test_prods_example_encrypts_its_data_with_its_own_key(stack_records):
    prod = stack_records["prod"]
    key = load_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml").platform.kms_key
    assert key and prod.of_type("tabular-mlops:kms:Encryption")
    assert prod.named("data-lake-access-logs").inputs["encryption"]["defaultKmsKeyName"] == key
    assert prod.named("warehouse-dataset").inputs["defaultEncryptionConfiguration"] == {
        "kmsKeyName": key
    }
    assert prod.named("serving-endpoint").inputs["encryptionSpec"] == {"kmsKeyName": key}


def test_the_deployer_may_grant_only_the_platforms_own_project_roles(stack_record):
    grant = next(
        r
        for r in stack_record.of_type("gcp:projects/iAMMember:IAMMember")
        if r.inputs["role"] == "roles/resourcemanager.projectIamAdmin"
    )
    expression = grant.inputs["condition"]["expression"]
    assert expression.startswith(
        "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly(["
    )
    assert "'roles/bigquery.jobUser'" in expression
    assert "_modelReader'" in expression  # a custom role, by its full name
    # Never a basic role, never the CI identities' own roles: no self-escalation.
    own = [p.role for p in DEPLOYER_PERMISSIONS if p.target == PROJECT]
    for role in ("roles/owner", "roles/editor", *own):
        assert f"'{role}'" not in expression


def _private_prod(**serving) -> dict:
    config = copy.deepcopy(stack_config_values("prod"))
    settings = {"private_network": True, "canary_percent": 0, "canary_minutes": 0, **serving}
    config["tabular-mlops:platform"]["serving"].update(settings)
    return config


def test_private_serving_puts_the_endpoint_and_the_runs_on_a_peered_network():
    record = run_program("prod", config=_private_prod())
    network = record.named("private-network-network").inputs["name"]
    vertex_network = f"projects/{project_number('acme-mlops-prod')}/global/networks/{network}"
    assert record.named("serving-endpoint").inputs["network"] == vertex_network
    for schedule in record.of_type("gcp:colab/schedule:Schedule"):
        job = schedule.inputs["createPipelineJobRequest"]["pipelineJob"]
        assert job["network"] == vertex_network, schedule.name
    assert record.outputs["training_pipeline"]["network"] == vertex_network
    peering = record.named("private-network-peering").inputs
    reserved = record.named("private-network-services-range").inputs
    assert peering["reservedPeeringRanges"] == [reserved["name"]]
    assert reserved["purpose"] == "VPC_PEERING"
    # The endpoint waits for the peering: a private endpoint on an unpeered network fails.
    endpoint = record.named("serving-endpoint")
    assert record.named("private-network-peering").urn in record.depends_on(endpoint) | {
        urn for dep in record.depends_on(endpoint) for urn in _children(record, dep)
    }
    deployer_roles = {
        r.inputs["role"]
        for r in record.of_type("gcp:projects/iAMMember:IAMMember")
        if "ci-deployer" in r.name
    }
    assert {
        "roles/servicenetworking.networksAdmin",
        "roles/compute.securityAdmin",
    } <= deployer_roles


def _children(record, urn: str) -> set[str]:
    """Every resource under the component `urn` (a dependency on it waits for all of them)."""
    return {r.urn for r in record.resources if urn in {a.urn for a in record.ancestors(r)}}


def test_the_public_example_stacks_have_no_private_network(stack_record):
    assert stack_record.of_type("tabular-mlops:network:PrivateNetwork") == []
    assert stack_record.named("serving-endpoint").inputs.get("network") is None


def test_a_private_endpoint_refuses_a_canary():
    with pytest.raises(pulumi.RunError, match=r"serving.canary_percent: a private .* no canary"):
        run_program("prod", config=_private_prod(canary_percent=10))
