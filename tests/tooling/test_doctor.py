"""`make doctor` against recorded API responses: each finding, its fix, and the exit status.

`recorded/staging-blocked.json` holds, per request, the answer the real API gave in the shape its
reference documents (Cloud Resource Manager, IAM, Service Usage, Org Policy v2, Cloud Quotas,
Cloud Billing, Cloud Storage, Cloud KMS, GitHub REST) for a staging project with four problems:
the key-creation policy (harmless: the plan has no key), cloudresourcemanager.googleapis.com
disabled, an endpoint CPU quota of 1 in europe-west4, and a deployer without roles/aiplatform.admin.
Role permission lists are abridged to a few real permissions each.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from stacks.config import stack_config_values
from tooling import doctor
from tooling.doctor.api import ApiError
from tooling.doctor.core import FAIL, OK, WARN
from tooling.plan.offline import ResourceRecord, StackRecord

RECORDED = json.loads((Path(__file__).parent / "recorded" / "staging-blocked.json").read_text())
PROJECT = "acme-mlops-staging"
CRM = "https://cloudresourcemanager.googleapis.com/v1/projects/acme-mlops-staging"
ORG_POLICY = "https://orgpolicy.googleapis.com/v2/projects/acme-mlops-staging/policies"


class RecordedApi:
    """Replays recorded answers. testIamPermissions answers with the recorded held permissions
    among those asked, as the API does; a recorded `error` is raised as the API's error."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.calls: list[str] = []

    def call(self, method: str, url: str, body: dict | None = None) -> dict:
        key = f"{method} {url}"
        self.calls.append(key)
        if key not in self.answers:
            raise ApiError(404, f"nothing recorded for {key}")
        answer = self.answers[key]
        if "error" in answer:
            raise ApiError(answer["error"]["code"], answer["error"]["message"])
        if url.endswith(":testIamPermissions"):
            asked = set((body or {}).get("permissions", []))
            return {"permissions": sorted(asked & set(answer.get("permissions", [])))}
        return answer


def _examine(answers: dict, stack: str = "staging", plan: StackRecord | None = None):
    api = RecordedApi(answers)
    return doctor.examine(stack, api, plan=plan), api


def _fixed(answers: dict) -> dict:
    """The same project once the four problems are fixed as the doctor said."""
    fixed = copy.deepcopy(answers)
    held = fixed[f"POST {CRM}:testIamPermissions"]["permissions"]
    held += fixed["GET https://iam.googleapis.com/v1/roles/aiplatform.admin"]["includedPermissions"]
    services_page = next(v for k, v in fixed.items() if "pageToken=" in k)
    services_page["services"].append(
        {
            "name": "projects/415104041262/services/cloudresourcemanager.googleapis.com",
            "config": {"name": "cloudresourcemanager.googleapis.com"},
            "state": "ENABLED",
        }
    )
    quotas = next(v for k, v in fixed.items() if "aiplatform.googleapis.com/quotaInfos" in k)
    quotas["quotaInfos"][0]["dimensionsInfos"][0]["details"]["value"] = "8"
    return fixed


@pytest.fixture(scope="module")
def staging_plan(stack_records) -> StackRecord:
    return stack_records["staging"]


def _find(findings, check: str, text: str):
    matches = [f for f in findings if f.check == check and text in f.message]
    assert len(matches) == 1, [f for f in findings if f.check == check]
    return matches[0]


