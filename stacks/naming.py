"""Names and labels of everything a stack creates, decided in this one place.

- Physical names that must be globally unique (buckets) derive from the project id, which GCP keeps
  unique, and the stack, so two stacks sharing a project never collide.
- BigQuery ids use underscores (hyphens are not allowed there).
- Labels are lowercase and always carry the stack: cost and ownership show on every resource.
- No timestamps or random suffixes: the same config must give the same names on every `pulumi up`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

APP = "tabular-mlops"


def _slug(text: str) -> str:
    """Lowercase letters, digits and single hyphens."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def _fit(name: str, limit: int) -> str:
    """Shorten to `limit` characters keeping it unique: a truncated name gets a short hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: limit - 7].rstrip('-_')}-{digest}"


@dataclass(frozen=True)
class Naming:
    """Naming rules for one stack of one project."""

    project: str
    stack: str
    extra_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _slug(self.stack):
            raise ValueError(f"stack name {self.stack!r} has no usable characters")

    @property
    def env(self) -> str:
        return _slug(self.stack)

    def bucket(self, purpose: str) -> str:
        """Globally unique bucket name: <project>-<stack>-<purpose>, at most 63 characters.

        Bucket names may not contain "google" or start with "goog"; project ids cannot either.
        """
        return _fit(_slug(f"{self.project}-{self.env}-{purpose}"), 63)

    def bq_id(self, name: str) -> str:
        """A BigQuery dataset or table id: letters, digits, underscores."""
        ident = re.sub(r"[^a-z0-9_]", "_", name.lower())
        if not re.match(r"^[a-z_]", ident):
            ident = f"_{ident}"
        return _fit(ident, 1024).replace("-", "_")

    def dataset_id(self, prefix: str) -> str:
        """The stack's dataset: <prefix>_<stack>, so staging and prod can share a project."""
        return self.bq_id(f"{prefix}_{self.env}")

    def account_id(self, workload: str) -> str:
        """A service account id (6-30 characters): <workload>-<stack>."""
        base = _slug(f"{workload}-{self.env}")
        if len(base) < 6:
            base = f"{base}-sa"
        return _fit(base, 30)

    def resource(self, purpose: str, limit: int = 63) -> str:
        """A physical name scoped to the project (functions, endpoints, schedules, repositories)."""
        return _fit(_slug(f"{APP}-{self.env}-{purpose}"), limit)

    def role_id(self, purpose: str) -> str:
        """A project custom role id (letters, digits, '_' and '.', at most 64): per stack."""
        return _fit(re.sub(r"[^a-zA-Z0-9_]", "_", f"{APP}_{self.env}_{purpose}"), 64).replace(
            "-", "_"
        )

    @property
    def metric_prefix(self) -> str:
        """Log-based metric name prefix ('tabular-mlops/staging'), as stacks may share a project."""
        return f"{APP}/{self.env}"

    @property
    def display_prefix(self) -> str:
        """'tabular-mlops staging', the start of every console name."""
        return f"{APP} {self.env}"

    def endpoint_id(self) -> str:
        """The Vertex AI endpoint's id: numeric, 10 digits, no leading zero, stable per stack.

        The API takes the id from the create call (`endpointId`) and refuses anything but "numeric
        with no leading zeros … at most 10 digits" (magic-modules vertexai/Endpoint.yaml); left
        unset, pulumi-gcp would auto-name it `<logical name>-<7 hex>` and the create fails.
        """
        digest = int(hashlib.sha256(f"{self.project}/{self.env}/endpoint".encode()).hexdigest(), 16)
        return str(10**9 + digest % (9 * 10**9))

    def model_id(self, dataset: str) -> str:
        """The Model Registry id of a dataset's model (1-63 lowercase characters)."""
        return self.resource(dataset)

    def display_name(self, purpose: str) -> str:
        """A human-readable name for consoles: 'tabular-mlops staging: training schedule'."""
        return f"{self.display_prefix}: {purpose}"

    @property
    def labels(self) -> dict[str, str]:
        """Labels for every labelled resource: the config's, then the ones the platform owns."""
        return {
            **self.extra_labels,
            "app": APP,
            "stack": _label_value(self.stack),
            "managed-by": "pulumi",
        }


def _label_value(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]
