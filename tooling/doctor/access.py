"""Who the caller is, the project, what the caller may do, billing, the state bucket and key."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from resources.access import PROJECT
from resources.ci import (
    CMEK_KEY,
    DEPLOYER_PERMISSIONS,
    NETWORK_PROJECT,
    PRIVATE_SERVING_PROJECT,
    WORKBENCH_PROJECT,
)
from tooling.doctor.api import TOKENINFO, ApiError
from tooling.doctor.core import FAIL, OK, WARN, Context, Finding, member_of, unreadable

CRM = "https://cloudresourcemanager.googleapis.com"
IAM = "https://iam.googleapis.com/v1"
STORAGE = "https://storage.googleapis.com/storage/v1"
KMS = "https://cloudkms.googleapis.com/v1"
BILLING = "https://cloudbilling.googleapis.com/v1"
# testIamPermissions answers for at most this many permissions a request.
BATCH = 100
# What the Pulumi state and the `gcpkms://` secrets provider do on the bucket and the key.
STATE_PERMISSIONS = (
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.get",
    "storage.objects.list",
)
SECRETS_PERMISSIONS = (
    "cloudkms.cryptoKeyVersions.useToEncrypt",
    "cloudkms.cryptoKeyVersions.useToDecrypt",
)
BUDGET_PERMISSIONS = ("billing.budgets.create", "billing.budgets.get")
ACCOUNT_TYPE = "gcp:serviceaccount/account:Account"


def identity(ctx: Context) -> list[Finding]:
    """oauth2 tokeninfo: whose credentials these are (`gcloud auth application-default login`)."""
    try:
        info = ctx.get(TOKENINFO)
    except ApiError as error:
        return [
            unreadable(
                "identity", "your credentials", error, "gcloud auth application-default login"
            )
        ]
    ctx.caller = member_of(info.get("email", "unknown"))
    return [Finding("identity", OK, f"running as {ctx.caller}")]


def project(ctx: Context) -> list[Finding]:
    """Cloud Resource Manager projects.get and getAncestry: the project exists, is active, where."""
    try:
        found = ctx.get(f"{CRM}/v3/projects/{ctx.project}")
    except ApiError as error:
        fix = (
            f"create it (gcloud projects create {ctx.project}) or ask its owner for "
            "roles/browser; check tabular-mlops:project in " + ctx.stack_file
        )
        return [unreadable("project", f"project {ctx.project}", error, fix)]
    ctx.project_number = found.get("name", "").removeprefix("projects/") or None
    if found.get("state") != "ACTIVE":
        return [
            Finding(
                "project",
                FAIL,
                f"project {ctx.project} is {found.get('state')}",
                f"gcloud projects undelete {ctx.project} (or choose another project)",
            )
        ]
    try:
        ancestry = ctx.post(f"{CRM}/v1/projects/{ctx.project}:getAncestry")
        orgs = [
            a["resourceId"]["id"]
            for a in ancestry.get("ancestor", [])
            if a["resourceId"]["type"] == "organization"
        ]
        ctx.organization = f"organizations/{orgs[0]}" if orgs else None
    except ApiError:
        ctx.organization = None
    where = ctx.organization or "no organisation"
    # Another stack that deploys this one's models grants this agent (serving.model_readers).
    agent = f"service-{ctx.project_number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
    return [
        Finding(
            "project",
            OK,
            f"{ctx.project} (number {ctx.project_number}) in {where}; Vertex AI agent {agent}",
        )
    ]


def _roles_needed(ctx: Context) -> dict[str, list[str]]:
    """The deployer's roles (resources/ci.py, docs/deploy.md) this stack needs, by where."""
    platform = ctx.config.platform
    project = f"{CRM}/v1/projects/{ctx.project}:testIamPermissions"
    private = platform.serving.private_network
    targets = {
        PROJECT: project,
        WORKBENCH_PROJECT: project if platform.workbench.enabled else None,
        NETWORK_PROJECT: project if platform.workbench.enabled or private else None,
        PRIVATE_SERVING_PROJECT: project if private else None,
        CMEK_KEY: f"{KMS}/{platform.kms_key}:testIamPermissions" if platform.kms_key else None,
    }
    needed: dict[str, list[str]] = {}
    for permission in DEPLOYER_PERMISSIONS:
        url = targets.get(permission.target)
        if permission.role == "roles/iam.workloadIdentityPoolAdmin" and not (
            platform.ci.github_repository
        ):
            continue
        if url:
            needed.setdefault(url, []).append(permission.role)
    return needed


