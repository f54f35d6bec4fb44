"""The offline plan: every resource a stack declares, read before any cloud is involved.

    python -m tooling.plan --stack staging [--stack prod] [--out-dir build]
    python -m tooling.plan --diff staging prod
    python -m tooling.plan --stack staging --output pipeline_image

Runs the real program under the recording mocks (offline.py), prints a table (type, logical
name, parent, key settings) and writes the full record as JSON (`build/plan-<stack>.json`).
`--diff` shows what differs between two stacks: resources only one declares, and changed settings.
`--output NAME` prints only that stack output, as `pulumi stack output NAME` would (strings as
they are, anything else as JSON): what CI reads from a deployed stack, read offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import textwrap
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pulumi

from contracts import ContractError
from stacks.config import (
    PROJECT_ROOT,
    ConfigError,
    load_stack_file,
    stack_config_values,
    stack_file_name,
)
from tooling import cost
from tooling.cost.prices import PricingError
from tooling.plan.offline import ResourceRecord, StackRecord, project_number, run_program
from tooling.plan.provider_rules import PlanError

# The settings a reviewer looks at first, per resource type (dotted paths into the inputs).
# Types not listed show their scalar inputs.
_IAM = ("role", "member", "condition.title")
KEY_SETTINGS: dict[str, tuple[str, ...]] = {
    "gcp:storage/bucket:Bucket": (
        "name",
        "location",
        "uniformBucketLevelAccess",
        "publicAccessPrevention",
        "versioning.enabled",
        "forceDestroy",
        "lifecycleRules",
        "encryption.defaultKmsKeyName",
    ),
    "gcp:storage/bucketObject:BucketObject": ("bucket", "name"),
    "gcp:bigquery/dataset:Dataset": (
        "datasetId",
        "location",
        "deleteContentsOnDestroy",
        "defaultEncryptionConfiguration.kmsKeyName",
    ),
    "gcp:bigquery/table:Table": (
        "tableId",
        "timePartitioning.field",
        "clusterings",
        "deletionProtection",
        "schema",
    ),
    "gcp:projects/service:Service": ("service", "disableOnDestroy"),
    "gcp:projects/serviceIdentity:ServiceIdentity": ("service",),
    "gcp:vertex/aiEndpoint:AiEndpoint": (
        "displayName",
        "location",
        "encryptionSpec.kmsKeyName",
        "predictRequestResponseLoggingConfig.enabled",
        "predictRequestResponseLoggingConfig.samplingRate",
        "predictRequestResponseLoggingConfig.bigqueryDestination.outputUri",
    ),
    # The model prod serves and how it rolls out: what a promotion PR's preview shows changing.
    "pulumi-python:dynamic/vertex:Promotion": (
        "model",
        "canary_percent",
        "canary_minutes",
        "endpoint",
        "machine_type",
        "min_replicas",
        "max_replicas",
    ),
    "gcp:serviceaccount/account:Account": ("accountId", "displayName"),
    "gcp:projects/iAMCustomRole:IAMCustomRole": ("roleId", "permissions"),
    "gcp:cloudfunctionsv2/function:Function": (
        "name",
        "location",
        "buildConfig.runtime",
        "buildConfig.entryPoint",
        "buildConfig.source.storageSource.object",
        "buildConfig.serviceAccount",
        "serviceConfig.serviceAccountEmail",
        "serviceConfig.ingressSettings",
        "serviceConfig.minInstanceCount",
        "serviceConfig.maxInstanceCount",
        "serviceConfig.availableMemory",
        "serviceConfig.timeoutSeconds",
        "serviceConfig.environmentVariables.*",
        "eventTrigger.eventType",
        "eventTrigger.triggerRegion",
        "eventTrigger.eventFilters[0].value",
        "eventTrigger.retryPolicy",
        "eventTrigger.serviceAccountEmail",
        "kmsKeyName",
    ),
    "gcp:artifactregistry/repository:Repository": (
        "repositoryId",
        "format",
        "location",
        "dockerConfig.immutableTags",
        "cleanupPolicies",
        "kmsKeyName",
    ),
    "gcp:colab/schedule:Schedule": (
        "displayName",
        "cron",
        "desiredState",
        "maxConcurrentRunCount",
        "createPipelineJobRequest.pipelineJob.pipelineSpec",
        "createPipelineJobRequest.pipelineJob.serviceAccount",
        "createPipelineJobRequest.pipelineJob.runtimeConfig.gcsOutputDirectory",
        "createPipelineJobRequest.pipelineJob.runtimeConfig.parameterValues.*",
        "createPipelineJobRequest.pipelineJob.encryptionSpec.kmsKeyName",
    ),
    "gcp:workbench/instance:Instance": (
        "name",
        "location",
        "instanceOwners",
        "gceSetup.machineType",
        "gceSetup.disablePublicIp",
        "gceSetup.shieldedInstanceConfig.enableSecureBoot",
        "gceSetup.shieldedInstanceConfig.enableVtpm",
        "gceSetup.shieldedInstanceConfig.enableIntegrityMonitoring",
        "gceSetup.serviceAccounts[0].email",
        "gceSetup.metadata.*",
        "gceSetup.bootDisk.diskEncryption",
    ),
    "gcp:compute/network:Network": ("name", "autoCreateSubnetworks"),
    "gcp:compute/subnetwork:Subnetwork": ("name", "region", "ipCidrRange", "privateIpGoogleAccess"),
    "gcp:compute/router:Router": ("name", "region"),
    "gcp:compute/routerNat:RouterNat": (
        "name",
        "natIpAllocateOption",
        "sourceSubnetworkIpRangesToNat",
    ),
    "gcp:logging/metric:Metric": ("name", "filter"),
    "gcp:monitoring/notificationChannel:NotificationChannel": ("displayName", "type"),
    "gcp:monitoring/alertPolicy:AlertPolicy": (
        "displayName",
        "severity",
        "conditions[0].displayName",
        "conditions[1].displayName",
        "notificationChannels",
    ),
    "gcp:monitoring/dashboard:Dashboard": ("dashboardJson",),
    "gcp:storage/bucketIAMMember:BucketIAMMember": ("bucket", *_IAM),
    "gcp:bigquery/datasetIamMember:DatasetIamMember": ("datasetId", *_IAM),
    "gcp:bigquery/iamMember:IamMember": ("tableId", *_IAM),
    "gcp:projects/iAMMember:IAMMember": _IAM,
    "gcp:serviceaccount/iAMMember:IAMMember": ("serviceAccountId", *_IAM),
    "gcp:vertex/aiEndpointIamMember:AiEndpointIamMember": ("endpoint", *_IAM),
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember": ("name", *_IAM),
    "gcp:cloudfunctionsv2/functionIamMember:FunctionIamMember": ("cloudFunction", *_IAM),
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": ("repository", *_IAM),
    "gcp:workbench/instanceIamMember:InstanceIamMember": ("name", *_IAM),
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": ("cryptoKeyId", *_IAM),
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": ("workloadIdentityPoolId",),
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": (
        "workloadIdentityPoolProviderId",
        "attributeCondition",
        "oidc.issuerUri",
    ),
    "pulumi:providers:gcp": ("project", "region"),
}
STACK_TYPE = "pulumi:pulumi:Stack"
# Never worth a column: shown on every resource, or too long to read in a table.
_NOISE = {"labels", "description", "project", "__defaults"}


def short_type(type_: str) -> str:
    """'gcp:storage/bucket:Bucket' -> 'storage.Bucket'; component tokens stay whole."""
    parts = type_.split(":")
    if parts[0] == "gcp" and len(parts) == 3:
        return f"{parts[1].split('/')[0]}.{parts[2]}"
    return type_


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested inputs as dotted paths to leaves (lists of scalars stay whole)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # the mocks hand numbers back as floats
    if isinstance(value, str) and value.startswith("[{") and value.endswith("}]"):
        try:  # a JSON schema: show its size, the plan JSON has it whole
            return f"<{len(json.loads(value))} fields>"
        except json.JSONDecodeError:
            pass
    if isinstance(value, str) and value.startswith('{"') and len(value) > 80:
        try:  # a JSON document (a dashboard): its size, the plan JSON has it whole
            document = json.loads(value)
        except json.JSONDecodeError:
            pass
        else:
            tiles = document.get("mosaicLayout", {}).get("tiles")
            return f"<{len(tiles)} tiles>" if tiles is not None else f"<{len(document)} keys>"
    if isinstance(value, list | dict):
        text = json.dumps(value, separators=(",", ":"))
        return text if len(text) <= 80 else f"<{len(value)} items>"
    return str(value)


def key_settings(record: ResourceRecord) -> list[str]:
    flat = flatten(record.inputs)
    wanted = KEY_SETTINGS.get(record.type)
    if wanted is None:
        wanted = tuple(
            key
            for key, value in flat.items()
            if key.split(".")[0] not in _NOISE and not isinstance(value, dict | list)
        )
    # "a.b.*" stands for every leaf under a.b (environment variables, metadata).
    wanted = tuple(
        key
        for path in wanted
        for key in ([k for k in flat if k.startswith(path[:-1])] if path.endswith(".*") else [path])
    )
    shown = []
    for path in wanted:
        value = flat.get(path, _lookup(record.inputs, path))
        if value is not None:
            shown.append(f"{path}={_show(value)}")
    return shown


def _lookup(inputs: dict, path: str) -> Any:
    node: Any = inputs
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def render_table(record: StackRecord, width: int = 150) -> str:
    """Resources grouped under their parent component, one row each."""
    rows: list[tuple[str, str, str, list[str]]] = [("TYPE", "NAME", "PARENT", ["KEY SETTINGS"])]
    for res in _in_tree_order(record):
        parent = record.parent(res)
        rows.append(
            (short_type(res.type), res.name, parent.name if parent else "-", key_settings(res))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    indent = sum(widths) + 6
    for row in rows:
        head = "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True))
        wrapped = _fill(row[3], max(40, width - indent))
        lines.append(f"{head}  {wrapped[0]}".rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    return "\n".join(lines)


def render_summary(record: StackRecord, width: int = 100) -> str:
    """One row per component: what it declares, counted by type (the table has every row);
    the types wrap to stay within `width` columns."""
    counts: dict[str, Counter[str]] = {}
    for res in _in_tree_order(record):
        if not res.custom:
            continue
        # The nearest component: each resource counts once, under the concern that declares it.
        owner = next((a for a in record.ancestors(res) if a.type != STACK_TYPE), None)
        counts.setdefault(owner.name if owner else "(stack)", Counter())[short_type(res.type)] += 1
    name_width = max(len(name) for name in counts)
    indent = " " * (name_width + 7)
    lines = []
    for name, by_type in counts.items():
        parts = ", ".join(
            f"{n} {t}" for t, n in sorted(by_type.items(), key=lambda i: (-i[1], i[0]))
        )
        head = f"{name.ljust(name_width)}  {sum(by_type.values()):>3}  "
        lines += textwrap.wrap(
            parts, width, initial_indent=head, subsequent_indent=indent, break_long_words=False
        )
    return "\n".join(lines)


def _fill(items: list[str], width: int) -> list[str]:
    """Lay settings out on lines of at most `width`, never splitting one setting."""
    lines = [""]
    for item in items:
        if lines[-1] and len(lines[-1]) + 2 + len(item) > width:
            lines.append("")
        lines[-1] = f"{lines[-1]}  {item}" if lines[-1] else item
    return lines


def _in_tree_order(record: StackRecord) -> list[ResourceRecord]:
    """Depth-first from the stack: each component followed by its children."""
    children: dict[str, list[ResourceRecord]] = {}
    for res in record.resources:
        children.setdefault(res.parent_urn, []).append(res)
    known = {r.urn for r in record.resources}
    roots = [r for r in record.resources if r.parent_urn not in known]
    ordered: list[ResourceRecord] = []

    def visit(res: ResourceRecord) -> None:
        ordered.append(res)
        for child in sorted(children.get(res.urn, []), key=lambda r: (r.type, r.name)):
            visit(child)

    for root in sorted(roots, key=lambda r: (r.custom, r.name)):
        visit(root)
    return ordered


def to_json(record: StackRecord) -> dict[str, Any]:
    return {
        "stack": record.stack,
        "outputs": record.outputs,
        "resources": [
            {
                "type": r.type,
                "name": r.name,
                "parent": (record.parent(r).name if record.parent(r) else None),
                "component": r.is_component,
                "depends_on": sorted({d.split("::")[-1] for d in record.depends_on(r)} - {r.name}),
                "inputs": r.inputs,
            }
            for r in _in_tree_order(record)
        ],
    }


def diff(a: StackRecord, b: StackRecord, width: int | None = 100) -> str:
    """What differs between two stacks' plans, for a reviewer comparing environments; within
    `width` columns (a long value cut in its middle, the plan JSON has it whole), None: whole."""
    identity_a, identity_b = _identity(a), _identity(b)
    lines = [
        f"Plan difference: {a.stack} -> {b.stack}",
        f"(not listed: values that differ only by project {identity_a[0]} -> {identity_b[0]},",
        f"its number, or stack {a.stack} -> {b.stack}, such as bucket names; a grant named by a",
        "digest of its member is paired with the other stack's grant to the same member)",
        "",
    ]
    index_a, index_b = _by_logical_key(a, identity_a), _by_logical_key(b, identity_b)
    for stack, index, other in ((a.stack, index_a, index_b), (b.stack, index_b, index_a)):
        lines += _only_in(stack, [index[key] for key in sorted(set(index) - set(other))])
    changed, cut = 0, False
    lines.append("settings that differ in resources both declare:")
    for key in sorted(set(index_a) & set(index_b)):
        res_a, res_b = index_a[key], index_b[key]
        flat_a = _normalized(flatten(res_a.inputs), identity_a)
        flat_b = _normalized(flatten(res_b.inputs), identity_b)
        deltas = [
            _delta(path, _show(flat_a.get(path)), _show(flat_b.get(path)), width)
            for path in sorted(set(flat_a) | set(flat_b))
            if flat_a.get(path) != flat_b.get(path)
        ]
        if deltas:
            changed += 1
            shown = res_a.name if res_a.name == res_b.name else f"{key[1]}-<member digest>"
            lines += _heading(short_type(key[0]), shown, width)
            lines += [line for delta, _ in deltas for line in delta]
            cut = cut or any(was_cut for _, was_cut in deltas)
    if not changed:
        lines.append("  (none)")
    if cut:
        lines += ["", "(… marks a value cut to fit: make plan-diff FULL=1 shows every value whole)"]
    return "\n".join(lines)


def _only_in(stack: str, resources: list[ResourceRecord]) -> list[str]:
    """The resources one stack alone declares, their names under their type."""
    lines = [f"only in {stack}: {len(resources)} resource(s)"]
    for type_ in sorted({r.type for r in resources}, key=short_type):
        lines.append(f"  {short_type(type_)}")
        lines += [f"      {r.name}" for r in resources if r.type == type_]
    return [*lines, ""]


def _heading(type_: str, name: str, width: int | None) -> list[str]:
    line = f"  {type_}  {name}"
    return [line] if width is None or len(line) <= width else [f"  {type_}", f"    {name}"]


def _delta(path: str, old: str, new: str, width: int | None) -> tuple[list[str], bool]:
    """One changed setting on one line, or its two values under it, each cut to fit."""
    line = f"      {path}: {old} -> {new}"
    if width is None or len(line) <= width:
        return [line], False
    room = width - len("           ")
    old_fit, new_fit = _fit(old or '""', room), _fit(new or '""', room)
    lines = [f"      {path}:", f"           {old_fit}", f"        -> {new_fit}"]
    return lines, "…" in old_fit.replace(old, "") + new_fit.replace(new, "")


def _fit(text: str, room: int) -> str:
    """`text`, or its start and end around "…" when longer than `room`."""
    if len(text) <= room:
        return text
    head = (room - 1) * 2 // 3
    return f"{text[:head]}…{text[len(text) - (room - 1 - head) :]}"


# A grant to a configured member is named by a digest of the member (resources/access.py
# named_members): the same grant in two stacks has two names when the member names the project.
_MEMBER_DIGEST = re.compile(r"^(?P<stem>.+)-(?P<digest>[0-9a-f]{8})$")
Identity = tuple[str, str, str]  # project id, stack, project number


def _identity(record: StackRecord) -> Identity:
    project = record.outputs.get("project", "")
    return project, record.stack, (project_number(project) if project else "")


def _logical_key(resource: ResourceRecord, identity: Identity) -> tuple[str, str, str]:
    """(type, name, member): a member-digest suffix is replaced by the member itself with the
    project and stack taken out, so one stack's grant pairs with the other's of the same role."""
    match = _MEMBER_DIGEST.match(resource.name)
    member = resource.inputs.get("member")
    if match and isinstance(member, str) and _digest(member) == match["digest"]:
        return resource.type, match["stem"], _normalized({"": member}, identity)[""]
    return resource.type, resource.name, ""


def _by_logical_key(record: StackRecord, identity: Identity) -> dict[tuple, ResourceRecord]:
    """The stack's resources by logical key; where two would share one, by their names."""
    keys = {id(r): _logical_key(r, identity) for r in record.resources}
    shared = {k for k, n in Counter(keys.values()).items() if n > 1}
    return {
        (keys[id(r)] if keys[id(r)] not in shared else (r.type, r.name, "")): r
        for r in record.resources
    }


