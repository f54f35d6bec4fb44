"""extract, validate and split: their logic directly and through `component.python_func`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from kfp import dsl

from local.adapters import backend_variables
from local.warehouse import append_rows, connect, query, to_duckdb
from pipeline_src.components.common import feature_spec
from pipeline_src.components.extract import extract
from pipeline_src.components.split import split, stratified_split
from pipeline_src.components.validate import check_snapshot, validate

LINEAGE = ["_batch_id", "_ingested_at"]


def run_extract(env, contract, artifact, name="snapshot", snapshot_time=""):
    snapshot = artifact(dsl.Dataset, name)
    outputs = extract.python_func(
        contract=contract,
        project=env.project,
        bq_location="",
        dataset=env.dataset,
        table=env.contract.name,
        snapshot=snapshot,
        snapshot_time=snapshot_time,
    )
    return outputs, snapshot, pd.read_parquet(snapshot.path)


def test_extract_snapshots_the_curated_table(local_backend, contract, artifact):
    local_env = local_backend
    outputs, snapshot, frame = run_extract(local_env, contract, artifact)
    assert outputs.rows == len(frame) == 344
    assert list(frame.columns) == [c["name"] for c in contract["columns"]] + LINEAGE
    assert frame["penguin_id"].is_monotonic_increasing  # sorted: the same snapshot, same bytes
    assert re.fullmatch(r"\d{8}t\d{6}z", outputs.snapshot_id)
    assert snapshot.metadata["snapshot_id"] == outputs.snapshot_id
    assert snapshot.metadata["batches"] == 1 and snapshot.metadata["superseded"] == 0


def test_extract_takes_the_newest_row_of_each_key_as_of_the_snapshot_time(
    local_backend, contract, artifact
):
    local_env = local_backend
    _, before, original = run_extract(local_env, contract, artifact, "before")
    corrected = original.iloc[[0]].drop(columns=LINEAGE).to_dict(orient="records")[0]
    corrected["body_mass_g"] = 4321.0
    with connect(local_env.warehouse_path) as con:
        schema = local_env.contract.bigquery_schema(lineage=True)
        row = {
            **corrected,
            "_source_uri": "gs://landing/fix.csv",
            "_source_generation": 2,
            "_batch_id": "correction",
            "_ingested_at": datetime.now(UTC) + timedelta(seconds=1),
        }
        append_rows(con, local_env.dataset, local_env.contract.name, schema, [row])

    later_time = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    _, after, latest = run_extract(local_env, contract, artifact, "after", later_time)
    key = corrected["penguin_id"]
    assert len(latest) == 344
    assert latest.set_index("penguin_id").loc[key, "body_mass_g"] == 4321.0
    assert after.metadata["superseded"] == 1 and after.metadata["batches"] == 2

    # The first snapshot's time reproduces the first snapshot exactly.
    _, _, again = run_extract(
        local_env, contract, artifact, "again", before.metadata["snapshot_time"]
    )
    pd.testing.assert_frame_equal(again, original)


def test_extract_explains_a_missing_table_and_a_bad_time(local_backend, contract, artifact):
    local_env = local_backend
    with pytest.raises(ValueError, match="has no table"):
        extract.python_func(
            contract=contract, project="p", bq_location="", dataset=local_env.dataset,
            table="nope", snapshot=artifact(dsl.Dataset, "s"),
        )  # fmt: skip
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        run_extract(local_env, contract, artifact, snapshot_time="yesterday")
    with pytest.raises(ValueError, match="needs a time zone"):
        run_extract(local_env, contract, artifact, snapshot_time="2024-05-01T03:00:00")


class FakeBigQuery:
    """Stands in for `bigquery.Client`: runs each query it is sent on the local warehouse."""

    def __init__(self, warehouse, calls, project=None, location=None):
        self.warehouse, self.calls, self.project, self.location = (
            warehouse,
            calls,
            project,
            location,
        )

    def query(self, sql, job_config):
        params = {p.name: p.value for p in job_config.query_parameters}
        self.calls.append((self.project, self.location, sql, job_config))
        with connect(self.warehouse, read_only=True) as con:
            result = query(con, sql, params)
        return type("Job", (), {"result": lambda _self: FakeRows(result, self.calls)})()


class FakeRows:
    """A query's RowIterator: streamed in small record batches through the Storage Read API."""

    def __init__(self, table, calls):
        self.table, self.calls = table, calls

    def to_arrow_iterable(self, bqstorage_client=None):
        self.calls.append(("read", type(bqstorage_client).__name__))
        return iter(self.table.to_batches(max_chunksize=50))

    def to_arrow(self):
        return self.table


