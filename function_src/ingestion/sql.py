"""Every warehouse statement of the ingestion, written once in BigQuery dialect.

Generated from the data contract. BigQuery runs them as they are; the DuckDB adapter transpiles
them with sqlglot, so the same checks and the same load run in the cloud and locally.

`staging` is the staging table's reference, as the adapter names it. It holds the file as it
was read: one STRING column per contract column (null markers already NULL). Checks count the rows
breaking each rule in one scan; samples are read only for the rules that failed. The load casts
into the curated table and adds the lineage columns.

A file expected clean can skip the checks' scan: its load is screened (it fails at the first row
breaking a rule) and followed by a key count on the rows it inserted, in one transaction; only a
failure (rolled back) sends the file to the checks, which find and report what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from contracts import LINEAGE_COLUMNS, Column, DataContract, dates
from contracts.wire import STARTED

from .objects import FINAL

# Types of parameter values, as BigQuery query parameters name them.
Params = dict[str, tuple[str, Any]]

SAMPLES = 5
_INT = r"^[+-]?[0-9]+$"
# A cell a spreadsheet would run as a formula when the file is opened (CSV injection).
_FORMULA = r"^[=+\-@\t\r]"


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Params = field(default_factory=dict)


@dataclass(frozen=True)
class RowCheck:
    """A rule every row must meet: `bad` is TRUE for a row that breaks it."""

    name: str
    column: str
    bad: str
    describe: str
    """What is wrong with the rows found, for people: 'not in Adelie, Chinstrap, Gentoo'."""


def ident(name: str) -> str:
    return f"`{name}`"


def table(dataset: str, name: str) -> str:
    return f"{ident(dataset)}.{ident(name)}"


def literal(value: str) -> str:
    """A BigQuery string literal (contract values are trusted, but quoted properly)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def row_checks(contract: DataContract) -> list[RowCheck]:
    """Every row-level rule of the contract, in column order."""
    checks: list[RowCheck] = []
    for col in contract.columns:

        def add(kind: str, bad: str, describe: str, col: Column = col) -> None:
            checks.append(RowCheck(f"{col.name}.{kind}", col.name, bad, describe))

        _column_checks(contract, col, add)
    return checks


def _column_checks(contract: DataContract, col: Column, add: Callable[..., None]) -> None:
    c, typed = cell(contract, col), typed_value(contract, col)
    longest = contract.file.max_field_length
    if col.type == "STRING":  # an overlong value in a typed column fails its type check
        add("field_length", f"LENGTH({c}) > {longest}", f"longer than {longest:,} characters")
    if not col.nullable:
        add("not_null", f"{c} IS NULL", "empty, but the column is required")
    if col.type == "INT64":
        whole = f"REGEXP_CONTAINS({c}, {literal(_INT)})"
        add("type", f"{c} IS NOT NULL AND (NOT {whole} OR {typed} IS NULL)",
            "not a whole number (INT64)")  # fmt: skip
    elif col.type == "BOOL":
        trues, falses = _bool_spellings(col)
        spelled = "/".join([*trues, *falses])
        add("type", f"{c} IS NOT NULL AND {typed} IS NULL", f"not one of {spelled} (BOOL)")
    elif col.is_temporal:
        shaped = f"REGEXP_CONTAINS({c}, {literal(dates.guard(col.date_format))})"
        add("type", f"{c} IS NOT NULL AND (NOT {shaped} OR {typed} IS NULL)",
            f"not a {col.type} written {col.date_format}")  # fmt: skip
    elif col.type != "STRING":
        add("type", f"{c} IS NOT NULL AND {typed} IS NULL", f"not a valid {col.type}")
    if col.type == "FLOAT64":
        add("finite", f"IS_NAN({typed}) OR IS_INF({typed})", "NaN or infinite")
    if col.min is not None or col.max is not None:
        bounds = []
        if col.min is not None:
            bounds.append(f"{typed} < {_bound_sql(col, col.min)}")
        if col.max is not None:
            bounds.append(f"{typed} > {_bound_sql(col, col.max)}")
        finite = f"NOT IS_NAN({typed}) AND " if col.type == "FLOAT64" else ""
        add("range", f"{finite}({' OR '.join(bounds)})",
            f"outside [{_bound(col.min)}, {_bound(col.max)}]")  # fmt: skip
    if col.allowed is not None:
        allowed = ", ".join(literal(v) for v in col.allowed)
        add("allowed", f"{c} NOT IN ({allowed})", f"not one of {', '.join(col.allowed)}")
    if col.pattern is not None:
        add("pattern", f"NOT REGEXP_CONTAINS({c}, {literal(col.pattern)})",
            f"not matching {col.pattern}")  # fmt: skip
    if col.max_length is not None:
        add("max_length", f"LENGTH({c}) > {col.max_length}",
            f"longer than {col.max_length} characters")  # fmt: skip
    if col.allowed is None and contract.rejects_formulas(col):
        # (a column with allowed values is already held to exactly those)
        add("formula", f"REGEXP_CONTAINS({c}, {literal(_FORMULA)})",
            "starting like a spreadsheet formula (= + - @)")  # fmt: skip


