"""Reading a recorded plan (shared by the infra tests): its stack's config, IAM bindings, labels,
and the pipeline jobs its schedules start."""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from functools import cache

from stacks.config import PROJECT_ROOT, ScheduleConfig, StackConfig, load_stack_file
from tooling.plan.offline import ResourceRecord, StackRecord

# Where each kind of IAM member binding names the resource it is on.
_TARGET_KEYS = (
    "bucket",
    "tableId",
    "datasetId",
    "serviceAccountId",
    "endpoint",
    "cloudFunction",
    "repository",
    "cryptoKeyId",
    "billingAccountId",
    "name",
)


def config_of(record: StackRecord) -> StackConfig:
    """The validated config of the stack the record planned (its committed stack file)."""
    return load_stack_file(PROJECT_ROOT / f"Pulumi.{record.stack}.yaml")


def job_of(record: StackRecord, schedule: str) -> dict:
    """The pipeline job the schedule named `schedule` starts."""
    return record.named(schedule).inputs["createPipelineJobRequest"]["pipelineJob"]


def scheduled_job(record: StackRecord, schedule: str, settings: ScheduleConfig) -> dict:
    """The job of `schedule`, once checked that the schedule runs on the configured cron (in its
    time zone), paused or active as configured, and one run at a time."""
    inputs = record.named(schedule).inputs
    assert inputs["cron"] == f"TZ={settings.time_zone} {settings.cron}"
    assert inputs["desiredState"] == ("PAUSED" if settings.paused else "ACTIVE")
    assert inputs["maxConcurrentRunCount"] == "1"
    return job_of(record, schedule)


def compiled_parameters(record: StackRecord, job: dict, pipeline) -> tuple[dict, dict]:
    """The job's declared parameters and their defaults, once checked that its spec is `pipeline`
    compiled for the stack's image with those defaults."""
    from pipeline_src.compile import compile_spec

    spec = json.loads(job["pipelineSpec"])
    declared = spec["root"]["inputDefinitions"]["parameters"]
    defaults = {n: p["defaultValue"] for n, p in declared.items() if "defaultValue" in p}
    assert spec == compile_spec(record.outputs["pipeline_image"], defaults, pipeline=pipeline)
    return declared, defaults


@dataclass(frozen=True)
class Binding:
    record: ResourceRecord
    role: str
    member: str
    target: str
    """'project', or the resource's name/id as the binding names it."""

    @property
    def kind(self) -> str:
        return self.record.type.split(":")[1].split("/")[0]


def bindings(record: StackRecord) -> list[Binding]:
    """Every IAM member binding the stack declares."""
    found = []
    for res in record.resources:
        if not res.custom or "role" not in res.inputs or "member" not in res.inputs:
            continue
        if res.type == "gcp:projects/iAMMember:IAMMember":
            target = "project"
        else:
            target = next(str(res.inputs[k]) for k in _TARGET_KEYS if k in res.inputs)
        found.append(Binding(res, res.inputs["role"], res.inputs["member"], target))
    return found


def held_by(record: StackRecord, member: str) -> set[tuple[str, str, str]]:
    """(binding kind, role, target) of everything `member` is granted."""
    return {(b.kind, b.role, b.target) for b in bindings(record) if b.member == member}


@cache
def _parameters(type_: str) -> frozenset[str]:
    """The input names the resource class of a type token accepts."""
    _, module, name = type_.split(":")
    cls = getattr(importlib.import_module(f"pulumi_gcp.{module.split('/')[0]}"), name)
    return frozenset(inspect.signature(cls._internal_init).parameters)


def resource_labels(res: ResourceRecord) -> dict[str, str] | None:
    """The labels a resource carries, or None when its type takes no labels at all."""
    if res.type == "gcp:monitoring/dashboard:Dashboard":
        return json.loads(res.inputs["dashboardJson"]).get("labels", {})
    if not res.type.startswith("gcp:"):
        return None
    parameters = _parameters(res.type)
    # NotificationChannel's `labels` configure the channel (the email); its own are user_labels.
    for name, key in (("user_labels", "userLabels"), ("labels", "labels")):
        if name in parameters:
            return res.inputs.get(key) or {}
    return None


# The API each kind of resource needs, by the module of its type token.
API_OF_MODULE = {
    "storage": "storage.googleapis.com",
    "bigquery": "bigquery.googleapis.com",
    "vertex": "aiplatform.googleapis.com",
    "colab": "aiplatform.googleapis.com",  # Vertex AI's schedules API
    "cloudfunctionsv2": "cloudfunctions.googleapis.com",
    "cloudrunv2": "run.googleapis.com",
    "artifactregistry": "artifactregistry.googleapis.com",
    "workbench": "notebooks.googleapis.com",
    "compute": "compute.googleapis.com",
    "monitoring": "monitoring.googleapis.com",
    "logging": "logging.googleapis.com",
    "serviceaccount": "iam.googleapis.com",
    "iam": "iam.googleapis.com",  # workload identity pools and providers
    "kms": "cloudkms.googleapis.com",
}
API_OF_TYPE = {
    "gcp:projects/iAMMember:IAMMember": "cloudresourcemanager.googleapis.com",
    "gcp:projects/iAMCustomRole:IAMCustomRole": "iam.googleapis.com",
    "pulumi-python:dynamic/vertex:Promotion": "aiplatform.googleapis.com",
    "gcp:billing/budget:Budget": "billingbudgets.googleapis.com",
    "gcp:billing/accountIamMember:AccountIamMember": "cloudbilling.googleapis.com",
}


def assert_waits_for_apis(record: StackRecord) -> None:
    """Every cloud resource depends, itself or through its component, on the API it calls."""
    services = {r.urn: r.inputs["service"] for r in record.of_type("gcp:projects/service:Service")}
    for res in record.resources:
        if not res.custom or res.type in ("gcp:projects/service:Service", "pulumi:providers:gcp"):
            continue
        if res.read or res.type.startswith("time:"):
            continue  # a stack reference is read from the state; a timer calls no Google API
        if res.type == "gcp:projects/serviceIdentity:ServiceIdentity":
            needed = res.inputs["service"]  # a service's agent exists once the service is on
        else:
            module = res.type.split(":")[1].split("/")[0]
            needed = API_OF_TYPE.get(res.type) or API_OF_MODULE.get(module)
        assert needed, f"{res.type} has no known API: add it to API_OF_MODULE"
        enabled = {services[urn] for urn in record.depends_on(res) if urn in services}
        assert needed in enabled, f"{res.name} does not wait for {needed}"
