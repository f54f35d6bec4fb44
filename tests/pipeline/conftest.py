"""Fixtures for the pipeline tests: the contract, a local warehouse with the sample, artifacts.

The curated table is built here from the palmerpenguins data and the contract (with lineage
columns), in a DuckDB file of a scratch local environment, as the ingestion path would leave it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from kfp import dsl

from local.adapters import backend_variables
from local.environment import LocalEnvironment
from local.warehouse import connect, ingest_sample, query
from pipeline_src.components.common import feature_spec
from pipeline_src.components.extract import snapshot_moment, snapshot_queries
from pipeline_src.components.split import stratified_split
from pipeline_src.ports import BACKEND_VARIABLE


@pytest.fixture(scope="session")
def contract() -> dict:
    """The penguins contract as the pipeline receives it."""
    return LocalEnvironment().contract.model_dump(mode="json", exclude_none=True)


@pytest.fixture(scope="session")
def spec(contract) -> dict:
    return feature_spec(contract)


@pytest.fixture
def local_env(tmp_path) -> LocalEnvironment:
    """A scratch local environment whose warehouse holds the sample as one batch."""
    env = LocalEnvironment(root=tmp_path / "state")
    ingest_sample(env)
    return env


@pytest.fixture(autouse=True)
def deployed_backend(monkeypatch) -> None:
    """Components called in-process run on the deployed backend (Vertex AI, BigQuery: patched
    where a test calls them) unless the test names the local one (`local_backend`)."""
    monkeypatch.delenv(BACKEND_VARIABLE, raising=False)


@pytest.fixture
def local_backend(local_env, monkeypatch) -> LocalEnvironment:
    """`local_env`, named as the backend of the components a test calls in-process, as the local
    launcher names it for a run's tasks."""
    for name, value in backend_variables(local_env.root).items():
        monkeypatch.setenv(name, value)
    return local_env


@pytest.fixture
def artifact(tmp_path) -> Callable[..., dsl.Artifact]:
    """Make a KFP artifact backed by a scratch path: `artifact(dsl.Dataset, "train")`."""

    def make(kind: type[dsl.Artifact], name: str, metadata: dict | None = None) -> dsl.Artifact:
        return kind(name=name, uri=str(tmp_path / "artifacts" / name), metadata=metadata or {})

    (tmp_path / "artifacts").mkdir()
    return make


@pytest.fixture(scope="session")
def snapshot_frame(tmp_path_factory, spec) -> pd.DataFrame:
    """The sample as extract returns it: contract columns plus lineage, sorted by key."""
    env = LocalEnvironment(root=tmp_path_factory.mktemp("sample"))
    ingest_sample(env)
    rows_sql, _ = snapshot_queries(spec, env.dataset, env.contract.name)
    with connect(env.warehouse_path, read_only=True) as con:
        table = query(con, rows_sql, {"snapshot_time": snapshot_moment("")[0]})
    return table.to_pandas().sort_values("penguin_id").reset_index(drop=True)


@pytest.fixture(scope="session")
def splits(snapshot_frame, spec) -> dict[str, pd.DataFrame]:
    return stratified_split(snapshot_frame, spec, 0.15, 0.2, seed=42)


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, contract, splits) -> Path:
    """A model directory as the train component writes it (trained once per session)."""
    from pipeline_src.components.train import train

    root = tmp_path_factory.mktemp("trained")
    data = {}
    for name in ("train", "validation"):
        data[name] = dsl.Dataset(name=name, uri=str(root / name), metadata={"snapshot_id": "s1"})
        splits[name].to_parquet(data[name].path, index=False)
    model = dsl.Model(name="model", uri=str(root / "model"))
    metrics = dsl.Metrics(name="metrics", uri=str(root / "metrics"))
    train.python_func(
        contract=contract,
        train_data=data["train"],
        validation_data=data["validation"],
        model=model,
        metrics=metrics,
    )
    return Path(model.path)
