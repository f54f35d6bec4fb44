"""The artifact storage port on Cloud Storage: objects through Vertex AI Pipelines' /gcs mount,
or written by the client where a task has no mount."""

from __future__ import annotations


def gcs_fuse_path(uri: str) -> str:
    """gs://bucket/path as the path Vertex AI Pipelines mounts it at (/gcs/bucket/path)."""
    if uri.startswith("gs://"):
        return "/gcs/" + uri[len("gs://") :]
    return uri


class CloudStorage:
    def path(self, uri: str) -> str:
        return gcs_fuse_path(uri)

    def write_text(
        self, uri: str, text: str, content_type: str = "text/html; charset=utf-8"
    ) -> str:
        if not uri.startswith("gs://"):
            raise ValueError(f"artifact storage takes gs:// locations, got {uri!r}")
        from google.cloud import storage

        bucket, _, name = uri.removeprefix("gs://").partition("/")
        blob = storage.Client().bucket(bucket).blob(name)
        blob.cache_control = "no-cache"  # a reader reloading a page sees the newest
        blob.upload_from_string(text, content_type=content_type)
        return uri
