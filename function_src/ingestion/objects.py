"""The uploaded object, the batch it becomes, and the outcome of each check."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The outcomes of one attempt, as the ingestion log and the function's log lines name them.
LOADED, REJECTED, DUPLICATE, FAILED, IGNORED = (
    "LOADED",
    "REJECTED",
    "DUPLICATE",
    "FAILED",
    "IGNORED",
)
FINAL = (LOADED, REJECTED)
"""A batch with one of these in the log is done: every later event for it is a duplicate."""


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
    def from_event(cls, data: Mapping[str, Any]) -> StoredObject:
        """From the data of a `google.cloud.storage.object.v1.finalized` CloudEvent."""
        missing = [k for k in ("bucket", "name", "generation") if not data.get(k)]
        # An empty object's size is 0 (or "0"): only an absent size is missing, never guessed,
        # since a size taken as 0 would quarantine a good file as empty.
        missing += ["size"] if data.get("size") in (None, "") else []
        if missing:
            raise ValueError(f"the storage event lacks {', '.join(missing)}: {dict(data)!r:.300}")
        try:
            return cls(
                bucket=str(data["bucket"]),
                name=str(data["name"]),
                generation=int(data["generation"]),
                size=int(data["size"]),
            )
        except (TypeError, ValueError):
            raise ValueError(
                f"the storage event's generation/size are not integers: {dict(data)!r:.300}"
            ) from None


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


class FileRejected(Exception):
    """The warehouse could not read the file as the contract describes it."""

    def __init__(self, check: Check):
        super().__init__(check.reason)
        self.check = check
