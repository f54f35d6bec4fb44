"""Checks over a whole recorded stack: what a FIRST `pulumi up` in a fresh organisation hits.

Per resource, provider_rules.py checks inputs and names. These need the dependency graph
and the other stacks:

- a log-based metric is visible to Monitoring only minutes after it is created: an alert policy
  on it waits (a time.Sleep after the metric) or its creation fails with 404;
- a grant to a service account or a service agent of this project waits for the resource that
  creates it (IAM refuses a member that does not exist yet);
- a member of another stack's project must exist there already: that stack is deployed earlier
  in this organisation (and declares it), and its project number is no placeholder;
- a conditional read grant on a bucket must be able to read and to list what it names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from tooling.plan.iam_conditions import READ_ROLES, Unsupported, dead_operations
from tooling.plan.provider_rules import Finding, Rule

if TYPE_CHECKING:
    from tooling.plan.offline import Organisation, ResourceRecord, StackRecord

SLEEP = "time:index/sleep:Sleep"
METRIC = "gcp:logging/metric:Metric"
ALERT = "gcp:monitoring/alertPolicy:AlertPolicy"
ACCOUNT = "gcp:serviceaccount/account:Account"
SERVICE_IDENTITY = "gcp:projects/serviceIdentity:ServiceIdentity"
BUCKET_MEMBER = "gcp:storage/bucketIAMMember:BucketIAMMember"
PLACEHOLDER_NUMBERS = frozenset({"123456789012", "000000000000"})

METRIC_WAIT = Rule(
    "metric-visible-before-alert",
    "hashicorp/terraform-provider-google#11102 (404 'Cannot find metric(s)… could take up to 10 "
    "minutes to become available')",
    "likely",
)
MEMBER_EXISTS = Rule(
    "member-exists-before-grant",
    "IAM setIamPolicy refuses a principal that does not exist (400 'Service account … does not "
    "exist')",
    "certain",
)
AGENT_EXISTS = Rule(
    "service-agent-before-grant",
    "cloud.google.com/iam/docs/service-agents (an agent exists once the service creates it: "
    "`services identity create`, gcp.projects.ServiceIdentity)",
    "likely",
)
OTHER_STACK = Rule(
    "member-of-deployed-stack",
    "docs/deploy.md (deploy order); a member must exist when the grant is made",
    "certain",
)
PLACEHOLDER = Rule(
    "no-placeholder-project-number", "no project has a placeholder number", "certain"
)
UNKNOWN_PROJECT = Rule(
    "member-of-unknown-project", "a project outside this organisation's stacks", "possible"
)
BUCKET_CONDITION = Rule(
    "bucket-condition-reads-and-lists",
    "cloud.google.com/iam/docs/conditions-attribute-reference (listing is checked on the bucket, "
    "with objectListPrefix); cloud.google.com/storage/docs/access-control/iam",
    "certain",
)
WRITER_CANNOT_LIST = Rule(
    "bucket-condition-lists",
    "as bucket-condition-reads-and-lists; a write grant may not need to list (unverified use)",
    "possible",
)
CONDITION_UNREAD = Rule(
    "bucket-condition-evaluated", "tooling/plan/iam_conditions.py subset", "possible"
)

_ACCOUNT = re.compile(r"serviceAccount:(?P<id>[^@]+)@(?P<project>[^.]+)\.iam\.gserviceaccount\.com")
# Google-managed service agents: service-N@… (gcp-sa-*, gs-project-accounts, …), bq-N@… .
_AGENT = re.compile(
    r"serviceAccount:(?:service|bq)-(?P<number>\d+)@(?P<domain>[a-z0-9-]+)"
    r"\.iam\.gserviceaccount\.com"
)
_USER_METRIC = re.compile(r"logging\.googleapis\.com/user/(?P<name>[^\"\s]+)")


def closure(record: StackRecord, res: ResourceRecord) -> set[str]:
    """URNs `res` waits for, directly or through what it waits for."""
    seen: set[str] = set()
    todo = list(record.depends_on(res))
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        other = record.by_urn(urn)
        if other is not None:
            todo.extend(record.depends_on(other))
    return seen


def check_record(record: StackRecord, organisation: Organisation) -> list[Finding]:
    return [
        *_alerts_wait_for_metrics(record),
        *_grants_wait_for_members(record, organisation),
        *_bucket_conditions(record),
    ]


def _alerts_wait_for_metrics(record: StackRecord) -> Iterator[Finding]:
    metrics = {m.inputs.get("name"): m for m in record.of_type(METRIC)}
    for alert in record.of_type(ALERT):
        waits = closure(record, alert)
        sleeps = [s for s in record.of_type(SLEEP) if s.urn in waits]
        for name in sorted(set(_USER_METRIC.findall(str(alert.inputs.get("conditions"))))):
            metric = metrics.get(name)
            if metric is None:
                continue
            if not any(metric.urn in closure(record, sleep) for sleep in sleeps):
                yield Finding(
                    alert.name, "conditions",
                    f"reads the new metric {name} with no time.Sleep after {metric.name} first",
                    METRIC_WAIT,
                )  # fmt: skip


def _members(record: StackRecord) -> Iterable[tuple[ResourceRecord, str]]:
    for res in record.resources:
        member = res.inputs.get("member")
        if res.custom and res.type.lower().endswith("iammember") and isinstance(member, str):
            yield res, member


def _grants_wait_for_members(record: StackRecord, organisation: Organisation) -> Iterator[Finding]:
    project = organisation.project_of(record.stack)
    number = organisation.number(project)
    for grant, member in _members(record):
        if agent := _AGENT.fullmatch(member):
            if agent["number"] in PLACEHOLDER_NUMBERS:
                yield Finding(grant.name, "member", f"{member}: placeholder number", PLACEHOLDER)
            elif agent["number"] == number:
                yield from _waits_for_agent(record, grant, member)
            else:
                yield from organisation.check_foreign_agent(grant.name, member, agent["number"])
        elif account := _ACCOUNT.fullmatch(member):
            if account["project"] == project:
                yield from _waits_for_account(record, grant, member, account["id"])
            else:
                yield from organisation.check_foreign_account(
                    grant.name, member, account["project"], account["id"]
                )


def _waits_for_agent(record: StackRecord, grant: ResourceRecord, member: str) -> Iterator[Finding]:
    creators = [s for s in record.of_type(SERVICE_IDENTITY) if s.outputs.get("member") == member]
    if not creators:
        return  # agents looked up by data sources (Cloud Storage, BigQuery) are created by them
    waits = closure(record, grant)
    if not any(c.urn in waits for c in creators):
        names = ", ".join(c.name for c in creators)
        message = f"grants to {member} without waiting for {names}, which creates it"
        yield Finding(grant.name, "member", message, AGENT_EXISTS)


def _waits_for_account(
    record: StackRecord, grant: ResourceRecord, member: str, account_id: str
) -> Iterator[Finding]:
    accounts = [a for a in record.of_type(ACCOUNT) if a.inputs.get("accountId") == account_id]
    if not accounts:
        message = f"{member}: no account {account_id} is declared in this stack"
        yield Finding(grant.name, "member", message, MEMBER_EXISTS)
    elif not any(a.urn in closure(record, grant) for a in accounts):
        message = f"grants to {member} without waiting for {accounts[0].name}, which creates it"
        yield Finding(grant.name, "member", message, MEMBER_EXISTS)


def _bucket_conditions(record: StackRecord) -> Iterator[Finding]:
    for grant in record.of_type(BUCKET_MEMBER):
        condition = grant.inputs.get("condition") or {}
        expression = condition.get("expression")
        if not expression or grant.inputs.get("role") not in READ_ROLES:
            continue
        bucket = str(grant.inputs.get("bucket"))
        try:
            dead = dead_operations(expression, bucket)
        except Unsupported as error:
            yield Finding(grant.name, "condition.expression", str(error), CONDITION_UNREAD)
            continue
        for operation in dead:
            message = (
                f"{grant.inputs.get('role')} on gs://{bucket} under condition "
                f"{condition.get('title')!r}: the member can never {operation}"
            )
            # A read-only grant exists to read and list (a model directory is listed before it
            # is read); a grant that also writes may only write and read known names.
            viewer = grant.inputs.get("role") == "roles/storage.objectViewer"
            rule = BUCKET_CONDITION if viewer or operation != "list objects" else WRITER_CANNOT_LIST
            yield Finding(grant.name, "condition.expression", message, rule)
