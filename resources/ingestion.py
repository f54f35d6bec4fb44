"""Ingestion: the Cloud Function (2nd gen) every CSV uploaded to the landing bucket triggers.

The function is built from the content of `function_src/` plus the `contracts` package and the
stack's contract file (the archive layout the function expects). The archive's object name carries
a digest of that content, so a change of code (or contract) redeploys the function and nothing
else does.

Creation order matters for a storage trigger, and is encoded in `depends_on`:
1. the Eventarc service agent exists, the Cloud Storage service agent may publish to Pub/Sub, the
   trigger's account may receive events, the build account may build;
2. the function and its trigger;
3. the trigger's account may invoke the function's service (granted on that one service, which
   exists only now; events delivered in between are retried, retries being on).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from contracts import CONTRACTS_DIR, wire
from resources.access import PROJECT, Condition, Grantee, Members, Permission
from resources.base import PlatformComponent, binder
from stacks.config import IngestionConfig

ENTRY_POINT = "ingest"
RUNTIME = "python311"
# The contracts package files the function imports (the package has no other dependencies).
CONTRACT_MODULES = ("__init__.py", "model.py", "dates.py", "messages.py", "tables.py", "wire.py")
# Never shipped: caches, tests and local state only bloat the archive and churn its digest.
_SKIPPED_DIRS = {"__pycache__", "tests", "test", ".pytest_cache", ".ruff_cache", ".venv"}
_SKIPPED_FILES = ("*.pyc", "*.pyo", "test_*.py", "*_test.py", "conftest.py", ".*")


@dataclass(frozen=True)
class FunctionSource:
    """The function's archive: file path inside the archive -> file on disk, and their digest."""

    files: Mapping[str, Path]
    digest: str
    contract_path: str
    """Where the contract file sits inside the archive (the function's CONTRACT_PATH)."""
    problems: tuple[str, ...]
    """Why this source cannot be deployed as a function (empty when it can)."""

    @property
    def object_name(self) -> str:
        return f"sources/ingestion-{self.digest[:16]}.zip"

    def archive(self) -> pulumi.AssetArchive:
        return pulumi.AssetArchive({arc: pulumi.FileAsset(str(p)) for arc, p in self.files.items()})


def function_source(function_dir: Path, contract_file: Path) -> FunctionSource:
    """Collect the archive of the function in `function_dir`, with its data contract.

    The digest covers every file's archive path and bytes, so it changes exactly when the deployed
    code or contract does (not with timestamps, file order or caches).
    """
    if not function_dir.is_dir():
        raise FileNotFoundError(f"function source folder {function_dir} does not exist")
    files: dict[str, Path] = {}
    for path in sorted(function_dir.rglob("*")):
        relative = path.relative_to(function_dir)
        if not path.is_file() or _skipped(relative):
            continue
        files[relative.as_posix()] = path
    clashes = sorted(arc for arc in files if arc.startswith("contracts/"))
    if clashes:
        raise ValueError(
            f"{function_dir.name}/ has its own {clashes[0]}: the archive's contracts/ package "
            "comes from the project's contracts/ folder"
        )
    for module in CONTRACT_MODULES:
        files[f"contracts/{module}"] = CONTRACTS_DIR / module
    contract_path = f"contracts/{contract_file.name}"
    files[contract_path] = contract_file
    digest = hashlib.sha256()
    for arc in sorted(files):
        digest.update(arc.encode() + b"\0" + files[arc].read_bytes() + b"\0")
    return FunctionSource(
        files=files,
        digest=digest.hexdigest(),
        contract_path=contract_path,
        problems=_deployability(function_dir),
    )


def _skipped(relative: Path) -> bool:
    if any(part in _SKIPPED_DIRS or part.startswith(".") for part in relative.parts[:-1]):
        return True
    return any(relative.match(pattern) for pattern in _SKIPPED_FILES)


def _deployability(function_dir: Path) -> tuple[str, ...]:
    """What would make Cloud Build or the runtime fail, found before anything is deployed."""
    main = function_dir / "main.py"
    if not main.is_file():
        return (f"{function_dir.name}/main.py is missing (the entry point `{ENTRY_POINT}`)",)
    # Compiled to bytecode, not parsed with `ast`: CPython 3.11's AST object builder can raise a
    # spurious "AST constructor recursion depth mismatch" SystemError in threaded programs
    # (python/cpython#106905), and Pulumi runs this inside its event loop. The module's own code
    # objects are its top-level functions (and class bodies).
    try:
        module = compile(main.read_text(encoding="utf-8"), str(main), "exec")
    except SyntaxError as error:
        return (f"{function_dir.name}/main.py does not parse: {error}",)
    defined = {const.co_name for const in module.co_consts if isinstance(const, CodeType)}
    if ENTRY_POINT not in defined:
        return (f"{function_dir.name}/main.py defines no top-level function `{ENTRY_POINT}`",)
    return ()


