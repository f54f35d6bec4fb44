"""What the stack's plan asks of the project: its APIs, the organisation's policies, its quotas.

Each check reads the offline plan (tooling.plan.offline.run_program) for what this stack declares
and compares it with what the project allows.
"""

from __future__ import annotations

import re
from typing import Any

from tooling.doctor.api import ApiError
from tooling.doctor.core import FAIL, OK, WARN, Context, Finding, paged, unreadable

SERVICE_USAGE = "https://serviceusage.googleapis.com/v1"
ORG_POLICY = "https://orgpolicy.googleapis.com/v2"
CLOUD_QUOTAS = "https://cloudquotas.googleapis.com/v1"
# The program enables every other API itself, through these two.
ENABLERS = ("serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com")
SERVICE_TYPE = "gcp:projects/service:Service"


def planned_services(ctx: Context) -> set[str]:
    return {r.inputs["service"] for r in ctx.plan.of_type(SERVICE_TYPE) if "service" in r.inputs}


def services(ctx: Context) -> list[Finding]:
    """Service Usage services.list (state:ENABLED): the APIs on, against those the plan enables."""
    try:
        enabled = {
            s.get("config", {}).get("name") or s["name"].rsplit("/", 1)[-1]
            for s in paged(
                ctx,
                f"{SERVICE_USAGE}/projects/{ctx.project}/services?filter=state:ENABLED&pageSize=200",
                "services",
            )
        }
    except ApiError as error:
        fix = f"gcloud services enable serviceusage.googleapis.com --project {ctx.project}"
        return [unreadable("apis", "the enabled APIs", error, fix)]
    findings = []
    for api in ENABLERS:
        if api not in enabled:
            findings.append(
                Finding(
                    "apis",
                    FAIL,
                    f"{api} is disabled, and `pulumi up` enables the other APIs through it",
                    f"gcloud services enable {api} --project {ctx.project}",
                )
            )
    off = sorted(planned_services(ctx) - enabled - set(ENABLERS))
    if off and "serviceusage.services.enable" not in ctx.held:
        findings.append(
            Finding(
                "apis",
                FAIL,
                f"{len(off)} APIs are off and you may not enable them: {', '.join(off)}",
                f"gcloud services enable {' '.join(off)} --project {ctx.project} "
                "(as someone with roles/serviceusage.serviceUsageAdmin)",
            )
        )
    elif off:
        findings.append(Finding("apis", OK, f"off, `pulumi up` enables them: {', '.join(off)}"))
    else:
        findings.append(Finding("apis", OK, "every API the stack uses is on"))
    return findings


# --- organisation policies --------------------------------------------------------------------


def effective_policy(ctx: Context, constraint: str) -> dict[str, Any]:
    """Org Policy v2 getEffectivePolicy: the policy merged down the hierarchy to the project."""
    return ctx.get(f"{ORG_POLICY}/projects/{ctx.project}/policies/{constraint}:getEffectivePolicy")