def _test(ctx: Context, url: str, permissions: list[str]) -> set[str]:
    """The permissions the caller holds on one resource (testIamPermissions, in batches)."""
    held: set[str] = set()
    for start in range(0, len(permissions), BATCH):
        answer = ctx.post(url, {"permissions": permissions[start : start + BATCH]})
        held.update(answer.get("permissions", []))
    return held


def permissions(ctx: Context) -> list[Finding]:
    """IAM roles.get (what each role carries), then testIamPermissions on the project/key."""
    findings = []
    for url, roles in _roles_needed(ctx).items():
        try:
            # Some fifteen reads of public role definitions: at once, so the doctor takes seconds.
            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(lambda r: ctx.get(f"{IAM}/{r}"), roles))
            carried = {
                r: a.get("includedPermissions", []) for r, a in zip(roles, answers, strict=True)
            }
            everything = sorted({p for perms in carried.values() for p in perms})
            held = _test(ctx, url, everything)
        except ApiError as error:
            findings.append(unreadable("permissions", "the deployer's roles", error, ""))
            continue
        if "/projects/" in url and ":testIamPermissions" in url and "cryptoKeys" not in url:
            ctx.held |= held
        resource = url.split("/v1/", 1)[1].removesuffix(":testIamPermissions")
        findings += _role_findings(ctx, resource, carried, held)
    return findings


def _role_findings(
    ctx: Context, resource: str, carried: dict[str, list[str]], held: set[str]
) -> list[Finding]:
    findings = []
    for role, perms in carried.items():
        missing = sorted(set(perms) - held)
        if not missing:
            findings.append(Finding("permissions", OK, f"{role} on {resource}: all held"))
            continue
        grant = (
            f"gcloud projects add-iam-policy-binding {ctx.project} "
            f"--member={ctx.caller or 'user:YOU'} --role={role}"
            if resource.startswith("projects/") and "cryptoKeys" not in resource
            else f"grant {role} on {resource} to {ctx.caller or 'you'}"
        )
        findings.append(
            Finding(
                "permissions",
                FAIL,
                f"{role} on {resource}: {len(missing)} of {len(perms)} permissions missing "
                f"(e.g. {', '.join(missing[:3])})",
                grant,
            )
        )
    return findings


def _is_service_agent(email: str) -> bool:
    """Google-managed accounts (service-N@gcp-sa-…, service-N@gcf-admin-robot…, bq-N@…, N@…):
    Google creates them with the APIs, and their projects are not readable here."""
    local, domain = email.split("@", 1)
    return bool(re.fullmatch(r"(service-|bq-)?[0-9]+", local)) or domain.startswith("gcp-sa-")


def members(ctx: Context) -> list[Finding]:
    """IAM serviceAccounts.get: the service accounts the stack grants exist (IAM refuses others).

    Another stack's identities (staging's `model_readers` name prod's) exist once that stack is
    deployed: this is where the deploy order shows.
    """
    platform = ctx.config.platform
    created = {r.outputs.get("email") for r in ctx.plan.of_type(ACCOUNT_TYPE)}
    named = {m for ms in platform.access.model_dump().values() for m in ms}
    named |= set(platform.serving.model_readers)
    # And every member the plan grants: those read from another stack's outputs included
    # (staging's `model_readers_from`: prod's deployer, runner and Vertex AI agent).
    named |= {
        str(r.inputs["member"])
        for r in ctx.plan.resources
        if r.type.lower().endswith("iammember") and r.inputs.get("member")
    }
    emails = sorted(m.split(":", 1)[1] for m in named if m.startswith("serviceAccount:"))
    findings = []
    for email in (e for e in emails if e not in created and not _is_service_agent(e)):
        try:
            ctx.get(f"{IAM}/projects/-/serviceAccounts/{email}")
        except ApiError as error:
            if error.status != 404:
                findings.append(unreadable("members", email, error, "", WARN))
                continue
            project = email.split("@", 1)[1].split(".")[0]
            findings.append(
                Finding(
                    "members",
                    FAIL,
                    f"{email} does not exist: IAM refuses grants to it",
                    f"deploy the stack of project {project} first (prod before staging, "
                    f"docs/bootstrap.md), or remove it from {ctx.stack_file}",
                )
            )
            continue
        findings.append(Finding("members", OK, f"{email} exists"))
    return findings