def test_the_blocked_project_gets_each_finding_with_its_fix(staging_plan):
    findings, api = _examine(RECORDED, plan=staging_plan)
    role = _find(findings, "permissions", "roles/aiplatform.admin")
    assert role.status == FAIL and "4 of 4 permissions missing" in role.message
    assert role.fix == (
        f"gcloud projects add-iam-policy-binding {PROJECT} "
        "--member=user:lead@example.com --role=roles/aiplatform.admin"
    )
    api_off = _find(findings, "apis", "cloudresourcemanager.googleapis.com is disabled")
    assert api_off.status == FAIL
    assert (
        api_off.fix
        == f"gcloud services enable cloudresourcemanager.googleapis.com --project {PROJECT}"
    )
    enabled_by_up = _find(findings, "apis", "`pulumi up` enables them")
    enabled_later = set(enabled_by_up.message.split(": ", 1)[1].split(", "))
    assert {"aiplatform.googleapis.com", "notebooks.googleapis.com"} <= enabled_later
    quota = _find(findings, "quotas", "custom_model_serving_cpus")
    assert quota.status == FAIL
    assert "limit 1, the stack needs 2 (1 x 1 replicas of n1-standard-2)" in quota.message
    assert "Quotas" in quota.fix and "europe-west4" in quota.fix
    keys = _find(findings, "policy iam.disableServiceAccountKeyCreation", "enforced")
    assert keys.status == OK and "creates no service-account key" in keys.message
    # The other recorded policies refuse nothing this stack declares.
    assert _find(findings, "policy gcp.resourceLocations", "allows").status == OK
    assert _find(findings, "policy compute.vmExternalIpAccess", "public IP").status == OK
    assert {f.check for f in findings if f.status == FAIL} == {"permissions", "apis", "quotas"}
    assert all(f.fix for f in findings if f.status == FAIL)
    assert all(call.startswith(("GET ", "POST ")) for call in api.calls)
    posts = {c.split(":")[-1] for c in api.calls if c.startswith("POST")}
    assert posts == {"getAncestry", "testIamPermissions"}  # reads only


def test_exit_status_says_whether_pulumi_up_can_go_ahead(staging_plan, capsys):
    assert doctor.main(["--stack", "staging"], api=RecordedApi(RECORDED), plan=staging_plan) == 1
    out = capsys.readouterr().out
    assert "fix: gcloud services enable cloudresourcemanager.googleapis.com" in out
    assert out.rstrip().endswith("pulumi up would fail: fix the FAIL lines first")
    assert max(len(line) for line in out.splitlines()) <= 100
    fixed = RecordedApi(_fixed(RECORDED))
    assert doctor.main(["--stack", "staging"], api=fixed, plan=staging_plan) == 0
    assert capsys.readouterr().out.rstrip().endswith("pulumi up can go")


def test_the_key_creation_policy_refuses_a_plan_with_a_key(staging_plan):
    key = ResourceRecord(
        type="gcp:serviceaccount/key:Key", name="ci-key", urn="urn:key", custom=True, inputs={},
        outputs={}, parent_urn="", dependencies=[], property_dependencies={},
    )  # fmt: skip
    plan = StackRecord(stack="staging", resources=[*staging_plan.resources, key])
    findings, _ = _examine(RECORDED, plan=plan)
    finding = _find(findings, "policy iam.disableServiceAccountKeyCreation", "ci-key")
    assert finding.status == FAIL and "Workload Identity Federation" in finding.fix


@pytest.mark.parametrize(
    ("constraint", "rules", "check", "expected"),
    [
        ("gcp.resourceLocations", [{"values": {"allowedValues": ["in:us-locations"]}}],
         "policy gcp.resourceLocations", "europe-west4 is not an allowed location"),
        ("gcp.resourceLocations", [{"values": {"deniedValues": ["in:europe-west4-locations"]}}],
         "policy gcp.resourceLocations", "europe-west4 is not an allowed location"),
        ("gcp.restrictNonCmekServices", [{"values": {"deniedValues": ["bigquery.googleapis.com"]}}],
         "policy gcp.restrictNonCmekServices", "bigquery.googleapis.com require CMEK"),
        ("gcp.restrictServiceUsage", [{"values": {"deniedValues": ["notebooks.googleapis.com"]}}],
         "policy gcp.restrictServiceUsage", "forbids enabling notebooks.googleapis.com"),
    ],
)  # fmt: skip
def test_a_policy_that_refuses_what_the_plan_declares_fails(
    staging_plan, constraint, rules, check, expected
):
    answers = copy.deepcopy(RECORDED)
    answers[f"GET {ORG_POLICY}/{constraint}:getEffectivePolicy"] = {"spec": {"rules": rules}}
    findings, _ = _examine(answers, plan=staging_plan)
    finding = _find(findings, check, expected)
    assert finding.status == FAIL and finding.fix


