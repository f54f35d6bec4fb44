"""What a stack costs a month, estimated from its offline plan before anything is deployed.

    python -m tooling.cost diff build/base/plan-prod.json build/plan-prod.json

Every resource of the plan (the JSON `make plan` writes) is priced by a rule of its type, with
the list prices of tooling/prices/gcp.yaml (tooling/cost/prices.py):

- standing costs, paid whether or not anyone uses the platform: endpoint replicas x machine x
  730 h, the Workbench machine (for the hours it runs) and its disks, warm function instances,
  the NAT gateway, KMS key versions;
- scheduled work: each active schedule's runs a month (from its cron) x the machine of each of
  the tasks a run takes (of exclusive branches, the costliest) x a typical task duration, plus
  the per-run fee;
- usage-priced services as rates x the amounts the stack's `platform.cost` section assumes
  (storage held, bytes scanned).

A resource type without a rule is an error (`UnpricedResource`), and so is a region or machine
type the price table lacks: an estimate never prices something at zero by omission.
`diff` compares two estimates and names the settings behind each change:
"+$351.39/month: serving.min_replicas 2 -> 4".
"""

from __future__ import annotations

import argparse
import calendar
import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from stacks.config import NAMESPACE, BudgetConfig, ConfigError, CostConfig
from tooling.cost.prices import MACHINE_SHAPES, PriceTable, PricingError, load_prices

STANDING, SCHEDULED, USAGE = "standing", "scheduled", "usage"
SECONDS_PER_HOUR = 3600
# Cloud Run functions (2nd gen) give an instance CPU by its memory (Cloud Functions docs).
_FUNCTION_VCPUS = {0.125: 0.083, 0.25: 0.167, 0.5: 0.333, 1: 0.583, 2: 1, 4: 2, 8: 2, 16: 4}
# A Workbench instance's disks when the program sets no size (the API's defaults).
WORKBENCH_BOOT_GB, WORKBENCH_DATA_GB = 150, 100
PIPELINE_DEFAULT_MACHINE = "e2-standard-4"  # a task that asks for nothing runs on this


class UnpricedResource(PricingError):
    """A resource type of the plan has no pricing rule."""


@dataclass(frozen=True)
class CostLine:
    component: str
    resource: str
    kind: str
    monthly_usd: float
    basis: str
    """How the figure is made, in a reviewer's words."""
    drivers: dict[str, str] = field(default_factory=dict)
    """The stack settings the figure depends on (config key -> value), for the cost-diff."""


@dataclass
class Estimate:
    stack: str
    region: str
    prices_read: str
    lines: list[CostLine]
    assumptions: list[str]
    budget_usd: float | None = None
    """The stack's monthly budget (`cost.budget.monthly_usd`), when it sets one."""

    def total(self, kind: str | None = None) -> float:
        return sum(line.monthly_usd for line in self.lines if kind in (None, line.kind))

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "region": self.region,
            "prices_read": self.prices_read,
            "monthly_usd": {k: self.total(k) for k in (STANDING, SCHEDULED, USAGE)}
            | {"total": self.total()},
            "lines": [asdict(line) for line in self.lines],
            "assumptions": self.assumptions,
            "budget_usd": self.budget_usd,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Estimate:
        return cls(
            stack=data["stack"],
            region=data["region"],
            prices_read=data["prices_read"],
            lines=[CostLine(**line) for line in data["lines"]],
            assumptions=list(data["assumptions"]),
            budget_usd=data.get("budget_usd"),
        )


@dataclass
class _Context:
    """What every rule may read: the plan, its region, the assumptions and the prices."""

    plan: dict[str, Any]
    region: str
    assume: CostConfig
    prices: PriceTable

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.plan["resources"] if r["type"] == type_]

    @property
    def hours(self) -> float:
        return self.prices.hours_per_month


Rule = Callable[[dict[str, Any], _Context], list[CostLine]]


def _component(resource: dict[str, Any]) -> str:
    return resource.get("parent") or "(stack)"


def _money(usd: float) -> str:
    """Amounts in cents; unit prices below a cent with the digits that matter."""
    return f"${usd:,.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.4g}"


def _rate(usd: float) -> str:
    return f"${usd:.4g}"


# --- standing costs ------------------------------------------------------------------------


