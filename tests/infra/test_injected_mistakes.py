"""Provider-level mistakes injected into the real program: each one fails the offline plan (what
`make plan` runs) with the resource, the input and the rule named.

A mistake is injected by wrapping one pulumi-gcp resource class (its arguments changed as a
careless edit would), or by a stack-file change. The committed program itself plans clean: every
failure here is the injected mistake's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time
import pytest

from stacks.config import NAMESPACE, stack_config_values
from tooling.plan.offline import Organisation, run_program
from tooling.plan.provider_rules import PlanError

Edit = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Mistake:
    """What is changed, on which stack, and what the plan must say (resource, input, rule)."""

    stack: str
    resource: str
    input: str
    rule: str
    wrap: tuple[Any, str, Edit] | None = None
    """(module, class name, edit of (logical name, kwargs)) applied to every instance."""
    config: Callable[[dict[str, Any]], None] | None = None
    """An edit of the stack file's platform section."""


def _only(name: str, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Edit:
    return lambda logical, kwargs: edit(dict(kwargs)) if logical == name else kwargs


def _nested(kwargs: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """kwargs with the dotted `path` set to `value` (None removes it); the dicts on the way are
    copied (never deep-copied: they hold outputs)."""
    head, _, rest = path.partition(".")
    if not rest:
        return {k: v for k, v in kwargs.items() if k != head} | (
            {} if value is None else {head: value}
        )
    return {**kwargs, head: _nested(dict(kwargs[head]), rest, value)}


def _misspelt_lifecycle(kwargs: dict[str, Any]) -> dict[str, Any]:
    rules = [dict(rule) for rule in kwargs["lifecycle_rules"]]
    rules[0]["condition"] = {"days_since_noncurent_time": 7}
    return {**kwargs, "lifecycle_rules": rules}


def _without_wait(logical: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    opts = kwargs.get("opts") or pulumi.ResourceOptions()
    return {**kwargs, "opts": pulumi.ResourceOptions(parent=opts.parent)}


def _literal_runner(logical: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if logical != "data-lake-models-pipeline-runner-storage-objectuser":
        return kwargs
    member = "serviceAccount:pipelines-prod@acme-mlops-prod.iam.gserviceaccount.com"
    return {**kwargs, "member": member}


def _listing_by_name(logical: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if "-models-model-readers-" not in logical:
        return kwargs
    condition = {
        "title": "registered models only",
        "expression": 'resource.name.startsWith("projects/_/buckets/'
        'acme-mlops-staging-staging-models/objects/penguins/")',
    }
    return {**kwargs, "condition": condition}


def _readers(*members: str) -> Callable[[dict[str, Any]], None]:
    def edit(platform: dict[str, Any]) -> None:
        platform["serving"]["model_readers_from"] = None
        platform["serving"]["model_readers"] = list(members)

    return edit


MISTAKES = {
    "misspelt nested key (storage lifecycle condition)": Mistake(
        "prod", "data-lake-landing", "lifecycleRules[0].condition.days_since_noncurent_time",
        "input-types",
        wrap=(gcp.storage, "Bucket", _only("data-lake-landing", _misspelt_lifecycle)),
    ),
    "invalid enum (function ingress)": Mistake(
        "prod", "ingestion-function", "serviceConfig.ingressSettings", "enum",
        wrap=(gcp.cloudfunctionsv2, "Function", _only("ingestion-function", lambda k: _nested(
            k, "service_config.ingress_settings", "ALLOW_INTERNAL"))),
    ),
    "missing required input (schedule's output directory)": Mistake(
        "prod", "pipelines-training-schedule",
        "createPipelineJobRequest.pipelineJob.runtimeConfig.gcsOutputDirectory", "input-types",
        wrap=(gcp.colab, "Schedule", _only("pipelines-training-schedule", lambda k: _nested(
            k, "create_pipeline_job_request.pipeline_job.runtime_config.gcs_output_directory",
            None))),
    ),
    "wrong type (repository immutable_tags as text)": Mistake(
        "prod", "pipelines-images", "dockerConfig.immutableTags", "input-types",
        wrap=(gcp.artifactregistry, "Repository", _only("pipelines-images", lambda k: _nested(
            k, "docker_config.immutable_tags", "yes"))),
    ),
    "invalid service account id": Mistake(
        "prod", "identities-ingestion", "accountId", "service-account-id",
        wrap=(gcp.serviceaccount, "Account", _only("identities-ingestion", lambda k: {
            **k, "account_id": "Ingest_Prod"})),
    ),
    "endpoint left to auto-naming": Mistake(
        "prod", "serving-endpoint", "name", "vertex-endpoint-id",
        wrap=(gcp.vertex, "AiEndpoint", _only("serving-endpoint", lambda k: {
            key: value for key, value in k.items() if key != "name"})),
    ),
    "invalid dataset id": Mistake(
        "prod", "warehouse-dataset", "datasetId", "dataset-id",
        wrap=(gcp.bigquery, "Dataset", _only("warehouse-dataset", lambda k: {
            **k, "dataset_id": "tabular-mlops-prod"})),
    ),
    "alert without its wait": Mistake(
        "prod", "monitoring-quarantine", "conditions", "metric-visible-before-alert",
        wrap=(pulumiverse_time, "Sleep", _without_wait),
    ),
    "grant to an account before it exists": Mistake(
        "prod", "data-lake-models-pipeline-runner-storage-objectuser", "member",
        "member-exists-before-grant", wrap=(gcp.storage, "BucketIAMMember", _literal_runner),
    ),
    "member of a stack not yet deployed": Mistake(
        "staging", "data-lake-models-model-readers-storage-objectviewer", "member",
        "member-of-deployed-stack",
        config=_readers("serviceAccount:pipelines-prod@acme-mlops-prod.iam.gserviceaccount.com"),
    ),
    "placeholder project number": Mistake(
        "staging", "data-lake-models-model-readers-storage-objectviewer", "member",
        "no-placeholder-project-number",
        config=_readers(
            "serviceAccount:service-123456789012@gcp-sa-aiplatform.iam.gserviceaccount.com"
        ),
    ),
    "bucket read grant conditioned on object names (cannot list)": Mistake(
        "staging", "data-lake-models-model-readers-storage-objectviewer", "condition.expression",
        "bucket-condition-reads-and-lists",
        wrap=(gcp.storage, "BucketIAMMember", _listing_by_name),
    ),
    "label value in capitals": Mistake(
        "prod", "data-lake-landing", "labels.team", "labels",
        wrap=(gcp.storage, "Bucket", _only("data-lake-landing", lambda k: {
            **k, "labels": {**k["labels"], "team": "ML-Platform"}})),
    ),
}  # fmt: skip


def _wrapped(original: type, edit: Edit) -> type:
    """A subclass whose instances get their arguments through `edit` (annotations naming the
    class still work)."""

    def __init__(self, resource_name: str, *args: Any, **kwargs: Any) -> None:
        original.__init__(self, resource_name, *args, **edit(resource_name, kwargs))

    return type(original.__name__, (original,), {"__init__": __init__})


def plan_with(mistake: Mistake, monkeypatch) -> None:
    config = stack_config_values(mistake.stack)
    if mistake.config is not None:
        config = copy.deepcopy(config)
        mistake.config(config[f"{NAMESPACE}:platform"])
    if mistake.wrap is not None:
        module, name, edit = mistake.wrap
        monkeypatch.setattr(module, name, _wrapped(getattr(module, name), edit))
    organisation = Organisation()
    if mistake.stack == "staging" and mistake.config is None:
        run_program("prod", organisation=organisation)  # staging reads prod's identities
    run_program(mistake.stack, config=config, organisation=organisation)


@pytest.mark.parametrize("mistake", MISTAKES.values(), ids=list(MISTAKES))
def test_an_injected_mistake_fails_the_plan_naming_resource_input_and_rule(mistake, monkeypatch):
    with pytest.raises(PlanError) as raised:
        plan_with(mistake, monkeypatch)
    named = [
        f for f in raised.value.findings
        if f.resource.startswith(mistake.resource) and f.input == mistake.input
        and f.rule.name == mistake.rule
    ]  # fmt: skip
    assert named, str(raised.value)
    assert f"{named[0].resource}: {mistake.input}:" in str(raised.value)
