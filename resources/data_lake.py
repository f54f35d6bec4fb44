"""Data lake: the Cloud Storage buckets data passes through.

- landing: the analysts' CSV uploads; versioned, so an overwritten upload is never lost.
- quarantine: rejected files and their JSON reports; versioned and never expired.
- artifacts: pipeline root, compiled templates and function sources; transient run data expires,
  versioned so an overwritten template can be recovered until its copy expires.
- models: the registered model bundles, the one home of every model version's files. Readable
  (listing included) by the identities of the project models are promoted to, unconditionally: a
  condition on object names never holds for a listing, which IAM checks against the bucket. A
  retention policy makes each bundle immutable: nothing is deleted or replaced before it is
  `models_retention_days` old, and nothing ever expires it.
- access logs: who read, wrote or deleted what in the four buckets above (Cloud Storage usage
  logs, written hourly by Google), kept `access_log_retention_days`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from contracts import wire
from resources.access import Condition, Grantee, Members, Permission
from resources.base import PlatformComponent, binder
from stacks.config import DataLakeConfig

# Cloud Storage writes usage logs as this Google-owned group, which must be able to create objects
# in the log bucket (Cloud Storage docs, "Usage logs & storage logs").
STORAGE_ANALYTICS = "group:cloud-storage-analytics@google.com"


@dataclass(frozen=True)
class DataLakeArgs:
    project: str
    location: str
    landing_bucket: str
    quarantine_bucket: str
    artifacts_bucket: str
    access_logs_bucket: str
    models_bucket: str
    labels: Mapping[str, str]
    settings: DataLakeConfig = dataclasses.field(default_factory=DataLakeConfig)
    """Deletion and retention: the stack's `data_lake:` section as validated."""
    kms_key: str | None = None
    members: Members = dataclasses.field(default_factory=dict)
    """Who plays each grantee of PERMISSIONS in this stack (resources/access.py)."""


