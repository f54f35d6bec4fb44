"""The local warehouse: a DuckDB file standing in for the stack's BigQuery dataset.

The DuckDB helpers are the ingestion function's own (`function_src/ingestion/duckdb_warehouse.py`,
which ships in the function's archive): one set, re-exported here for the local components. SQL is
written once, in BigQuery dialect (named parameters as `@name`), and run here through `query`.

The sample dataset reaches the warehouse the way every file does: as a CSV uploaded to the
(emulated) landing bucket and ingested by the function (`ingest_sample`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from function_src.ingestion.duckdb_warehouse import (
    DUCKDB_TYPES,
    append_rows,
    connect,
    create_table,
    query,
    table_exists,
    to_duckdb,
)

if TYPE_CHECKING:
    from local.environment import LocalEnvironment

__all__ = [
    "DUCKDB_TYPES",
    "append_rows",
    "connect",
    "create_table",
    "ingest_sample",
    "query",
    "sample_object",
    "table_exists",
    "to_duckdb",
    "write_sample",
]


def sample_object(env: LocalEnvironment) -> str:
    """The landing object the contract's shipped sample is uploaded as."""
    from contracts.sample import sample_file_name

    return f"incoming/{sample_file_name(env.contract)}"


def write_sample(env: LocalEnvironment, path: Path, rows: int | None = None) -> int:
    """The contract's shipped sample (contracts/sample.py) as the file an analyst would upload;
    its row count."""
    from contracts.sample import write_sample_file

    return write_sample_file(env.contract, path, rows)


def ingest_sample(env: LocalEnvironment, rows: int | None = None) -> int:
    """Ingest the sample through the function, as an upload; return the rows loaded."""
    import tempfile

    from local.ingestion import LocalLanding

    with tempfile.TemporaryDirectory() as scratch, LocalLanding(env) as landing:
        path = Path(scratch) / Path(sample_object(env)).name
        write_sample(env, path, rows)
        outcome = landing.ingest(landing.upload_file(sample_object(env), path))
    if outcome["status"] != "LOADED":
        raise RuntimeError(f"the sample was not loaded: {outcome}")
    return int(outcome["rows_loaded"])
