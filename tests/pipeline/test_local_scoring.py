"""The scoring pipeline run by kfp.local: generated unlabelled rows and ingested batches scored by
the model the local endpoint serves, appended to the predictions table with its version and run."""

from __future__ import annotations

import copy
import json
import typing

import pytest

from contracts.tables import PREDICTIONS
from local.batches import ingest_generated
from local.environment import LocalEnvironment
from local.registry import LocalEndpoint, LocalModelRegistry
from local.run_scoring import run, summary
from local.warehouse import connect
from pipeline_src.components.score import prediction_schema
from pipeline_src.scoring import COMPONENTS, scoring_pipeline
from pipeline_src.sizing import task_names
from stacks.config import ConfigError, ScoringTask, parse_stack_config, stack_config_values
from tests.pipeline.test_spec import test_component_source_is_self_contained as self_contained

quiet = lambda _: None  # noqa: E731


@pytest.fixture
def served(tmp_path, sample_model_dir) -> tuple[LocalEnvironment, str]:
    """A fresh local environment whose staging endpoint serves the sample model."""
    env = LocalEnvironment(root=tmp_path / "state").ensure()
    version = LocalModelRegistry(env.registry_dir).upload(
        env.model_id, sample_model_dir, display_name="model", version_aliases=["staging"]
    )
    LocalEndpoint(env.endpoints_dir, "staging").deploy(version)
    return env, version.resource_name


def predictions_of(env: LocalEnvironment, run_id: str) -> list[dict]:
    with connect(env.warehouse_path, read_only=True) as con:
        return (
            con.sql(
                f"SELECT * FROM {env.dataset}.predictions WHERE scoring_run_id = $run "
                "ORDER BY source_row",
                params={"run": run_id},
            )
            .to_arrow_table()
            .to_pylist()
        )


def test_generated_rows_are_scored_into_the_predictions_table(served):
    env, version = served
    outcome = run(env, say=quiet, generate=150, seed=5, chunk_rows=64)  # three chunks
    assert outcome.scored == 150 and outcome.model == version
    rows = predictions_of(env, outcome.run_id)
    assert len(rows) == 150
    assert {r["model_version"] for r in rows} == {version}
    assert [r["source_row"] for r in rows] == list(range(150))
    for row in rows:
        probabilities = json.loads(row["probabilities"])
        assert abs(sum(probabilities.values()) - 1) < 1e-6
        assert row["predicted_class"] == max(probabilities, key=probabilities.get)
        assert row["row_key"] and row["scored_at"] is not None
    assert len({r["row_key"] for r in rows}) == 150  # each generated row keeps its own key
    text = "\n".join(summary(outcome))
    assert outcome.table in text and outcome.run_id in text and version in text


def score_in_process(env: LocalEnvironment, artifact, run_id: str) -> tuple[int, int]:
    """The two components called in this process on the unscored batches: (selected, scored)."""
    from kfp import dsl

    from local.run_scoring import scoring_parameters
    from local.run_training import run_environment
    from pipeline_src.components.score import score_rows, select_rows

    params = scoring_parameters(env, source="")
    common = {k: params[k] for k in ("contract", "project", "location", "bq_location",
                                     "dataset")}  # fmt: skip
    rows, served = artifact(dsl.Dataset, f"rows-{run_id}"), artifact(dsl.Artifact, f"m-{run_id}")
    with run_environment(env):  # the local backend, as the launcher names it for a run
        selected = select_rows.python_func(
            **common, table=params["table"], endpoint="prod", fallback_endpoint="staging",
            model_id=params["model_id"], rows=rows, served=served,
        ).selected  # fmt: skip
        scored = score_rows.python_func(
            **common, rows=rows, served=served, predictions=artifact(dsl.Dataset, f"p-{run_id}"),
            scoring_run_id=run_id,
        )  # fmt: skip
    return selected, scored


def test_ingested_batches_are_scored_once(served, artifact):
    env, version = served
    batch = ingest_generated(env, 120, seed=7)  # through the ingestion function
    assert score_in_process(env, artifact, "first") == (120, 120)
    rows = predictions_of(env, "first")
    assert {r["source_batch_id"] for r in rows} == {batch["batch_id"]}
    assert {r["model_version"] for r in rows} == {version}
    assert all(r["source_uri"] and r["source_generation"] for r in rows)
    assert score_in_process(env, artifact, "again") == (0, 0)  # a batch is scored once
    assert predictions_of(env, "again") == []
    newer = ingest_generated(env, 30, seed=8)
    assert score_in_process(env, artifact, "newer") == (30, 30)
    assert {r["source_batch_id"] for r in predictions_of(env, "newer")} == {newer["batch_id"]}