def _rules(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return (policy.get("spec") or {}).get("rules", [])


def enforced(policy: dict[str, Any]) -> bool:
    """A boolean constraint is on when a rule without condition enforces it."""
    return any(r.get("enforce") for r in _rules(policy) if not r.get("condition"))


def allows(policy: dict[str, Any], value: str, matches=lambda rule_value, v: rule_value == v):
    """Whether a list constraint admits `value`: denyAll and denied values win, then allowAll,
    then the allowed values (none: everything). Rules with a condition (tags) are not judged."""
    rules = [r for r in _rules(policy) if not r.get("condition")]
    for rule in rules:
        denied = (rule.get("values") or {}).get("deniedValues", [])
        if rule.get("denyAll") or any(matches(d, value) for d in denied):
            return False
    if any(r.get("allowAll") for r in rules):
        return True
    allowed = [a for r in rules for a in (r.get("values") or {}).get("allowedValues", [])]
    return not allowed or any(matches(a, value) for a in allowed)


def _policy(check):
    """Run one constraint's check on its effective policy; an unreadable policy is a warning."""

    def run(ctx: Context) -> list[Finding]:
        try:
            policy = effective_policy(ctx, check.constraint)
        except ApiError as error:
            return [
                unreadable(
                    f"policy {check.constraint}",
                    "the organisation policy",
                    error,
                    "ask for roles/orgpolicy.policyViewer on the organisation",
                    WARN,
                )
            ]
        return check(ctx, policy)

    run.__doc__ = check.__doc__
    run.__name__ = check.__name__
    return run


def constraint(name: str):
    def mark(check):
        check.constraint = name
        return _policy(check)

    return mark


@constraint("iam.disableServiceAccountKeyCreation")
def key_creation(ctx: Context, policy: dict[str, Any]) -> list[Finding]:
    """No service-account key may be created: the plan must declare none."""
    name = "policy iam.disableServiceAccountKeyCreation"
    keys = [r.name for r in ctx.plan.of_type("gcp:serviceaccount/key:Key")]
    if enforced(policy) and keys:
        return [
            Finding(
                name,
                FAIL,
                f"enforced, and the plan creates keys: {', '.join(keys)}",
                "remove them: CI is keyless (Workload Identity Federation, resources/ci.py)",
            )
        ]
    state = "enforced" if enforced(policy) else "not enforced"
    return [Finding(name, OK, f"{state}; the plan creates no service-account key")]


_LOCATION_KEYS = ("location", "region")
# Value groups (in:…) by the region prefixes they hold. Approximate: Google's lists are longer
# (see `gcloud resource-manager org-policies describe gcp.resourceLocations --effective`).
_GROUPS = {
    "europe": ("europe-", "eu"),
    "eu": ("europe-west1", "europe-west3", "europe-west4", "europe-west8", "europe-west9",
           "europe-west10", "europe-west12", "europe-north1", "europe-north2",
           "europe-central2", "europe-southwest1", "eu"),
    "us": ("us-", "us"),
    "northamerica": ("us-", "northamerica-", "us"),
    "asia": ("asia-", "asia"),
}  # fmt: skip


def _location_matches(rule_value: str, location: str) -> bool:
    group = re.fullmatch(r"in:([a-z0-9-]+)-locations", rule_value)
    if not group:
        return rule_value.removeprefix("is:") == location
    name = group.group(1)
    if name == location:  # in:europe-west4-locations
        return True
    return any(location == p or location.startswith(p) for p in _GROUPS.get(name, ()))


def planned_locations(ctx: Context) -> dict[str, list[str]]:
    """Every location a resource of the plan names, with the resources naming it."""
    found: dict[str, list[str]] = {}
    for record in ctx.plan.resources:
        for key in _LOCATION_KEYS:
            value = record.inputs.get(key)
            if isinstance(value, str) and value and value.lower() != "global":
                # A zone (europe-west4-b) is allowed where its region is.
                region = re.sub(r"^([a-z]+-[a-z]+[0-9])-[a-z]$", r"\1", value.lower())
                found.setdefault(region, []).append(record.name)
    return found


@constraint("gcp.resourceLocations")
def resource_locations(ctx: Context, policy: dict[str, Any]) -> list[Finding]:
    """Every location the plan uses must be allowed."""
    name = "policy gcp.resourceLocations"
    refused = {
        location: resources
        for location, resources in planned_locations(ctx).items()
        if not allows(policy, location, _location_matches)
    }
    if not refused:
        return [Finding(name, OK, f"allows {', '.join(sorted(planned_locations(ctx)))}")]
    return [
        Finding(
            name,
            FAIL,
            f"{location} is not an allowed location ({len(resources)} resources, e.g. "
            f"{resources[0]})",
            f"choose an allowed region in {ctx.stack_file} (make init --region …), or ask an "
            "organisation policy admin to allow it",
        )
        for location, resources in sorted(refused.items())
    ]


@constraint("compute.vmExternalIpAccess")
def external_ips(ctx: Context, policy: dict[str, Any]) -> list[Finding]:
    """VMs with a public IP must be allowed: Workbench has none (`disable_public_ip`)."""
    name = "policy compute.vmExternalIpAccess"
    public = [
        r.name
        for r in ctx.plan.of_type("gcp:workbench/instance:Instance")
        if not (r.inputs.get("gceSetup") or {}).get("disablePublicIp")
    ]
    if public and not allows(policy, public[0]):
        return [
            Finding(
                name,
                FAIL,
                f"public IPs are refused and {', '.join(public)} would have one",
                "set gce_setup.disable_public_ip (resources/workbench.py)",
            )
        ]
    return [Finding(name, OK, "no VM of the plan has a public IP")]


# The services of the resource types a plan may hold, for CMEK requirements.
_TYPE_SERVICES = {
    "gcp:storage/": "storage.googleapis.com",
    "gcp:bigquery/": "bigquery.googleapis.com",
    "gcp:vertex/": "aiplatform.googleapis.com",
    "gcp:artifactregistry/": "artifactregistry.googleapis.com",
    "gcp:cloudfunctionsv2/": "cloudfunctions.googleapis.com",
    "gcp:workbench/": "notebooks.googleapis.com",
    "gcp:pubsub/": "pubsub.googleapis.com",
}


@constraint("gcp.restrictNonCmekServices")
def cmek(ctx: Context, policy: dict[str, Any]) -> list[Finding]:
    """Services that require CMEK refuse the plan's resources unless `kms_key` is set."""
    name = "policy gcp.restrictNonCmekServices"
    used = {
        service
        for r in ctx.plan.resources
        for prefix, service in _TYPE_SERVICES.items()
        if r.type.startswith(prefix)
    }
    # The constraint lists the services that refuse resources without CMEK as denied values.
    required = sorted(s for s in used if not allows(policy, s))
    if required and not ctx.config.platform.kms_key:
        return [
            Finding(
                name,
                FAIL,
                f"{', '.join(required)} require CMEK and the stack sets no kms_key",
                f"create a key in {ctx.config.region} and set tabular-mlops:platform.kms_key in "
                f"{ctx.stack_file} (docs/configuration.md)",
            )
        ]
    return [Finding(name, OK, "CMEK " + ("configured" if required else "not required"))]


@constraint("iam.allowedPolicyMemberDomains")
def member_domains(ctx: Context, policy: dict[str, Any]) -> list[Finding]:
    """Domain-restricted sharing: the `access:` members must belong to allowed customers."""
    name = "policy iam.allowedPolicyMemberDomains"
    allowed = [v for r in _rules(policy) for v in (r.get("values") or {}).get("allowedValues", [])]
    if not allowed:
        return [Finding(name, OK, "members of any domain may be granted")]
    domain = _organization_domain(ctx)
    access = ctx.config.platform.access.model_dump()
    members = sorted({m for persona in access.values() for m in persona if ":" in m})
    foreign = [
        m for m in members if not m.startswith("serviceAccount:") and not m.endswith(f"@{domain}")
    ]
    if not foreign:
        return [Finding(name, OK, f"every access: member is in {domain}")]
    return [
        Finding(
            name,
            WARN,
            f"only customers {', '.join(allowed)} ({domain}) may be granted; these members are "
            f"outside {domain}: {', '.join(foreign)}",
            "use groups of your organisation's Cloud Identity (make init --qa …), or confirm "
            "their domain belongs to an allowed customer",
        )
    ]


def _organization_domain(ctx: Context) -> str | None:
    """The organisation's primary domain (Cloud Resource Manager organizations.get)."""
    if not ctx.organization:
        return None
    try:
        org = ctx.get(f"https://cloudresourcemanager.googleapis.com/v3/{ctx.organization}")
    except ApiError:
        return None
    return org.get("displayName")


@constraint("gcp.restrictServiceUsage")
def service_usage(ctx: Context, policy: dict[str, Any]) -> list[Finding]:
    """APIs the organisation forbids cannot be enabled: none of the plan's may be."""
    name = "policy gcp.restrictServiceUsage"
    refused = sorted(s for s in planned_services(ctx) if not allows(policy, s))
    if refused:
        return [
            Finding(
                name,
                FAIL,
                f"the organisation forbids enabling {', '.join(refused)}",
                "ask an organisation policy admin to allow them for this project",
            )
        ]
    return [Finding(name, OK, "every API the plan enables is allowed")]


def _buckets_without(ctx: Context, policy: dict[str, Any], name: str, has) -> list[Finding]:
    """A boolean bucket constraint: when enforced, every bucket of the plan must comply."""
    offending = [r.name for r in ctx.plan.of_type("gcp:storage/bucket:Bucket") if not has(r.inputs)]
    if enforced(policy) and offending:
        return [
            Finding(
                name,
                FAIL,
                f"enforced, and these buckets would be refused: {', '.join(offending)}",
                "set the setting on them (resources/data_lake.py does on every bucket it makes)",
            )
        ]
    return [Finding(name, OK, "every bucket of the plan complies")]


@constraint("storage.uniformBucketLevelAccess")
def uniform_access(ctx: Context, policy: dict[str, Any]) -> list[Finding]:
    """Buckets must use uniform bucket-level access (secure-by-default organisations)."""
    name = "policy storage.uniformBucketLevelAccess"
    return _buckets_without(ctx, policy, name, lambda i: i.get("uniformBucketLevelAccess") is True)


@constraint("storage.publicAccessPrevention")
def public_access(ctx: Context, policy: dict[str, Any]) -> list[Finding]:
    """Buckets must enforce public access prevention (secure-by-default organisations)."""
    name = "policy storage.publicAccessPrevention"
    return _buckets_without(
        ctx, policy, name, lambda i: i.get("publicAccessPrevention") == "enforced"
    )


POLICY_CHECKS = (key_creation, resource_locations, external_ips, cmek, member_domains,
                 service_usage, uniform_access, public_access)  # fmt: skip