def staging_null_markers(contract: DataContract) -> list[str]:
    """The markers the staging load reads as NULL: those every column shares (empty always).

    A column's other markers become NULL in SQL (`cell`), so one column's "NA" can be another's
    country code.
    """
    shared = set.intersection(*(set(contract.null_markers(c)) for c in contract.columns))
    return [m for m in contract.null_markers(contract.columns[0]) if m in shared]


def typed_staging_columns(contract: DataContract) -> list[str]:
    """The columns a typed staging (Warehouse.stage_typed) reads in their contract type.

    Every statement here runs unchanged on such a staging: SAFE_CAST of a FLOAT64 to FLOAT64 is
    the value itself, so the type check counts nothing and the other checks see the same values.
    Only FLOAT64 columns whose null markers are the staging ones qualify: DuckDB's typed reader
    takes exactly the FLOAT64 text SAFE_CAST takes, with the same value (tests/function/
    test_typed_staging.py), while its INT64 reader also takes '1.5', '1e3' or '0x10' (rounded)
    and BOOL, DATE and TIMESTAMP have the contract's own spellings and formats. A column with
    markers of its own is read as text, so that `cell` can turn them into NULL; a key column
    too, as BigQuery fingerprints text only.
    """
    shared = staging_null_markers(contract)
    return [
        c.name
        for c in contract.columns
        if c.type == "FLOAT64"
        and set(contract.null_markers(c)) == set(shared)
        and c.name not in contract.key_columns  # fingerprinted as text (count_query)
    ]


def cell(contract: DataContract, col: Column) -> str:
    """The column's staged text with its own null markers as NULL."""
    own = [m for m in contract.null_markers(col) if m not in staging_null_markers(contract)]
    c = ident(col.name)
    if not own:
        return c
    return f"IF({c} IN ({', '.join(literal(m) for m in own)}), NULL, {c})"


def typed_value(contract: DataContract, col: Column) -> str:
    """The column's value as its contract type; NULL where the text is not one."""
    c = cell(contract, col)
    if col.type == "STRING":
        return c
    if col.type == "BOOL":
        trues, falses = _bool_spellings(col)
        return (
            f"CASE WHEN LOWER({c}) IN ({', '.join(literal(v) for v in trues)}) THEN TRUE "
            f"WHEN LOWER({c}) IN ({', '.join(literal(v) for v in falses)}) THEN FALSE END"
        )
    if col.type == "DATE":
        return f"SAFE.PARSE_DATE({literal(col.date_format)}, {c})"
    if col.type == "TIMESTAMP":
        return f"SAFE.PARSE_TIMESTAMP({literal(col.date_format)}, {c})"
    return f"SAFE_CAST({c} AS {col.type})"


def _bool_spellings(col: Column) -> tuple[list[str], list[str]]:
    trues = list(dict.fromkeys(v.lower() for v in col.true_values or ["true"]))
    falses = list(dict.fromkeys(v.lower() for v in col.false_values or ["false"]))
    return trues, falses


def _bound_sql(col: Column, value: float | date) -> str:
    if col.type == "DATE" and isinstance(value, date):
        return f"DATE {literal(value.isoformat())}"
    if col.type == "TIMESTAMP" and isinstance(value, date):
        moment = value if isinstance(value, datetime) else datetime.combine(value, time())
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return f"TIMESTAMP {literal(moment.isoformat(sep=' '))}"
    return _number(float(value))  # type: ignore[arg-type]


def _bound(value: float | date | None) -> str:
    if value is None:
        return "…"
    return value.isoformat() if isinstance(value, date) else _number(value)


