"""The data contract: one file per dataset, the single description everything else derives from.

It generates the BigQuery schema of the curated table (Pulumi), drives the upload checks (the
ingestion function) and names the features and the label (the pipelines). Swapping in another
tabular dataset means writing a new contract file, not editing code.

This module depends on pydantic, PyYAML and google-re2 only, because it ships inside the Cloud
Function's source archive as well (with dates.py and messages.py).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.dates import DEFAULT_FORMATS, format_problem

ColumnType = Literal["STRING", "INT64", "FLOAT64", "BOOL", "DATE", "TIMESTAMP"]
Role = Literal["feature", "key", "label", "metadata"]

# BigQuery column names: letters, digits, underscores, not starting with a digit. Names starting
# with "_" are kept for the lineage columns the platform adds to every curated row.
_COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")


class LineageColumn(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    type: ColumnType
    description: str


# Added to every curated row by the ingestion load, so each row can be traced to the exact object
# generation it came from, and the table partitioned by ingestion date.
LINEAGE_COLUMNS: tuple[LineageColumn, ...] = (
    LineageColumn(name="_source_uri", type="STRING", description="gs:// URI of the uploaded file"),
    LineageColumn(
        name="_source_generation",
        type="INT64",
        description="Cloud Storage generation of the uploaded object",
    ),
    LineageColumn(
        name="_batch_id",
        type="STRING",
        description="Ingestion batch id: one per loaded object generation (a span)",
    ),
    LineageColumn(
        name="_ingested_at", type="TIMESTAMP", description="When the batch was committed (UTC)"
    ),
)
PARTITION_COLUMN = "_ingested_at"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Bound = float | date | datetime


class Column(_Strict):
    """One column of the dataset, with the constraints every uploaded value must meet."""

    name: str = Field(description="the warehouse column (letters, digits, _)")
    type: ColumnType
    source: str | None = Field(
        default=None, description="the file's header for this column, when it is not `name`"
    )
    description: str = ""
    nullable: bool = True
    role: Role = "feature"
    min: Bound | None = Field(default=None, description="inclusive lower bound (numbers, dates)")
    max: Bound | None = Field(default=None, description="inclusive upper bound (numbers, dates)")
    allowed: list[str] | None = Field(default=None, description="the only values allowed")
    pattern: str | None = Field(default=None, description="RE2 expression a value must match")
    max_length: int | None = Field(default=None, ge=1, description="longest STRING value")
    format: str | None = Field(
        default=None, description="DATE/TIMESTAMP format, e.g. '%m/%d/%y' (default ISO)"
    )
    true_values: list[str] | None = Field(
        default=None, description="BOOL spellings of true, any case (default: true)"
    )
    false_values: list[str] | None = Field(
        default=None, description="BOOL spellings of false, any case (default: false)"
    )
    null_markers: list[str] | None = Field(
        default=None, description="cells read as NULL in this column (default: the file's)"
    )
    reject_formulas: bool | None = Field(
        default=None, description="STRING cells starting with = + - @ rejected (default: file's)"
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _COLUMN_NAME.match(name):
            raise ValueError(
                f"column name {name!r} must start with a letter and hold only letters, digits "
                "and underscores (BigQuery column rules; a leading '_' is kept for lineage "
                "columns); keep the file's header in `source`"
            )
        return name

    @field_validator("source")
    @classmethod
    def _valid_source(cls, source: str | None) -> str | None:
        if source is not None and (not source or any(c in source for c in "\r\n")):
            raise ValueError("source must be the header's text, non-empty, on one line")
        return source

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            problem = re2_problem(pattern)
            if problem:
                raise ValueError(f"pattern {pattern!r} {problem}")
        return pattern

    @model_validator(mode="after")
    def _constraints_fit_type(self) -> Column:
        for problem in _type_problems(self):
            raise ValueError(f"column {self.name}: {problem}")
        return self

    @property
    def header(self) -> str:
        """The column's name in the file's header."""
        return self.source if self.source is not None else self.name

    @property
    def date_format(self) -> str:
        """The format DATE/TIMESTAMP values are parsed with (explicit, or ISO)."""
        return self.format or DEFAULT_FORMATS[self.type]

    @property
    def is_numeric(self) -> bool:
        return self.type in ("INT64", "FLOAT64")

    @property
    def is_temporal(self) -> bool:
        return self.type in ("DATE", "TIMESTAMP")

    @property
    def is_categorical(self) -> bool:
        return self.type in ("STRING", "BOOL") or self.allowed is not None


def _type_problems(col: Column):
    """Each constraint that does not fit the column's type (the first one is reported)."""
    for bound in (col.min, col.max):
        if bound is None:
            continue
        if col.is_numeric and isinstance(bound, date):
            yield "min/max of a number column are numbers"
        elif col.type == "DATE" and (isinstance(bound, datetime) or not isinstance(bound, date)):
            yield "min/max of a DATE column are dates such as 2007-01-31"
        elif col.type == "TIMESTAMP" and not isinstance(bound, date):
            yield "min/max of a TIMESTAMP column are times such as 2007-01-31 12:00:00"
        elif not col.is_numeric and not col.is_temporal:
            yield "min/max apply to INT64, FLOAT64, DATE and TIMESTAMP only"
    if col.min is not None and col.max is not None and _ordered(col.min) > _ordered(col.max):
        yield f"min {col.min} is greater than max {col.max}"
    if (col.pattern or col.max_length) and col.type != "STRING":
        yield "pattern/max_length apply to STRING only"
    if col.allowed is not None and col.type not in ("STRING", "INT64"):
        yield "allowed values apply to STRING and INT64 only"
    if col.allowed is not None and not col.allowed:
        yield "allowed must list at least one value"
    if col.format is not None and not col.is_temporal:
        yield "format applies to DATE and TIMESTAMP only"
    if col.is_temporal and (problem := format_problem(col.date_format, col.type)):
        yield problem
    if (col.true_values is not None or col.false_values is not None) and col.type != "BOOL":
        yield "true_values/false_values apply to BOOL only"
    if col.type == "BOOL":
        trues = {v.lower() for v in col.true_values or ["true"]}
        falses = {v.lower() for v in col.false_values or ["false"]}
        if not trues or not falses or trues & falses or "" in trues | falses:
            yield "true_values and false_values must be non-empty, different spellings"
    if col.reject_formulas is not None and col.type != "STRING":
        yield "reject_formulas applies to STRING only"


