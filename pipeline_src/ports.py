"""What the pipelines touch outside themselves, as ports; and where a run's backend is chosen.

A component asks for a port and uses it; it never asks which backend it runs on:

    warehouse = backend().warehouse(project, bq_location, dataset, job_label="extract")
    rows = warehouse.read(sql, {"until": until}, tables=[evaluations_table])

| port              | Vertex AI / BigQuery (`pipeline_src/cloud/`) | local (`local/adapters.py`) |
|-------------------|----------------------------------------------|-----------------------------|
| `Warehouse`       | `bigquery.py`: BigQuery jobs, Storage Read   | the DuckDB file, same SQL   |
| `ModelRegistry`   | `registry.py`: Vertex AI Model Registry      | the file-based registry     |
| `Endpoints`       | `endpoints.py`: Vertex AI endpoints          | endpoint state files        |
| `BatchPrediction` | `batch_prediction.py`: a batch job           | the bundle, in the task     |
| `PipelineRuns`    | `pipeline_runs.py`: a Vertex AI PipelineJob  | a request file, run after   |
| `ArtifactStorage` | `storage.py`: Cloud Storage, the /gcs mount  | folders under the root      |

The backend is chosen once per run, at its edge. Deployed code knows one backend, Vertex AI and
BigQuery (`pipeline_src.cloud`), the default. A launcher that runs the pipelines elsewhere names
its backend in the `PIPELINE_BACKEND` environment variable of the run (kfp.local's task processes
inherit it): a JSON object, `{"factory": "module:callable", ...}`, whose other keys are the
factory's keyword arguments. `local/` does so for kfp.local runs. Nothing in this package
imports `local`, and neither a component nor a pipeline parameter says which backend runs: a
compiled spec is the same whatever runs it.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

BACKEND_VARIABLE = "PIPELINE_BACKEND"
"""The environment variable a launcher names the run's backend in (unset: Vertex AI, BigQuery)."""


class Streamed(NamedTuple):
    """A query's rows as Arrow record batches, in the query's order, and (once they have been
    read, for an empty result) their schema."""

    batches: Iterator[Any]
    schema: Callable[[], Any]


class Warehouse(Protocol):
    """One dataset of the warehouse. SQL is BigQuery's; `@name` parameters are given as a dict
    (datetimes as TIMESTAMP, other values as STRING). `tables` name the tables a query reads:
    a platform table (contracts/tables.py) missing where the platform did not create it is made
    empty, any other missing table is a clear error."""

    def read(self, sql: str, params: dict | None = None, tables: Sequence[str] = ()) -> Any:
        """The whole result as an Arrow table."""
        ...

    def stream(self, sql: str, params: dict | None = None, tables: Sequence[str] = ()) -> Streamed:
        """The result batch by batch: it never sits whole in memory."""
        ...

    def append_rows(self, table: str, rows: list[dict]) -> None:
        """Append rows (dicts) to a platform table."""
        ...

    def append_parquet(self, table: str, uri: str) -> None:
        """Append a Parquet file (an artifact's URI) to a platform table."""
        ...


@dataclass(frozen=True)
class ModelRef:
    """A registered model version: its versioned name (`…@<version>`), the directory its bundle
    is read from in a task, and the bundle digest recorded at its registration."""

    name: str
    artifact_dir: str
    digest: str


class Registered(NamedTuple):
    """A version just uploaded: its name, version id, where its bundle lives, and the name
    `make promote MODEL=…` takes for it."""

    resource_name: str
    version: str
    artifact_uri: str
    promotable: str


class ModelRegistry(Protocol):
    def upload(
        self, model_id: str, bundle_dir: str, destination_uri: str, fields: dict[str, Any]
    ) -> Registered:
        """Upload the bundle in `bundle_dir` as a new version of `model_id` (created on first
        upload); `destination_uri` is where a registry that outlives the run keeps the bundle.
        `fields` are the version's display name, labels, aliases, description and serving
        container settings."""
        ...

    def default_version(self, model_id: str) -> ModelRef | None:
        """The model's default version, or None when the model does not exist."""
        ...


