"""extract: a snapshot of the curated table as a dataset artifact (Parquet), streamed.

The rows never sit whole in the task's memory: the warehouse port streams them in Arrow record
batches (BigQuery's Storage Read API in one ordered stream; locally DuckDB's record-batch reader),
and each batch goes to the Parquet file as it arrives. The order (by identity, then batch) is the
query's, so the same snapshot gives the same file.

The curated table is append-only: a corrected row arrives as a new upload with the same key. The
snapshot holds, for each key, the newest row ingested at or before the snapshot time (without a key
in the contract: every row ingested by then), so the same `snapshot_time` always gives the same data
(BigQuery here; the DuckDB warehouse locally, through the same SQL transpiled by sqlglot).
"""

from typing import NamedTuple

from kfp.dsl import Dataset, Output

from pipeline_src.components.common import pipeline_component


def snapshot_queries(spec: dict, dataset: str, table: str) -> tuple[str, str]:
    """The snapshot's BigQuery SQL and the SQL of its counts; `@snapshot_time` is a parameter."""
    lineage = ["_batch_id", "_ingested_at"]
    columns = ", ".join(f"`{c['name']}`" for c in spec["columns"]) + ", " + ", ".join(lineage)
    keys = ", ".join(f"`{k}`" for k in spec["keys"])
    source = f"`{dataset}`.`{table}`"
    rows = f"SELECT {columns} FROM {source} WHERE _ingested_at <= @snapshot_time"
    if keys:
        rows += (
            f" QUALIFY ROW_NUMBER() OVER (PARTITION BY {keys} "
            "ORDER BY _ingested_at DESC, _batch_id DESC) = 1"
        )
    # Sorted by identity (NULLs first on both engines): the same snapshot, the same bytes.
    order = [*spec["identity"], "_batch_id"]
    rows += " ORDER BY " + ", ".join(f"`{c}` ASC NULLS FIRST" for c in order)
    counts = (
        "SELECT COUNT(*) AS rows_ingested, COUNT(DISTINCT _batch_id) AS batches, "
        f"MAX(_ingested_at) AS last_ingested_at FROM {source} WHERE _ingested_at <= @snapshot_time"
    )
    return rows, counts


def snapshot_moment(snapshot_time: str):
    """The snapshot's instant (UTC) and its id (to the second), e.g. 20240501t030000z.

    The instant keeps its microseconds: truncating "now" would leave out rows ingested earlier
    in the same second. The metadata records it whole, so a rerun can reproduce the snapshot.
    """
    from datetime import UTC, datetime

    if snapshot_time:
        try:
            moment = datetime.fromisoformat(snapshot_time.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"snapshot_time {snapshot_time!r} is not an ISO 8601 time such as "
                "2024-05-01T03:00:00Z (leave it empty for now)"
            ) from None
        if moment.tzinfo is None:
            raise ValueError(f"snapshot_time {snapshot_time!r} needs a time zone, e.g. Z for UTC")
    else:
        moment = datetime.now(UTC)
    moment = moment.astimezone(UTC)
    return moment, moment.strftime("%Y%m%dt%H%M%Sz")


def write_batches(batches, empty_schema, path: str) -> int:
    """Record batches to one Parquet file as they come; the rows written."""
    import pyarrow.parquet as pq

    writer, rows = None, 0
    try:
        for batch in batches:
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # no rows: an empty file with the query's columns
            writer = pq.ParquetWriter(path, empty_schema())
    finally:
        if writer is not None:
            writer.close()
    return rows


@pipeline_component(
    packages=("google-cloud-bigquery", "google-cloud-bigquery-storage", "pyarrow"),
)
def extract(
    contract: dict,
    project: str,
    bq_location: str,
    dataset: str,
    table: str,
    snapshot: Output[Dataset],
    snapshot_time: str = "",
) -> NamedTuple("Outputs", [("snapshot_id", str), ("rows", int)]):
    """Snapshot the curated table at `snapshot_time` (default: now) into a Parquet dataset.

    The artifact's metadata holds the snapshot's time and id, its rows, the rows ingested up to
    then (superseded versions included) and the ingestion batches they came from.
    """
    from collections import namedtuple

    from pipeline_src.components.common import feature_spec
    from pipeline_src.components.extract import snapshot_moment, snapshot_queries, write_batches
    from pipeline_src.ports import backend

    if not dataset or not table:
        raise ValueError("extract needs the warehouse dataset and table")
    spec = feature_spec(contract)
    moment, snapshot_id = snapshot_moment(snapshot_time)
    rows_sql, counts_sql = snapshot_queries(spec, dataset, table)
    warehouse = backend().warehouse(project, bq_location, dataset, job_label="extract")
    at = {"snapshot_time": moment}
    written = write_batches(*warehouse.stream(rows_sql, at, tables=[table]), snapshot.path)
    counts = warehouse.read(counts_sql, at, tables=[table]).to_pylist()[0]

    last = counts["last_ingested_at"]
    snapshot.metadata.update(
        {
            "snapshot_id": snapshot_id,
            "snapshot_time": moment.isoformat(),
            "rows": written,
            "rows_ingested": counts["rows_ingested"],
            "superseded": counts["rows_ingested"] - written,
            "batches": counts["batches"],
            "last_ingested_at": last.isoformat() if last is not None else "",
            "source": f"{dataset}.{table}",
        }
    )
    print(
        f"snapshot {snapshot_id} of {dataset}.{table}: {written} rows "
        f"({counts['rows_ingested']} ingested in {counts['batches']} batches)"
    )
    return namedtuple("Outputs", ["snapshot_id", "rows"])(snapshot_id, written)