def _serving_line(
    resource: dict[str, Any], ctx: _Context, machine: str, replicas: tuple[int, int], how: str
) -> CostLine:
    """Minimum replicas stand all month; autoscaling above them is usage, shown as its rate."""
    price = ctx.prices.machine("vertex-prediction", machine, ctx.region)
    least, most = replicas
    scaling = (
        f"; up to {most - least} more under load at {_rate(price.usd)}/node hour each"
        if most > least
        else ""
    )
    return CostLine(
        _component(resource),
        "model replicas",  # the same line whether a promotion or the pipeline deploys
        STANDING,
        least * price.usd * ctx.hours,
        f"{least} replica(s) x {machine} at {_rate(price.usd)}/h x {ctx.hours:g} h ({how})"
        + scaling,
        {"serving.min_replicas": str(least), "serving.machine_type": machine},
    )


def _promotion(resource: dict[str, Any], ctx: _Context) -> list[CostLine]:
    inputs = resource["inputs"]
    if not inputs.get("model"):
        return []
    replicas = (int(inputs["min_replicas"]), int(inputs.get("max_replicas") or 0))
    return [_serving_line(resource, ctx, inputs["machine_type"], replicas, "the promoted model")]


def _endpoint(resource: dict[str, Any], ctx: _Context) -> list[CostLine]:
    """An endpoint costs what its deployed model's replicas cost: priced on the promotion in a
    stack that promotes; in one whose training pipeline deploys, from the pipeline's settings."""
    if ctx.of_type(PROMOTION):
        return []
    for schedule in ctx.of_type(SCHEDULE):
        parameters = _pipeline_parameters(schedule)
        if parameters.get("deploy_by") == "pipeline":
            machine = str(parameters["serving_machine_type"])
            replicas = (
                int(float(parameters["serving_min_replicas"])),
                int(float(parameters.get("serving_max_replicas") or 0)),
            )
            return [_serving_line(resource, ctx, machine, replicas, "once the pipeline deploys")]
    return []


def _workbench(resource: dict[str, Any], ctx: _Context) -> list[CostLine]:
    setup = resource["inputs"]["gceSetup"]
    machine = setup["machineType"]
    vm = ctx.prices.machine("compute", machine, ctx.region)
    disk = ctx.prices.price("disk/pd-balanced", ctx.region)
    boot = int(setup.get("bootDisk", {}).get("diskSizeGb") or WORKBENCH_BOOT_GB)
    data = int(setup.get("dataDisks", {}).get("diskSizeGb") or WORKBENCH_DATA_GB)
    hours = ctx.assume.workbench_hours_per_month
    idle = int(setup.get("metadata", {}).get("idle-timeout-seconds", 0)) // 60
    drivers = {
        "workbench.machine_type": machine,
        "workbench.idle_shutdown_minutes": str(idle),
        "cost.workbench_hours_per_month": f"{hours:g}",
    }
    return [
        CostLine(
            _component(resource),
            resource["name"],
            STANDING,
            vm.usd * hours,
            f"{machine} at {_rate(vm.usd)}/h x {hours:g} h running (idle shutdown after "
            f"{idle} min stops it the rest of the month)",
            drivers,
        ),
        CostLine(
            _component(resource),
            f"{resource['name']} disks",
            STANDING,
            (boot + data) * disk.usd,
            f"{boot} GB boot + {data} GB data pd-balanced at {_rate(disk.usd)}/GB "
            "(kept while the VM is stopped)",
        ),
    ]


def _nat(resource: dict[str, Any], ctx: _Context) -> list[CostLine]:
    """The gateway is paid per VM using it, while it runs; data through it is usage."""
    vms = len(ctx.of_type("gcp:workbench/instance:Instance"))
    hours = ctx.assume.workbench_hours_per_month
    gateway = ctx.prices.price("nat/gateway-vm", ctx.region)
    data = ctx.prices.price("nat/data", ctx.region)
    gib = ctx.assume.nat_gib_per_month
    return [
        CostLine(
            _component(resource),
            resource["name"],
            STANDING,
            vms * hours * gateway.usd,
            f"{vms} VM(s) x {hours:g} h x {_rate(gateway.usd)}/VM-hour",
            {"cost.workbench_hours_per_month": f"{hours:g}"},
        ),
        CostLine(
            _component(resource),
            f"{resource['name']} data",
            USAGE,
            gib * data.usd,
            f"{gib:g} GiB x {_rate(data.usd)}/GiB processed",
            {"cost.nat_gib_per_month": f"{gib:g}"},
        ),
    ]


