"""The uploaded object, the batch it becomes, and the outcome of each check."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The outcomes of one attempt are named in contracts/wire.py: the ingestion log, the function's
# log lines and the deployment's alerts share them. A STARTED row with no outcome row beside it
# is a crashed attempt, which a later delivery of the batch resolves
# (ingest.Ingestor._resolve_crashed).
from contracts.wire import LOADED, REJECTED

FINAL = (LOADED, REJECTED)
"""A batch with one of these in the log is done: every later event for it is a duplicate."""

MAX_OBJECT_BYTES = 5 * 2**40
"""Cloud Storage's largest object (5 TiB): a size beyond it, or below 0, is no real object."""
MAX_NAME_BYTES = 1024
"""Cloud Storage's longest object name, in UTF-8 bytes."""
MAX_INT64 = 2**63 - 1


@dataclass(frozen=True)
class StoredObject:
    """One generation of an object in Cloud Storage (the finalized event's subject)."""

    bucket: str
    name: str
    generation: int
    size: int

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"

    @classmethod
    def from_event(cls, data: Any) -> StoredObject:
        """From the data of a `google.cloud.storage.object.v1.finalized` CloudEvent.

        Anything that cannot be a real object generation raises ValueError naming the field:
        such an event is acknowledged as FAILED, since no redelivery can make it readable.
        """
        if not isinstance(data, Mapping):
            raise ValueError(
                f"the storage event's data is a {type(data).__name__}, not an object: {data!r:.300}"
            )
        missing = [k for k in ("bucket", "name", "generation") if not data.get(k)]
        # An empty object's size is 0 (or "0"): only an absent size is missing, never guessed,
        # since a size taken as 0 would quarantine a good file as empty.
        missing += ["size"] if data.get("size") in (None, "") else []
        if missing:
            raise ValueError(f"the storage event lacks {', '.join(missing)}: {dict(data)!r:.300}")
        bucket, name = data["bucket"], data["name"]
        if not isinstance(bucket, str) or not isinstance(name, str):
            raise ValueError(f"the storage event's bucket/name are not text: {dict(data)!r:.300}")
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise ValueError(f"the object name is longer than {MAX_NAME_BYTES} bytes: {name!r:.80}")
        generation = _integer(data, "generation", 1, MAX_INT64)
        size = _integer(data, "size", 0, MAX_OBJECT_BYTES)
        return cls(bucket=bucket, name=name, generation=generation, size=size)


def _integer(data: Mapping[str, Any], field: str, low: int, high: int) -> int:
    value = data[field]
    try:
        if isinstance(value, bool | float):
            raise TypeError
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"the storage event's {field} is not an integer: {value!r:.80} in {dict(data)!r:.300}"
        ) from None
    if not low <= number <= high:
        raise ValueError(f"the storage event's {field} {number} is outside {low}..{high:,}")
    return number


def batch_id_of(obj: StoredObject) -> str:
    """The idempotency key: a digest of bucket, object name and generation."""
    return hashlib.sha256(f"{obj.bucket}/{obj.name}#{obj.generation}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Batch:
    """One attempt at ingesting one object generation. Redeliveries share the batch id."""

    object: StoredObject
    batch_id: str
    attempt_id: str
    started_at: datetime

    @classmethod
    def start(cls, obj: StoredObject) -> Batch:
        return cls(obj, batch_id_of(obj), uuid.uuid4().hex, datetime.now(UTC))

    @classmethod
    def of_malformed(cls, data: Any) -> Batch:
        """A malformed event's batch, for its FAILED log row: keyed by a digest of the event's
        data (its redeliveries share it), naming what bucket and object it names, if any.
        Generation and size 0: the event names no object generation one could read."""
        text = json.dumps(data, default=repr, sort_keys=True)
        digest = hashlib.sha256(f"event:{text}".encode()).hexdigest()[:32]
        fields = data if isinstance(data, Mapping) else {}
        bucket, name = (str(fields.get(k) or "?")[:MAX_NAME_BYTES] for k in ("bucket", "name"))
        return cls(StoredObject(bucket, name, 0, 0), digest, uuid.uuid4().hex, datetime.now(UTC))

    @property
    def staging_table(self) -> str:
        """Per attempt: concurrent attempts of the same batch never share a staging table."""
        return f"_staging_{self.batch_id}_{self.attempt_id[:8]}"


@dataclass
class Check:
    """One check's outcome; a failed one says why, for people, with counts and samples."""

    name: str
    passed: bool
    reason: str = ""
    column: str | None = None
    count: int | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def ok(cls, name: str, column: str | None = None) -> Check:
        return cls(name, True, column=column)

    @classmethod
    def failed(cls, name: str, reason: str, **details: Any) -> Check:
        return cls(name, False, reason, **details)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.name, "passed": self.passed}
        if self.column:
            out["column"] = self.column
        if not self.passed:
            out["reason"] = self.reason
            if self.count is not None:
                out["count"] = self.count
            if self.samples:
                out["samples"] = self.samples
        return out


class Unfixable(Exception):
    """No redelivery of the event can succeed (the object is gone, superseded, elsewhere): the
    attempt ends with `status` and the reason in the log, and the event is acknowledged."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class FileRejected(Exception):
    """The warehouse could not read the file as the contract describes it."""

    def __init__(self, check: Check):
        super().__init__(check.reason)
        self.check = check


class TypedReadFailed(Exception):
    """A typed staging (Warehouse.stage_typed) met a value or line its reader cannot take, or
    its one-pass load stopped at a broken rule or a key that may repeat (rolled back).

    Not a verdict on the file: the caller stages it as text, whose checks find, count and sample
    the problem (or accept the file) exactly as without the typed attempt."""
