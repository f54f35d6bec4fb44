"""The local backend: the pipelines' ports (pipeline_src/ports.py) on the local stand-ins.

The warehouse is the DuckDB file, the registry and the endpoints are the file-based ones of
local/registry.py, batch prediction is the verified bundle predicting in the task, a pipeline run
is a request file the local launcher carries out, and artifact storage is folders under the local
root. The local launcher (local/pipeline_runner.py) names this backend for its run
(`run_environment`), so the same components run here as on Vertex AI without knowing it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from contracts.tables import PLATFORM_TABLES
from local.environment import LocalEnvironment
from local.registry import LocalEndpoint, LocalModelRegistry, ModelVersion
from local.warehouse import append_rows, connect, create_table, query, table_exists, to_duckdb
from pipeline_src.ports import (
    BACKEND_VARIABLE,
    Deployed,
    Machines,
    ModelRef,
    PredictionJob,
    Registered,
    Streamed,
    TrainingRun,
    backend_setting,
)
from pipeline_src.rollout import replace_all

STREAM_BATCH_ROWS = 100_000


def backend_variables(root: Path) -> dict[str, str]:
    """The environment that makes a run's tasks use this backend on the state under `root`."""
    return {BACKEND_VARIABLE: backend_setting(f"{__name__}:LocalBackend", root=str(root.resolve()))}


def _schema(table: str):
    """A platform table's schema (contracts/tables.py), or None for any other table."""
    return next((t.schema for t in PLATFORM_TABLES if t.table_id == table), None)


class LocalWarehouse:
    """A dataset of the local DuckDB warehouse; the SQL is BigQuery's, transpiled by sqlglot.

    The platform tables a query reads are created empty when missing (in the cloud Pulumi
    creates them), so a first evaluation finds an empty history rather than an error."""

    def __init__(self, path: Path, dataset: str):
        self.path, self.dataset = path, dataset

    def _prepare(self, tables: Sequence[str]) -> None:
        platform = [t for t in tables if _schema(t) is not None]
        if platform:
            with connect(self.path) as con:
                for table in platform:
                    create_table(con, self.dataset, table, _schema(table))
        others = [t for t in tables if _schema(t) is None]
        if not others:
            return
        with connect(self.path, read_only=True) as con:
            for table in others:
                if not table_exists(con, self.dataset, table):
                    raise ValueError(
                        f"the local warehouse {self.path} has no table {self.dataset}.{table}: "
                        "load data"
                    )

    def read(self, sql: str, params: dict | None = None, tables: Sequence[str] = ()):
        self._prepare(tables)
        with connect(self.path, read_only=True) as con:
            return query(con, sql, params or {})

    def stream(self, sql: str, params: dict | None = None, tables: Sequence[str] = ()) -> Streamed:
        self._prepare(tables)
        con = connect(self.path, read_only=True)
        try:
            reader = con.sql(to_duckdb(sql), params=params or {}).to_arrow_reader(STREAM_BATCH_ROWS)
        except Exception:
            con.close()
            raise

        def batches() -> Iterator[Any]:
            try:
                yield from reader
            finally:
                con.close()

        return Streamed(batches(), lambda: reader.schema)

    def append_rows(self, table: str, rows: list[dict]) -> None:
        with connect(self.path) as con:
            append_rows(con, self.dataset, table, _schema(table), rows)

    def append_parquet(self, table: str, uri: str) -> None:
        """DuckDB reads the file itself."""
        with connect(self.path) as con:
            create_table(con, self.dataset, table, _schema(table))
            con.execute(
                f'INSERT INTO "{self.dataset}"."{table}" BY NAME SELECT * FROM read_parquet(?)',
                [uri],
            )


def _ref(version: ModelVersion) -> ModelRef:
    return ModelRef(version.resource_name, version.artifact_uri, version.bundle_sha256)


