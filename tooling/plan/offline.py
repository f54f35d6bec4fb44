"""Run the real Pulumi program for a stack without a cloud: Pulumi mocks that record everything.

There is no Pulumi engine or GCP provider here, so the program runs against a mock monitor. The
monitor records, for every resource the program registers, its type, logical name, inputs, parent
and dependencies; the tests and the offline plan (`make plan`) read that same record.

Computed outputs that other resources consume (a service account's email, a bucket's name and url,
a dataset's id…) are filled in by `PlatformMocks`, in one table, so inputs built from them carry
realistic values instead of None. Data sources (invokes) answer with realistic values too.

The mocks are no kinder than the provider: before a resource is "created", its inputs go through
what pulumi-gcp's Check would do (auto-naming, the package's input types) and GCP's name rules
(provider_rules.py); after the program, the whole stack is checked for what a first
`pulumi up` hits (deploy_checks.py). Stacks live in an `Organisation`: the stacks deployed
before, in order, which stack references read and whose members grants may name.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import runpy
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as _runtime_resource
from pulumi.runtime import rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from stacks.config import NAMESPACE, PROJECT_ROOT, stack_config_values
from tooling.plan import cache as plan_cache
from tooling.plan import deploy_checks, provider_rules
from tooling.plan.provider_rules import Finding, PlanError
from tooling.plan.provider_schema import SchemaCache

STACK_REFERENCE = "pulumi:pulumi:StackReference"

# The offline plan shows no source positions: Pulumi's stack trace of every registration (a
# walk of the whole Python stack) is skipped.
_runtime_resource._get_stack_trace = source_pb2.StackTrace


class _OnDemandPackage(types.ModuleType):
    """A pulumi-gcp module package whose classes are imported one module at a time.

    A package's `__init__` imports every module of it (compute: ~300, a second of CPU, for the
    five classes Workbench declares). The offline plan only needs the classes it touches:
    `Network` comes from `network.py`, `RouterNatArgs` from `router_nat.py`. Any other name loads
    the whole package as usual. Only the offline plan does this; `pulumi up` is untouched.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            if name[:1].islower() or name.startswith("_"):  # a module (`from . import outputs`)
                value = importlib.import_module(f"{self.__name__}.{name}")
            else:  # a class, from the module of its snake-case name
                module = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.removesuffix("Args"))
                value = getattr(importlib.import_module(f"{self.__name__}.{module.lower()}"), name)
        except (ImportError, AttributeError):
            self.__class__ = types.ModuleType
            self.__spec__.loader.exec_module(self)
            return getattr(self, name)
        setattr(self, name, value)
        return value


def _load_packages_on_demand(names: tuple[str, ...] = ("pulumi_gcp.compute",)) -> None:
    """Packages still lazily imported by pulumi-gcp get imported class by class instead."""
    importlib.import_module("pulumi_gcp")  # registers its packages as lazy modules
    for name in names:
        module = sys.modules.get(name)
        if module is not None and type(module).__name__ == "_LazyModule":
            module.__class__ = _OnDemandPackage


_load_packages_on_demand()


def project_number(project: str) -> str:
    """The project's number in the offline plan: 12 digits, stable per project id, so two
    stacks' projects differ as they do in GCP (and no placeholder number is ever produced)."""
    return str(10**11 + int(hashlib.sha256(project.encode()).hexdigest(), 16) % (9 * 10**11))


def gcs_service_agent(project: str) -> str:
    return f"service-{project_number(project)}@gs-project-accounts.iam.gserviceaccount.com"


def bq_service_agent(project: str) -> str:
    return f"bq-{project_number(project)}@bigquery-encryption.iam.gserviceaccount.com"


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
    read: bool = False
    """Read, not created (a stack reference)."""

    @property
    def is_component(self) -> bool:
        return not self.custom


