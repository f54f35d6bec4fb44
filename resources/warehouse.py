"""Warehouse: the stack's BigQuery dataset, the curated table and the platform's own tables.

The curated table's schema is generated from the data contract (plus lineage columns) and is
partitioned by ingestion date, so "what arrived since" queries scan only new partitions.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from contracts import PARTITION_COLUMN, DataContract
from contracts.tables import (
    EVALUATIONS,
    INGESTION_LOG,
    MODEL_METRICS,
    PLATFORM_TABLES,
    PREDICTIONS,
)
from resources.access import PROJECT, Binder, Grantee, Members, Permission
from resources.base import PlatformComponent, binder

JOB_USER = "roles/bigquery.jobUser"
READ_SESSIONS = "roles/bigquery.readSessionUser"


@dataclass(frozen=True)
class WarehouseArgs:
    project: str
    location: str
    dataset_id: str
    contract: DataContract
    labels: Mapping[str, str]
    deletion_protection: bool = True
    kms_key: str | None = None
    members: Members = dataclasses.field(default_factory=dict)
    """Who plays each grantee of PERMISSIONS in this stack (resources/access.py)."""


class Warehouse(PlatformComponent):
    """A dataset holding the curated table and the platform tables."""

    TYPE = "tabular-mlops:bigquery:Warehouse"
    APIS = (
        "bigquery.googleapis.com",
        "bigquerystorage.googleapis.com",
        "cloudresourcemanager.googleapis.com",
    )
    KMS_AGENTS = ("bigquery",)
    TARGETS: ClassVar[dict[str, str]] = {
        "dataset": "warehouse dataset (curated table and platform tables)",
        INGESTION_LOG.table_id: f"`{INGESTION_LOG.table_id}` table",
        MODEL_METRICS.table_id: f"`{MODEL_METRICS.table_id}` table",
        EVALUATIONS.table_id: f"`{EVALUATIONS.table_id}` table",
        PREDICTIONS.table_id: f"`{PREDICTIONS.table_id}` table",
    }
    PERMISSIONS = (
        Permission(
            Grantee.DATA_ANALYSTS,
            "roles/bigquery.dataViewer",
            INGESTION_LOG.table_id,
            "see the outcome of every upload: loaded rows or the rejection reason",
        ),
        Permission(
            Grantee.DATA_ANALYSTS,
            "roles/bigquery.dataViewer",
            PREDICTIONS.table_id,
            "read the served model's batch predictions of new rows (the scoring pipeline's)",
        ),
        Permission(Grantee.DATA_ANALYSTS, JOB_USER, PROJECT, "query (jobs run in the project)"),
        Permission(
            Grantee.DATA_SCIENTISTS,
            "roles/bigquery.dataViewer",
            "dataset",
            "explore the curated data, model metrics and evaluations",
        ),
        Permission(Grantee.DATA_SCIENTISTS, JOB_USER, PROJECT, "query (jobs run in the project)"),
        Permission(
            Grantee.DATA_SCIENTISTS,
            READ_SESSIONS,
            PROJECT,
            "fast DataFrame reads through the BigQuery Storage API",
        ),
        Permission(
            Grantee.QA,
            "roles/bigquery.dataViewer",
            MODEL_METRICS.table_id,
            "review the metrics and gate decision of the model under test",
        ),
        Permission(
            Grantee.QA,
            "roles/bigquery.dataViewer",
            EVALUATIONS.table_id,
            "review how the production model performs on new data",
        ),
        Permission(Grantee.QA, JOB_USER, PROJECT, "query (jobs run in the project)"),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/bigquery.dataEditor",
            "dataset",
            "repair data and run backfills",
        ),
        Permission(Grantee.ML_ENGINEERS, JOB_USER, PROJECT, "query (jobs run in the project)"),
        Permission(
            Grantee.STAKEHOLDERS,
            "roles/bigquery.dataViewer",
            INGESTION_LOG.table_id,
            "follow ingestion volume and rejections",
        ),
        Permission(
            Grantee.STAKEHOLDERS,
            "roles/bigquery.dataViewer",
            MODEL_METRICS.table_id,
            "follow model quality over time",
        ),
        Permission(
            Grantee.STAKEHOLDERS,
            "roles/bigquery.dataViewer",
            EVALUATIONS.table_id,
            "follow the production model's evaluations and retraining decisions",
        ),
        Permission(Grantee.STAKEHOLDERS, JOB_USER, PROJECT, "query (jobs run in the project)"),
        Permission(
            Grantee.INGESTION,
            "roles/bigquery.dataEditor",
            "dataset",
            "create the staging table, insert into the curated table and the ingestion log",
        ),
        Permission(Grantee.INGESTION, JOB_USER, PROJECT, "run load and query jobs"),
        Permission(
            Grantee.PIPELINE_RUNNER,
            "roles/bigquery.dataEditor",
            "dataset",
            "snapshot the curated table, write model metrics, evaluations and predictions "
            "(append-only: the scoring pipeline inserts, never updates)",
        ),
        Permission(Grantee.PIPELINE_RUNNER, JOB_USER, PROJECT, "run query and extract jobs"),
        Permission(
            Grantee.PIPELINE_RUNNER, READ_SESSIONS, PROJECT, "read snapshots via the Storage API"
        ),
        Permission(
            Grantee.WORKBENCH,
            "roles/bigquery.dataViewer",
            "dataset",
            "explore the warehouse from notebooks",
        ),
        Permission(Grantee.WORKBENCH, JOB_USER, PROJECT, "run queries from notebooks"),
        Permission(Grantee.WORKBENCH, READ_SESSIONS, PROJECT, "fast DataFrame reads"),
    )

    dataset: gcp.bigquery.Dataset
    """The stack's dataset."""
    curated: gcp.bigquery.Table
    """Rows that passed the data contract, with lineage columns."""
    tables: dict[str, gcp.bigquery.Table]
    """The platform tables (ingestion log, model metrics, evaluations) by table id."""

    def __init__(self, name: str, args: WarehouseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        self.dataset = gcp.bigquery.Dataset(
            f"{name}-dataset",
            project=args.project,
            dataset_id=args.dataset_id,
            location=args.location,
            description=f"tabular-mlops warehouse for the {args.contract.name} dataset",
            labels=dict(args.labels),
            # Deleting the dataset with its tables must be a deliberate act where data matters.
            delete_contents_on_destroy=not args.deletion_protection,
            default_encryption_configuration=_encryption(args),
            opts=self.child(protect=args.deletion_protection),
        )
        contract = args.contract
        self.curated = self._table(
            args,
            contract.name,
            f"{contract.description} Loaded by the ingestion function; schema from contract "
            f"{contract.name} v{contract.version}.",
            contract.bigquery_schema(lineage=True),
            PARTITION_COLUMN,
            [contract.label_column],
        )
        self.tables = {
            t.table_id: self._table(
                args, t.table_id, t.description, t.schema, t.partition_field, list(t.clustering)
            )
            for t in PLATFORM_TABLES
        }
        missing = set(self.TARGETS) - {"dataset", *self.tables}
        if missing:
            raise ValueError(f"platform tables missing from contracts/tables.py: {missing}")
        self.bindings = self.grant(args.project, args.members, self._binders(args))
        self.register_outputs(
            {
                "dataset": self.dataset.dataset_id,
                "curated_table": self.curated.table_id,
                "tables": sorted(self.tables),
            }
        )

    def _table(
        self,
        args: WarehouseArgs,
        table_id: str,
        description: str,
        schema: list[dict] | tuple[dict, ...],
        partition_field: str | None,
        clustering: list[str],
    ) -> gcp.bigquery.Table:
        return gcp.bigquery.Table(
            f"{self._name}-{table_id.replace('_', '-')}",
            project=args.project,
            dataset_id=self.dataset.dataset_id,
            table_id=table_id,
            description=description,
            schema=json.dumps(list(schema)),
            time_partitioning=(
                {"type": "DAY", "field": partition_field} if partition_field else None
            ),
            clusterings=clustering or None,
            deletion_protection=args.deletion_protection,
            encryption_configuration=_encryption(args),
            labels=dict(args.labels),
            opts=self.child(protect=args.deletion_protection),
        )

    def _binders(self, args: WarehouseArgs) -> dict[str, Binder]:
        """Grants on the dataset and on each platform table."""
        return {
            "dataset": binder(
                self,
                gcp.bigquery.DatasetIamMember,
                project=args.project,
                dataset_id=self.dataset.dataset_id,
            ),
            **{
                table_id: binder(
                    self,
                    gcp.bigquery.IamMember,
                    project=args.project,
                    dataset_id=self.dataset.dataset_id,
                    table_id=table.table_id,
                )
                for table_id, table in self.tables.items()
            },
        }


def _encryption(args: WarehouseArgs) -> dict[str, str] | None:
    return {"kms_key_name": args.kms_key} if args.kms_key else None