def test_extract_on_bigquery_sends_the_same_sql_with_a_timestamp_parameter(
    monkeypatch, local_env, contract, artifact
):
    from google.cloud import bigquery, bigquery_storage

    calls = []
    monkeypatch.setattr(
        bigquery, "Client", lambda **kw: FakeBigQuery(local_env.warehouse_path, calls, **kw)
    )
    monkeypatch.setattr(bigquery_storage, "BigQueryReadClient", type("BigQueryReadClient", (), {}))
    snapshot = artifact(dsl.Dataset, "bq")
    outputs = extract.python_func(
        contract=contract, project="acme-mlops-staging", bq_location="europe-west4",
        dataset=local_env.dataset, table="penguins", snapshot=snapshot,
    )  # fmt: skip
    assert outputs.rows == 344
    project, location, sql, config = calls[0]
    assert (project, location) == ("acme-mlops-staging", "europe-west4")
    assert "@snapshot_time" in sql and "QUALIFY ROW_NUMBER()" in sql  # BigQuery dialect
    assert f"`{local_env.dataset}`.`penguins`" in sql
    (parameter,) = config.query_parameters
    assert parameter.type_ == "TIMESTAMP" and parameter.value.tzinfo is not None
    assert calls[1] == ("read", "BigQueryReadClient")  # rows streamed by the Storage Read API
    for name, value in backend_variables(local_env.root).items():  # the same, run locally
        monkeypatch.setenv(name, value)
    _, _, local_frame = run_extract(local_env, contract, artifact, "local")
    pd.testing.assert_frame_equal(pd.read_parquet(snapshot.path), local_frame)


def test_snapshot_sql_transpiles_for_duckdb(spec):
    from pipeline_src.components.extract import snapshot_queries

    rows_sql, counts_sql = snapshot_queries(spec, "tabular_mlops_local", "penguins")
    assert "$snapshot_time" in to_duckdb(rows_sql) and "`" not in to_duckdb(counts_sql)


# --- validate -----------------------------------------------------------------------------------


def test_validate_accepts_the_sample_and_saves_the_baseline(
    snapshot_frame, contract, artifact, spec
):
    snapshot = artifact(dsl.Dataset, "snapshot", {"snapshot_id": "20240501t030000z"})
    snapshot_frame.to_parquet(snapshot.path, index=False)
    baseline = artifact(dsl.Artifact, "baseline")
    validate.python_func(contract=contract, snapshot=snapshot, baseline=baseline)

    stats = json.loads(Path(baseline.path).read_text())
    assert stats["snapshot_id"] == "20240501t030000z" and stats["rows"] == 344
    assert set(stats["features"]) == {f["name"] for f in spec["features"]}
    assert sum(stats["label"]["counts"].values()) == 344
    bill = stats["features"]["bill_length_mm"]
    assert bill["kind"] == "numeric" and bill["count"] == 342
    assert sum(bill["histogram"]["counts"]) == bill["count"]
    assert bill["histogram"]["edges"] == sorted(bill["histogram"]["edges"])
    island = stats["features"]["island"]
    assert island["kind"] == "categorical"
    assert sum(island["frequencies"].values()) == pytest.approx(1)
    assert any("sex" in note for note in stats["notes"])  # 11 of 344 are missing