def count_query(contract: DataContract, staging: str) -> str:
    """One scan: the file's row count, its distinct key fingerprints and, per rule, how many
    rows break it (c0, c1, …).

    Keys are counted by their 64-bit fingerprint, not their text: a distinct count of numbers
    needs a fraction of the memory and time of one of strings (tens of millions of keys), and
    as many fingerprints as rows proves the keys unique. Fewer (a repeat, or a collision, about
    once in 10^4 files of 36M rows) sends the caller to `duplicate_keys_query`, which compares
    the keys themselves.
    """
    counts = [f"COUNTIF({check.bad}) AS c{i}" for i, check in enumerate(row_checks(contract))]
    keys = [ident(k) for k in contract.key_columns]
    key = keys[0] if len(keys) == 1 else f"TO_JSON_STRING(STRUCT({', '.join(keys)}))"
    # Without a key there is nothing to repeat: as many distinct keys as rows.
    distinct = f"COUNT(DISTINCT FARM_FINGERPRINT({key}))" if keys else "COUNT(*)"
    return (
        f"SELECT COUNT(*) AS row_count, {distinct} AS distinct_keys, "
        f"{', '.join(counts)} FROM {staging}"
    )


def sample_query(contract: DataContract, check: RowCheck, staging: str, row_number: str) -> str:
    """The first rows breaking one rule: their row number (where known), key and value."""
    keys = "".join(f"{ident(k)}, " for k in contract.key_columns)
    return (
        f"SELECT {row_number} AS row_number, {keys}{ident(check.column)} AS value "
        f"FROM {staging} WHERE {check.bad} ORDER BY row_number LIMIT {SAMPLES}"
    )


def duplicate_keys_query(contract: DataContract, staging: str, row_number: str) -> str:
    """Keys that appear more than once in the file, with how often and the first row."""
    keys = ", ".join(ident(k) for k in contract.key_columns)
    present = " AND ".join(f"{ident(k)} IS NOT NULL" for k in contract.key_columns)
    return (
        f"SELECT {keys}, COUNT(*) AS copies, MIN({row_number}) AS first_row, "
        f"COUNT(*) OVER () AS duplicated_keys FROM {staging} WHERE {present} "
        f"GROUP BY {keys} HAVING COUNT(*) > 1 ORDER BY first_row, copies DESC LIMIT {SAMPLES}"
    )


def _not_final(dataset: str, log_table: str) -> str:
    final = ", ".join(literal(s) for s in FINAL)
    return (
        f"NOT EXISTS (SELECT 1 FROM {table(dataset, log_table)} "
        f"WHERE batch_id = @batch_id AND status IN ({final}))"
    )


def load_statement(
    contract: DataContract,
    dataset: str,
    staging: str,
    curated: str,
    log_table: str,
    lineage: Mapping[str, Any],
    *,
    screened: bool = False,
) -> Statement:
    """Staging -> curated with lineage, unless the batch is already done (exactly once).

    `screened`: the statement fails (ERROR, so its transaction rolls back) at the first row
    breaking any rule, in the same scan that loads the rows: the checks of a file expected
    clean, without a scan of their own (`rules_hold`).
    """
    columns = [*contract.column_names, *(c.name for c in LINEAGE_COLUMNS)]
    values = [typed_value(contract, col) for col in contract.columns]
    values += [f"@{c.name.lstrip('_')}" for c in LINEAGE_COLUMNS]
    params: Params = {c.name.lstrip("_"): (c.type, lineage[c.name]) for c in LINEAGE_COLUMNS}
    where = _not_final(dataset, log_table)
    if screened:
        where += f" AND {rules_hold(contract)}"
    return Statement(
        f"INSERT INTO {table(dataset, curated)} ({', '.join(ident(c) for c in columns)}) "
        f"SELECT {', '.join(values)} FROM {staging} WHERE {where}",
        params,
    )


RULE_BROKEN = "a row breaks a rule of the data contract"
KEY_REPEATED = "a key of the batch may repeat"
"""The ERROR messages of a screened load (`rules_hold`, `keys_unique_statement`)."""


def rules_hold(contract: DataContract) -> str:
    """TRUE for a row that breaks no rule; ERROR (the statement fails) for one that does.

    A row breaks a rule where its `bad` is TRUE, as COUNTIF counts it (NULL is not TRUE).
    Which rule, how often and where is left to the checks (count_query, sample_query): this
    only says whether all of them would pass. The rules of `listed_columns` are left to
    `listed_values_statement`.
    """
    listed = {col.name for col in listed_columns(contract)}
    if not (rules := [r for r in row_checks(contract) if r.column not in listed]):
        return "TRUE"
    broken = " OR ".join(f"({rule.bad})" for rule in rules)
    return f"IF({broken}, ERROR({literal(RULE_BROKEN)}), TRUE)"


def listed_columns(contract: DataContract) -> list[Column]:
    """STRING columns with allowed values: a screened load leaves their rules to the distinct
    values it loaded (`listed_values_statement`), a handful, where its scan would test every
    row. Their rules read the value only, which the load keeps as it was staged (`cell`)."""
    return [col for col in contract.columns if col.type == "STRING" and col.allowed is not None]


