"""The DuckDB warehouse: a file standing in for the stack's BigQuery dataset (local mode).

A BigQuery dataset is a DuckDB schema of the same name and tables keep their BigQuery ids, so
`dataset.table` references in BigQuery SQL keep working once sqlglot has transpiled them. SQL is
written once, in BigQuery dialect (named parameters as `@name`), and run here through `query`.
Sessions run in UTC: BigQuery TIMESTAMP values are UTC instants (DuckDB's TIMESTAMPTZ).

The helpers at the top are the one set every local component uses (`local/warehouse.py`
re-exports them); `DuckDbWarehouse` is the ingestion port's local adapter.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .objects import Batch, Check, FileRejected, StoredObject, TypedReadFailed
from .scratch import attempt_scratch
from .sql import Params, Statement, drop_statement

if TYPE_CHECKING:
    import duckdb
    import pyarrow

    from contracts import DataContract

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
    """BigQuery SQL as DuckDB SQL (`@name` parameters become `$name`).

    `SAFE.PARSE_DATE(format, text)` and `SAFE.PARSE_TIMESTAMP(format, text)` become
    `TRY_STRPTIME(text, format)` cast to DATE / TIMESTAMPTZ (the session is UTC, as BigQuery's
    default time zone): sqlglot's own rendering prefixes a default year and keeps a SAFE. that
    DuckDB cannot run. The contract's formats use only directives both engines read alike
    (contracts/dates.py), so the format string passes through unchanged. FARM_FINGERPRINT,
    which DuckDB lacks, becomes its HASH.
    """
    return ";\n".join(duckdb_statements(sql))


def duckdb_statements(sql: str) -> list[str]:
    """Each statement of BigQuery SQL (a script), as DuckDB SQL (see `to_duckdb`)."""
    import sqlglot

    return [
        tree.transform(_bigquery_for_duckdb).sql(dialect="duckdb")
        for tree in sqlglot.parse(sql, read="bigquery")
        if tree is not None
    ]


def _bigquery_for_duckdb(node: Any) -> Any:
    from sqlglot import exp

    if isinstance(node, exp.SafeFunc) and isinstance(node.this, exp.StrToDate | exp.StrToTime):
        parse = node.this
        parsed = exp.func("TRY_STRPTIME", parse.this, parse.args["format"])
        return exp.cast(parsed, "DATE" if isinstance(parse, exp.StrToDate) else "TIMESTAMPTZ")
    if isinstance(node, exp.FarmFingerprint):
        # Another 64-bit hash: only whether fingerprints repeat is used, never their values.
        return exp.func("HASH", *node.expressions)
    return node


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


# --- the ingestion port's local adapter ---------------------------------------------------------

# One commit at a time per warehouse file. DuckDB lets concurrent transactions append to the same
# table, so "insert unless the batch is done" is only exactly-once when commits are serialised;
# other processes cannot interfere (DuckDB locks the file for one writing process).
_COMMIT_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
_ATTACH_GUARD = threading.Lock()

_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_COLUMNS_FOUND = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")

SCRATCH = "ingest_scratch"
"""The in-memory database that holds staging tables."""

Fetch = Callable[[StoredObject, Path], None]
"""Copies an object's bytes to a local file (the DuckDB adapter reads files, not URIs)."""