@dataclass
class StackRecord:
    """Everything one run of the program registered, in registration order."""

    stack: str
    resources: list[ResourceRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    """What the provider or GCP would refuse (errors) or may refuse (warnings)."""
    project: str = ""
    _index: dict[str, ResourceRecord] = field(default_factory=dict, repr=False, compare=False)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def by_urn(self, urn: str) -> ResourceRecord | None:
        if len(self._index) != len(self.resources):  # resources are only ever appended
            self._index = {r.urn: r for r in self.resources}
        return self._index.get(urn)

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


def _service_agent(service: str | None, project: str) -> str:
    domain = SERVICE_AGENT_DOMAINS.get(service or "", f"gcp-sa-{(service or '').split('.')[0]}")
    return f"service-{project_number(project)}@{domain}.iam.gserviceaccount.com"


def _account_outputs(name: str, inputs: dict[str, Any], project: str) -> dict[str, Any]:
    email = f"{inputs.get('accountId')}@{project}.iam.gserviceaccount.com"
    return {
        "email": email,
        "member": f"serviceAccount:{email}",
        "name": f"projects/{project}/serviceAccounts/{email}",
        "uniqueId": "100000000000000000001",
    }


def _function_outputs(name: str, inputs: dict[str, Any], project: str) -> dict[str, Any]:
    region = inputs.get("region") or inputs.get("location") or "us-central1"
    return {
        "url": f"https://{region}-{project}.cloudfunctions.net/{inputs.get('name')}",
        "serviceConfig": {
            **(inputs.get("serviceConfig") or {}),
            "service": f"projects/{project}/locations/{region}/services/{inputs.get('name')}",
        },
    }


def _agent_outputs(name: str, inputs: dict[str, Any], project: str) -> dict[str, Any]:
    agent = _service_agent(inputs.get("service"), project)
    return {"email": agent, "member": f"serviceAccount:{agent}"}


def _pool(inputs: dict[str, Any], project: str) -> str:
    return (
        f"projects/{project_number(project)}/locations/global/workloadIdentityPools/"
        f"{inputs.get('workloadIdentityPoolId')}"
    )


# Outputs the provider would compute, for the resources whose outputs others consume: by type,
# (name, inputs, project) -> outputs.
_COMPUTED: dict[str, Callable[[str, dict[str, Any], str], dict[str, Any]]] = {
    "gcp:serviceaccount/account:Account": _account_outputs,
    "gcp:storage/bucket:Bucket": lambda name, inputs, project: {
        "url": f"gs://{inputs.get('name')}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{inputs.get('name')}",
    },
    "gcp:bigquery/dataset:Dataset": lambda name, inputs, project: {
        "selfLink": f"projects/{project}/datasets/{inputs.get('datasetId')}",
    },
    "gcp:bigquery/table:Table": lambda name, inputs, project: {
        "selfLink": f"projects/{project}/datasets/{inputs.get('datasetId')}"
        f"/tables/{inputs.get('tableId')}",
    },
    "gcp:cloudfunctionsv2/function:Function": _function_outputs,
    "gcp:artifactregistry/repository:Repository": lambda name, inputs, project: {
        "name": inputs.get("repositoryId"),
    },
    "gcp:projects/serviceIdentity:ServiceIdentity": _agent_outputs,
    "gcp:projects/iAMCustomRole:IAMCustomRole": lambda name, inputs, project: {
        "name": f"projects/{project}/roles/{inputs.get('roleId')}",
    },
    "gcp:compute/network:Network": lambda name, inputs, project: {
        "selfLink": "https://www.googleapis.com/compute/v1/"
        + _resource_id("gcp:compute/network:Network", name, inputs, project),
    },
    "gcp:monitoring/notificationChannel:NotificationChannel": lambda name, inputs, project: {
        # A digest, not hash(): the plan must be the same in every process.
        "name": f"projects/{project}/notificationChannels/"
        f"{int(hashlib.sha256(name.encode()).hexdigest()[:10], 16) % 10**12}",
    },
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": lambda name, inputs, project: {
        "name": _pool(inputs, project),
    },
    "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider": (
        lambda name, inputs, project: {
            "name": f"{_pool(inputs, project)}/providers/"
            f"{inputs.get('workloadIdentityPoolProviderId')}",
        }
    ),
}


def _computed_outputs(type_: str, name: str, inputs: dict[str, Any], project: str) -> dict:
    """The inputs echoed, with what the provider would compute for the types in _COMPUTED."""
    computed = _COMPUTED.get(type_)
    return {**inputs, **(computed(name, inputs, project) if computed else {})}


