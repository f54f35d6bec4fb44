"""extract: a snapshot of the curated table as a dataset artifact (Parquet).

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
    """Run a snapshot query on BigQuery; the result as an Arrow table."""
    from google.cloud import bigquery

    client = bigquery.Client(project=project, location=location or None)
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("snapshot_time", "TIMESTAMP", moment)],
        labels={"component": "extract"},
    )
    return client.query(sql, job_config=config).to_arrow()


def query_local(local_root: str, dataset: str, table: str, sql: str, moment):
    """Run a snapshot query on the local DuckDB warehouse; the result as an Arrow table."""
    from local.warehouse import connect, query, table_exists

    path = local_environment(local_root).warehouse_path
    with connect(path, read_only=True) as con:
        if not table_exists(con, dataset, table):
            raise ValueError(
                f"the local warehouse {path} has no table {dataset}.{table}: load data"
            )
        return query(con, sql, {"snapshot_time": moment})


@pipeline_component(
    packages=("google-cloud-bigquery", "pyarrow"),
    helpers=(
        feature_spec,
        local_environment,
        snapshot_queries,
        snapshot_moment,
        query_bigquery,
        query_local,
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

    import pyarrow.parquet as pq

    if not dataset or not table:
        raise ValueError("extract needs the warehouse dataset and table")
    spec = feature_spec(contract)
    moment, snapshot_id = snapshot_moment(snapshot_time)
    rows_sql, counts_sql = snapshot_queries(spec, dataset, table)

    if local_root:
        rows = query_local(local_root, dataset, table, rows_sql, moment)
        counts = query_local(local_root, dataset, table, counts_sql, moment).to_pylist()[0]
    else:
        if not project:
            raise ValueError("extract needs the GCP project of the warehouse")
        rows = query_bigquery(project, bq_location, rows_sql, moment)
        counts = query_bigquery(project, bq_location, counts_sql, moment).to_pylist()[0]

    # Sorted by identity: the same snapshot gives byte-identical data, whatever the scan's order.
    rows = rows.sort_by([(k, "ascending") for k in [*spec["identity"], "_batch_id"]])
    pq.write_table(rows, snapshot.path)
    last = counts["last_ingested_at"]
    snapshot.metadata.update(
        {
            "snapshot_id": snapshot_id,
            "snapshot_time": moment.isoformat(),
            "rows": rows.num_rows,
            "rows_ingested": counts["rows_ingested"],
            "superseded": counts["rows_ingested"] - rows.num_rows,
            "batches": counts["batches"],
            "last_ingested_at": last.isoformat() if last is not None else "",
            "source": f"{dataset}.{table}",
        }
    )
    print(
        f"snapshot {snapshot_id} of {dataset}.{table}: {rows.num_rows} rows "
        f"({counts['rows_ingested']} ingested in {counts['batches']} batches)"
    )
    return namedtuple("Outputs", ["snapshot_id", "rows"])(snapshot_id, rows.num_rows)