def test_secure_by_default_bucket_policies_refuse_a_bucket_that_does_not_comply(staging_plan):
    bucket = staging_plan.of_type("gcp:storage/bucket:Bucket")[0]
    inputs = {**bucket.inputs, "publicAccessPrevention": "inherited"}
    public = type(bucket)(**{**bucket.__dict__, "inputs": inputs})
    resources = [public if r is bucket else r for r in staging_plan.resources]
    findings, _ = _examine(RECORDED, plan=StackRecord(stack="staging", resources=resources))
    refused = _find(findings, "policy storage.publicAccessPrevention", "would be refused")
    assert refused.status == FAIL and bucket.name in refused.message
    assert _find(findings, "policy storage.uniformBucketLevelAccess", "complies").status == OK


def test_members_outside_the_organisations_domain_are_named(staging_plan):
    answers = copy.deepcopy(RECORDED)
    org = "GET https://cloudresourcemanager.googleapis.com/v3/organizations/905512374018"
    answers[org]["displayName"] = "corp.io"
    findings, _ = _examine(answers, plan=staging_plan)
    finding = _find(findings, "policy iam.allowedPolicyMemberDomains", "outside corp.io")
    assert finding.status == WARN and "group:qa@example.com" in finding.message


@pytest.mark.parametrize(
    ("stack", "visibility", "plan", "status", "expected"),
    [
        ("prod", "private", "team", FAIL, "cannot have required reviewers"),
        ("prod", "private", "enterprise", OK, "can be protected as configured"),
        ("staging", "private", "team", OK, "can be protected as configured"),
        ("staging", "private", "free", FAIL, "no environments"),
        ("prod", "public", "free", OK, "is public"),
    ],
)
def test_the_repositorys_plan_against_the_environment_the_bootstrap_creates(
    stack, visibility, plan, status, expected
):
    from stacks.config import parse_stack_config
    from tooling.doctor import github
    from tooling.doctor.core import Context

    answers = copy.deepcopy(RECORDED)
    answers["GET https://api.github.com/repos/acme/tabular-mlops"]["visibility"] = visibility
    answers["GET https://api.github.com/orgs/acme"]["plan"]["name"] = plan
    answers["GET https://api.github.com/orgs/acme/teams/qa"] = {"id": 7100431, "slug": "qa"}
    config = parse_stack_config(stack_config_values(stack), source=stack)
    ctx = Context(stack, config, StackRecord(stack=stack), RecordedApi(answers))
    [finding] = github.repository(ctx)
    assert finding.status == status and expected in finding.message


def test_an_unreadable_project_or_disabled_billing_fail_with_what_to_do(staging_plan):
    answers = copy.deepcopy(RECORDED)
    answers[f"GET https://cloudresourcemanager.googleapis.com/v3/projects/{PROJECT}"] = {
        "error": {"code": 403, "message": "The caller does not have permission",
                  "status": "PERMISSION_DENIED"}
    }  # fmt: skip
    billing = f"GET https://cloudbilling.googleapis.com/v1/projects/{PROJECT}/billingInfo"
    answers[billing] = {"name": f"projects/{PROJECT}/billingInfo", "billingEnabled": False}
    findings, _ = _examine(answers, plan=staging_plan)
    project = _find(findings, "project", "HTTP 403: The caller does not have permission")
    assert project.status == FAIL and "roles/browser" in project.fix
    bill = _find(findings, "billing", "not enabled")
    assert bill.fix.startswith(f"gcloud billing projects link {PROJECT}")