def test_validate_fails_with_every_problem_listed(snapshot_frame, contract, artifact):
    frame = snapshot_frame.copy()
    chinstrap = frame.index[frame["species"] == "Chinstrap"]
    frame = frame.drop(chinstrap[3:])  # 3 Chinstraps left
    frame.loc[frame.index[: len(frame) // 3], "bill_depth_mm"] = None  # a third missing
    frame.loc[frame.index[-1], "species"] = "Emperor"
    frame = pd.concat([frame, frame.iloc[[0]]])  # a repeated key
    snapshot = artifact(dsl.Dataset, "bad")
    frame.to_parquet(snapshot.path, index=False)

    with pytest.raises(ValueError) as caught:
        validate.python_func(
            contract=contract, snapshot=snapshot, baseline=artifact(dsl.Artifact, "baseline")
        )
    message = str(caught.value)
    assert "unfit for training" in message
    assert "class 'Chinstrap' has 3 rows; at least 10 are needed" in message
    assert "feature bill_depth_mm: 33." in message and "above the allowed 20.0%" in message
    assert "column species: values outside the contract's list: 'Emperor' (1)" in message
    assert "1 rows repeat a key (penguin_id)" in message


def test_validate_reports_schema_problems_before_values(snapshot_frame, spec):
    frame = snapshot_frame.drop(columns=["island"])
    frame["bill_length_mm"] = frame["bill_length_mm"].astype(str)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    problems, _ = check_snapshot(frame, table.schema, spec, 10, 0.2)
    assert "column island is missing" in problems
    assert any(
        p.startswith("column bill_length_mm is") and p.endswith("the contract says FLOAT64")
        for p in problems
    )


def test_validate_checks_ranges_and_required_values(snapshot_frame, spec):
    frame = snapshot_frame.copy()
    frame.loc[frame.index[0], "flipper_length_mm"] = 999.0
    frame.loc[frame.index[1], "island"] = None
    table = pa.Table.from_pandas(frame, preserve_index=False)
    problems, _ = check_snapshot(frame, table.schema, spec, 10, 0.2)
    assert "column flipper_length_mm: 1 values outside [150.0, 250.0]" in problems
    assert "column island: 1 rows are empty, the contract forbids it" in problems


def test_feature_spec_reads_roles_and_categories_from_the_contract(contract, spec):
    assert spec["label"] == "species" and spec["keys"] == ["penguin_id"]
    assert spec["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    by_name = {f["name"]: f for f in spec["features"]}
    assert list(by_name) == [c["name"] for c in contract["columns"] if c.get("role") == "feature"]
    assert by_name["island"]["categorical"] and by_name["island"]["categories"] == [
        "Biscoe", "Dream", "Torgersen"
    ]  # fmt: skip
    assert not by_name["body_mass_g"]["categorical"]
    dated = {**contract, "columns": [*contract["columns"], {"name": "d", "type": "DATE"}]}
    with pytest.raises(ValueError, match="feature d has type DATE"):
        feature_spec(dated)


# --- split --------------------------------------------------------------------------------------


def test_split_is_stratified_disjoint_and_complete(splits, snapshot_frame):
    keys = {name: set(part["penguin_id"]) for name, part in splits.items()}
    assert not (keys["train"] & keys["test"]) and not (keys["validation"] & keys["test"])
    assert keys["train"] | keys["validation"] | keys["test"] == set(snapshot_frame["penguin_id"])
    overall = snapshot_frame["species"].value_counts(normalize=True)
    for part in splits.values():
        shares = part["species"].value_counts(normalize=True)
        assert (shares - overall).abs().max() < 0.03
    assert len(splits["test"]) == pytest.approx(0.2 * 344, abs=2)


def test_split_depends_on_keys_and_seed_not_row_order(snapshot_frame, spec, splits):
    shuffled = snapshot_frame.sample(frac=1, random_state=7)
    again = stratified_split(shuffled, spec, 0.15, 0.2, seed=42)
    for name in splits:
        pd.testing.assert_frame_equal(again[name], splits[name])
    other_seed = stratified_split(snapshot_frame, spec, 0.15, 0.2, seed=43)
    assert set(other_seed["test"]["penguin_id"]) != set(splits["test"]["penguin_id"])


def test_split_keeps_most_test_rows_when_the_table_grows(snapshot_frame, spec, splits):
    newcomers = snapshot_frame.sample(n=60, random_state=1).copy()
    newcomers["penguin_id"] = [f"PAL2030-NEW-{i:03d}" for i in range(60)]
    grown = stratified_split(pd.concat([snapshot_frame, newcomers]), spec, 0.15, 0.2, seed=42)
    kept = set(splits["test"]["penguin_id"]) & set(grown["test"]["penguin_id"])
    assert len(kept) / len(splits["test"]) > 0.75


def test_split_component_writes_three_datasets(snapshot_frame, contract, artifact):
    snapshot = artifact(dsl.Dataset, "snapshot", {"snapshot_id": "s"})
    snapshot_frame.to_parquet(snapshot.path, index=False)
    parts = {n: artifact(dsl.Dataset, n) for n in ("train", "validation", "test")}
    sizes = split.python_func(contract=contract, snapshot=snapshot, **parts)
    assert sum(sizes) == 344
    assert (
        parts["test"].metadata["rows"]
        == sizes.test_rows
        == len(pd.read_parquet(parts["test"].path))
    )
    assert parts["train"].metadata["snapshot_id"] == "s"


def test_split_refuses_fractions_that_leave_nothing_to_train_on(snapshot_frame, spec):
    with pytest.raises(ValueError, match="leaves no rows to train on"):
        stratified_split(snapshot_frame, spec, 0.5, 0.5, seed=1)
    tiny = snapshot_frame.groupby("species").head(2)
    with pytest.raises(ValueError, match="too few to leave any for training"):
        stratified_split(tiny, spec, 0.15, 0.2, seed=1)
