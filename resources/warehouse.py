"""Warehouse: the stack's BigQuery dataset, the curated table and the platform's own tables.

The curated table's schema is generated from the data contract (plus lineage columns) and is
partitioned by ingestion date, so "what arrived since" queries scan only new partitions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from contracts import PARTITION_COLUMN, DataContract
from contracts.tables import PLATFORM_TABLES
from resources.base import PlatformComponent


@dataclass(frozen=True)
class WarehouseArgs:
    project: str
    location: str
    dataset_id: str
    contract: DataContract
    labels: Mapping[str, str]
    deletion_protection: bool = True
    kms_key: str | None = None


class Warehouse(PlatformComponent):
    """A dataset holding the curated table and the platform tables."""

    TYPE = "tabular-mlops:bigquery:Warehouse"
    APIS = ("bigquery.googleapis.com",)

    dataset: gcp.bigquery.Dataset
    """The stack's dataset."""
    curated: gcp.bigquery.Table
    """Rows that passed the data contract, with lineage columns."""
    tables: dict[str, gcp.bigquery.Table]
    """The platform tables (ingestion log, model metrics, evaluations) by table id."""

    def __init__(self, name: str, args: WarehouseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        child = self.child()
        encryption = {"kms_key_name": args.kms_key} if args.kms_key else None
        self.dataset = gcp.bigquery.Dataset(
            f"{name}-dataset",
            project=args.project,
            dataset_id=args.dataset_id,
            location=args.location,
            description=f"tabular-mlops warehouse for the {args.contract.name} dataset",
            labels=dict(args.labels),
            # Deleting the dataset with its tables must be a deliberate act where data matters.
            delete_contents_on_destroy=not args.deletion_protection,
            default_encryption_configuration=encryption,
            opts=child,
        )

        def table(
            table_id: str,
            description: str,
            schema: list[dict] | tuple[dict, ...],
            partition_field: str | None,
            clustering: list[str],
        ) -> gcp.bigquery.Table:
            return gcp.bigquery.Table(
                f"{name}-{table_id.replace('_', '-')}",
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
                encryption_configuration=encryption,
                labels=dict(args.labels),
                opts=child,
            )

        contract = args.contract
        self.curated = table(
            contract.name,
            f"{contract.description} Loaded by the ingestion function; schema from contract "
            f"{contract.name} v{contract.version}.",
            contract.bigquery_schema(lineage=True),
            PARTITION_COLUMN,
            [contract.label_column],
        )
        self.tables = {
            t.table_id: table(
                t.table_id, t.description, t.schema, t.partition_field, list(t.clustering)
            )
            for t in PLATFORM_TABLES
        }
        self.register_outputs(
            {
                "dataset": self.dataset.dataset_id,
                "curated_table": self.curated.table_id,
                "tables": sorted(self.tables),
            }
        )
