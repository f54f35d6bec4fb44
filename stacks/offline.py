"""Run the real Pulumi program for a stack without a cloud: Pulumi mocks that record everything.

There is no Pulumi engine or GCP provider here, so the program runs against a mock monitor. The
monitor records, for every resource the program registers, its type, logical name, inputs, parent
and dependencies; the tests and the offline plan (`make plan`) read that same record.

Computed outputs that other resources consume (a service account's email, a bucket's name and url,
a dataset's id…) are filled in by `PlatformMocks`, in one table, so inputs built from them carry
realistic values instead of None. Data sources (invokes) answer with realistic values too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import runpy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from stacks.config import NAMESPACE, PROJECT_ROOT, stack_config_values

PROJECT_NUMBER = "123456789012"
GCS_SERVICE_AGENT = f"service-{PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"
BQ_SERVICE_AGENT = f"bq-{PROJECT_NUMBER}@bigquery-encryption.iam.gserviceaccount.com"
# The service agent each API's `projects.ServiceIdentity` returns, by API.
SERVICE_AGENT_DOMAINS = {
    "eventarc.googleapis.com": "gcp-sa-eventarc",
    "aiplatform.googleapis.com": "gcp-sa-aiplatform",
    "artifactregistry.googleapis.com": "gcp-sa-artifactregistry",
    "pubsub.googleapis.com": "gcp-sa-pubsub",
}


@dataclass
class ResourceRecord:
    """One registered resource, as the engine would have seen it."""

    type: str
    name: str
    urn: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent_urn: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool = False
    """Pulumi refuses to delete or replace it (`protect`)."""
    retain_on_delete: bool = False
    """`pulumi destroy` leaves it in the cloud."""
    ignore_changes: list[str] = field(default_factory=list)

    @property
    def is_component(self) -> bool:
        return not self.custom


@dataclass
class StackRecord:
    """Everything one run of the program registered, in registration order."""

    stack: str
    resources: list[ResourceRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def by_urn(self, urn: str) -> ResourceRecord | None:
        return next((r for r in self.resources if r.urn == urn), None)

    def of_type(self, type_: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> ResourceRecord:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r} in stack {self.stack}")
        return matches[0]

    def parent(self, record: ResourceRecord) -> ResourceRecord | None:
        return self.by_urn(record.parent_urn)

    def ancestors(self, record: ResourceRecord) -> list[ResourceRecord]:
        chain, node = [], self.parent(record)
        while node is not None:
            chain.append(node)
            node = self.parent(node)
        return chain

    def depends_on(self, record: ResourceRecord) -> set[str]:
        """URNs this resource waits for: its own dependencies and those of its ancestors."""
        urns = set(record.dependencies)
        for deps in record.property_dependencies.values():
            urns.update(deps)
        for ancestor in self.ancestors(record):
            urns.update(ancestor.dependencies)
        return urns


def _resource_id(type_: str, name: str, inputs: dict[str, Any], project: str) -> str:
    """The provider's id where other resources consume it (networks by id); else a placeholder."""
    ids = {
        "gcp:compute/network:Network": f"projects/{project}/global/networks/{inputs.get('name')}",
        "gcp:compute/subnetwork:Subnetwork": f"projects/{project}/regions/"
        f"{inputs.get('region')}/subnetworks/{inputs.get('name')}",
    }
    return ids.get(type_, f"{name}-id")


def _service_agent(service: str | None) -> str:
    domain = SERVICE_AGENT_DOMAINS.get(service or "", f"gcp-sa-{(service or '').split('.')[0]}")
    return f"service-{PROJECT_NUMBER}@{domain}.iam.gserviceaccount.com"


