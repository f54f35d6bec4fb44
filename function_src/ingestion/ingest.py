"""The ingestion of one uploaded object generation, exactly once.

1. Outside the landing prefix, or not a .csv: logged and ignored.
2. A batch already LOADED or REJECTED (a redelivered event): a DUPLICATE, nothing else happens.
3. Head checks (size, encoding, line endings, header), then the whole file into a staging table
   and the contract's row checks as SQL, then duplicate keys. Where the warehouse can, the file
   is first staged typed and loaded in one pass (the fast path for clean files: one parse, the
   load fails at the first broken rule, the keys it inserted are counted before its commit);
   anything there rolls back and stages the file as text to be checked, so results and reasons
   never depend on the path.
4. Rejected: the file is copied to quarantine with a JSON report beside it, first; then the log
   records the rejection. Accepted: one transaction inserts the rows (cast, with lineage) and the
   log row. Either final write happens only if the batch has no final row yet, so concurrent or
   redelivered attempts end with one of them committed and the others DUPLICATE; an attempt that
   crashes before its commit leaves nothing behind but a staging table.
5. One structured log line per attempt, `{"event": "ingestion", "status": …}`, for monitoring.

No event can poison the function (be redelivered for days, or load the wrong bytes):
- A malformed or impossible event (data not an object, no bucket/name/generation/size, a size
  below 0 or beyond Cloud Storage's 5 TiB) and an event for another bucket than the landing one:
  a FAILED log row with the reason, and acknowledged, as no redelivery can fix them.
- An object generation that can no longer be read (deleted, overwritten where no old versions are
  kept): an IGNORED log row saying so, acknowledged. Reads and loads are of the event's generation.
- Anything else is taken as transient: a FAILED log row, and raised so Eventarc redelivers the
  event, but only while the event is younger than the retry window (`RETRY_WINDOW`, by the
  CloudEvent's `time`): past it the FAILED row says the ingestion gave up, and it is acknowledged.
- Every attempt that gets to work writes a STARTED row first. One killed mid-way (out of memory,
  timeout, crash) leaves that row alone; the next delivery of the batch, once the attempt is
  older than the function's timeout, adds its FAILED row ("cut short"), so no crash is invisible.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from contracts import ContractError, DataContract
from contracts.tables import INGESTION_LOG
from contracts.wire import (
    DUPLICATE,
    FAILED,
    IGNORED,
    LOADED,
    LOG_EVENT,
    LOG_EVENT_FIELD,
    LOG_STATUS_FIELD,
    REJECTED,
    STARTED,
)

from . import sql
from .head import HEAD_BYTES, check_head, staging_columns
from .objects import (
    Batch,
    Check,
    FileRejected,
    StoredObject,
    TypedReadFailed,
    Unfixable,
)
from .port import Warehouse
from .storage import Storage

RETRY_WINDOW = timedelta(hours=6)
"""How long a transient failure is retried: Eventarc redelivers with backoff (up to 10 min apart)
for as long as it keeps the event; past this age the event is acknowledged with a FAILED row."""


@dataclass(frozen=True)
class Outcome:
    status: str
    source_uri: str
    batch_id: str | None = None
    rows_in_file: int | None = None
    rows_loaded: int | None = None
    reason: str | None = None
    quarantine_uri: str | None = None
    duration_ms: int | None = None
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class Landing:
    """Where uploads arrive and rejects go."""

    bucket: str
    prefix: str
    quarantine_bucket: str


class Ingestor:
    def __init__(
        self,
        contract: DataContract | ContractError,
        landing: Landing,
        storage: Storage,
        warehouse: Callable[[], AbstractContextManager[Warehouse]],
        log_table: str,
        curated_table: str,
        out: TextIO | None = None,
        attempt_timeout: timedelta = timedelta(seconds=540),
        retry_window: timedelta = RETRY_WINDOW,
    ):
        self.contract, self.landing, self.storage = contract, landing, storage
        self.warehouse, self.log_table, self.curated = warehouse, log_table, curated_table
        self.out = out
        self.attempt_timeout = attempt_timeout
        """The function's timeout: an attempt older than this with no outcome was cut short."""
        self.retry_window = retry_window

    def handle(self, event_data: Any, event_time: datetime | None = None) -> Outcome:
        """Ingest the object a finalized event names; the outcome is also logged.

        Returns when the event is done with (Eventarc acknowledges it); raises when a
        redelivery may succeed. `event_time` is the CloudEvent's `time`: it bounds the retries.
        """
        try:
            obj = StoredObject.from_event(event_data)
        except ValueError as error:
            return self._unfixable(Batch.of_malformed(event_data), FAILED, str(error))
        if obj.bucket != self.landing.bucket:
            return self._unfixable(Batch.start(obj), FAILED, (
                f"the event is for bucket {obj.bucket!r}, not the landing bucket "
                f"{self.landing.bucket!r} (is a trigger misrouted?)"))  # fmt: skip
        started = time.perf_counter()
        if not obj.name.startswith(self.landing.prefix) or not obj.name.lower().endswith(".csv"):
            why = (
                f"outside the landing prefix {self.landing.prefix!r}"
                if not obj.name.startswith(self.landing.prefix)
                else "not a .csv file"
            )
            return self._emit(Outcome(IGNORED, obj.uri, reason=why))
        batch = Batch.start(obj)
        if isinstance(self.contract, ContractError):
            # A redelivery cannot fix a contract; a deploy of a fixed one does.
            return self._unfixable(
                batch, FAILED, f"the data contract cannot be used: {self.contract}"
            )
        with ExitStack() as opened:
            try:
                warehouse = opened.enter_context(self.warehouse())
            except Exception as error:
                # Nothing can be logged in the warehouse, but monitoring still sees the FAILED;
                # the raise makes Eventarc redeliver once the warehouse answers again.
                reason = f"the warehouse could not be opened: {type(error).__name__}: {error}"
                outcome = Outcome(FAILED, obj.uri, batch.batch_id, reason=reason[:2000])
                if self._given_up(event_time):
                    return self._emit(self._giving_up(outcome, event_time), started)
                self._emit(outcome, started)
                raise
            try:
                outcome = self._ingest(warehouse, batch)
            except Exception as error:
                return self._failed(warehouse, batch, error, event_time, started)
            finally:
                warehouse.drop_staging(batch)
        return self._emit(outcome, started)

    def _failed(
        self, warehouse: Warehouse, batch: Batch, error: Exception,
        event_time: datetime | None, started: float,
    ) -> Outcome:  # fmt: skip
        """An attempt that raised: logged; re-raised (so redelivered) unless no retry can help."""
        uri, retry = batch.object.uri, False
        if isinstance(error, Unfixable):
            outcome = Outcome(error.status, uri, batch.batch_id, reason=error.reason[:2000])
        else:
            reason = f"{type(error).__name__}: {error}"[:2000]
            outcome = Outcome(FAILED, uri, batch.batch_id, reason=reason)
            if self._given_up(event_time):
                outcome = self._giving_up(outcome, event_time)
            else:
                retry = True
        try:
            self._log_row(warehouse, batch, outcome)
        finally:
            self._emit(outcome, started)
        if retry:
            raise error
        return outcome

    def _unfixable(self, batch: Batch, status: str, reason: str) -> Outcome:
        """An event no redelivery can fix: its log row (when the warehouse opens), acknowledged."""
        outcome = Outcome(status, batch.object.uri, batch.batch_id, reason=reason[:2000])
        try:
            with self.warehouse() as warehouse:
                usable = not isinstance(self.contract, ContractError)
                warehouse.ensure_tables(self.contract if usable else None)
                self._log_row(warehouse, batch, outcome)
        except Exception as error:  # the log line below still reaches monitoring
            outcome = replace(outcome, reason=f"{outcome.reason} (no log row: {error})"[:2000])
        return self._emit(outcome)

    def _given_up(self, event_time: datetime | None) -> bool:
        return event_time is not None and datetime.now(UTC) - event_time > self.retry_window

    def _giving_up(self, outcome: Outcome, event_time: datetime | None) -> Outcome:
        age = datetime.now(UTC) - event_time if event_time else timedelta(0)
        hours = age.total_seconds() / 3600
        reason = (f"{outcome.reason}; given up: the event is {hours:.1f} h old, past the "
                  f"{self.retry_window} retry window (upload the file again)")  # fmt: skip
        return replace(outcome, reason=reason[:2000])

    def _ingest(self, warehouse: Warehouse, batch: Batch) -> Outcome:
        obj = batch.object
        warehouse.ensure_tables(self.contract)
        done = self._final_row(warehouse, batch)
        if done:
            outcome = _duplicate(batch, done)
            self._log_row(warehouse, batch, outcome)
            return outcome
        self._log_row(warehouse, batch, Outcome(STARTED, obj.uri, batch.batch_id))
        self._resolve_crashed(warehouse, batch)
        self.storage.pin(obj)
        head = self.storage.head(obj, HEAD_BYTES)
        checks = check_head(head, obj.size, self.contract)
        rows_in_file = None
        if all(c.passed for c in checks):
            columns = staging_columns(head, self.contract)
            if warehouse.stage_typed(batch, self.contract, columns):
                try:
                    return self._loaded_in_one_pass(warehouse, batch, checks)
                except TypedReadFailed:
                    pass  # something to report (or a fingerprint collision): checked as text
            try:
                warehouse.stage(batch, self.contract, columns)
                rows_in_file, row_checks = self._row_checks(warehouse, batch)
                checks += [Check.ok("rows.readable"), *row_checks]
            except FileRejected as rejected:
                checks.append(rejected.check)
        failed = [c for c in checks if not c.passed]
        if failed:
            reason = "; ".join(c.reason for c in failed[:3])
            if len(failed) > 3:
                reason += f" (and {len(failed) - 3} more problems, see the report)"
            report = self._report(batch, checks, reason, rows_in_file)
            quarantine_uri = self.storage.quarantine(obj, self.landing.quarantine_bucket, report)
            outcome = Outcome(REJECTED, obj.uri, batch.batch_id, rows_in_file, 0, reason,
                              quarantine_uri, checks=tuple(checks))  # fmt: skip
            statements = [self._log_statement(warehouse.dataset, batch, outcome, final=True)]
        else:
            outcome = Outcome(LOADED, obj.uri, batch.batch_id, rows_in_file, rows_in_file,
                              checks=tuple(checks))  # fmt: skip
            statements = [
                sql.load_statement(self.contract, warehouse.dataset, warehouse.staging_ref(batch),
                                   self.curated, self.log_table, self._lineage(batch)),
                self._log_statement(warehouse.dataset, batch, outcome, final=True),
            ]  # fmt: skip
        warehouse.commit(statements, batch)
        return self._committed(warehouse, batch, outcome)

    def _committed(self, warehouse: Warehouse, batch: Batch, outcome: Outcome) -> Outcome:
        """Ours, unless a concurrent attempt committed first: then its outcome stands, ours
        changed nothing. Rows counted by the commit itself (a one-pass load) are read back
        from our log row."""
        done = self._final_row(warehouse, batch)
        if done and done["attempt_id"] != batch.attempt_id:
            outcome = _duplicate(batch, done)
            self._log_row(warehouse, batch, outcome)
        elif done and outcome.rows_loaded is None and done["rows_loaded"] is not None:
            loaded = int(done["rows_loaded"])
            outcome = replace(outcome, rows_in_file=loaded, rows_loaded=loaded)
        return outcome

    def _loaded_in_one_pass(
        self, warehouse: Warehouse, batch: Batch, checks: list[Check]
    ) -> Outcome:
        """A typed staging loaded as if clean, in one parse: the load itself fails at the first
        row breaking a rule, and the keys it inserted are counted before the commit.

        Raises TypedReadFailed (nothing committed) where that finds anything, or the typed
        reader meets a value it cannot take: the caller then stages the file as text and
        checks it, which finds, counts and samples each problem exactly as it always did. So
        the checks' results and reasons do not depend on which path ran; a clean file's checks
        are those the text path would report, all passed.
        """
        contract, obj, dataset = self.contract, batch.object, warehouse.dataset
        checks = [*checks, Check.ok("rows.readable"), *_passed_row_checks(contract)]
        outcome = Outcome(LOADED, obj.uri, batch.batch_id, checks=tuple(checks))
        rows = sql.batch_rows(dataset, self.curated)
        load = sql.load_statement(contract, dataset, warehouse.staging_ref(batch), self.curated,
                                  self.log_table, self._lineage(batch), screened=True)  # fmt: skip
        # Checked on what the load inserted: the listed columns' distinct values, the keys.
        after = (sql.listed_values_statement, sql.keys_unique_statement)
        checked = [f(contract, dataset, self.curated, batch.batch_id) for f in after]
        log = self._log_statement(dataset, batch, outcome, final=True,
                                  computed={"rows_in_file": rows, "rows_loaded": rows})  # fmt: skip
        warehouse.commit([load, *(s for s in checked if s), log], batch)
        return self._committed(warehouse, batch, outcome)

    def _lineage(self, batch: Batch) -> dict[str, Any]:
        return {
            "_source_uri": batch.object.uri,
            "_source_generation": batch.object.generation,
            "_batch_id": batch.batch_id,
            "_ingested_at": datetime.now(UTC),
        }

    def _row_checks(self, warehouse: Warehouse, batch: Batch) -> tuple[int, list[Check]]:
        """The row checks' outcomes from their counts; samples of the rows breaking a rule, and
        the repeated keys, read only when there are some."""
        contract, staging = self.contract, warehouse.staging_ref(batch)
        rules = sql.row_checks(contract)
        (counts,) = warehouse.query(sql.count_query(contract, staging))
        rows = int(counts["row_count"])
        checks = []
        for i, rule in enumerate(rules):
            bad = int(counts[f"c{i}"] or 0)
            if not bad:
                checks.append(Check.ok(rule.name, rule.column))
                continue
            samples = warehouse.query(
                sql.sample_query(contract, rule, staging, warehouse.row_number)
            )
            where = ", ".join(f"row {s['row_number']}" for s in samples if s["row_number"])
            values = ", ".join(repr(_short(s["value"])) for s in samples)
            checks.append(
                Check.failed(
                    rule.name,
                    f"column {rule.column}: {bad:,} of {rows:,} rows {rule.describe} "
                    f"(e.g. {values}{' at ' + where if where else ''})",
                    column=rule.column, count=bad, samples=[_jsonable(s) for s in samples],
                )
            )  # fmt: skip
        # Keys are unique when they have as many fingerprints as rows: else look for repeats.
        duplicates = []
        if int(counts["distinct_keys"]) < rows:
            duplicates = warehouse.query(
                sql.duplicate_keys_query(contract, staging, warehouse.row_number)
            )
        key = ", ".join(contract.key_columns)
        if not key:  # no key: rows are told apart by content and lineage only
            return rows, checks
        if duplicates:
            total = int(duplicates[0]["duplicated_keys"])
            shown = ", ".join(
                "/".join(str(d[k]) for k in contract.key_columns) + f" ×{d['copies']}"
                for d in duplicates
            )
            checks.append(Check.failed(
                "key.unique", f"key ({key}): {total:,} value(s) appear more than once ({shown})",
                column=key, count=total, samples=[_jsonable(d) for d in duplicates],
            ))  # fmt: skip
        else:
            checks.append(Check.ok("key.unique", key))
        return rows, checks

    def _resolve_crashed(self, warehouse: Warehouse, batch: Batch) -> None:
        """FAILED rows for earlier attempts of the batch that started and never finished."""
        cutoff = batch.started_at - self.attempt_timeout
        crashed = warehouse.query(
            sql.crashed_attempts_query(warehouse.dataset, self.log_table),
            {"batch_id": ("STRING", batch.batch_id), "cutoff": ("TIMESTAMP", cutoff)},
        )
        for row in crashed:
            attempt = replace(batch, attempt_id=row["attempt_id"], started_at=row["started_at"])
            self._log_row(warehouse, attempt, Outcome(FAILED, batch.object.uri, batch.batch_id,
                reason=f"attempt {row['attempt_id']} was cut short (killed, out of memory or "
                f"past the {self.attempt_timeout} timeout): it left no outcome; resolved by "
                f"attempt {batch.attempt_id}"))  # fmt: skip

    def _final_row(self, warehouse: Warehouse, batch: Batch) -> dict[str, Any] | None:
        rows = warehouse.query(
            sql.final_query(warehouse.dataset, self.log_table),
            {"batch_id": ("STRING", batch.batch_id)},
        )
        return rows[0] if rows else None

    def _log_statement(
        self, dataset: str, batch: Batch, outcome: Outcome, *, final: bool,
        computed: dict[str, str] | None = None,
    ) -> sql.Statement:  # fmt: skip
        finished = datetime.now(UTC)
        row = {
            "batch_id": batch.batch_id,
            "attempt_id": batch.attempt_id,
            "source_uri": batch.object.uri,
            "source_generation": batch.object.generation,
            "status": outcome.status,
            "rows_loaded": outcome.rows_loaded,
            "rows_in_file": outcome.rows_in_file,
            "reason": outcome.reason,
            "checks": json.dumps([c.as_json() for c in outcome.checks], default=str),
            "quarantine_uri": outcome.quarantine_uri,
            # Generation 0: a malformed event, which names no object whose size is known.
            "bytes": batch.object.size if batch.object.generation else None,
            "started_at": batch.started_at,
            "finished_at": None if outcome.status == STARTED else finished,
            "duration_ms": None
            if outcome.status == STARTED
            else int((finished - batch.started_at).total_seconds() * 1000),
        }
        schema = list(INGESTION_LOG.schema)
        return sql.log_statement(
            dataset, self.log_table, schema, row, final=final, computed=computed
        )

    def _log_row(self, warehouse: Warehouse, batch: Batch, outcome: Outcome) -> None:
        """A log row that is not final (DUPLICATE, FAILED): every attempt leaves a trace."""
        warehouse.commit(
            [self._log_statement(warehouse.dataset, batch, outcome, final=False)], batch
        )

    def _report(
        self, batch: Batch, checks: list[Check], reason: str, rows_in_file: int | None
    ) -> dict[str, Any]:
        obj = batch.object
        return {
            "status": REJECTED,
            "reason": reason,
            "source_uri": obj.uri,
            "generation": obj.generation,
            "bytes": obj.size,
            "batch_id": batch.batch_id,
            "contract": {"name": self.contract.name, "version": self.contract.version},
            "rows_in_file": rows_in_file,
            "problems": [c.as_json() for c in checks if not c.passed],
            "checks": [c.as_json() for c in checks],
            "rejected_at": datetime.now(UTC).isoformat(),
            "what_to_do": "fix the problems listed and upload the file again (a new upload is a "
            "new generation and is checked afresh); the original stays in the landing bucket",
        }

    def _emit(self, outcome: Outcome, started: float | None = None) -> Outcome:
        if started is not None and outcome.duration_ms is None:
            outcome = replace(outcome, duration_ms=int((time.perf_counter() - started) * 1000))
        severity = {FAILED: "ERROR", REJECTED: "WARNING"}.get(outcome.status, "INFO")
        line = {
            # What the deployment's log-based metric counts (resources/monitoring.py).
            LOG_EVENT_FIELD: LOG_EVENT,
            LOG_STATUS_FIELD: outcome.status,
            "severity": severity,
            "message": _message(outcome),
            "source_uri": outcome.source_uri,
            "batch_id": outcome.batch_id,
            "rows_in_file": outcome.rows_in_file,
            "rows_loaded": outcome.rows_loaded,
            "reason": outcome.reason,
            "quarantine_uri": outcome.quarantine_uri,
            "duration_ms": outcome.duration_ms,
        }
        print(json.dumps(line, default=str), file=self.out or sys.stdout, flush=True)
        return outcome