@dataclass(frozen=True)
class Machines:
    """What a deployment runs on."""

    machine_type: str = "n1-standard-2"
    min_replicas: int = 1
    max_replicas: int = 1
    service_account: str = ""


class Deployed(NamedTuple):
    deployed_model_id: str
    undeployed: list[str]


class Endpoints(Protocol):
    def serving(self, endpoint: str) -> ModelRef | None:
        """The version `endpoint` serves (the one with the most traffic), or None."""
        ...

    def traffic(self, endpoint: str) -> dict[str, int]:
        """Every version `endpoint` serves (versioned name) -> its share of the traffic in
        percent; empty when it serves nothing."""
        ...

    def deploy(self, endpoint: str, model: str, machines: Machines) -> Deployed:
        """Deploy `model` (a versioned name) with all traffic; once it serves, undeploy the
        models that served before."""
        ...


@dataclass(frozen=True)
class PredictionJob:
    """Where and how a batch prediction runs: `folder_uri` is the run's scratch folder."""

    folder_uri: str
    machine_type: str = "n1-standard-2"
    service_account: str = ""
    kms_key: str = ""
    replica_count: int = 1
    job_prefix: str = "evaluation"


class BatchPrediction(Protocol):
    def predictor(
        self, served: dict[str, Any], spec: dict, job: PredictionJob
    ) -> Callable[[Any], list[dict]]:
        """A function from a frame of rows to their predictions ({"class", "probabilities"}), in
        order, by the served model (`served`: "model", "artifact_dir", "sha256")."""
        ...

    def rows_per_call(self, requested: int, total: int) -> int:
        """How many rows to give the predictor at a time: `requested`, unless each call costs
        so much (a job's start-up) that all `total` rows go at once."""
        ...


@dataclass(frozen=True)
class TrainingRun:
    """A training pipeline run to start: its spec, parameters and where and as whom it runs."""

    spec: dict
    parameters: dict
    pipeline_root: str = ""
    service_account: str = ""
    labels: dict = field(default_factory=dict)
    kms_key: str = ""


class PipelineRuns(Protocol):
    def start(self, run_id: str, request: dict[str, Any], run: TrainingRun) -> bool:
        """Start the training run `run_id` once: False when a run of that id exists already.
        `request` says why (evaluation, model, batches, snapshot time, reason)."""
        ...


class ArtifactStorage(Protocol):
    def path(self, uri: str) -> str:
        """Where a task reads and writes the object or folder `uri` as a file."""
        ...

    def write_text(
        self, uri: str, text: str, content_type: str = "text/html; charset=utf-8"
    ) -> str:
        """Write a text object whole (e.g. a page to the artifacts bucket: a reader never sees
        half of it, nor an older copy from a cache); return where it went."""
        ...


class Backend(Protocol):
    """The adapters of one backend, made for the place a component names."""

    def warehouse(self, project: str, location: str, dataset: str, job_label: str) -> Warehouse: ...

    def registry(self, project: str, location: str) -> ModelRegistry: ...

    def endpoints(self, project: str, location: str) -> Endpoints: ...

    def batch_prediction(self, project: str, location: str) -> BatchPrediction: ...

    def pipeline_runs(self, project: str, location: str) -> PipelineRuns: ...

    def artifacts(self) -> ArtifactStorage: ...


def backend() -> Backend:
    """The run's backend: the one its launcher named in PIPELINE_BACKEND, else Vertex AI."""
    named = os.environ.get(BACKEND_VARIABLE, "").strip()
    if not named:
        from pipeline_src.cloud import CloudBackend

        return CloudBackend()
    try:
        options = json.loads(named)
        module, _, name = options.pop("factory").partition(":")
        factory = getattr(importlib.import_module(module), name)
    except (ValueError, KeyError, AttributeError, ImportError, TypeError) as error:
        raise ValueError(
            f"{BACKEND_VARIABLE} must be a JSON object naming an importable "
            f'"factory": "module:callable", got {named!r} ({error})'
        ) from None
    return factory(**options)


def backend_setting(factory: str, **options: Any) -> str:
    """The PIPELINE_BACKEND value that makes `backend()` return `factory(**options)`."""
    return json.dumps({"factory": factory, **options}, sort_keys=True)