class DataLake(PlatformComponent):
    """The landing, quarantine and artifacts buckets, private and uniformly controlled."""

    TYPE = "tabular-mlops:storage:DataLake"
    APIS = ("storage.googleapis.com",)
    KMS_AGENTS = ("storage",)
    TARGETS: ClassVar[dict[str, str]] = {
        "landing": "landing bucket",
        "quarantine": "quarantine bucket",
        "artifacts": "artifacts bucket (pipeline root, compiled templates, function sources)",
        "models": "models bucket (registered model bundles)",
        "access_logs": "access-log bucket (usage logs of the buckets above)",
    }
    PERMISSIONS = (
        Permission(
            Grantee.DATA_ANALYSTS,
            "roles/storage.objectCreator",
            "landing",
            "upload CSVs; no overwrite or delete, so an upload is never lost",
        ),
        Permission(
            Grantee.DATA_ANALYSTS,
            "roles/storage.objectViewer",
            "landing",
            "list and read back their uploads",
        ),
        Permission(
            Grantee.DATA_ANALYSTS,
            "roles/storage.objectViewer",
            "quarantine",
            "read a rejected file and the JSON report that says why",
        ),
        Permission(
            Grantee.DATA_SCIENTISTS,
            "roles/storage.objectViewer",
            "artifacts",
            "read pipeline outputs: datasets, evaluation reports",
        ),
        Permission(
            Grantee.DATA_SCIENTISTS,
            "roles/storage.objectViewer",
            "models",
            "load a registered model's bundle to analyse it",
        ),
        Permission(
            Grantee.QA,
            "roles/storage.objectViewer",
            "artifacts",
            "read the evaluation report of the model under test",
        ),
        Permission(
            Grantee.QA,
            "roles/storage.objectViewer",
            "models",
            "read the bundle (and its recorded evaluation) of the model under test",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/storage.objectUser",
            "landing",
            "re-drive ingestion (re-upload a fixed file) and remove mistaken uploads; "
            "versioning keeps what is removed",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/storage.objectViewer",
            "quarantine",
            "investigate rejections; quarantined files are never deleted",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/storage.objectUser",
            "artifacts",
            "manage pipeline artifacts and clean up failed runs",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/storage.objectViewer",
            "models",
            "inspect registered bundles; the retention policy keeps them from being changed",
        ),
        Permission(
            Grantee.STAKEHOLDERS,
            "roles/storage.objectViewer",
            "artifacts",
            "open the lifecycle page the dashboard links (lifecycle/index.html: every "
            "ingestion, training run and evaluation) and the reports it links",
        ),
        Permission(
            Grantee.INGESTION,
            "roles/storage.objectViewer",
            "landing",
            "read the uploaded generation, and copy it for BigQuery's load job (the source side)",
        ),
        Permission(
            Grantee.INGESTION,
            "roles/storage.objectCreator",
            "quarantine",
            "copy a rejected file and write its report; cannot overwrite or delete",
        ),
        Permission(
            Grantee.INGESTION,
            "roles/storage.objectViewer",
            "quarantine",
            "check whether a redelivered event's file is already quarantined",
        ),
        Permission(
            Grantee.INGESTION,
            "roles/storage.objectUser",
            "artifacts",
            "copy the uploaded generation for its BigQuery load job, and remove the copy",
            condition=Condition(
                title="ingestion staging copies only",
                expression='resource.name.startsWith("projects/_/buckets/{artifacts_bucket}/'
                f'objects/{wire.STAGING_PREFIX}")',
                description=f"the load jobs' copies under {wire.STAGING_PREFIX}, nothing else",
            ),
        ),
        Permission(
            Grantee.PIPELINE_RUNNER,
            "roles/storage.objectUser",
            "artifacts",
            "pipeline root: read and write run artifacts; publish the lifecycle page and each "
            "run's report under lifecycle/ (kept: only pipeline-root/ and tmp/ expire)",
            # Pipeline code must not be able to swap the function's source archive.
            condition=Condition(
                title="not the function sources",
                expression='!resource.name.startsWith("projects/_/buckets/{artifacts_bucket}/'
                'objects/sources/")',
                description="everything in the artifacts bucket but sources/",
            ),
        ),
        Permission(
            Grantee.PIPELINE_RUNNER,
            "roles/storage.objectUser",
            "models",
            "register a model (its bundle is copied here through Cloud Storage FUSE, which also "
            "sets metadata) and load bundles: the gate's champion, the evaluated model; the "
            "retention policy refuses any overwrite or deletion",
        ),
        Permission(
            Grantee.WORKBENCH,
            "roles/storage.objectViewer",
            "artifacts",
            "read pipeline artifacts from notebooks",
        ),
        Permission(
            Grantee.WORKBENCH,
            "roles/storage.objectViewer",
            "models",
            "load registered models from notebooks",
        ),
        Permission(
            Grantee.MODEL_READERS,
            "roles/storage.objectViewer",
            "models",
            "the promoted version is re-registered in another project from its bundle here: "
            "Vertex AI lists and reads the bundle's directory",
        ),
        Permission(
            Grantee.STORAGE_ANALYTICS,
            "roles/storage.objectCreator",
            "access_logs",
            "Cloud Storage writes the usage logs of the data buckets as this group",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/storage.objectViewer",
            "access_logs",
            "audit who read, wrote or deleted what in the data buckets",
        ),
    )

    landing: gcp.storage.Bucket
    """Where data analysts upload CSVs; every finalized object triggers ingestion."""
    quarantine: gcp.storage.Bucket
    """Rejected files, each with a JSON report beside it."""
    artifacts: gcp.storage.Bucket
    """Pipeline root, compiled templates and function sources."""
    models: gcp.storage.Bucket
    """Registered model bundles (`models_uri`), immutable for their retention period."""
    access_logs: gcp.storage.Bucket
    """The data buckets' usage logs (never logged itself: it would log its own log writes)."""

    def __init__(self, name: str, args: DataLakeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        self.access_logs = self._bucket(
            f"{name}-access-logs",
            args,
            args.access_logs_bucket,
            versioned=True,
            lifecycle_rules=_access_log_rules(args.settings),
            logged=False,
        )
        self.landing = self._bucket(
            f"{name}-landing",
            args,
            args.landing_bucket,
            versioned=True,
            # Only superseded versions expire; the live object stays until someone removes it.
            lifecycle_rules=[_noncurrent_expiry(args.settings.noncurrent_retention_days)],
        )
        # Nothing here ever expires: a quarantined file is the only copy of what was rejected.
        self.quarantine = self._bucket(
            f"{name}-quarantine", args, args.quarantine_bucket, versioned=True
        )
        self.artifacts = self._bucket(
            f"{name}-artifacts",
            args,
            args.artifacts_bucket,
            versioned=True,
            lifecycle_rules=_artifacts_rules(args.settings),
        )
        # Bundles are never expired (a promoted version is served from its bundle for as long as
        # prod serves it); the retention policy keeps each from being replaced or deleted. Cloud
        # Storage refuses versioning beside a retention policy, and with one nothing is replaced.
        self.models = self._bucket(
            f"{name}-models",
            args,
            args.models_bucket,
            versioned=False,
            retention_days=args.settings.models_retention_days,
        )
        buckets = {
            "landing": self.landing,
            "quarantine": self.quarantine,
            "artifacts": self.artifacts,
            "access_logs": self.access_logs,
            "models": self.models,
        }
        self.bindings = self.grant(
            args.project,
            {**args.members, Grantee.STORAGE_ANALYTICS: [STORAGE_ANALYTICS]},
            {
                key: binder(self, gcp.storage.BucketIAMMember, bucket=bucket.name)
                for key, bucket in buckets.items()
            },
            context={"artifacts_bucket": args.artifacts_bucket},
        )
        self.register_outputs({key: bucket.name for key, bucket in buckets.items()})

    def _bucket(
        self,
        resource_name: str,
        args: DataLakeArgs,
        bucket_name: str,
        *,
        versioned: bool,
        lifecycle_rules: list[dict] | None = None,
        logged: bool = True,
        retention_days: int = 0,
    ) -> gcp.storage.Bucket:
        """A private bucket; `logged`: its usage logs go to the access-log bucket."""
        return gcp.storage.Bucket(
            resource_name,
            name=bucket_name,
            project=args.project,
            location=args.location,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning={"enabled": versioned},
            lifecycle_rules=lifecycle_rules or [],
            logging=(
                {"log_bucket": self.access_logs.name, "log_object_prefix": bucket_name}
                if logged
                else None
            ),
            retention_policy=(
                # Seconds, as a string (the provider's type for it).
                {"retention_period": str(retention_days * 86400)} if retention_days else None
            ),
            force_destroy=args.settings.force_destroy,
            encryption={"default_kms_key_name": args.kms_key} if args.kms_key else None,
            labels=dict(args.labels),
            # Where the config protects data, Pulumi also refuses to delete or replace the bucket.
            opts=self.child(protect=not args.settings.force_destroy),
        )


def _access_log_rules(settings: DataLakeConfig) -> list[dict]:
    return [
        {"action": {"type": "Delete"}, "condition": {"age": settings.access_log_retention_days}},
        _noncurrent_expiry(settings.noncurrent_retention_days),
    ]


def _artifacts_rules(settings: DataLakeConfig) -> list[dict]:
    """Transient run data (the pipeline root, the function's staging copies under tmp/) expires;
    what a run overwrote, or this rule expired, is kept as a noncurrent version a while."""
    return [
        {
            "action": {"type": "Delete"},
            "condition": {
                "age": settings.artifacts_retention_days,
                "matches_prefixes": ["pipeline-root/", "tmp/"],
            },
        },
        _noncurrent_expiry(settings.noncurrent_retention_days),
    ]


def _noncurrent_expiry(days: int) -> dict:
    """A lifecycle rule deleting superseded (noncurrent) versions `days` after they were."""
    return {"action": {"type": "Delete"}, "condition": {"days_since_noncurrent_time": days}}
