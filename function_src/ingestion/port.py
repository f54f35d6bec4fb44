"""What the ingestion needs from a warehouse. Two adapters: BigQuery (cloud), DuckDB (local).

SQL reaching an adapter is BigQuery dialect with `@name` parameters (see `sql`); an adapter runs
it as its engine needs. Everything else the ingestion does is the same code on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from contracts import DataContract

from .objects import Batch
from .sql import Params, Statement


class Warehouse(Protocol):
    dataset: str
    row_number: str
    """SQL for a staging row's data-row number in the file, or NULL where the engine loses it."""

    def staging_ref(self, batch: Batch) -> str:
        """The batch's staging table as SQL names it."""

    def ensure_tables(self, contract: DataContract | None) -> None:
        """The curated table and the ingestion log exist (Pulumi creates them in the cloud).

        Without a contract (it could not be read), the ingestion log only."""

    def stage(
        self, batch: Batch, contract: DataContract, columns: Sequence[str] | None = None
    ) -> None:
        """Load the file into the batch's staging table, every column as STRING.

        `columns` names the file's columns in its order (head.staging_columns); by default the
        contract's, in its order. Cells equal to a staging null marker
        (sql.staging_null_markers) are NULL.

        Raises FileRejected when the file cannot be read as CSV (ragged rows, unbalanced
        quotes, bytes that are not UTF-8 beyond the head), naming the line.
        """

    def stage_typed(
        self, batch: Batch, contract: DataContract, columns: Sequence[str] | None = None
    ) -> bool:
        """Stage the file with sql.typed_staging_columns in their type, the others as STRING.

        The fast path for clean files: the engine's typed reader instead of text cast again,
        loaded in one pass (a screened load, sql.load_statement). Returns False when this
        warehouse has none (then the caller stages as text). A commit reading this staging
        raises TypedReadFailed, rolled back, where the reader meets a value or line it cannot
        take or a screened statement's ERROR fires; the caller then stages the file as text
        (`stage`), which replaces this staging.
        """

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """Run a query; its rows as dicts."""

    def commit(self, statements: Sequence[Statement], batch: Batch) -> None:
        """Run the statements as one transaction: all of them take effect, or none."""

    def drop_staging(self, batch: Batch) -> None:
        """Remove the batch's staging table (and any local copy of the file)."""