def _function(resource: dict[str, Any], ctx: _Context) -> list[CostLine]:
    service = resource["inputs"]["serviceConfig"]
    warm = int(service.get("minInstanceCount") or 0)
    memory = service.get("availableMemory", "256M")
    gib = _gibibytes(memory)
    vcpus = float(service.get("availableCpu") or _FUNCTION_VCPUS.get(gib, max(1, gib / 2)))
    cpu_rate = ctx.prices.price("run/idle-vcpu-second", ctx.region).usd
    memory_rate = ctx.prices.price("run/idle-gib-second", ctx.region).usd
    per_instance = (vcpus * cpu_rate + gib * memory_rate) * SECONDS_PER_HOUR * ctx.hours
    return [
        CostLine(
            _component(resource),
            resource["name"],
            STANDING,
            warm * per_instance,
            f"{warm} warm instance(s) x ({vcpus:g} vCPU + {gib:g} GiB) at idle rates x "
            f"{ctx.hours:g} h; requests themselves are usage, not estimated",
            {"ingestion.min_instances": str(warm), "ingestion.memory": memory},
        )
    ]


def _gibibytes(memory: str) -> float:
    match = re.fullmatch(r"([0-9.]+)\s*(Mi|Gi|M|G)?", str(memory))
    if not match:
        raise PricingError(f"function memory {memory!r} is not a size like 512Mi or 2Gi")
    amount, unit = float(match.group(1)), match.group(2) or "M"
    return amount if unit.startswith("G") else amount / 1024


def _kms_key(resource: dict[str, Any], ctx: _Context) -> list[CostLine]:
    price = ctx.prices.price("kms/key-version-software", ctx.region)
    return [
        CostLine(
            _component(resource),
            resource["name"],
            STANDING,
            price.usd,
            f"1 active key version at {_rate(price.usd)}/month (rotation adds versions)",
        )
    ]


# --- scheduled work --------------------------------------------------------------------------

_CRON_NAMES = {
    **{name.lower(): i for i, name in enumerate(calendar.month_abbr) if name},
    **{name.lower(): (i + 1) % 7 for i, name in enumerate(calendar.day_abbr)},
}
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_YEAR = 2026  # any non-leap year: 365 days, the average month's share of 52 weeks


def _cron_value(text: str, field: str) -> int:
    """One value of a cron field: a number, or a month or weekday name (JAN, MON)."""
    if text.isalpha() and text in _CRON_NAMES:
        return _CRON_NAMES[text]
    if text.isdigit():
        return int(text)
    raise PricingError(f"cron field {field!r}: {text!r} is neither a number nor a name")


def _cron_field(text: str, low: int, high: int) -> set[int]:
    """The values a cron field matches: `*`, `a`, `a-b`, each optionally `/step`, listed by `,`."""
    values: set[int] = set()
    for part in text.lower().split(","):
        span, _, step = part.partition("/")
        if step and not step.isdigit():
            raise PricingError(f"cron field {text!r}: step {step!r} is not a number")
        if span == "*":
            first, last = low, high
        else:
            first_text, _, last_text = span.partition("-")
            first = _cron_value(first_text, text)
            # `5/15` runs from 5 to the field's end; a lone `5` is just 5.
            last = _cron_value(last_text, text) if last_text else (high if step else first)
        if not low <= first <= last <= high:
            raise PricingError(f"cron field {text!r} is outside {low}-{high}")
        values.update(range(first, last + 1, int(step) if step else 1))
    return values