def _passed_row_checks(contract: DataContract) -> list[Check]:
    """The row checks of a file breaking no rule and repeating no key, as `_row_checks` reports
    them."""
    checks = [Check.ok(rule.name, rule.column) for rule in sql.row_checks(contract)]
    key = ", ".join(contract.key_columns)
    return [*checks, Check.ok("key.unique", key)] if key else checks


def _duplicate(batch: Batch, done: dict[str, Any]) -> Outcome:
    return Outcome(
        DUPLICATE, batch.object.uri, batch.batch_id, rows_loaded=0,
        reason=f"already {done['status']} by an earlier delivery of this event",
        quarantine_uri=done.get("quarantine_uri"),
    )  # fmt: skip


def _message(outcome: Outcome) -> str:
    if outcome.status == LOADED:
        return f"loaded {outcome.rows_loaded:,} rows from {outcome.source_uri}"
    if outcome.status == REJECTED:
        return f"rejected {outcome.source_uri}: {outcome.reason}"
    return f"{outcome.status.lower()} {outcome.source_uri}: {outcome.reason}"


def _short(value: Any) -> Any:
    return value[:40] + "…" if isinstance(value, str) and len(value) > 40 else value


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _short(v) if not isinstance(v, int | float) or v == v else str(v)
            for k, v in row.items()}  # fmt: skip
