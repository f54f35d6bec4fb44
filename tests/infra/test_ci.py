"""The CI identity (resources/ci.py): keyless GitHub Actions access, narrowly granted."""

from __future__ import annotations

import copy
import re

import pytest

from resources.access import BASIC_ROLES
from resources.ci import DEPLOYER_PERMISSIONS, PREVIEWER_PERMISSIONS, CiIdentity
from stacks.config import PROJECT_ROOT, ConfigError, parse_stack_config, stack_config_values
from tests.infra.records import bindings, held_by
from tooling.plan.offline import project_number, run_program

ENVIRONMENTS = {"staging": "staging", "prod": "production"}
REPOSITORY = "acme/tabular-mlops"


def member(record, account: str) -> str:
    return (
        f"serviceAccount:{account}-{record.stack}@acme-mlops-{record.stack}.iam.gserviceaccount.com"
    )


def pool(record) -> str:
    return (
        f"projects/{project_number(record.project)}/locations/global/workloadIdentityPools/"
        f"tabular-mlops-{record.stack}-github"
    )


def test_the_provider_trusts_this_repository_only(stack_record):
    provider = stack_record.named("ci-github").inputs
    assert provider["oidc"]["issuerUri"] == "https://token.actions.githubusercontent.com"
    environment = "staging" if stack_record.stack == "staging" else "production"
    assert provider["attributeCondition"] == (
        f"assertion.repository == '{REPOSITORY}' && ("
        f"assertion.sub == 'repo:{REPOSITORY}:environment:{environment}' || "
        f"assertion.sub == 'repo:{REPOSITORY}:pull_request')"
    )
    assert provider["attributeMapping"]["google.subject"] == "assertion.sub"
    assert (
        stack_record.outputs["ci_workload_identity_provider"]
        == f"{pool(stack_record)}/providers/github"
    )


def test_only_deploy_environment_jobs_act_as_the_deployer_and_pr_jobs_as_the_previewer(
    stack_record,
):
    identity_users = {
        (b.target.rsplit("/", 1)[-1].split("@")[0], b.member)
        for b in bindings(stack_record)
        if b.role == "roles/iam.workloadIdentityUser"
    }
    subject = f"principal://iam.googleapis.com/{pool(stack_record)}/subject/repo:{REPOSITORY}"
    environment = ENVIRONMENTS[stack_record.stack]
    assert identity_users == {
        (f"deployer-{stack_record.stack}", f"{subject}:environment:{environment}"),
        (f"previewer-{stack_record.stack}", f"{subject}:pull_request"),
    }
    # No service-account key is created anywhere: the exchange is the only way in.
    assert not [r for r in stack_record.resources if r.type.endswith(":Key")]


def test_the_deployer_holds_what_pulumi_up_needs_and_no_basic_role(stack_record):
    held = held_by(stack_record, member(stack_record, "deployer"))
    roles = {role for _, role, _ in held}
    assert not roles & BASIC_ROLES
    project_roles = {role for kind, role, target in held if target == "project"}
    assert {
        "roles/serviceusage.serviceUsageAdmin",
        "roles/resourcemanager.projectIamAdmin",
        "roles/aiplatform.admin",
        "roles/storage.admin",
    } <= project_roles
    # Workbench's roles only where the stack has Workbench (staging, not prod).
    assert ("roles/notebooks.admin" in project_roles) == (stack_record.stack == "staging")
    # State and secrets: on the state bucket and the secrets key, not project-wide.
    assert ("storage", "roles/storage.objectUser", "acme-pulumi-state") in held
    assert any(
        kind == "kms" and role == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
        and target.endswith("/cryptoKeys/stacks")
        for kind, role, target in held
    )  # fmt: skip
    # It deploys the workloads, so it may act as each workload account (and only those).
    act_as = {target for _, role, target in held if role == "roles/iam.serviceAccountUser"}
    workloads = {
        r.outputs["name"]
        for r in stack_record.resources
        if r.type == "gcp:serviceaccount/account:Account"
        and stack_record.parent(r).type == "tabular-mlops:iam:Identities"
    }
    assert act_as == workloads


def test_the_previewer_can_read_and_decrypt_but_change_nothing(stack_record):
    held = held_by(stack_record, member(stack_record, "previewer"))
    assert {role for _, role, _ in held} == {
        "roles/browser",
        "roles/storage.objectViewer",
        "roles/cloudkms.cryptoKeyDecrypter",
    }


def test_no_ci_role_is_primitive_or_impersonates_project_wide():
    for permission in (*DEPLOYER_PERMISSIONS, *PREVIEWER_PERMISSIONS, *CiIdentity.PERMISSIONS):
        assert permission.role not in BASIC_ROLES
        assert re.match(r"^roles/[a-zA-Z]+\.[a-zA-Z]+$|^roles/browser$", permission.role)
        assert permission.why, permission.role


def test_the_deploy_docs_list_the_deployer_roles():
    """docs/deploy.md lists the deployer's roles; docs/ci-cd.md the previewer's."""
    readme = "".join(
        (PROJECT_ROOT / "docs" / page).read_text(encoding="utf-8")
        for page in ("deploy.md", "ci-cd.md")
    )
    for permission in DEPLOYER_PERMISSIONS + PREVIEWER_PERMISSIONS:
        assert f"`{permission.role}`" in readme, permission.role


def test_without_a_repository_there_is_no_ci_identity():
    config = copy.deepcopy(stack_config_values("prod"))
    del config["tabular-mlops:platform"]["ci"]
    del config["tabular-mlops:platform"]["kms_key"]  # CMEK would need the KMS API too
    record = run_program("prod", config=config)
    assert record.of_type("tabular-mlops:iam:CiIdentity") == []
    assert not any(r.type.startswith("gcp:iam/workloadIdentityPool") for r in record.resources)
    assert not any(key.startswith("ci_") for key in record.outputs)
    assert "cloudkms.googleapis.com" not in {
        r.inputs["service"] for r in record.of_type("gcp:projects/service:Service")
    }


def test_an_owner_id_is_required_of_every_token_when_given():
    config = copy.deepcopy(stack_config_values("staging"))
    config["tabular-mlops:platform"]["ci"]["github_repository_owner_id"] = "1234567"
    record = run_program("staging", config=config)
    condition = record.named("ci-github").inputs["attributeCondition"]
    assert condition.startswith(
        f"assertion.repository == '{REPOSITORY}' && assertion.repository_owner_id == '1234567' && ("
    )


@pytest.mark.parametrize(
    ("ci", "message"),
    [
        (
            {"github_repository": REPOSITORY},
            "platform.ci: deploy_environment is required when github_repository is set",
        ),
        (
            {"github_repository": "not a repository", "deploy_environment": "staging"},
            "platform.ci.github_repository: must match",
        ),
        ({"github_repository": REPOSITORY, "deploy_environment": "x", "key": 1}, "ci.key: unknown"),
    ],
)
def test_bad_ci_config_names_the_key(ci, message):
    values = stack_config_values("staging")
    platform = {**values["tabular-mlops:platform"], "ci": ci}
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_stack_config(
            {**values, "tabular-mlops:platform": platform}, source="Pulumi.staging.yaml"
        )