def _digest(member: str) -> str:
    return hashlib.sha256(member.encode()).hexdigest()[:8]


def _normalized(flat: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """Replace the project id, its number and the stack name in string values by placeholders."""
    project, stack, number = identity
    # Whole words only: the stack "prod" must not rewrite "production".
    stack_word = re.compile(rf"(?<![A-Za-z0-9]){re.escape(stack)}(?![A-Za-z0-9])")

    def norm(value: Any) -> Any:
        if isinstance(value, str):
            if project:
                value = value.replace(project, "<project>")
            if number:
                value = value.replace(number, "<project-number>")
            return stack_word.sub("<stack>", value)
        if isinstance(value, list):
            return [norm(v) for v in value]
        return value

    return {path: norm(value) for path, value in flat.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tooling.plan", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stack", action="append", default=[], help="stack to plan (repeatable)")
    parser.add_argument("--diff", nargs=2, metavar=("A", "B"), help="compare two stacks' plans")
    parser.add_argument("--out-dir", type=Path, default=Path("build"), help="where JSON goes")
    parser.add_argument("--output", metavar="NAME", help="print only this stack output")
    parser.add_argument(
        "--full", action="store_true", help="every resource and every value whole (wide)"
    )
    args = parser.parse_args(argv)
    if not args.stack and not args.diff:
        parser.error("name a --stack, or --diff two stacks")
    if args.output and (len(args.stack) != 1 or args.diff):
        parser.error("--output reads one stack: name exactly one --stack")
    unreadable = _unreadable_stack_files(args.stack + (args.diff or []))
    if unreadable:
        print(unreadable, file=sys.stderr)
        return 2
    if args.output:
        return _print_output(args.stack[0], args.output)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    records: dict[str, StackRecord] = {}
    estimates: dict[str, cost.Estimate] = {}
    try:
        for stack, (record, elapsed) in run_programs(args.stack + (args.diff or [])).items():
            records[stack] = record
            document = with_cost(to_json(record))
            estimates[stack] = cost.Estimate.from_json(document["cost"])
            path = args.out_dir / f"plan-{stack}.json"
            path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
            if stack in args.stack:
                _print_stack(record, path, elapsed, estimates[stack], full=args.full)
                for warning in record.warnings:  # what GCP may refuse (unverified rules)
                    print(f"  {warning}", file=sys.stderr)
    except pulumi.RunError as error:  # what __main__.py raises for a bad config
        print(error, file=sys.stderr)
        return 2
    except PlanError as error:  # what the provider or GCP would refuse on `pulumi up`
        print(error, file=sys.stderr)
        return 2
    except (ConfigError, ContractError) as error:
        print(f"invalid configuration:\n{error}", file=sys.stderr)
        return 2
    except PricingError as error:
        print(f"cost estimate: {error}", file=sys.stderr)
        return 2
    if args.diff:
        print()
        print(diff(records[args.diff[0]], records[args.diff[1]], None if args.full else 100))
        before, after = estimates[args.diff[0]], estimates[args.diff[1]]
        print(f"\ncost change {before.stack} -> {after.stack} (monthly estimate, docs/cost.md):")
        print(cost.render_diff(cost.diff(before, after)))
    return 0


def _print_stack(
    record: StackRecord, path: Path, elapsed: float, estimate: cost.Estimate, full: bool
) -> None:
    """One stack's plan: per component by default (fits 100 columns), every row with --full."""
    components = sum(1 for r in record.resources if r.is_component)
    print(
        f"\n=== stack {record.stack}: {len(record.resources) - components} resources in "
        f"{components} components ({elapsed:.1f} s)\n"
    )
    print(render_table(record) if full else render_summary(record))
    print("\noutputs:")
    for key, value in record.outputs.items():
        shown = "(known after deploy)" if value is None else _show(value)
        print(f"  {key} = {shown}")
    print()
    print(cost.render(estimate))
    print(f"\nfull record: {path}")
    if not full:
        print(f"every resource and its key settings: make plan STACK={record.stack} FULL=1")


def with_cost(document: dict[str, Any]) -> dict[str, Any]:
    """The plan JSON with its monthly estimate (`cost`), under the stack file's assumptions;
    a budget below the standing cost is a configuration error."""
    stack = document["stack"]
    settings = load_stack_file(PROJECT_ROOT / stack_file_name(stack)).platform.cost
    estimate = cost.estimate(document, settings)
    cost.check_budget(estimate, settings.budget, stack_file_name(stack))
    if settings.budget.billing_account:  # an amount alone is checked, but creates no budget
        estimate.budget_usd = settings.budget.monthly_usd
    return {**document, "cost": estimate.to_json()}


def _unreadable_stack_files(stacks: list[str]) -> str:
    """One line per stack whose file is missing or not YAML (before any program runs)."""
    problems = []
    for stack in dict.fromkeys(stacks):
        try:
            stack_config_values(stack)
        except ConfigError as error:
            problems.append(str(error))
    return "\n".join(problems)


def _timed_run(stack: str) -> tuple[StackRecord, float]:
    started = time.perf_counter()
    record = run_program(stack)
    return record, time.perf_counter() - started


def run_programs(stacks: list[str]) -> dict[str, tuple[StackRecord, float]]:
    """Each stack's record and seconds, in order. Two or more stacks run in parallel processes:
    most of a run is importing pulumi-gcp, which one process cannot spread over cores. A stack
    that reads another's outputs deploys that one first in its own organisation (its plan reused
    from an earlier run of the same code when there is one: tooling/plan/cache.py)."""
    unique = list(dict.fromkeys(stacks))
    if len(unique) == 1:
        return {unique[0]: _timed_run(unique[0])}
    workers = min(len(unique), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return dict(zip(unique, pool.map(_timed_run, unique), strict=True))


def _print_output(stack: str, name: str) -> int:
    try:
        outputs = run_program(stack).outputs
    except (pulumi.RunError, PlanError) as error:
        print(error, file=sys.stderr)
        return 2
    if name not in outputs:
        print(
            f"stack {stack} has no output {name!r} (outputs: {', '.join(sorted(outputs))})",
            file=sys.stderr,
        )
        return 2
    value = outputs[name]
    print(value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True))
    return 0