@dataclass(frozen=True)
class IngestionArgs:
    project: str
    region: str
    function_name: str
    repository_id: str
    """Artifact Registry repository for the function's images."""
    source: FunctionSource
    settings: IngestionConfig
    """How the function runs: the stack's `ingestion:` section as validated."""
    landing_bucket: pulumi.Input[str]
    landing_location: str
    """The landing bucket's location: an Eventarc storage trigger must be in the same one."""
    quarantine_bucket: pulumi.Input[str]
    artifacts_bucket: str
    """Holds the source archive (under sources/)."""
    dataset_id: pulumi.Input[str]
    bq_location: str
    curated_table: pulumi.Input[str]
    ingestion_log_table: pulumi.Input[str]
    runtime_account_email: pulumi.Input[str]
    trigger_account_email: pulumi.Input[str]
    build_account_name: pulumi.Input[str]
    """Fully qualified (`projects/…/serviceAccounts/…`), as Cloud Build wants it."""
    labels: Mapping[str, str]
    kms_key: str | None = None
    members: Members = dataclasses.field(default_factory=dict)
    """Who plays each grantee of PERMISSIONS, the storage service agent included."""


class Ingestion(PlatformComponent):
    """The ingestion function, its trigger on the landing bucket, and what they need to run."""

    TYPE = "tabular-mlops:functions:Ingestion"
    APIS = (
        "cloudfunctions.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "eventarc.googleapis.com",
        "run.googleapis.com",
        "pubsub.googleapis.com",
        "storage.googleapis.com",
        "cloudresourcemanager.googleapis.com",
    )
    KMS_AGENTS = ("cloudfunctions", "artifactregistry", "storage")
    TARGETS: ClassVar[dict[str, str]] = {
        "function": "ingestion function",
        "function_service": "ingestion function's Cloud Run service",
        "repository": "function image repository (Artifact Registry)",
    }
    PERMISSIONS = (
        Permission(
            Grantee.STORAGE_AGENT,
            "roles/pubsub.publisher",
            PROJECT,
            "Eventarc storage triggers deliver through a Pub/Sub topic the agent publishes to",
            shared=True,
        ),
        Permission(
            Grantee.INGESTION_TRIGGER,
            "roles/eventarc.eventReceiver",
            PROJECT,
            "receive the landing bucket's events (checked when the trigger is created)",
        ),
        Permission(
            Grantee.INGESTION_TRIGGER,
            "roles/run.invoker",
            "function_service",
            "invoke this function only; ingress is internal, no one else may call it",
        ),
        Permission(
            Grantee.FUNCTION_BUILD,
            "roles/logging.logWriter",
            PROJECT,
            "write build logs",
        ),
        Permission(
            Grantee.FUNCTION_BUILD,
            "roles/artifactregistry.writer",
            "repository",
            "push the function's image to its own repository",
        ),
        Permission(
            Grantee.FUNCTION_BUILD,
            "roles/storage.objectUser",
            PROJECT,
            "fetch the function's source (copied by Cloud Functions to its gcf-v2-sources "
            "bucket, which exists only after the first deploy) and cache builds there",
            condition=Condition(
                title="function sources only",
                expression=(
                    'resource.name.startsWith("projects/_/buckets/gcf-v2-sources-") || '
                    'resource.name.startsWith("projects/_/buckets/{artifacts_bucket}/objects/'
                    'sources/")'
                ),
                description="Cloud Functions' source buckets and this stack's source archives",
            ),
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/cloudfunctions.viewer",
            "function",
            "check the function's state, revisions and configuration",
        ),
    )

    repository: gcp.artifactregistry.Repository
    """The function's image repository (old images cleaned up)."""
    source_object: gcp.storage.BucketObject
    """The uploaded source archive."""
    function: gcp.cloudfunctionsv2.Function
    """The function; its event trigger listens to the landing bucket."""

    def __init__(self, name: str, args: IngestionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        self._check_buildable(args)
        self.repository = self.artifact_repository(
            f"{name}-images",
            args,
            args.repository_id,
            "DOCKER",
            "Images of the ingestion function, built by Cloud Build.",
            cleanup_policies=[
                # The image serving now is always among the most recent ones.
                {"id": "keep-recent", "action": "KEEP", "most_recent_versions": {"keep_count": 5}},
                {"id": "expire-old", "action": "DELETE", "condition": {"older_than": "2592000s"}},
            ],
        )
        self.source_object = gcp.storage.BucketObject(
            f"{name}-source",
            bucket=args.artifacts_bucket,
            name=args.source.object_name,
            source=args.source.archive(),
            content_type="application/zip",
            opts=self.child(),
        )
        # Created up front: the first trigger creation in a project otherwise races the
        # Eventarc service agent's creation (docs/deploy.md: "retry once").
        self.eventarc_agent = gcp.projects.ServiceIdentity(
            f"{name}-eventarc-agent",
            project=args.project,
            service="eventarc.googleapis.com",
            opts=self.child(),
        )
        before = self._grants_before_the_function(args)
        self.function = self._function(args, before)
        self.bindings = [*before, *self._grants_on_the_function(args)]
        self.register_outputs(
            {
                "function": self.function.name,
                "source_object": self.source_object.name,
                "repository": self.repository.repository_id,
            }
        )

    def _check_buildable(self, args: IngestionArgs) -> None:
        if not args.source.problems:
            return
        # Preview shows the plan anyway (the function's code may be landing separately);
        # a deploy stops here instead of failing in Cloud Build minutes later.
        message = "the ingestion function cannot be built: " + "; ".join(args.source.problems)
        if not pulumi.runtime.is_dry_run():
            raise pulumi.RunError(message)
        pulumi.log.warn(message, resource=self)

    def _grants_before_the_function(self, args: IngestionArgs) -> list[pulumi.Resource]:
        """What building the function and delivering its events need (project-wide roles, the
        image repository)."""
        return self.grant(
            args.project,
            args.members,
            {
                "repository": binder(
                    self,
                    gcp.artifactregistry.RepositoryIamMember,
                    project=args.project,
                    location=args.region,
                    repository=self.repository.name,
                )
            },
            only=(PROJECT, "repository"),
            context={"artifacts_bucket": args.artifacts_bucket},
        )

    def _function(
        self, args: IngestionArgs, before: list[pulumi.Resource]
    ) -> gcp.cloudfunctionsv2.Function:
        return gcp.cloudfunctionsv2.Function(
            f"{self._name}-function",
            project=args.project,
            location=args.region,
            name=args.function_name,
            description="Checks each CSV uploaded to the landing bucket against the data "
            "contract; loads it into BigQuery exactly once, or quarantines it with a report.",
            labels=dict(args.labels),
            kms_key_name=args.kms_key,
            build_config={
                "runtime": RUNTIME,
                "entry_point": ENTRY_POINT,
                "source": {
                    "storage_source": {
                        "bucket": args.artifacts_bucket,
                        "object": self.source_object.name,
                    }
                },
                # A dedicated build identity: new projects' default build account may lack the
                # permissions, and the compute default account must not be used.
                "service_account": args.build_account_name,
                "docker_repository": pulumi.Output.concat(
                    "projects/",
                    args.project,
                    "/locations/",
                    args.region,
                    "/repositories/",
                    self.repository.repository_id,
                ),
            },
            service_config=_service_config(args),
            event_trigger={
                "event_type": wire.FINALIZED,
                # A storage trigger must be in the bucket's location (a multi-region is "eu"…).
                "trigger_region": args.landing_location.lower(),
                "event_filters": [{"attribute": "bucket", "value": args.landing_bucket}],
                # A failed attempt is redelivered; the function is idempotent per object generation.
                "retry_policy": "RETRY_POLICY_RETRY",
                "service_account_email": args.trigger_account_email,
            },
            opts=self.child(depends_on=[self.eventarc_agent, self.source_object, *before]),
        )

    def _grants_on_the_function(self, args: IngestionArgs) -> list[pulumi.Resource]:
        """Grants on the function and its Cloud Run service, which exist only now."""
        return self.grant(
            args.project,
            args.members,
            {
                "function_service": binder(
                    self,
                    gcp.cloudrunv2.ServiceIamMember,
                    project=args.project,
                    location=args.region,
                    name=self.function.service_config.service,
                ),
                "function": binder(
                    self,
                    gcp.cloudfunctionsv2.FunctionIamMember,
                    project=args.project,
                    location=args.region,
                    cloud_function=self.function.name,
                ),
            },
            only=("function_service", "function"),
        )


def _service_config(args: IngestionArgs) -> dict:
    """How the function's instances run, and the environment they read their settings from."""
    settings = args.settings
    return {
        "available_memory": settings.memory,
        "timeout_seconds": settings.timeout_seconds,
        "min_instance_count": settings.min_instances,
        "max_instance_count": settings.max_instances,
        # One file per instance at a time keeps memory use predictable.
        "max_instance_request_concurrency": 1,
        "ingress_settings": "ALLOW_INTERNAL_ONLY",
        "all_traffic_on_latest_revision": True,
        "service_account_email": args.runtime_account_email,
        "environment_variables": {
            wire.CONTRACT_PATH: args.source.contract_path,
            # Events for any other bucket are refused, not read.
            wire.LANDING_BUCKET: args.landing_bucket,
            wire.LANDING_PREFIX: settings.landing_prefix,
            wire.QUARANTINE_BUCKET: args.quarantine_bucket,
            wire.BQ_PROJECT: args.project,
            wire.BQ_DATASET: args.dataset_id,
            wire.BQ_LOCATION: args.bq_location,
            wire.CURATED_TABLE: args.curated_table,
            wire.INGESTION_LOG_TABLE: args.ingestion_log_table,
            # An attempt older than this with no outcome was cut short (its FAILED row).
            wire.TIMEOUT_SECONDS: str(settings.timeout_seconds),
            # Load jobs read a copy of the event's generation from here (tmp/ expires).
            wire.STAGING_URI: f"gs://{args.artifacts_bucket}/{wire.STAGING_PREFIX}",
        },
    }
