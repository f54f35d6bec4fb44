"""The data contract: one file per dataset, the single description everything else derives from.

It generates the BigQuery schema of the curated table (Pulumi), drives the upload checks (the
ingestion function) and names the features and the label (the pipelines). Swapping in another
tabular dataset means writing a new contract file, not editing code.

This module depends on pydantic and PyYAML only, because it ships inside the Cloud Function's
source archive as well.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


class Column(_Strict):
    """One column of the dataset, with the constraints every uploaded value must meet."""

    name: str
    type: ColumnType
    description: str = ""
    nullable: bool = True
    role: Role = "feature"
    min: float | None = Field(default=None, description="inclusive lower bound (numeric columns)")
    max: float | None = Field(default=None, description="inclusive upper bound (numeric columns)")
    allowed: list[str] | None = Field(default=None, description="the only values allowed")
    pattern: str | None = Field(default=None, description="regular expression a value must match")
    max_length: int | None = Field(default=None, ge=1, description="longest STRING value")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _COLUMN_NAME.match(name):
            raise ValueError(
                f"column name {name!r} must start with a letter and hold only letters, digits "
                "and underscores (BigQuery column rules; a leading '_' is kept for lineage columns)"
            )
        return name

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(
                    f"pattern {pattern!r} is not a valid regular expression: {err}"
                ) from None
        return pattern

    @model_validator(mode="after")
    def _constraints_fit_type(self) -> Column:
        numeric = self.type in ("INT64", "FLOAT64")
        if (self.min is not None or self.max is not None) and not numeric:
            raise ValueError(f"column {self.name}: min/max apply to INT64 and FLOAT64 only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column {self.name}: min {self.min} is greater than max {self.max}")
        if (self.pattern or self.max_length) and self.type != "STRING":
            raise ValueError(f"column {self.name}: pattern/max_length apply to STRING only")
        if self.allowed is not None and self.type not in ("STRING", "INT64"):
            raise ValueError(f"column {self.name}: allowed values apply to STRING and INT64 only")
        if self.allowed is not None and not self.allowed:
            raise ValueError(f"column {self.name}: allowed must list at least one value")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in ("INT64", "FLOAT64")

    @property
    def is_categorical(self) -> bool:
        return self.type in ("STRING", "BOOL") or self.allowed is not None


class FileRules(_Strict):
    """How an uploaded file must be shaped before any row is read."""

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    header: Literal[True] = True
    encoding: Literal["utf-8"] = "utf-8"
    max_bytes: int = Field(default=2 * 1024**3, ge=1, description="largest accepted file")
    null_markers: list[str] = Field(
        default_factory=lambda: [""], description="cell values read as NULL"
    )
    line_endings: Literal["lf", "any"] = Field(
        default="lf", description="'lf': Unix line endings only; 'any': CRLF accepted as well"
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
    """A tabular dataset: columns, key, label and file rules."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    version: int = Field(ge=1)
    description: str = ""
    file: FileRules = Field(default_factory=FileRules)
    columns: list[Column] = Field(min_length=2)

    @model_validator(mode="after")
    def _roles_are_coherent(self) -> DataContract:
        names = [c.name for c in self.columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate column names: {', '.join(duplicates)}")
        lowered = [n.lower() for n in names]
        if len(set(lowered)) != len(lowered):
            raise ValueError("column names must differ in more than case (BigQuery ignores case)")
        labels = [c.name for c in self.columns if c.role == "label"]
        if len(labels) != 1:
            raise ValueError(f"exactly one column must have role 'label', found {labels or 'none'}")
        if not self.key_columns:
            raise ValueError("at least one column must have role 'key' (the primary key)")
        for col in self.columns:
            if col.role in ("key", "label") and col.nullable:
                raise ValueError(f"column {col.name}: a {col.role} column cannot be nullable")
        if not self.feature_columns:
            raise ValueError("at least one column must have role 'feature'")
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
        problems = []
        for e in err.errors():
            where = _location(raw, e["loc"])
            problems.append(f"{path}: {where}: {e['msg'].removeprefix('Value error, ')}")
        raise ContractError("\n".join(problems)) from None


def _location(raw: dict, loc: tuple) -> str:
    """'columns[3] (body_mass_g).min' rather than pydantic's bare tuple."""
    parts: list[str] = []
    node: object = raw
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) else None
            parts[-1] += f"[{item}]" + (f" ({name})" if isinstance(name, str) else "")
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"
