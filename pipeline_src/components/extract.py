"""extract: a snapshot of the curated table as a dataset artifact (Parquet), streamed.

The rows never sit whole in the task's memory: BigQuery's result is read with the BigQuery Storage
Read API in Arrow record batches (one ordered stream), DuckDB's locally as a record-batch reader,
and each batch goes to the Parquet file as it arrives. The order (by identity, then batch) is the
query's, so the same snapshot gives the same file.

The curated table is append-only: a corrected row arrives as a new upload with the same key. The
snapshot holds, for each key, the newest row ingested at or before the snapshot time (without a key
in the contract: every row ingested by then), so the same `snapshot_time` always gives the same data
(BigQuery here; the DuckDB warehouse locally, through the same SQL transpiled by sqlglot).
"""

from typing import NamedTuple

from kfp.dsl import Dataset, Output

from pipeline_src.components.common import feature_spec, local_environment, pipeline_component


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


def query_bigquery(project: str, location: str, sql: str, moment):
    """Run a snapshot query on BigQuery; its rows as Arrow record batches, streamed by the
    BigQuery Storage Read API (a single stream, as the query orders its rows)."""
    from google.cloud import bigquery, bigquery_storage

    client = bigquery.Client(project=project, location=location or None)
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("snapshot_time", "TIMESTAMP", moment)],
        labels={"component": "extract"},
    )
    rows = client.query(sql, job_config=config).result()
    reader = bigquery_storage.BigQueryReadClient()
    return rows.to_arrow_iterable(bqstorage_client=reader), lambda: rows.to_arrow().schema


def query_local(local_root: str, dataset: str, table: str, sql: str, moment):
    """Run a snapshot query on the local DuckDB warehouse; its rows as Arrow record batches."""
    from local.warehouse import connect, table_exists, to_duckdb

    path = local_environment(local_root).warehouse_path
    con = connect(path, read_only=True)
    if not table_exists(con, dataset, table):
        con.close()
        raise ValueError(f"the local warehouse {path} has no table {dataset}.{table}: load data")
    reader = con.sql(to_duckdb(sql), params={"snapshot_time": moment}).to_arrow_reader(100_000)

    def batches():
        try:
            yield from reader
        finally:
            con.close()

    return batches(), lambda: reader.schema


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


def counts_of(query, *args) -> dict:
    """The one row of the counts query, whichever engine streamed it."""
    import pyarrow as pa

    batches, schema = query(*args)
    return pa.Table.from_batches(list(batches), schema=schema()).to_pylist()[0]


@pipeline_component(
    packages=("google-cloud-bigquery", "google-cloud-bigquery-storage", "pyarrow"),
    helpers=(
        feature_spec,
        local_environment,
        snapshot_queries,
        snapshot_moment,
        query_bigquery,
        query_local,
        write_batches,
        counts_of,
    ),
)
def extract(
    contract: dict,
    project: str,
    bq_location: str,
    dataset: str,
    table: str,
    snapshot: Output[Dataset],
    snapshot_time: str = "",
    local_root: str = "",
) -> NamedTuple("Outputs", [("snapshot_id", str), ("rows", int)]):
    """Snapshot the curated table at `snapshot_time` (default: now) into a Parquet dataset.

    The artifact's metadata holds the snapshot's time and id, its rows, the rows ingested up to
    then (superseded versions included) and the ingestion batches they came from.
    """
    from collections import namedtuple

    if not dataset or not table:
        raise ValueError("extract needs the warehouse dataset and table")
    spec = feature_spec(contract)
    moment, snapshot_id = snapshot_moment(snapshot_time)
    rows_sql, counts_sql = snapshot_queries(spec, dataset, table)

    if local_root:
        where = (local_root, dataset, table)
        query = query_local
    else:
        if not project:
            raise ValueError("extract needs the GCP project of the warehouse")
        where = (project, bq_location)
        query = query_bigquery
    written = write_batches(*query(*where, rows_sql, moment), snapshot.path)
    counts = counts_of(query, *where, counts_sql, moment)

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