class LocalRegistryPort:
    def __init__(self, env: LocalEnvironment):
        self.registry = LocalModelRegistry(env.registry_dir)

    def upload(
        self, model_id: str, bundle_dir: str, destination_uri: str, fields: dict[str, Any]
    ) -> Registered:
        """The registry keeps its own copy of the bundle: `destination_uri` is the cloud's."""
        version = self.registry.upload(model_id, bundle_dir, **fields)
        name = version.resource_name
        return Registered(name, version.version_id, version.artifact_uri, name)

    def default_version(self, model_id: str) -> ModelRef | None:
        if not self.registry.exists(model_id):
            return None
        return _ref(self.registry.get(model_id))


class LocalEndpoints:
    def __init__(self, env: LocalEnvironment):
        self.env = env
        self.registry = LocalModelRegistry(env.registry_dir)

    def serving(self, endpoint: str) -> ModelRef | None:
        serving = LocalEndpoint(self.env.endpoints_dir, endpoint).serving()
        if serving is None:
            return None
        return _ref(self.registry.get(serving.model_id, serving.version_id))

    def traffic(self, endpoint: str) -> dict[str, int]:
        deployed = LocalEndpoint(self.env.endpoints_dir, endpoint).deployed_models()
        return {m.resource_name: m.traffic_percentage for m in deployed if m.traffic_percentage}

    def deploy(self, endpoint: str, model: str, machines: Machines) -> Deployed:
        """All traffic to the new version, then the previous ones retired (`replace_all`, as on
        Vertex AI), on the rollout's local endpoint adapter."""
        from local.promotion import LocalEndpointTarget

        target = LocalEndpointTarget(LocalEndpoint(self.env.endpoints_dir, endpoint), self.registry)
        return Deployed(*replace_all(target, model))


class LocalBatchPrediction:
    """The served bundle predicts in the task, once its digest is checked (loaded once)."""

    def predictor(
        self, served: dict[str, Any], spec: dict, job: PredictionJob
    ) -> Callable[[Any], list[dict]]:
        from pipeline_src.components.batch_predict import load_bundle, predict_frame

        bundle = load_bundle(served["artifact_dir"], served.get("sha256", ""))
        return lambda frame: predict_frame(bundle, frame, spec)

    def rows_per_call(self, requested: int, total: int) -> int:
        return requested


class LocalPipelineRuns:
    """A run is a request file `<root>/retraining/<run>.json`, created with O_EXCL (the claim),
    that the local launcher carries out after the evaluation (local/run_evaluation.py)."""

    def __init__(self, env: LocalEnvironment):
        self.folder = env.root / "retraining"

    def start(self, run_id: str, request: dict[str, Any], run: TrainingRun) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            handle = os.open(
                self.folder / f"{run_id}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644
            )
        except FileExistsError:
            return False
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({**request, "status": "requested"}, out, indent=2, sort_keys=True)
        return True


class LocalArtifactStorage:
    """Local paths stay as they are; gs://bucket/name is `<root>/buckets/bucket/name`."""

    def __init__(self, env: LocalEnvironment):
        self.buckets = env.root / "buckets"

    def path(self, uri: str) -> str:
        if uri.startswith("gs://"):
            return str(self.buckets / uri.removeprefix("gs://"))
        return uri

    def write_text(
        self, uri: str, text: str, content_type: str = "text/html; charset=utf-8"
    ) -> str:
        path = Path(self.path(uri))
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(text, encoding="utf-8")
        scratch.replace(path)  # a reader never sees half a page
        return str(path)


class LocalBackend:
    """The ports on the local state under `root`; project and location name nothing here."""

    def __init__(self, root: str):
        self.env = LocalEnvironment(root=Path(root))

    def warehouse(
        self, project: str, location: str, dataset: str, job_label: str
    ) -> LocalWarehouse:
        return LocalWarehouse(self.env.warehouse_path, dataset)

    def registry(self, project: str, location: str) -> LocalRegistryPort:
        return LocalRegistryPort(self.env)

    def endpoints(self, project: str, location: str) -> LocalEndpoints:
        return LocalEndpoints(self.env)

    def batch_prediction(self, project: str, location: str) -> LocalBatchPrediction:
        return LocalBatchPrediction()

    def pipeline_runs(self, project: str, location: str) -> LocalPipelineRuns:
        return LocalPipelineRuns(self.env)

    def artifacts(self) -> LocalArtifactStorage:
        return LocalArtifactStorage(self.env)