def listed_values_statement(
    contract: DataContract, dataset: str, curated: str, batch_id: str
) -> Statement | None:
    """After a screened load: ERROR if a distinct value the batch loaded into a column of
    `listed_columns` breaks one of its rules (None without such columns)."""
    counts = []
    for col in listed_columns(contract):
        bad = " OR ".join(f"({r.bad})" for r in row_checks(contract) if r.column == col.name)
        # Counted, not filtered: a filter would be pushed below the DISTINCT, onto every row.
        counts.append(
            f"SELECT COUNTIF({bad}) AS broken FROM (SELECT DISTINCT {ident(col.name)} "
            f"FROM {table(dataset, curated)} WHERE _batch_id = @batch_id)"
        )
    if not counts:
        return None
    return Statement(
        f"SELECT ERROR({literal(RULE_BROKEN)}) FROM ({' UNION ALL '.join(counts)}) "
        "WHERE broken > 0 LIMIT 1",
        {"batch_id": ("STRING", batch_id)},
    )


def keys_unique_statement(
    contract: DataContract, dataset: str, curated: str, batch_id: str
) -> Statement | None:
    """After a screened load: ERROR unless the batch's rows in the curated table have as many
    key fingerprints as rows (None without a key: nothing can repeat).

    The loaded keys are typed values: two texts of one value ('01', '1') count as a repeat here
    though the file's text differs, and NULL keys count as rows without a fingerprint. Either
    only sends the batch to the checks on the file (`duplicate_keys_query`), which decide.
    """
    if not contract.key_columns:
        return None
    keys = [f"CAST({ident(k)} AS STRING)" for k in contract.key_columns]
    key = keys[0] if len(keys) == 1 else f"TO_JSON_STRING(STRUCT({', '.join(keys)}))"
    return Statement(
        f"SELECT ERROR({literal(KEY_REPEATED)}) FROM (SELECT COUNT(*) AS row_count, "
        f"COUNT(DISTINCT FARM_FINGERPRINT({key})) AS distinct_keys "
        f"FROM {table(dataset, curated)} WHERE _batch_id = @batch_id) "
        "WHERE distinct_keys < row_count",
        {"batch_id": ("STRING", batch_id)},
    )


def batch_rows(dataset: str, curated: str) -> str:
    """The number of the batch's rows in the curated table (as a scalar subquery)."""
    return f"(SELECT COUNT(*) FROM {table(dataset, curated)} WHERE _batch_id = @batch_id)"


def log_statement(
    dataset: str, log_table: str, schema: list[dict[str, str]], row: Mapping[str, Any], *,
    final: bool, computed: Mapping[str, str] | None = None,
) -> Statement:  # fmt: skip
    """One ingestion-log row. A final one (LOADED/REJECTED) only if the batch has none yet.

    `computed` gives SQL for fields known only once the statements before this one ran (the rows
    a screened load inserted, `batch_rows`); the other fields are parameters.
    """
    computed = computed or {}
    names = [f["name"] for f in schema if f["name"] in row or f["name"] in computed]
    params: Params = {f["name"]: (f["type"], row[f["name"]]) for f in schema
                      if f["name"] in row and f["name"] not in computed}  # fmt: skip
    select = f"SELECT {', '.join(computed.get(n, '@' + n) for n in names)}"
    if final:
        select += f" FROM (SELECT 1 AS one) WHERE {_not_final(dataset, log_table)}"
    return Statement(
        f"INSERT INTO {table(dataset, log_table)} ({', '.join(ident(n) for n in names)}) {select}",
        params,
    )


def final_query(dataset: str, log_table: str) -> str:
    """The batch's final log row, if any: who committed it, and how."""
    final = ", ".join(literal(s) for s in FINAL)
    return (
        f"SELECT attempt_id, status, rows_loaded, reason, quarantine_uri "
        f"FROM {table(dataset, log_table)} WHERE batch_id = @batch_id AND status IN ({final}) "
        "ORDER BY finished_at LIMIT 1"
    )


def crashed_attempts_query(dataset: str, log_table: str) -> str:
    """The batch's attempts that started before @cutoff and never logged how they ended."""
    log = table(dataset, log_table)
    return (
        f"SELECT attempt_id, started_at FROM {log} AS s WHERE s.batch_id = @batch_id "
        f"AND s.status = {literal(STARTED)} AND s.started_at < @cutoff AND NOT EXISTS ("
        f"SELECT 1 FROM {log} AS o WHERE o.batch_id = s.batch_id "
        f"AND o.attempt_id = s.attempt_id AND o.status != {literal(STARTED)})"
    )


def drop_statement(staging: str) -> str:
    return f"DROP TABLE IF EXISTS {staging}"