def runs_per_month(cron: str) -> float:
    """How many times a 5-field cron expression fires in an average month (a year / 12).

    Day of month and day of week restricted together match either, as cron does."""
    fields = cron.split()
    if fields and fields[0].startswith("TZ="):
        fields = fields[1:]  # a time zone moves the runs, not their number
    if len(fields) != 5:
        raise PricingError(f"{cron!r} is not a 5-field cron expression")
    minutes, hours, days, months, weekdays = (
        _cron_field(text, *bounds) for text, bounds in zip(fields, _CRON_RANGES, strict=True)
    )
    weekdays = {d % 7 for d in weekdays}
    day_any, weekday_any = fields[2] == "*", fields[4] == "*"
    runs = 0
    for ordinal in range(
        date(_CRON_YEAR, 1, 1).toordinal(), date(_CRON_YEAR + 1, 1, 1).toordinal()
    ):
        day = date.fromordinal(ordinal)
        on_day = day.day in days
        on_weekday = (day.weekday() + 1) % 7 in weekdays
        matches = on_day and on_weekday if day_any or weekday_any else on_day or on_weekday
        if day.month in months and matches:
            runs += len(hours) * len(minutes)
    return runs / 12


def _pipeline_job(schedule: dict[str, Any]) -> dict[str, Any]:
    return schedule["inputs"]["createPipelineJobRequest"]["pipelineJob"]


def _pipeline_spec(schedule: dict[str, Any]) -> dict[str, Any]:
    spec = _pipeline_job(schedule)["pipelineSpec"]
    return json.loads(spec) if isinstance(spec, str) else spec