class PlatformMocks(pulumi_mocks.Mocks):
    """Stands in for the GCP provider: echoes inputs, fills computed outputs, answers invokes and
    stack references (from the organisation's deployed stacks)."""

    def __init__(self, project: str, organisation: Organisation | None = None):
        self.project = project
        self.organisation = organisation or Organisation()
        self.findings: list[Finding] = []

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        if args.typ == STACK_REFERENCE:
            return self._stack_reference(args)
        outputs = _computed_outputs(args.typ, args.name, args.inputs, self.project)
        return _resource_id(args.typ, args.name, args.inputs, self.project), outputs

    def _stack_reference(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        name = args.resource_id or args.inputs.get("name") or args.name
        outputs = self.organisation.outputs_of(name)
        if outputs is None:
            finding = Finding(
                args.name, "name",
                f"stack {name} is not deployed in this organisation: deploy it first "
                f"(deployed: {', '.join(self.organisation.deployed) or 'none'})",
                deploy_checks.OTHER_STACK,
            )  # fmt: skip
            self.findings.append(finding)
            self.organisation.unresolved.append(finding)
            outputs = {}
        return name, {"name": name, "outputs": outputs, "secretOutputNames": []}

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:
        project = args.args.get("project") or self.project
        number = project_number(project)
        answers = {
            "gcp:storage/getProjectServiceAccount:getProjectServiceAccount": {
                "emailAddress": gcs_service_agent(project),
                "member": f"serviceAccount:{gcs_service_agent(project)}",
                "project": project,
            },
            "gcp:bigquery/getDefaultServiceAccount:getDefaultServiceAccount": {
                "email": bq_service_agent(project),
                "member": f"serviceAccount:{bq_service_agent(project)}",
                "project": project,
            },
            "gcp:organizations/getProject:getProject": {
                "projectId": project,
                "number": number,
                "name": project,
            },
            "gcp:projects/getProject:getProject": {
                "projects": [{"projectId": project, "number": number}],
            },
        }
        if args.token not in answers:
            raise NotImplementedError(
                f"offline mocks have no answer for data source {args.token}; add one to "
                "PlatformMocks.call with realistic values"
            )
        return answers[args.token]


class ProviderCheck:
    """What the provider does with a resource's inputs before creating it: auto-names, checks
    them against the package's types, and GCP's name rules."""

    def __init__(self, stack: str, schemas: SchemaCache):
        self.stack, self.schemas = stack, schemas

    def __call__(self, token: str, name: str, inputs: dict) -> tuple[dict, list[Finding]]:
        schema = self.schemas.schema(token)
        inputs, findings = provider_rules.autoname(token, name, self.stack, inputs, schema)
        plain = _plain(inputs)
        if schema is not None:
            findings += provider_rules.check_inputs(name, plain, schema)
        findings += provider_rules.check_names(token, name, plain)
        return inputs, findings


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that checks inputs as the provider would, and keeps parent and
    dependencies, which MockResourceArgs drops."""

    def __init__(self, mocks: PlatformMocks, record: StackRecord, check: ProviderCheck):
        super().__init__(mocks)
        self.record, self.check = record, check

    def RegisterResource(self, request):
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        if request.custom:
            inputs, findings = self.check(request.type, request.name, inputs)
            self.record.findings += findings
        id_, state = self.mocks.new_resource(
            pulumi_mocks.MockResourceArgs(
                typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
                resource_id=request.importId, custom=request.custom or False,
            )
        )  # fmt: skip
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        self._remember(request, urn, inputs, state)
        state_proto = _sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=state_proto)

    def ReadResource(self, request):
        response = super().ReadResource(request)
        registration = self.resources.get(response.urn)
        inputs = rpc.deserialize_properties(request.properties)
        self._remember(request, response.urn, inputs, registration.state, read=True)
        return response

    def _remember(self, request, urn: str, inputs: dict, state: dict, read: bool = False) -> None:
        self.record.resources.append(
            ResourceRecord(
                type=request.type,
                name=request.name,
                urn=urn,
                custom=True if read else bool(request.custom),
                inputs=_plain(inputs),
                outputs=_plain(state or {}),
                parent_urn=request.parent,
                dependencies=list(request.dependencies),
                property_dependencies={
                    key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                }
                if not read
                else {},
                protect=bool(getattr(request, "protect", False)),
                retain_on_delete=bool(getattr(request, "retainOnDelete", False)),
                ignore_changes=list(getattr(request, "ignoreChanges", [])),
                read=read,
            )
        )


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


class Organisation:
    """The stacks deployed so far in one organisation, in deploy order, for stack references
    and for the members one stack grants to another's identities.

    `resolve=True` (the plan of a stack on its own): a stack the planned one references is
    deployed first, from its committed stack file, as the documented order does. `resolve=False`
    (a fresh organisation): only what was deployed before exists.
    """

    def __init__(self, resolve: bool = True, root: Path = PROJECT_ROOT):
        self.resolve, self.root = resolve, root
        self.deployed: dict[str, StackRecord] = {}
        self.unresolved: list[Finding] = []
        """References to stacks not deployed (what a program reading them fails on)."""
        self._projects: dict[str, str] | None = None

    def deploy(self, record: StackRecord) -> None:
        self.deployed[record.stack] = record

    def outputs_of(self, reference: str) -> dict[str, Any] | None:
        record = self.deployed.get(stack_of_reference(reference))
        return None if record is None else _unsecret_outputs(record.outputs)

    def projects(self) -> dict[str, str]:
        """Project id -> stack, of every committed stack file (the organisation's stacks)."""
        if self._projects is None:
            self._projects = {}
            for path in sorted(self.root.glob("Pulumi.*.yaml")):
                stack = path.name.split(".")[1]
                project = stack_config_values(stack, self.root).get(f"{NAMESPACE}:project")
                if project:
                    self._projects[str(project)] = stack
        return self._projects

    def project_of(self, stack: str) -> str:
        record = self.deployed.get(stack)
        if record is not None and record.project:
            return record.project
        return next((p for p, s in self.projects().items() if s == stack), "")

    @staticmethod
    def number(project: str) -> str:
        return project_number(project)

    def _deployed_in(self, project: str) -> StackRecord | None:
        return next((r for r in self.deployed.values() if r.project == project), None)

    def check_foreign_account(
        self, grant: str, member: str, project: str, account_id: str
    ) -> list[Finding]:
        record = self._deployed_in(project)
        if record is not None:
            declared = {a.inputs.get("accountId") for a in record.of_type(deploy_checks.ACCOUNT)}
            if account_id in declared:
                return []
            message = f"{member}: stack {record.stack} declares no account {account_id}"
            return [Finding(grant, "member", message, deploy_checks.OTHER_STACK)]
        return self._not_deployed(grant, member, self.projects().get(project), project)

    def check_foreign_agent(self, grant: str, member: str, number: str) -> list[Finding]:
        record = next(
            (r for r in self.deployed.values() if project_number(r.project) == number), None
        )
        if record is not None:
            agents = {
                s.outputs.get("member") for s in record.of_type(deploy_checks.SERVICE_IDENTITY)
            }
            if member in agents:
                return []
            message = f"{member}: stack {record.stack} does not create this service agent"
            return [Finding(grant, "member", message, deploy_checks.OTHER_STACK)]
        projects = {project_number(p): (p, s) for p, s in self.projects().items()}
        project, stack = projects.get(number, (f"number {number}", None))
        return self._not_deployed(grant, member, stack, project)

    def _not_deployed(
        self, grant: str, member: str, stack: str | None, project: str
    ) -> list[Finding]:
        if stack is None:
            message = f"{member}: project {project} belongs to no stack here; cannot be checked"
            return [Finding(grant, "member", message, deploy_checks.UNKNOWN_PROJECT)]
        message = (
            f"{member} belongs to stack {stack} ({project}), not deployed before this one: "
            f"deploy {stack} first and read it from {stack}'s outputs (a StackReference)"
        )
        return [Finding(grant, "member", message, deploy_checks.OTHER_STACK)]


def stack_of_reference(reference: str) -> str:
    """`organization/tabular-mlops/prod` (or `prod`) -> `prod`."""
    return reference.rsplit("/", 1)[-1]


def _unsecret_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v["secret"] if isinstance(v, dict) and set(v) == {"secret"} else v
        for k, v in outputs.items()
    }


_SCHEMAS = SchemaCache()


@contextlib.contextmanager
def mocked_stack(
    stack: str,
    config: dict[str, Any],
    project: str,
    organisation: Organisation | None = None,
    mocks: PlatformMocks | None = None,
) -> Iterator[StackRecord]:
    """Point Pulumi's runtime at recording mocks for one stack, and reset its globals after.

    Config is passed as Pulumi passes it: full keys, structured values as JSON text. `mocks`
    replaces PlatformMocks for another program (the bootstrap's, with GitHub resources).
    """
    record = StackRecord(stack=stack, project=project)
    # Pulumi makes its futures on the thread's loop; asyncio.run() before (a server, a test)
    # leaves none, and set_mocks would fail with "no current event loop".
    _ensure_event_loop()
    settings.reset_options(project="tabular-mlops", stack=stack, preview=True)
    set_all_config({key: _as_pulumi_value(value) for key, value in config.items()})
    mocks = mocks or PlatformMocks(project=project, organisation=organisation)
    monitor = RecordingMonitor(mocks, record, ProviderCheck(stack, _SCHEMAS))
    pulumi.runtime.set_mocks(
        monitor.mocks, project="tabular-mlops", stack=stack, preview=True, monitor=monitor
    )
    try:
        yield record
    finally:
        record.findings += mocks.findings
        settings.reset_options()
        set_all_config({})
        _SCHEMAS.save()


def _as_pulumi_value(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def declare(
    fn: Callable[[], Any],
    *,
    stack: str = "test",
    project: str = "test-project",
    config: dict[str, Any] | None = None,
    organisation: Organisation | None = None,
    mocks: PlatformMocks | None = None,
) -> StackRecord:
    """Run `fn` (anything that declares resources) under the recording mocks; wait for it all.

    Errors raised by `fn`, or inside an output's apply, propagate. What the provider would refuse
    is in the record's `findings` (`run_program` raises on it).
    """
    with mocked_stack(stack, config or {}, project, organisation, mocks) as record:
        stack_resource = settings.get_root_resource()
        _sync_await(run_pulumi_func(fn))
        record.outputs = _sync_await(_stack_outputs(stack_resource))
    return record


def run_program(
    stack: str,
    config: dict[str, Any] | None = None,
    program: Path | None = None,
    mocks: PlatformMocks | None = None,
    *,
    organisation: Organisation | None = None,
    check: bool = True,
) -> StackRecord:
    """Run the program (`__main__.py`) for one stack under the mocks; return what it declared.

    Without `config`, the committed `Pulumi.<stack>.yaml` is used, as `pulumi preview` would.
    The stack is deployed into `organisation` (a new one resolving references by default: the
    stacks it references are deployed first, from their committed files, their plans reused from
    an earlier run of the same code, tooling/plan/cache.py). Errors in the program (an invalid
    config among them) propagate; with `check`, so does a `PlanError` listing what the provider
    or GCP would refuse.
    """
    committed = config is None and program is None and mocks is None
    config = stack_config_values(stack) if config is None else config
    program = program or PROJECT_ROOT / "__main__.py"
    project = str(config.get(f"{NAMESPACE}:project", "offline-project"))
    organisation = organisation if organisation is not None else Organisation()
    organisation.unresolved = []
    if organisation.resolve:
        for other in referenced_stacks(config):
            if other != stack and other not in organisation.deployed:
                cached = plan_cache.load(other)
                if cached is not None and not cached.errors:
                    organisation.deploy(cached)
                else:
                    run_program(other, organisation=organisation, check=check)
    with _working_directory(program.parent):
        try:
            record = declare(
                lambda: runpy.run_path(str(program), run_name="__main__"),
                stack=stack,
                project=project,
                config=config,
                organisation=organisation,
                mocks=mocks,
            )
        except Exception as error:
            # A reference to a stack not deployed fails inside the program: say why.
            if organisation.unresolved:
                raise PlanError(stack, organisation.unresolved) from error
            raise
    record.findings += deploy_checks.check_record(record, organisation)
    if check and record.errors:
        raise PlanError(stack, record.errors)
    organisation.deploy(record)
    if committed and not record.errors:
        plan_cache.save(record)
    return record


def referenced_stacks(config: dict[str, Any]) -> list[str]:
    """The stacks a stack's config reads through stack references (deployed before it)."""
    from stacks.config import _decode

    platform = _decode(config.get(f"{NAMESPACE}:platform")) or {}
    serving = platform.get("serving") or {} if isinstance(platform, dict) else {}
    reference = serving.get("model_readers_from") if isinstance(serving, dict) else None
    return [stack_of_reference(reference)] if reference else []


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