@pytest.mark.parametrize(
    ("account", "held", "status", "expected"),
    [
        ("01A2B3-C4D5E6-F7A8B9", [], FAIL, "you lack billing.budgets.create, billing.budgets.get"),
        ("01A2B3-C4D5E6-F7A8B9", ["billing.budgets.create", "billing.budgets.get"], OK,
         "you may create the stack's budget"),
        ("0FFFFF-C4D5E6-F7A8B9", [], FAIL, "would watch another account's spend"),
    ],
)  # fmt: skip
def test_a_configured_budget_needs_rights_on_the_projects_billing_account(
    staging_plan, account, held, status, expected
):
    values = copy.deepcopy(stack_config_values("staging"))
    platform = values["tabular-mlops:platform"]
    platform.setdefault("cost", {})["budget"] = {"billing_account": account, "monthly_usd": 400}
    answers = copy.deepcopy(RECORDED)
    billing = "https://cloudbilling.googleapis.com/v1/billingAccounts/01A2B3-C4D5E6-F7A8B9"
    answers[f"POST {billing}:testIamPermissions"] = {"permissions": held}
    api = RecordedApi(answers)
    findings = doctor.examine("staging", api, config_values=values, plan=staging_plan)
    budget = [f for f in findings if f.check == "billing" and "budget" in f.message]
    assert [(f.status, expected in f.message) for f in budget] == [(status, True)]


def test_another_stacks_identity_must_exist_first(staging_plan):
    """Staging grants prod's deployer: until prod is deployed, IAM refuses that grant."""
    answers = copy.deepcopy(RECORDED)
    email = "deployer-prod@acme-mlops-prod.iam.gserviceaccount.com"
    answers[f"GET https://iam.googleapis.com/v1/projects/-/serviceAccounts/{email}"] = {
        "error": {"code": 404, "message": f"Unknown service account {email}"}
    }
    findings, api = _examine(answers, plan=staging_plan)
    missing = _find(findings, "members", email)
    assert (
        missing.status == FAIL
        and "deploy the stack of project acme-mlops-prod first" in missing.fix
    )
    assert _find(findings, "members", "pipelines-prod@").status == OK
    # Service agents are Google's, and the stack's own accounts do not exist yet: not asked.
    asked = [c for c in api.calls if "/serviceAccounts/" in c]
    assert len(asked) == 2 and not any("gcp-sa-" in c for c in asked)


@pytest.mark.parametrize(
    ("reviewers", "expected"),
    [(["other-org/qa"], "reviewer team other-org/qa is not of acme"),
     (["nobody-here"], "cannot read reviewer nobody-here: HTTP 404")],
)  # fmt: skip
def test_reviewers_must_exist_where_the_bootstrap_looks_them_up(reviewers, expected):
    from stacks.config import parse_stack_config
    from tooling.doctor import github
    from tooling.doctor.core import Context

    values = copy.deepcopy(stack_config_values("prod"))
    values["tabular-mlops:platform"]["ci"]["reviewers"] = reviewers
    config = parse_stack_config(values, source="prod")
    ctx = Context("prod", config, StackRecord(stack="prod"), RecordedApi(RECORDED))
    failed = [f for f in github.repository(ctx) if f.status == FAIL]
    assert expected in failed[0].message and failed[0].fix


@pytest.mark.parametrize(
    ("email", "agent"),
    [
        ("service-823809912300@gcf-admin-robot.iam.gserviceaccount.com", True),
        ("service-823809912300@gcp-sa-aiplatform.iam.gserviceaccount.com", True),
        ("service-823809912300@gs-project-accounts.iam.gserviceaccount.com", True),
        ("bq-823809912300@bigquery-encryption.iam.gserviceaccount.com", True),
        ("823809912300@cloudbuild.gserviceaccount.com", True),
        ("deployer-prod@acme-mlops-prod.iam.gserviceaccount.com", False),
        ("pipelines-prod@acme-mlops-prod.iam.gserviceaccount.com", False),
    ],
)
def test_google_managed_agents_are_told_from_the_projects_own_accounts(email, agent):
    from tooling.doctor.access import _is_service_agent

    assert _is_service_agent(email) is agent