def _pipeline_parameters(schedule: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters: the spec's defaults, overridden by the schedule's values."""
    spec = _pipeline_spec(schedule)
    defaults = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    values = {name: p.get("defaultValue") for name, p in defaults.items()}
    values.update(_pipeline_job(schedule).get("runtimeConfig", {}).get("parameterValues", {}))
    return values


def task_machine(executor: dict[str, Any]) -> str:
    """The machine Vertex AI runs a task on: e2-standard-4 unless it asks for more CPU or
    memory, then the smallest E2 standard machine that fits."""
    resources = executor.get("container", {}).get("resources") or {}
    if resources.get("accelerator"):
        raise PricingError("pipeline tasks with accelerators are not priced (no GPU rows)")
    cpu = float(resources.get("cpuLimit") or resources.get("resourceCpuLimit") or 0)
    memory = float(resources.get("memoryLimit") or _gigabytes(resources.get("resourceMemoryLimit")))
    if not cpu and not memory:
        return PIPELINE_DEFAULT_MACHINE
    fits = [
        (shape, name)
        for name, shape in MACHINE_SHAPES.items()
        if name.startswith("e2-standard-") and shape[0] >= cpu and shape[1] >= memory
    ]
    if not fits:
        raise PricingError(f"no priced machine has {cpu:g} vCPU and {memory:g} GB")
    return min(fits)[1]


def _gigabytes(text: str | None) -> float:
    if not text:
        return 0.0
    match = re.fullmatch(r"([0-9.]+)([KMG]i?)?", str(text))
    if not match:
        raise PricingError(f"memory limit {text!r} is not a size like 16G")
    scale = {"K": 1e-6, "M": 1e-3, "G": 1.0}[(match.group(2) or "G")[0]]
    return float(match.group(1)) * scale


def run_path(spec: dict[str, Any], cost: Callable[[dict[str, Any]], float]) -> list[dict]:
    """The executors of a run's costliest way through the pipeline: every task of a DAG, but of
    exclusive branches (dsl.If/Elif/Else, compiled as `condition-branches-N`) only the costliest,
    as a run takes one (a training run deploys, registers, or keeps the champion)."""
    components = spec.get("components", {})
    executors = spec.get("deploymentSpec", {}).get("executors", {})

    def task_path(task: dict[str, Any]) -> list[dict]:
        name = task["componentRef"]["name"]
        component = components.get(name, {})
        if "dag" not in component:
            return [executors[component["executorLabel"]]]
        branches = [task_path(t) for t in component["dag"].get("tasks", {}).values()]
        if name.startswith("comp-condition-branches-"):
            return max(branches, key=lambda path: sum(map(cost, path)), default=[])
        return [executor for branch in branches for executor in branch]

    tasks = spec.get("root", {}).get("dag", {}).get("tasks", {}).values()
    return [executor for task in tasks for executor in task_path(task)]


def _schedule(resource: dict[str, Any], ctx: _Context) -> list[CostLine]:
    inputs = resource["inputs"]
    pipeline = "training" if "training" in resource["name"] else "evaluation"
    key = f"pipelines.{pipeline}.schedule"
    executors = _run_executors(resource, ctx)
    minutes = ctx.assume.pipeline_task_minutes
    per_run = _run_usd(resource, ctx)
    runs = runs_per_month(inputs["cron"])
    paused = inputs.get("desiredState") == "PAUSED"
    basis = (
        f"{runs:.1f} runs x ({len(executors)} tasks x {minutes:g} min on their machines "
        f"+ run fee) at {_money(per_run)}/run"
    )
    return [
        CostLine(
            _component(resource),
            resource["name"],
            SCHEDULED,
            0.0 if paused else runs * per_run,
            f"paused: $0 (active: {_money(runs * per_run)}, {basis})" if paused else basis,
            {
                f"{key}.cron": inputs["cron"].split(" ", 1)[-1],
                f"{key}.paused": str(paused).lower(),
                "cost.pipeline_task_minutes": f"{minutes:g}",
            },
        )
    ]


def _task_usd(executor: dict[str, Any], ctx: _Context) -> float:
    """One task of a run: its machine for the assumed minutes."""
    minutes = ctx.assume.pipeline_task_minutes
    return (
        ctx.prices.machine("vertex-training", task_machine(executor), ctx.region).usd * minutes / 60
    )


def _run_executors(resource: dict[str, Any], ctx: _Context) -> list[dict[str, Any]]:
    return run_path(_pipeline_spec(resource), lambda executor: _task_usd(executor, ctx))


def _run_usd(resource: dict[str, Any], ctx: _Context) -> float:
    """One run of a scheduled pipeline: the run fee and each task's machine for its minutes,
    along the costliest branches."""
    return ctx.prices.price("vertex-pipelines/run", ctx.region).usd + sum(
        _task_usd(executor, ctx) for executor in _run_executors(resource, ctx)
    )


def pipeline_run_usd(
    plan: dict[str, Any], assume: CostConfig, prices: PriceTable | None = None
) -> dict[str, float]:
    """What one run of each scheduled pipeline of a plan costs, by schedule resource name (the
    e2e run's proration: it runs each pipeline once, whatever the cron)."""
    prices = prices or load_prices()
    ctx = _Context(plan, plan["outputs"].get("region") or _provider_region(plan), assume, prices)
    return {
        r["name"]: _run_usd(r, ctx)
        for r in plan["resources"]
        if not r.get("component") and RULES.get(r["type"]) is _schedule
    }


# --- usage-priced services: rates x the amounts the stack assumes ---------------------------


def _usage(
    resources: list[dict[str, Any]],
    component: str,
    parts: list[tuple[str, float, str, str]],
    ctx: _Context,
) -> list[CostLine]:
    """One line per (label, amount, price key, config key) for a whole family of resources."""
    lines = []
    for label, amount, price_key, setting in parts:
        price = ctx.prices.price(price_key, ctx.region)
        lines.append(
            CostLine(
                component,
                f"{label} ({len(resources)} {'resource' if len(resources) == 1 else 'resources'})",
                USAGE,
                amount * price.usd,
                f"{amount:g} {price.unit.split()[0]} x {_rate(price.usd)}/{price.unit}",
                {setting: f"{amount:g}"},
            )
        )
    return lines


def _buckets(resources: list[dict[str, Any]], ctx: _Context) -> list[CostLine]:
    gb = ctx.assume.storage_gb
    return _usage(resources, "data-lake", [
        ("Cloud Storage standard", gb, "storage/standard", "cost.storage_gb"),
    ], ctx)  # fmt: skip


def _datasets(resources: list[dict[str, Any]], ctx: _Context) -> list[CostLine]:
    a = ctx.assume
    return _usage(resources, "warehouse", [
        ("BigQuery storage", a.warehouse_gb, "bigquery/active-logical-storage",
         "cost.warehouse_gb"),
        ("BigQuery queries", a.query_tib_per_month, "bigquery/on-demand-query",
         "cost.query_tib_per_month"),
    ], ctx)  # fmt: skip


def _repositories(resources: list[dict[str, Any]], ctx: _Context) -> list[CostLine]:
    gb = ctx.assume.registry_gb
    return _usage(resources, "pipelines", [
        ("Artifact Registry storage", gb, "artifact-registry/storage", "cost.registry_gb"),
    ], ctx)  # fmt: skip


# --- the rules --------------------------------------------------------------------------------

PROMOTION = "pulumi-python:dynamic/vertex:Promotion"
SCHEDULE = "gcp:colab/schedule:Schedule"
RULES: dict[str, Rule] = {
    PROMOTION: _promotion,
    "gcp:vertex/aiEndpoint:AiEndpoint": _endpoint,
    "gcp:workbench/instance:Instance": _workbench,
    "gcp:compute/routerNat:RouterNat": _nat,
    "gcp:cloudfunctionsv2/function:Function": _function,
    "gcp:kms/cryptoKey:CryptoKey": _kms_key,
    SCHEDULE: _schedule,
}
"""Priced one resource at a time."""
FAMILY_RULES: dict[str, Callable[[list[dict[str, Any]], _Context], list[CostLine]]] = {
    "gcp:storage/bucket:Bucket": _buckets,
    "gcp:bigquery/dataset:Dataset": _datasets,
    "gcp:artifactregistry/repository:Repository": _repositories,
}
"""Usage-priced: the stack's assumed amount is spread over all resources of the type."""
FREE: dict[str, str] = {
    "gcp:projects/service:Service": "enabling an API is free",
    "gcp:projects/serviceIdentity:ServiceIdentity": "service agents are free",
    "gcp:projects/iAMCustomRole:IAMCustomRole": "IAM is free",
    "gcp:serviceaccount/account:Account": "service accounts are free",
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": "Workload Identity Federation is free",
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": "as its pool",
    "gcp:bigquery/table:Table": "its bytes are priced on the dataset (cost.warehouse_gb)",
    "gcp:storage/bucketObject:BucketObject": "priced on the buckets (cost.storage_gb)",
    "gcp:compute/network:Network": "VPC networks are free",
    "gcp:compute/subnetwork:Subnetwork": "subnets are free (flow logs: Cloud Logging, not priced)",
    "gcp:compute/globalAddress:GlobalAddress": "an internal range reserved for peering is free",
    "gcp:servicenetworking/connection:Connection": "private services access peering is free",
    "gcp:compute/firewall:Firewall": "firewall rules are free (logs: Cloud Logging, not priced)",
    "gcp:compute/router:Router": "a Cloud Router without BGP sessions is free; NAT is priced",
    "gcp:logging/metric:Metric": "log-based metrics fall in Monitoring's free allotment",
    "gcp:monitoring/dashboard:Dashboard": "dashboards are free",
    "gcp:monitoring/notificationChannel:NotificationChannel": "notification channels are free",
    "gcp:monitoring/alertPolicy:AlertPolicy": (
        "not priced: alerting charges were not confirmed from a stored page"
    ),
    "gcp:billing/budget:Budget": "budgets are free",
    "pulumi:pulumi:StackReference": "reads another stack's outputs",
    "time:index/sleep:Sleep": "a wait in `pulumi up`, no cloud resource",
}
"""Types that cost nothing by themselves, each with the reason."""
_IAM_BINDING = re.compile(r"(IamMember|IAMMember|IamBinding|IAMBinding)$")


def pricing_rule(type_: str) -> str:
    """Which rule prices a resource type ('per resource', 'family', 'free: …', 'iam'), or
    UnpricedResource: a new resource type cannot slip into an estimate unpriced."""
    if type_ in RULES:
        return "per resource"
    if type_ in FAMILY_RULES:
        return "family"
    if type_ in FREE:
        return f"free: {FREE[type_]}"
    if _IAM_BINDING.search(type_) or type_.startswith("pulumi:providers:"):
        return "free: IAM bindings and providers cost nothing"
    raise UnpricedResource(
        f"no pricing rule for resource type {type_}: add one to tooling/cost/__init__.py "
        "(RULES, FAMILY_RULES, or FREE with the reason it costs nothing)"
    )


def estimate(
    plan: dict[str, Any], assume: CostConfig, prices: PriceTable | None = None
) -> Estimate:
    """The monthly estimate of a plan (tooling.plan.cli.to_json's form) under `assume`."""
    prices = prices or load_prices()
    region = plan["outputs"].get("region") or _provider_region(plan)
    ctx = _Context(plan, region, assume, prices)
    lines: list[CostLine] = []
    families: dict[str, list[dict[str, Any]]] = {}
    for resource in plan["resources"]:
        if resource.get("component"):
            continue
        kind = pricing_rule(resource["type"])
        if kind == "per resource":
            lines += RULES[resource["type"]](resource, ctx)
        elif kind == "family":
            families.setdefault(resource["type"], []).append(resource)
    for type_, members in families.items():
        lines += FAMILY_RULES[type_](members, ctx)
    assumptions = _assumptions(assume, prices) + _external_keys(plan, prices, region)
    return Estimate(plan["stack"], region, prices.read, lines, assumptions)


def _external_keys(plan: dict[str, Any], prices: PriceTable, region: str) -> list[str]:
    """KMS keys the stack uses but does not create are billed in the project that holds them."""
    created = {r["name"] for r in plan["resources"] if r["type"] == "gcp:kms/cryptoKey:CryptoKey"}
    used = sorted(
        {
            str(r["inputs"]["cryptoKeyId"]).split("/")[-1]
            for r in plan["resources"]
            if r["type"] == "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
        }
        - created
    )
    if not used:
        return []
    price = prices.price("kms/key-version-software", region)
    return [
        f"KMS keys used but held elsewhere ({', '.join(used)}): {_rate(price.usd)} per key "
        "version a month, billed to the project that holds them"
    ]


def _provider_region(plan: dict[str, Any]) -> str:
    for resource in plan["resources"]:
        if resource["type"] == "pulumi:providers:gcp" and resource["inputs"].get("region"):
            return resource["inputs"]["region"]
    raise PricingError(f"plan of {plan['stack']}: no region in its outputs or provider")


def _assumptions(assume: CostConfig, prices: PriceTable) -> list[str]:
    assumed = sorted({r.key.split("/")[0] for r in prices.rows if r.certainty == "assumed"})
    return [
        f"list prices read {prices.read} ({prices.path.name}); no discounts, free tiers not "
        "deducted (they are per billing account)",
        f"standing: {prices.hours_per_month:g} h a month; Workbench runs "
        f"{assume.workbench_hours_per_month:g} h (cost.workbench_hours_per_month), its disks "
        "all month",
        f"scheduled: every task of a pipeline runs each time, {assume.pipeline_task_minutes:g} "
        "min (cost.pipeline_task_minutes), on e2-standard-4 unless it asks for more",
        f"usage: {assume.storage_gb:g} GB Cloud Storage, {assume.warehouse_gb:g} GB BigQuery, "
        f"{assume.query_tib_per_month:g} TiB scanned, {assume.registry_gb:g} GB images, "
        f"{assume.nat_gib_per_month:g} GiB NAT (cost.*)",
        f"prices marked assumed in the table: {', '.join(assumed)}; request and egress "
        "charges are not estimated",
    ]


# --- what people read: the estimate, and the change between two -----------------------------

WIDTH = 100


def render(estimate: Estimate) -> str:
    """The estimate by component, then its assumptions; no line wider than WIDTH."""
    lines = [
        f"Monthly cost estimate: {estimate.stack} ({estimate.region}), "
        f"{_money(estimate.total())}/month",
        f"  standing {_money(estimate.total(STANDING))}, scheduled "
        f"{_money(estimate.total(SCHEDULED))}, usage {_money(estimate.total(USAGE))} "
        "(docs/cost.md)",
    ]
    if estimate.budget_usd:
        lines.append(
            f"  budget {_money(estimate.budget_usd)}/month (cost.budget): the standing cost is "
            f"{estimate.total(STANDING) / estimate.budget_usd:.0%} of it"
        )
    lines.append("")
    by_component: dict[str, list[CostLine]] = {}
    for line in estimate.lines:
        by_component.setdefault(line.component, []).append(line)
    for component, items in sorted(by_component.items(), key=lambda i: -_sum(i[1])):
        lines.append(f"{component}  {_money(_sum(items))}")
        for item in sorted(items, key=lambda i: -i.monthly_usd):
            lines.append(f"  {_money(item.monthly_usd):>10}  {item.kind:<9}  {item.resource}")
            lines += _wrap(item.basis, indent=" " * 26)
    lines += ["", "assumptions (platform.cost in the stack file; docs/cost.md):"]
    for assumption in estimate.assumptions:
        lines += _wrap(f"- {assumption}", indent="    ", first="  ")
    return "\n".join(lines)


def _sum(lines: list[CostLine]) -> float:
    return sum(line.monthly_usd for line in lines)


def _wrap(text: str, indent: str, first: str | None = None) -> list[str]:
    import textwrap

    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_on_hyphens=False,
    )


def diff(before: Estimate, after: Estimate) -> list[str]:
    """One line per cost that changes, largest first, naming the settings that moved it:
    '+$351.39/month: serving.min_replicas 2 -> 4 (serving-promotion)'."""
    old = {(line.component, line.resource, line.kind): line for line in before.lines}
    new = {(line.component, line.resource, line.kind): line for line in after.lines}
    changes: list[tuple[float, str]] = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        delta = (b.monthly_usd if b else 0.0) - (a.monthly_usd if a else 0.0)
        if abs(delta) < 0.005:
            continue
        changes.append((delta, f"{_signed(delta)}/month: {_cause(a, b, key[1])}"))
    total = after.total() - before.total()
    stacks = before.stack if before.stack == after.stack else f"{before.stack} -> {after.stack}"
    summary = (
        f"{_signed(total)}/month in total: {_money(before.total())} -> {_money(after.total())} "
        f"({stacks})"
        if changes
        else f"no change: {_money(after.total())}/month ({stacks})"
    )
    return [summary] + [text for _, text in sorted(changes, key=lambda c: -abs(c[0]))]


def render_diff(lines: list[str], indent: str = "  ") -> str:
    """diff()'s lines within WIDTH, continuation lines indented under their amount."""
    return "\n".join(
        wrapped for line in lines for wrapped in _wrap(line, indent + "    ", first=indent)
    )


def _cause(a: CostLine | None, b: CostLine | None, resource: str) -> str:
    if a is None:
        return f"{resource} added ({b.basis if b else ''})"
    if b is None:
        return f"{resource} removed"
    moved = [
        f"{key} {a.drivers.get(key, '-')} -> {b.drivers.get(key, '-')}"
        for key in sorted(a.drivers.keys() | b.drivers.keys())
        if a.drivers.get(key) != b.drivers.get(key)
    ]
    return f"{', '.join(moved)} ({resource})" if moved else f"{resource} ({b.basis})"


def _signed(usd: float) -> str:
    return f"{'+' if usd >= 0 else '-'}${abs(usd):,.2f}"


def check_budget(estimate: Estimate, budget: BudgetConfig, source: str) -> None:
    """A budget below what the stack costs standing still would alert every month: refuse it."""
    standing = estimate.total(STANDING)
    if budget.monthly_usd is not None and budget.monthly_usd < standing:
        raise ConfigError(
            f"{source}: {NAMESPACE}:platform.cost.budget.monthly_usd: {budget.monthly_usd:g} is "
            f"below the stack's standing cost of {_money(standing)}/month (`make plan` itemises "
            "it); raise the budget or lower what stands (replicas, warm instances)"
        )


def estimate_of_plan_file(path: Path) -> Estimate:
    """The estimate `make plan` stored in a plan JSON file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise PricingError(f"{path}: not a readable plan JSON file ({error})") from None
    if "cost" not in document:
        raise PricingError(f"{path}: has no cost estimate (written by an older `make plan`?)")
    return Estimate.from_json(document["cost"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tooling.cost", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("diff", help="the cost change between two plan JSON files")
    compare.add_argument("before", type=Path, help="plan JSON of the base (e.g. main)")
    compare.add_argument("after", type=Path, help="plan JSON of the change (e.g. the PR)")
    compare.add_argument("--markdown", action="store_true", help="a list for a PR comment")
    args = parser.parse_args(argv)
    try:
        before, after = estimate_of_plan_file(args.before), estimate_of_plan_file(args.after)
    except PricingError as error:
        print(error, file=sys.stderr)
        return 2
    lines = diff(before, after)
    if args.markdown:
        lines = [f"**{lines[0]}**", ""] + [f"- {line}" for line in lines[1:]]
    print("\n".join(lines))
    return 0