class DuckDbWarehouse:
    """The ingestion port on a DuckDB file: staging with read_csv, transpiled BigQuery SQL."""

    row_number = "rowid + 1"  # DuckDB keeps a CSV's row order in the table it loads it into

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        path: Path,
        dataset: str,
        curated: str,
        log_table: str,
        fetch: Fetch,
        scratch: Path,
    ):
        self.con, self.path, self.dataset = con, path, dataset
        self.curated, self.log_table = curated, log_table
        self.fetch, self.scratch = fetch, scratch
        self._typed = False
        """The staging is a typed view (stage_typed): its queries read the file itself."""

    @classmethod
    @contextmanager
    def open(
        cls,
        path: str | Path,
        dataset: str,
        curated: str,
        log_table: str,
        fetch: Fetch,
        memory_limit: str | None = None,
    ) -> Iterator[DuckDbWarehouse]:
        """One connection for one attempt; closed (and the file released) at the end."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with connect(path) as con, attempt_scratch() as scratch:
            if memory_limit:
                con.execute(f"SET memory_limit = '{memory_limit}'")
            _keep_try_cast(con)
            # Staging tables live in memory (spilled to disk beyond the memory limit): they are
            # scratch, so writing them to the warehouse file would only cost time.
            # Connections to one file in one process share its catalog, so two attempts'
            # "ATTACH IF NOT EXISTS" can race ("database … already exists"): one at a time.
            with _ATTACH_GUARD:
                con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {SCRATCH}")
            yield cls(con, path, dataset, curated, log_table, fetch, scratch)

    def staging_ref(self, batch: Batch) -> str:
        return f"`{SCRATCH}`.`{batch.staging_table}`"

    def ensure_tables(self, contract: DataContract | None) -> None:
        from contracts.tables import INGESTION_LOG

        with self._commit_lock():
            if contract is not None:
                create_table(self.con, self.dataset, self.curated, contract.bigquery_schema())
            create_table(self.con, self.dataset, self.log_table, INGESTION_LOG.schema)

    def stage(
        self, batch: Batch, contract: DataContract, columns: Sequence[str] | None = None
    ) -> None:
        names = contract.column_names if columns is None else columns
        local = self._local_copy(batch)
        self._drop_relation(batch)  # the typed view, if the fast path tried first
        try:
            self.con.execute(
                f'CREATE OR REPLACE TABLE "{SCRATCH}"."{batch.staging_table}" AS '
                f"SELECT * FROM {_read_csv(local, contract, dict.fromkeys(names, 'VARCHAR'))}"
            )
        except Exception as error:  # duckdb.Error subclasses; the message says what and where
            if "CSV Error" not in str(error) and "unicode" not in str(error).lower():
                raise
            raise FileRejected(_csv_problem(str(error))) from None
        finally:
            local.unlink(missing_ok=True)

    def stage_typed(
        self, batch: Batch, contract: DataContract, columns: Sequence[str] | None = None
    ) -> bool:
        """A view reading the local copy with DuckDB's typed reader: nothing is materialised, so
        a one-pass load parses the file once (a parse costs less than a copy)."""
        from .sql import typed_staging_columns

        names = contract.column_names if columns is None else columns
        if set(names) - set(contract.column_names):
            # Ignored extra columns: no query reads them, and DuckDB checks the bytes (UTF-8) of
            # the columns a query reads only; staged as text, every column is read.
            return False
        typed = set(typed_staging_columns(contract))
        types = {n: DUCKDB_TYPES[contract.column(n).type] if n in typed else "VARCHAR"
                 for n in names}  # fmt: skip
        local = self._local_copy(batch)
        self.con.execute(
            f'CREATE OR REPLACE VIEW "{SCRATCH}"."{batch.staging_table}" AS '
            f"SELECT * FROM {_read_csv(local, contract, types)}"
        )
        self._typed = True
        return True

    def _local_copy(self, batch: Batch) -> Path:
        """The attempt's local copy of the object, fetched once (a typed staging that falls
        back to text reads the same copy)."""
        local = self.scratch / f"{batch.attempt_id}.csv"
        if not local.exists():
            self.fetch(batch.object, local)
        return local

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        values = {name: value for name, (_, value) in (params or {}).items()}
        return query(self.con, sql, values).to_pylist()

    def commit(self, statements: Sequence[Statement], batch: Batch) -> None:
        import duckdb

        with self._commit_lock():
            # Rows land in the curated table in parallel: their order there means nothing.
            self.con.execute("SET preserve_insertion_order = false")
            self.con.begin()
            try:
                for statement in statements:
                    values = {n: v for n, (_, v) in statement.params.items()}
                    self.con.execute(to_duckdb(statement.sql), values)
                self.con.commit()
            except (
                duckdb.ConversionException, duckdb.InvalidInputException,
                duckdb.ConstraintException,
            ) as error:  # fmt: skip
                # A typed staging's reader refused a value or line, a screened load's ERROR
                # (sql.rules_hold and the statements after it) or a required column's NOT NULL
                # (its rule is among those checked after the load): rolled back, no verdict.
                self.con.rollback()
                if not self._typed:
                    raise
                raise TypedReadFailed(str(error).splitlines()[0]) from None
            except BaseException:
                self.con.rollback()
                raise
            finally:
                self.con.execute("RESET preserve_insertion_order")

    def drop_staging(self, batch: Batch) -> None:
        try:
            self._drop_relation(batch)
        finally:
            (self.scratch / f"{batch.attempt_id}.csv").unlink(missing_ok=True)

    def _drop_relation(self, batch: Batch) -> None:
        """Drop the staging, a view or a table (DuckDB's DROP names the kind)."""
        if self._typed:
            self.con.execute(f'DROP VIEW IF EXISTS "{SCRATCH}"."{batch.staging_table}"')
            self._typed = False
        else:
            self.con.execute(to_duckdb(drop_statement(self.staging_ref(batch))))

    def _commit_lock(self) -> threading.Lock:
        key = str(self.path.resolve())
        with _LOCKS_GUARD:
            return _COMMIT_LOCKS.setdefault(key, threading.Lock())


def _keep_try_cast(con: duckdb.DuckDBPyConnection) -> None:
    """TRY_CAST over a typed staging view stays a TRY_CAST (NULL where the text is no value).

    DuckDB's type_pushdown optimizer moves a cast of a column read_csv reads as VARCHAR into the
    reader, which then fails the whole query on a value the cast would have made NULL: the load
    would raise where the SQL says NULL. It costs nothing measurable to keep here.
    """
    known = con.execute("SELECT name FROM duckdb_optimizers() WHERE name = 'type_pushdown'")
    if known.fetchall():
        con.execute("SET disabled_optimizers = 'type_pushdown'")


def _read_csv(local: Path, contract: DataContract, types: Mapping[str, str]) -> str:
    """read_csv of the local copy by the contract's file rules, columns named and typed."""
    from .sql import staging_null_markers

    rules = contract.file
    columns = "{" + ", ".join(f"{_quote(c)}: {_quote(t)}" for c, t in types.items()) + "}"
    nulls = "[" + ", ".join(_quote(m) for m in staging_null_markers(contract)) + "]"
    return (
        f"read_csv({_quote(str(local))}, header = true, columns = {columns}, "
        f"auto_detect = false, strict_mode = true, delim = {_quote(rules.delimiter)}, "
        f"quote = '\"', escape = '\"', nullstr = {nulls}, encoding = 'utf-8')"
    )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _csv_problem(message: str) -> Check:
    """DuckDB's read_csv error as a check outcome: what is wrong, on which line."""
    found = _CSV_LINE.search(message)
    line = int(found.group(1)) if found else None
    where = f"line {line}" if line else "the file"
    original = re.search(r"Original Line: (.*)", message)
    samples = [{"line": line, "text": original.group(1)[:200]}] if original and line else []
    if columns := _COLUMNS_FOUND.search(message):
        expected, got = columns.groups()
        return Check.failed("rows.ragged",
                            f"{where} has {got} fields; the header has {expected}",
                            samples=samples)  # fmt: skip
    if "unterminated quote" in message:
        return Check.failed(
            "rows.quotes", f"{where} opens a quoted field that is never closed", samples=samples
        )
    if "unicode" in message.lower():
        return Check.failed(
            "encoding.utf8", f"{where} is not valid UTF-8 (the contract requires utf-8)",
            samples=samples,
        )  # fmt: skip
    if "Maximum line size" in message:
        return Check.failed("rows.line_size", f"{where} is too long to be read", samples=samples)
    first = message.splitlines()[0] if message else "unreadable CSV"
    return Check.failed("rows.parse", f"{where} cannot be read as CSV: {first}", samples=samples)