def _ordered(bound: Bound) -> tuple:
    """Bounds compare as numbers, or as instants (a date is its midnight)."""
    if isinstance(bound, datetime):
        return (bound.replace(tzinfo=None),)
    if isinstance(bound, date):
        return (datetime(bound.year, bound.month, bound.day),)
    return (bound,)


def re2_problem(pattern: str) -> str | None:
    """Why RE2 (BigQuery's and DuckDB's regular expressions) refuses `pattern`, or None.

    Python's `re` accepts lookarounds and backreferences that RE2 does not: such a pattern would
    pass here and then fail every upload's check in the warehouse.
    """
    import re2

    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(pattern, options)
    except re2.error as err:
        detail = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else err
        return f"is not a valid RE2 regular expression (BigQuery's and DuckDB's): {detail}"
    return None


class FileRules(_Strict):
    """How an uploaded file must be shaped before any row is read.

    The defaults accept what spreadsheets and field tools write (a UTF-8 byte-order mark, CRLF
    line endings, columns in any order); the strict settings are opt-in.
    """

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    header: Literal[True] = True
    encoding: Literal["utf-8"] = "utf-8"
    max_bytes: int = Field(default=2 * 1024**3, ge=1, description="largest accepted file")
    null_markers: list[str] = Field(
        default_factory=lambda: [""], description="cell values read as NULL"
    )
    bom: Literal["accept", "reject"] = Field(
        default="accept", description="a UTF-8 byte-order mark (Excel's 'CSV UTF-8') at the start"
    )
    line_endings: Literal["lf", "any"] = Field(
        default="any", description="'any': LF or CRLF (Excel); 'lf': Unix line endings only"
    )
    header_order: Literal["any", "exact"] = Field(
        default="any", description="'any': columns found by header name; 'exact': contract order"
    )
    extra_columns: Literal["reject", "ignore"] = Field(
        default="reject", description="columns in the file that the contract does not name"
    )
    max_field_length: int = Field(
        default=10_000, ge=1, description="longest cell, in characters, in any column"
    )
    reject_formulas: bool = Field(
        default=True,
        description="reject text cells starting with = + - @ (spreadsheet formula injection)",
    )

    @field_validator("delimiter")
    @classmethod
    def _usable_delimiter(cls, delimiter: str) -> str:
        if delimiter in ('"', "\n", "\r"):
            raise ValueError(f"delimiter {delimiter!r} cannot separate CSV fields")
        return delimiter