def _computed_outputs(type_: str, name: str, inputs: dict[str, Any], project: str) -> dict:
    """Outputs the provider would compute, for the resources whose outputs others consume."""
    region = inputs.get("region") or inputs.get("location") or "us-central1"
    agent = _service_agent(inputs.get("service"))
    table: dict[str, dict[str, Any]] = {
        "gcp:serviceaccount/account:Account": {
            "email": f"{inputs.get('accountId')}@{project}.iam.gserviceaccount.com",
            "member": f"serviceAccount:{inputs.get('accountId')}@{project}.iam.gserviceaccount.com",
            "name": f"projects/{project}/serviceAccounts/{inputs.get('accountId')}"
            f"@{project}.iam.gserviceaccount.com",
            "uniqueId": "100000000000000000001",
        },
        "gcp:storage/bucket:Bucket": {
            "url": f"gs://{inputs.get('name')}",
            "selfLink": f"https://www.googleapis.com/storage/v1/b/{inputs.get('name')}",
        },
        "gcp:bigquery/dataset:Dataset": {
            "selfLink": f"projects/{project}/datasets/{inputs.get('datasetId')}",
        },
        "gcp:bigquery/table:Table": {
            "selfLink": f"projects/{project}/datasets/{inputs.get('datasetId')}"
            f"/tables/{inputs.get('tableId')}",
        },
        "gcp:vertex/aiEndpoint:AiEndpoint": {
            "name": inputs.get("name") or "1234567890",
        },
        "gcp:cloudfunctionsv2/function:Function": {
            "url": f"https://{region}-{project}.cloudfunctions.net/{inputs.get('name')}",
            "serviceConfig": {
                **(inputs.get("serviceConfig") or {}),
                "service": f"projects/{project}/locations/{region}/services/{inputs.get('name')}",
            },
        },
        "gcp:artifactregistry/repository:Repository": {
            "name": inputs.get("repositoryId"),
        },
        "gcp:projects/serviceIdentity:ServiceIdentity": {
            "email": agent,
            "member": f"serviceAccount:{agent}",
        },
        "gcp:projects/iAMCustomRole:IAMCustomRole": {
            "name": f"projects/{project}/roles/{inputs.get('roleId')}",
        },
        "gcp:compute/network:Network": {
            "selfLink": "https://www.googleapis.com/compute/v1/"
            + _resource_id(type_, name, inputs, project),
        },
        "gcp:monitoring/notificationChannel:NotificationChannel": {
            # A digest, not hash(): the plan must be the same in every process.
            "name": f"projects/{project}/notificationChannels/"
            f"{int(hashlib.sha256(name.encode()).hexdigest()[:10], 16) % 10**12}",
        },
        "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": {
            "name": f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
            f"{inputs.get('workloadIdentityPoolId')}",
        },
        "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": {
            "name": f"projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
            f"{inputs.get('workloadIdentityPoolId')}/providers/"
            f"{inputs.get('workloadIdentityPoolProviderId')}",
        },
    }
    return {**inputs, **table.get(type_, {})}


