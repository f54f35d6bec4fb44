"""The BigQuery warehouse: the ingestion port's cloud adapter.

- Staging is a load job from a copy of exactly the event's generation (`StagingCopies`: a load
  URI can name no generation, so loading the object's own URI would read whatever it holds by
  then, and it reads `*` as a wildcard), every column STRING so that type problems become row
  checks with samples, not a failed load. The copy is a server-side rewrite under a hex name
  (the file never passes through the function), removed with the staging table; the staging
  table expires after a day and the copy with the artifacts bucket's `tmp/` lifecycle rule if an
  attempt dies before removing them.
- Checks and the load are the BigQuery-dialect SQL of `sql`, as query jobs with named parameters.
- The commit is one multi-statement transaction. BigQuery aborts all but one of concurrent
  transactions that modify the same table; the loser retries, meets the "no final row yet" guard,
  and changes nothing.
- Job ids are deterministic per attempt and step (`ingest_<batch>_<attempt>_<step>`, a commit's
  step naming a digest of what it writes): a retried API call after a timeout finds its job
  instead of starting a second one.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import DataContract

from . import sql
from .objects import Batch, Check, FileRejected
from .sql import Params, Statement
from .storage import Storage

STAGING_EXPIRY = timedelta(days=1)
COMMIT_ATTEMPTS = 5
_CONCURRENT = re.compile(r"concurrent update|could not serialize access", re.IGNORECASE)


def job_id(batch: Batch, step: str) -> str:
    """Deterministic per attempt and step; job ids allow letters, digits, _ and - only."""
    return f"ingest_{batch.batch_id}_{batch.attempt_id[:8]}_{step}"


class StagingCopies:
    """Per-attempt copies of the event's generation, for load jobs, under `gs://bucket/prefix/`."""

    def __init__(self, storage: Storage, staging_uri: str):
        if not staging_uri.startswith("gs://"):
            raise ValueError(f"STAGING_URI must be gs://bucket/prefix/, not {staging_uri!r}")
        self.storage = storage
        self.bucket, _, prefix = staging_uri.removeprefix("gs://").partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def name(self, batch: Batch) -> str:
        """Hex digits only: nothing a load URI could read as a pattern."""
        return f"{self.prefix}{batch.batch_id}-{batch.attempt_id[:8]}.csv"

    def copy(self, batch: Batch) -> str:
        return self.storage.copy_generation(batch.object, self.bucket, self.name(batch))

    def remove(self, batch: Batch) -> None:
        self.storage.delete(f"gs://{self.bucket}/{self.name(batch)}")


