"""Quotas for what the stack runs: endpoint replicas, the function's instances, Workbench and NAT.

Read from the Cloud Quotas API (quotaInfos of each service), compared with what the plan needs
at its peak. The limit is compared, not today's usage: other workloads of the project share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tooling.doctor.api import ApiError
from tooling.doctor.core import FAIL, OK, WARN, Context, Finding, paged, unreadable

CLOUD_QUOTAS = "https://cloudquotas.googleapis.com/v1"
# vCPUs of a Cloud Run functions (2nd gen) instance by memory, when no CPU is set.
FUNCTION_CPUS = {"128Mi": 0.083, "256Mi": 0.167, "512Mi": 0.333, "1Gi": 0.583, "2Gi": 1,
                 "4Gi": 2, "8Gi": 2, "16Gi": 4, "32Gi": 8}  # fmt: skip


@dataclass(frozen=True)
class Need:
    service: str
    metric: str
    region: str | None
    """None for a global quota."""
    amount: float
    why: str


def vcpus(machine_type: str) -> int | None:
    """vCPUs of a predefined machine type (n1-standard-4 -> 4); None when not of that form."""
    match = re.fullmatch(r"[a-z0-9]+-[a-z]+-([0-9]+)", machine_type)
    return int(match.group(1)) if match else None


def needs(ctx: Context) -> list[Need]:
    """What the stack needs at its peak, from its config and plan."""
    platform, region = ctx.config.platform, ctx.config.region
    found = []
    serving = platform.serving
    cpus = vcpus(serving.machine_type)
    if cpus and ctx.plan.of_type("gcp:vertex/aiEndpoint:AiEndpoint"):
        # A rollout runs the new version beside the old one until it takes all traffic.
        copies = 2 if serving.model else 1
        found.append(
            Need(
                "aiplatform.googleapis.com",
                "aiplatform.googleapis.com/custom_model_serving_cpus",
                region,
                cpus * serving.max_replicas * copies,
                f"{copies} x {serving.max_replicas} replicas of {serving.machine_type}",
            )
        )
    ingestion = platform.ingestion
    if ctx.plan.of_type("gcp:cloudfunctionsv2/function:Function"):
        found.append(
            Need(
                "run.googleapis.com",
                "run.googleapis.com/cpu_allocation",
                region,
                round(ingestion.max_instances * FUNCTION_CPUS.get(ingestion.memory, 1) * 1000),
                f"{ingestion.max_instances} function instances of {ingestion.memory} (milli-vCPU)",
            )
        )
    for vm in ctx.plan.of_type("gcp:workbench/instance:Instance"):
        machine = (vm.inputs.get("gceSetup") or {}).get("machineType", "")
        if vcpus(machine):
            found.append(
                Need(
                    "compute.googleapis.com",
                    "compute.googleapis.com/cpus",
                    region,
                    vcpus(machine),
                    f"the Workbench VM ({machine})",
                )
            )
    if ctx.plan.of_type("gcp:compute/router:Router"):
        found.append(
            Need(
                "compute.googleapis.com",
                "compute.googleapis.com/routers",
                None,
                1,
                "the Cloud Router of Workbench's NAT",
            )
        )
    return found


def _limit(info: dict, region: str | None) -> float | None:
    """The effective limit for a region (or global): its own dimensions info, else the default."""
    default = None
    for entry in info.get("dimensionsInfos", []):
        value = float((entry.get("details") or {}).get("value", -1))
        dims = entry.get("dimensions") or {}
        if region and dims.get("region") == region:
            return value
        if not dims.get("region"):
            default = value
    return default


def quotas(ctx: Context) -> list[Finding]:
    """Cloud Quotas quotaInfos.list per service: each need against its limit in the region."""
    findings, infos = [], {}
    for need in needs(ctx):
        if need.service not in infos:
            url = f"{CLOUD_QUOTAS}/projects/{ctx.project}/locations/global/services/{need.service}"
            try:
                infos[need.service] = paged(ctx, f"{url}/quotaInfos?pageSize=500", "quotaInfos")
            except ApiError as error:
                findings.append(unreadable("quotas", f"{need.service} quotas", error, "", WARN))
                infos[need.service] = []
                continue
        findings.append(_judge(ctx, need, infos[need.service]))
    return findings


def _judge(ctx: Context, need: Need, infos: list[dict]) -> Finding:
    where = need.region or "global"
    matching = [i for i in infos if i.get("metric") == need.metric]
    limits = [v for v in (_limit(i, need.region) for i in matching) if v is not None]
    if not limits:
        return Finding("quotas", WARN, f"no quota {need.metric} found in {where}; check it by hand")
    limit = min(limits)
    if 0 <= limit < need.amount:
        return Finding(
            "quotas",
            FAIL,
            f"{need.metric} in {where}: limit {limit:g}, the stack needs {need.amount:g} "
            f"({need.why})",
            f"request more: console > IAM & Admin > Quotas, filter {need.metric}"
            + (f", region {need.region}" if need.region else "")
            + f" (project {ctx.project}); or lower the stack's sizes in {ctx.stack_file}",
        )
    shown = "unlimited" if limit < 0 else f"{limit:g}"
    return Finding("quotas", OK, f"{need.metric} in {where}: limit {shown} >= {need.amount:g}")
