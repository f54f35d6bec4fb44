"""The local warehouse: a DuckDB file standing in for the stack's BigQuery dataset.

A BigQuery dataset is a DuckDB schema of the same name and tables keep their BigQuery ids, so
`dataset.table` references in BigQuery SQL keep working once sqlglot has transpiled them. SQL is
written once, in BigQuery dialect (named parameters as `@name`), and run here through `query`.
Sessions run in UTC: BigQuery TIMESTAMP values are UTC instants (DuckDB's TIMESTAMPTZ).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pyarrow

    from local.environment import LocalEnvironment

# BigQuery column types and their DuckDB equivalents.
DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "INTEGER": "BIGINT",
    "FLOAT64": "DOUBLE",
    "FLOAT": "DOUBLE",
    "BOOL": "BOOLEAN",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMPTZ",
}


def connect(path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse file, in UTC. DuckDB allows one writing process at a time."""
    import duckdb

    if read_only and not Path(path).is_file():
        raise FileNotFoundError(f"no local warehouse at {path}: load data first (make demo)")
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    return con


def to_duckdb(sql: str) -> str:
    """BigQuery SQL as DuckDB SQL (`@name` parameters become `$name`)."""
    import sqlglot

    return ";\n".join(sqlglot.transpile(sql, read="bigquery", write="duckdb"))


def query(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None
) -> pyarrow.Table:
    """Run BigQuery-dialect SQL on the local warehouse; the result as an Arrow table."""
    return con.sql(to_duckdb(sql), params=dict(params or {})).to_arrow_table()


def table_exists(con: duckdb.DuckDBPyConnection, dataset: str, table: str) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [dataset, table],
    ).fetchall()
    return bool(found[0][0])


def create_table(
    con: duckdb.DuckDBPyConnection, dataset: str, table: str, schema: Sequence[Mapping[str, str]]
) -> None:
    """Create `dataset.table` from a BigQuery JSON schema, unless it exists."""
    columns = ", ".join(
        f'"{f["name"]}" {DUCKDB_TYPES[f["type"].upper()]}'
        + (" NOT NULL" if f.get("mode") == "REQUIRED" else "")
        for f in schema
    )
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{dataset}"')
    con.execute(f'CREATE TABLE IF NOT EXISTS "{dataset}"."{table}" ({columns})')


def append_rows(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    table: str,
    schema: Sequence[Mapping[str, str]],
    rows: Iterable[Mapping[str, Any]],
) -> int:
    """Append rows (dicts keyed by column) to a table, creating it from `schema` if needed."""
    import pyarrow as pa

    create_table(con, dataset, table, schema)
    names = [f["name"] for f in schema]
    batch = pa.Table.from_pylist([{n: row.get(n) for n in names} for row in rows])
    if batch.num_rows:
        con.register("_incoming_rows", batch)
        try:
            con.execute(f'INSERT INTO "{dataset}"."{table}" BY NAME SELECT * FROM _incoming_rows')
        finally:
            con.unregister("_incoming_rows")
    return batch.num_rows


def load_penguins_sample(env: LocalEnvironment, rows: int | None = None) -> int:
    """Fill the curated table with the palmerpenguins sample as one batch; return the row count.

    A stand-in for the ingestion path (CSV upload -> function -> warehouse) so the pipeline can
    run on a fresh machine (the sample's rows: contracts/sample.py); lineage columns name the
    sample as the source.
    """
    from contracts import LINEAGE_COLUMNS
    from contracts.sample import load_sample

    contract = env.contract
    frame = load_sample(contract)
    frame = frame.head(rows) if rows else frame
    values = {
        "_source_uri": "sample:palmerpenguins",
        "_source_generation": 1,
        "_batch_id": "sample-palmerpenguins",
        "_ingested_at": datetime.now(UTC),
    }
    lineage = {c.name: values[c.name] for c in LINEAGE_COLUMNS}  # every lineage column, filled
    records = [
        {**{k: (None if v != v else v) for k, v in row.items()}, **lineage}  # NaN -> NULL
        for row in frame.to_dict(orient="records")
    ]
    with connect(env.ensure().warehouse_path) as con:
        return append_rows(
            con, env.dataset, contract.name, contract.bigquery_schema(lineage=True), records
        )