class DataContract(_Strict):
    """A tabular dataset: columns, key (optional), label and file rules.

    What identifies a row: its key columns when the contract names some (a corrected row is a new
    upload with the same key, and snapshots keep the newest row per key). Without a key, a row is
    identified by its content and its lineage (the object generation it came from): the curated
    table only grows, a snapshot holds every row ingested up to its time, and a re-upload of the
    same rows adds them again. Exactly-once holds either way: it is per object generation (the
    batch id), not per row.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    version: int = Field(ge=1)
    description: str = ""
    file: FileRules = Field(default_factory=FileRules)
    columns: list[Column] = Field(min_length=2)

    @model_validator(mode="after")
    def _roles_are_coherent(self) -> DataContract:
        for problem in _contract_problems(self):
            raise ValueError(problem)
        return self

    @property
    def key_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.role == "key"]

    @property
    def label_column(self) -> str:
        return next(c.name for c in self.columns if c.role == "label")

    @property
    def feature_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.role == "feature"]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def headers(self) -> list[str]:
        """The file's header names, in contract order."""
        return [c.header for c in self.columns]

    def null_markers(self, col: Column) -> list[str]:
        """The cells read as NULL in `col`: its own markers, else the file's (empty always)."""
        markers = col.null_markers if col.null_markers is not None else self.file.null_markers
        return list(dict.fromkeys(["", *markers]))

    def rejects_formulas(self, col: Column) -> bool:
        own = col.reject_formulas
        return col.type == "STRING" and (self.file.reject_formulas if own is None else own)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"contract {self.name} has no column {name!r}")

    def bigquery_schema(self, *, lineage: bool = True) -> list[dict[str, str]]:
        """The curated table's schema in BigQuery's JSON form, lineage columns last."""
        fields = [
            {
                "name": c.name,
                "type": c.type,
                "mode": "NULLABLE" if c.nullable else "REQUIRED",
                "description": c.description,
            }
            for c in self.columns
        ]
        if lineage:
            fields += [
                {"name": c.name, "type": c.type, "mode": "REQUIRED", "description": c.description}
                for c in LINEAGE_COLUMNS
            ]
        return fields


def _contract_problems(contract: DataContract):
    names = [c.name for c in contract.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        yield f"duplicate column names: {', '.join(duplicates)}"
    lowered = [n.lower() for n in names]
    if len(set(lowered)) != len(lowered):
        yield "column names must differ in more than case (BigQuery ignores case)"
    headers = contract.headers
    repeated = sorted({h for h in headers if headers.count(h) > 1})
    if repeated:
        yield f"two columns read the same header: {', '.join(map(repr, repeated))}"
    labels = [c.name for c in contract.columns if c.role == "label"]
    if len(labels) != 1:
        yield f"exactly one column must have role 'label', found {labels or 'none'}"
    for col in contract.columns:
        if col.role in ("key", "label") and col.nullable:
            yield f"column {col.name}: a {col.role} column cannot be nullable"
    if not contract.feature_columns:
        yield "at least one column must have role 'feature'"


class ContractError(ValueError):
    """A contract file that cannot be used; the message names the file and each problem."""


def load_contract(path: str | Path) -> DataContract:
    """Read and validate a contract file (YAML)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContractError(f"{path}: contract file not found") from None
    except yaml.YAMLError as err:
        raise ContractError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ContractError(f"{path}: a contract is a mapping of name, version, columns…")
    try:
        return DataContract.model_validate(raw)
    except ValidationError as err:
        from contracts.messages import problems

        raise ContractError("\n".join(f"{path}: {p}" for p in problems(err, raw))) from None