class PlatformMocks(pulumi_mocks.Mocks):
    """Stands in for the GCP provider: echoes inputs, fills computed outputs, answers invokes."""

    def __init__(self, project: str):
        self.project = project

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        outputs = _computed_outputs(args.typ, args.name, args.inputs, self.project)
        return _resource_id(args.typ, args.name, args.inputs, self.project), outputs

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        project = args.args.get("project") or self.project
        answers = {
            "gcp:storage/getProjectServiceAccount:getProjectServiceAccount": {
                "emailAddress": GCS_SERVICE_AGENT,
                "member": f"serviceAccount:{GCS_SERVICE_AGENT}",
                "project": project,
            },
            "gcp:bigquery/getDefaultServiceAccount:getDefaultServiceAccount": {
                "email": BQ_SERVICE_AGENT,
                "member": f"serviceAccount:{BQ_SERVICE_AGENT}",
                "project": project,
            },
            "gcp:organizations/getProject:getProject": {
                "projectId": project,
                "number": PROJECT_NUMBER,
                "name": project,
            },
            "gcp:projects/getProject:getProject": {
                "projects": [{"projectId": project, "number": PROJECT_NUMBER}],
            },
        }
        if args.token not in answers:
            raise NotImplementedError(
                f"offline mocks have no answer for data source {args.token}; add one to "
                "PlatformMocks.call with realistic values"
            )
        return answers[args.token]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps parent and dependencies, which MockResourceArgs drops."""

    def __init__(self, mocks: pulumi_mocks.Mocks, record: StackRecord):
        super().__init__(mocks)
        self.record = record

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object)
        registration = self.resources.get(response.urn)
        self.record.resources.append(
            ResourceRecord(
                type=request.type,
                name=request.name,
                urn=response.urn,
                custom=bool(request.custom),
                inputs=_plain(inputs),
                outputs=_plain(registration.state) if registration else {},
                parent_urn=request.parent,
                dependencies=list(request.dependencies),
                property_dependencies={
                    key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                },
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                ignore_changes=list(request.ignoreChanges),
            )
        )
        return response


def _plain(value: Any) -> Any:
    """Deserialized properties as plain JSON data (secrets, assets and archives made visible)."""
    if rpc.is_rpc_secret(value):
        return {"secret": _plain(rpc.unwrap_rpc_secret(value))}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {name: _plain(asset) for name, asset in value.assets.items()}}
    if isinstance(value, pulumi.FileArchive | pulumi.FileAsset):
        return {"path": str(value.path)}
    if isinstance(value, pulumi.StringAsset):
        return {"text": f"<{len(value.text)} characters>"}
    return repr(value)


@contextlib.contextmanager
def mocked_stack(
    stack: str, config: dict[str, Any], project: str, mocks: pulumi_mocks.Mocks | None = None
) -> Iterator[StackRecord]:
    """Point Pulumi's runtime at recording mocks for one stack, and reset its globals after.

    Config is passed as Pulumi passes it: full keys, structured values as JSON text. `mocks`
    replaces PlatformMocks for another program (the bootstrap's, with GitHub resources).
    """
    record = StackRecord(stack=stack)
    settings.reset_options(project="tabular-mlops", stack=stack, preview=True)
    set_all_config({key: _as_pulumi_value(value) for key, value in config.items()})
    monitor = RecordingMonitor(mocks or PlatformMocks(project=project), record)
    pulumi.runtime.set_mocks(
        monitor.mocks, project="tabular-mlops", stack=stack, preview=True, monitor=monitor
    )
    try:
        yield record
    finally:
        settings.reset_options()
        set_all_config({})


def _as_pulumi_value(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def declare(
    fn: Callable[[], Any],
    *,
    stack: str = "test",
    project: str = "test-project",
    config: dict[str, Any] | None = None,
    mocks: pulumi_mocks.Mocks | None = None,
) -> StackRecord:
    """Run `fn` (anything that declares resources) under the recording mocks; wait for it all.

    Errors raised by `fn`, or inside an output's apply, propagate.
    """
    with mocked_stack(stack, config or {}, project, mocks) as record:
        stack_resource = settings.get_root_resource()
        _sync_await(run_pulumi_func(fn))
        record.outputs = _sync_await(_stack_outputs(stack_resource))
    return record


def run_program(
    stack: str,
    config: dict[str, Any] | None = None,
    program: Path | None = None,
    mocks: pulumi_mocks.Mocks | None = None,
) -> StackRecord:
    """Run the program (`__main__.py`) for one stack under the mocks; return what it declared.

    Without `config`, the committed `Pulumi.<stack>.yaml` is used, as `pulumi preview` would.
    Errors in the program (an invalid config among them) propagate.
    """
    config = stack_config_values(stack) if config is None else config
    program = program or PROJECT_ROOT / "__main__.py"
    project = str(config.get(f"{NAMESPACE}:project", "offline-project"))
    with _working_directory(program.parent):
        return declare(
            lambda: runpy.run_path(str(program), run_name="__main__"),
            stack=stack,
            project=project,
            config=config,
            mocks=mocks,
        )


async def _stack_outputs(stack_resource: Any) -> dict[str, Any]:
    """The program's exports, resolved (secrets shown as {'secret': …})."""
    outputs = {}
    for key, value in getattr(stack_resource, "outputs", {}).items():
        output = pulumi.Output.from_input(value)
        resolved = await output.future()
        outputs[key] = (
            {"secret": _plain(resolved)} if await output.is_secret() else _plain(resolved)
        )
    return outputs


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """Pulumi runs a program from its project directory; so do we."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