class BigQueryWarehouse:
    row_number = "NULL"  # a load job does not keep the file's row order: samples name keys

    def __init__(self, client: Any, dataset: str, copies: StagingCopies):
        self.client, self.dataset, self.copies = client, dataset, copies

    @classmethod
    def connect(
        cls, project: str, location: str, dataset: str, copies: StagingCopies, **client_args: Any
    ):
        from google.cloud import bigquery

        client = bigquery.Client(project=project, location=location, **client_args)
        return cls(client, dataset, copies)

    def _table(self, name: str) -> str:
        return f"{self.client.project}.{self.dataset}.{name}"

    def staging_ref(self, batch: Batch) -> str:
        return sql.table(self.dataset, batch.staging_table)

    def ensure_tables(self, contract: DataContract | None) -> None:
        """Pulumi creates the curated table and the log (resources/warehouse.py)."""

    def stage(
        self, batch: Batch, contract: DataContract, columns: Sequence[str] | None = None
    ) -> None:
        from google.api_core.exceptions import BadRequest, Conflict
        from google.cloud import bigquery

        rules = contract.file
        names = contract.column_names if columns is None else columns
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.CSV,
            schema=[bigquery.SchemaField(c, "STRING") for c in names],
            skip_leading_rows=1,
            field_delimiter=rules.delimiter,
            quote_character='"',
            encoding="UTF-8",
            allow_quoted_newlines=True,
            allow_jagged_rows=False,
            max_bad_records=0,
            null_markers=sql.staging_null_markers(contract),
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
            labels={"managed-by": "ingestion"},
        )
        jid = job_id(batch, "stage")
        source = self.copies.copy(batch)
        try:
            job = self.client.load_table_from_uri(
                source, self._table(batch.staging_table), job_id=jid, job_config=config
            )
        except Conflict:  # this attempt's load was already started
            job = self.client.get_job(jid)
        try:
            job.result()
        except BadRequest:
            raise FileRejected(_load_problem(job.errors or [])) from None
        table = self.client.get_table(self._table(batch.staging_table))
        table.expires = datetime.now(UTC) + STAGING_EXPIRY
        self.client.update_table(table, ["expires"])

    def stage_typed(
        self, batch: Batch, contract: DataContract, columns: Sequence[str] | None = None
    ) -> bool:
        """No typed fast path: a typed load job that fails on one value would cost a second load
        job against the table's daily load-job quota (docs/scaling.md), and BigQuery's CSV
        reader is not proven to take exactly what SAFE_CAST takes."""
        return False

    def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        config = _query_config(params or {})
        return [dict(row.items()) for row in self.client.query(sql, job_config=config).result()]

    def commit(self, statements: Sequence[Statement], batch: Batch) -> None:
        from google.api_core.exceptions import BadRequest, Conflict

        script = "\n".join(
            ["BEGIN TRANSACTION;", *(f"{s.sql};" for s in statements), "COMMIT TRANSACTION;"]
        )
        params: Params = {}
        for statement in statements:
            params.update(statement.params)
        # An attempt commits several times (its STARTED row, its outcome): each commit's jobs are
        # named by what it writes, so a retried call finds its own job and no other.
        digest = hashlib.sha256(repr((script, sorted(params.items()))).encode()).hexdigest()[:8]
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            jid = job_id(batch, f"{digest}_commit{attempt}")
            try:
                job = self.client.query(
                    script, job_config=_query_config(params), job_id=jid, job_retry=None
                )
            except Conflict:
                job = self.client.get_job(jid)
            try:
                job.result()
                return
            except BadRequest as error:
                if attempt == COMMIT_ATTEMPTS or not _CONCURRENT.search(str(error)):
                    raise
                time.sleep(0.5 * attempt)  # another attempt of this batch is committing

    def drop_staging(self, batch: Batch) -> None:
        try:
            self.client.delete_table(self._table(batch.staging_table), not_found_ok=True)
        finally:
            self.copies.remove(batch)


def _query_config(params: Params) -> Any:
    from google.cloud import bigquery

    return bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter(name, type_, value)
            for name, (type_, value) in params.items()
        ],
        labels={"managed-by": "ingestion"},
    )


def _load_problem(errors: list[dict[str, Any]]) -> Check:
    """A failed load job's errors as a check outcome (BigQuery names byte positions)."""
    messages = [e.get("message", "") for e in errors if e.get("message")]
    text = " ".join(messages)
    samples = [{"error": m[:300]} for m in messages[:5]]
    first = next((m for m in messages if "position" in m or "line" in m), text)[:300]
    if re.search(r"contains only|too many values|column position", text, re.IGNORECASE):
        return Check.failed("rows.ragged", f"a row has the wrong number of fields: {first}",
                            samples=samples)  # fmt: skip
    if re.search(r"close double quote|quoted", text, re.IGNORECASE):
        return Check.failed("rows.quotes", f"unbalanced quotes: {first}", samples=samples)
    if re.search(r"UTF-8|encoding|bad character", text, re.IGNORECASE):
        return Check.failed("encoding.utf8", f"not valid UTF-8: {first}", samples=samples)
    return Check.failed("rows.parse", f"the file cannot be read as CSV: {first}", samples=samples)
