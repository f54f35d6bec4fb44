"""Cloud Storage for the ingestion: read the upload (head, or whole to a file), quarantine it.

The same google-cloud-storage code runs against Cloud Storage and, locally, gcp-storage-emulator
(the client follows STORAGE_EMULATOR_HOST).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from .objects import StoredObject


class Storage:
    def __init__(self, project: str, client: Any = None):
        if client is None:
            from google.cloud import storage

            client = storage.Client(project=project)
        self.client = client

    def _blob(self, obj: StoredObject) -> Any:
        return self.client.bucket(obj.bucket).blob(obj.name, generation=obj.generation)

    def head(self, obj: StoredObject, length: int) -> bytes:
        """The first `length` bytes of this generation (fewer for a smaller file)."""
        if obj.size == 0:
            return b""
        return self._blob(obj).download_as_bytes(start=0, end=min(length, obj.size) - 1)

    def download(self, obj: StoredObject, path: Path) -> None:
        """The whole object to a local file, streamed (never whole in memory)."""
        self._blob(obj).download_to_filename(str(path))

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
