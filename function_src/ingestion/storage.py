"""Cloud Storage for the ingestion: read the upload (head, or whole to a file), quarantine it.

Every read is of the event's generation, never of whatever the name holds now: `pin` first
checks that the generation is still readable and is the one the event describes (a stale event
for an overwritten object, in a bucket that keeps no old versions, or for a deleted object, is
`Unfixable`); reads then name the generation. BigQuery load URIs cannot name a generation (and
read `*` as a wildcard), so `copy_generation` gives a load a copy of exactly that generation
under a name of hex digits.

The same google-cloud-storage code runs against Cloud Storage and, locally, gcp-storage-emulator
(the client follows STORAGE_EMULATOR_HOST).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from contracts.wire import IGNORED

from .objects import StoredObject, Unfixable


class Storage:
    def __init__(self, project: str, client: Any = None):
        if client is None:
            from google.cloud import storage

            client = storage.Client(project=project)
        self.client = client

    def _blob(self, obj: StoredObject) -> Any:
        return self.client.bucket(obj.bucket).blob(obj.name, generation=obj.generation)

    def pin(self, obj: StoredObject) -> None:
        """Check that the event's generation can be read and is what the event says it is.

        Raises Unfixable when it is gone: deleted, or overwritten in a bucket that keeps no
        noncurrent versions (the emulator keeps none; the landing bucket is versioned, so there
        an overwritten generation stays readable and is loaded as itself).
        """
        from google.api_core.exceptions import NotFound

        blob = self._blob(obj)
        try:
            blob.reload()
        except NotFound:
            raise Unfixable(IGNORED, self._gone(obj)) from None
        if blob.generation != obj.generation:  # a store that ignores the pin answered
            raise Unfixable(
                IGNORED,
                f"generation {obj.generation} of {obj.uri} is no longer readable: it was "
                f"overwritten by generation {blob.generation} (whose own event loads it)",
            )
        if blob.size != obj.size:
            raise Unfixable(
                IGNORED,
                f"the event says {obj.uri}#{obj.generation} holds {obj.size:,} bytes; "
                f"it holds {blob.size:,}",
            )

    def _gone(self, obj: StoredObject) -> str:
        live = self.client.bucket(obj.bucket).get_blob(obj.name)
        if live is None:
            return f"{obj.uri} no longer exists (deleted before it was read)"
        return (
            f"generation {obj.generation} of {obj.uri} no longer exists: the object now holds "
            f"generation {live.generation} (whose own event loads it)"
        )

    def head(self, obj: StoredObject, length: int) -> bytes:
        """The first `length` bytes of this generation (fewer for a smaller file)."""
        if obj.size == 0:
            return b""
        return self._blob(obj).download_as_bytes(start=0, end=min(length, obj.size) - 1)

    def download(self, obj: StoredObject, path: Path) -> None:
        """The whole generation to a local file, streamed (never whole in memory)."""
        self._blob(obj).download_to_filename(str(path))
        if (got := path.stat().st_size) != obj.size:  # raised, so the event is redelivered
            raise RuntimeError(
                f"read {got:,} bytes of {obj.uri}#{obj.generation}, not {obj.size:,}"
            )

    def copy_generation(self, obj: StoredObject, bucket: str, name: str) -> str:
        """Copy exactly the event's generation to `bucket/name`; the copy's gs:// URI.

        A rewrite, not a download: within a location it moves no bytes through the function, and
        it is repeated until done as a large copy across locations or storage classes needs.
        """
        target = self.client.bucket(bucket).blob(name)
        token, _, _ = target.rewrite(self._blob(obj))
        while token is not None:
            token, _, _ = target.rewrite(self._blob(obj), token=token)
        if target.size != obj.size:
            raise RuntimeError(f"the copy of {obj.uri}#{obj.generation} has {target.size} bytes")
        return f"gs://{bucket}/{name}"

    def delete(self, uri: str) -> None:
        """Remove a staging copy; already gone is fine."""
        from google.api_core.exceptions import NotFound

        bucket, name = uri.removeprefix("gs://").split("/", 1)
        with contextlib.suppress(NotFound):
            self.client.bucket(bucket).blob(name).delete()

    def quarantine(self, obj: StoredObject, bucket: str, report: dict[str, Any]) -> str:
        """Copy the file to the quarantine bucket with its report beside it; the URI of the copy.

        Create-only writes (generation 0): a redelivered event finds them there and moves on;
        nothing in quarantine is ever overwritten. The original stays where it was uploaded.
        """
        from google.api_core.exceptions import PreconditionFailed

        target = self.client.bucket(bucket)
        name = quarantine_name(obj)
        with contextlib.suppress(PreconditionFailed):  # an earlier attempt copied it
            self.client.bucket(obj.bucket).copy_blob(
                self._blob(obj), target, name, source_generation=obj.generation,
                if_generation_match=0,
            )  # fmt: skip
        report_blob = target.blob(f"{name}.report.json")
        with contextlib.suppress(PreconditionFailed):
            report_blob.upload_from_string(
                json.dumps(report, indent=2, default=str),
                content_type="application/json",
                if_generation_match=0,
            )
        return f"gs://{bucket}/{name}"


def quarantine_name(obj: StoredObject) -> str:
    """Where a rejected generation goes: its landing path, tagged with the generation."""
    return f"{obj.name}@{obj.generation}"
