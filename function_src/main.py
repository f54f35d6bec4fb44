"""The ingestion Cloud Function: one entry point for the landing bucket's finalized events.

Settings are read once per instance; the work is done by `ingestion.ingest.Ingestor`, which
checks the file against the data contract and loads it exactly once, or quarantines it.
"""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from contracts import ContractError, DataContract, load_contract
from ingestion.ingest import Ingestor, Landing
from ingestion.port import Warehouse
from ingestion.settings import Settings
from ingestion.storage import Storage


@functions_framework.cloud_event
def ingest(cloud_event: CloudEvent) -> None:
    """Handle one `google.cloud.storage.object.v1.finalized` event.

    Returning acknowledges the event; raising (HTTP 500) makes Eventarc redeliver it, which
    `handle` does only for transient failures of an event younger than its retry window.
    """
    _ingestor().handle(cloud_event.get_data() or {}, _event_time(cloud_event))


def _event_time(cloud_event: CloudEvent) -> datetime | None:
    """When the event happened (the CloudEvent `time`), or None when it says nothing usable."""
    try:
        when = datetime.fromisoformat(str(cloud_event["time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return when if when.tzinfo else None


@functools.cache
def _ingestor() -> Ingestor:
    settings = Settings.from_env(os.environ, Path(__file__).parent)
    storage = Storage(settings.project)
    try:
        contract: DataContract | ContractError = load_contract(settings.contract_path)
    except ContractError as error:
        # Every event then ends FAILED with this reason, acknowledged: a redelivery cannot fix
        # a contract, a deploy of a fixed one does (and re-uploads are then ingested).
        contract = error
    return Ingestor(
        contract=contract,
        landing=Landing(
            settings.landing_bucket, settings.landing_prefix, settings.quarantine_bucket
        ),
        storage=storage,
        warehouse=_warehouse(settings, storage),
        log_table=settings.log_table,
        curated_table=settings.curated_table,
        attempt_timeout=timedelta(seconds=settings.attempt_timeout_seconds),
    )


def _warehouse(settings: Settings, storage: Storage):
    """A factory of per-attempt warehouse sessions: BigQuery, or DuckDB in local mode."""
    if settings.local_warehouse is not None:
        from ingestion.duckdb_warehouse import DuckDbWarehouse

        return functools.partial(
            DuckDbWarehouse.open,
            settings.local_warehouse,
            settings.dataset,
            settings.curated_table,
            settings.log_table,
            storage.download,
        )
    from ingestion.bigquery_warehouse import BigQueryWarehouse, StagingCopies

    if not settings.staging_uri:
        raise RuntimeError("STAGING_URI is not set (resources/ingestion.py sets it on deploy)")
    warehouse = BigQueryWarehouse.connect(
        settings.project, settings.location, settings.dataset,
        copies=StagingCopies(storage, settings.staging_uri),
    )  # fmt: skip

    def session() -> AbstractContextManager[Warehouse]:
        return nullcontext(warehouse)

    return session