def test_the_components_write_the_tables_columns():
    columns = [(f.name, f.nullable) for f in prediction_schema()]
    assert columns == [(c["name"], c["mode"] != "REQUIRED") for c in PREDICTIONS.schema]


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.name)
def test_component_source_is_self_contained(component):
    self_contained(component)


def test_config_names_exactly_the_scoring_tasks():
    assert set(typing.get_args(ScoringTask)) == task_names(scoring_pipeline)


def test_the_stack_config_checks_the_scoring_source_and_sizes():
    values = copy.deepcopy(stack_config_values("prod"))
    scoring = values["tabular-mlops:platform"]["pipelines"]["scoring"]
    for good in ("analytics.new_customers", "p.analytics.t", "SELECT * FROM a.b", ""):
        scoring["source"] = good
        parse_stack_config(values, source="Pulumi.prod.yaml")
    for key, bad, expected in [
        ("source", "DELETE FROM a.b", r"scoring\.source: .*neither a table"),
        ("replica_count", 0, r"scoring\.replica_count"),
        ("sorce", "a.b", r"scoring\.sorce: unknown key"),
    ]:
        broken = copy.deepcopy(values)
        broken["tabular-mlops:platform"]["pipelines"]["scoring"][key] = bad
        with pytest.raises(ConfigError, match=expected):
            parse_stack_config(broken, source="Pulumi.prod.yaml")


def test_in_the_cloud_one_sized_batch_job_predicts_and_a_load_job_appends(
    monkeypatch, artifact, contract
):
    """The cloud path at its seam: the Vertex AI job and the BigQuery load are replaced."""
    import pyarrow.parquet as pq
    from kfp import dsl

    from contracts.generate import generate, sample_profile
    from pipeline_src.cloud import batch_prediction
    from pipeline_src.cloud.bigquery import BigQueryWarehouse
    from pipeline_src.components import score
    from pipeline_src.components.common import feature_spec

    spec = feature_spec(contract)
    rows = artifact(dsl.Dataset, "rows")
    table = next(generate(sample_profile(LocalEnvironment().contract), 40, seed=3))
    pq.write_table(table.drop_columns([spec["label"]]), rows.path)
    served = artifact(dsl.Artifact, "served")
    served_model = "projects/p/locations/l/models/m@4"
    with open(served.path, "w", encoding="utf-8") as out:
        json.dump({"model": served_model, "artifact_dir": "/gcs/b/m", "sha256": "x"}, out)
    jobs, loads = [], []

    def batch_job(project, location, model, frame, spec, job):
        jobs.append((model, len(frame), job.machine_type, job.service_account,
                     job.replica_count, job.job_prefix))  # fmt: skip
        return [{"class": "Adelie", "probabilities": {"Adelie": 0.75, "Gentoo": 0.25}}] * len(frame)

    def load_job(warehouse, table, uri):
        loads.append((warehouse.project, warehouse.location, warehouse.dataset, table, uri))

    monkeypatch.setattr(batch_prediction, "predict_vertex", batch_job)
    monkeypatch.setattr(BigQueryWarehouse, "append_parquet", load_job)
    predictions = artifact(dsl.Dataset, "predictions")
    scored = score.score_rows.python_func(
        contract=contract, rows=rows, served=served, predictions=predictions, project="p",
        location="l", bq_location="EU", dataset="ds", scoring_run_id="run-7",
        machine_type="n1-standard-4", replica_count=3, service_account="runner@p", chunk_rows=8,
    )  # fmt: skip
    assert scored == 40
    # One job for every row (not one per chunk), sized by the stack, as the runner.
    assert jobs == [(served_model, 40, "n1-standard-4", "runner@p", 3, "scoring")]
    assert loads == [("p", "EU", "ds", "predictions", predictions.uri)]
    written = pq.read_table(predictions.path).to_pylist()
    assert {(r["model_version"], r["scoring_run_id"]) for r in written} == {(served_model, "run-7")}


def test_the_rows_to_score_are_a_table_a_query_or_the_unscored_batches(spec):
    from pipeline_src.components.score import scoring_query

    table = scoring_query(spec, "ds", "penguins", "predictions", "analytics.new_rows")
    assert table == (
        "SELECT * FROM (SELECT * FROM `analytics`.`new_rows`) WHERE @snapshot_time IS NOT NULL"
    )
    query = scoring_query(spec, "ds", "penguins", "predictions", " SELECT a FROM b ")
    assert query.startswith("SELECT * FROM (SELECT a FROM b)")
    unscored = scoring_query(spec, "ds", "penguins", "predictions", "")
    assert "FROM `ds`.`penguins` WHERE _ingested_at <= @snapshot_time" in unscored
    assert "_batch_id NOT IN (SELECT source_batch_id FROM `ds`.`predictions`" in unscored
    assert f"`{spec['label']}`" not in unscored  # the label is never read to score