def billing(ctx: Context) -> list[Finding]:
    """Cloud Billing projects.getBillingInfo; billingAccounts.testIamPermissions for a budget."""
    try:
        info = ctx.get(f"{BILLING}/projects/{ctx.project}/billingInfo")
    except ApiError as error:
        fix = "ask for roles/billing.viewer, or check the project's billing in the console"
        return [unreadable("billing", "the project's billing", error, fix, WARN)]
    account = info.get("billingAccountName", "")
    if not info.get("billingEnabled"):
        return [
            Finding(
                "billing",
                FAIL,
                f"billing is not enabled on {ctx.project}: no API beyond the free ones works",
                f"gcloud billing projects link {ctx.project} --billing-account=ACCOUNT_ID",
            )
        ]
    findings = [Finding("billing", OK, f"billing enabled ({account})")]
    budgeted = _budget_account(ctx)
    if budgeted:
        findings += _budget_rights(ctx, account, budgeted)
    return findings


def _budget_account(ctx: Context) -> str | None:
    """billingAccounts/ID of the stack's budget (`cost.budget.billing_account`), when it has one."""
    cost = getattr(ctx.config.platform, "cost", None)
    account = getattr(getattr(cost, "budget", None), "billing_account", None)
    return f"billingAccounts/{account}" if account else None


def _budget_rights(ctx: Context, project_account: str, budgeted: str) -> list[Finding]:
    if budgeted != project_account:
        return [
            Finding(
                "billing",
                FAIL,
                f"the budget is on {budgeted} but {ctx.project} bills to {project_account}: it "
                "would watch another account's spend",
                f"set cost.budget.billing_account to {project_account.split('/')[-1]} in "
                f"{ctx.stack_file}",
            )
        ]
    try:
        held = _test(ctx, f"{BILLING}/{budgeted}:testIamPermissions", list(BUDGET_PERMISSIONS))
    except ApiError as error:
        return [unreadable("billing", f"your rights on {budgeted}", error, "", WARN)]
    missing = sorted(set(BUDGET_PERMISSIONS) - held)
    if missing:
        return [
            Finding(
                "billing",
                FAIL,
                f"the stack creates a budget on {budgeted}; you lack {', '.join(missing)}",
                f"ask a billing administrator for roles/billing.costsManager on {budgeted}",
            )
        ]
    return [Finding("billing", OK, f"you may create the stack's budget on {budgeted}")]


def state(ctx: Context) -> list[Finding]:
    """Cloud Storage buckets.get/testIamPermissions, Cloud KMS cryptoKeys.get/testIamPermissions."""
    ci = ctx.config.platform.ci
    findings = []
    if ci.state_bucket:
        findings.append(
            _reachable(
                ctx,
                f"{STORAGE}/b/{ci.state_bucket}",
                f"{STORAGE}/b/{ci.state_bucket}/iam/testPermissions?"
                + "&".join(f"permissions={p}" for p in STATE_PERMISSIONS),
                STATE_PERMISSIONS,
                f"state bucket gs://{ci.state_bucket}",
            )
        )
    if ci.secrets_key:
        findings.append(
            _reachable(
                ctx,
                f"{KMS}/{ci.secrets_key}",
                f"{KMS}/{ci.secrets_key}:testIamPermissions",
                SECRETS_PERMISSIONS,
                f"secrets key {ci.secrets_key}",
            )
        )
    return findings or [Finding("state", WARN, "no ci.state_bucket/secrets_key: local state?")]


def _reachable(ctx: Context, get: str, test: str, needed: tuple[str, ...], what: str) -> Finding:
    try:
        ctx.get(get)
    except ApiError as error:
        fix = "make bootstrap creates it (docs/bootstrap.md)" if error.status == 404 else ""
        return unreadable("state", what, error, fix)
    try:
        if "/storage/" in test:
            held = set(ctx.get(test).get("permissions", []))
        else:
            held = _test(ctx, test, list(needed))
    except ApiError as error:
        return unreadable("state", f"your rights on the {what}", error, "")
    missing = sorted(set(needed) - held)
    if missing:
        role = (
            "roles/storage.objectUser"
            if "/storage/" in test
            else ("roles/cloudkms.cryptoKeyEncrypterDecrypter")
        )
        return Finding(
            "state", FAIL, f"{what}: missing {', '.join(missing)}", f"grant {role} on it to you"
        )
    return Finding("state", OK, f"{what}: reachable, read and write")
