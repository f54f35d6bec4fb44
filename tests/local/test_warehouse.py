"""The local warehouse: BigQuery schemas and SQL on DuckDB, and the sample loaded by ingestion."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from contracts.tables import MODEL_METRICS
from local.environment import LocalEnvironment
from local.warehouse import append_rows, connect, ingest_sample, query, table_exists


def test_platform_tables_are_created_from_their_bigquery_schema(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        assert not table_exists(con, "ds", "model_metrics")
        row = {"run_id": "r", "metric": "accuracy", "value": 0.9, "recorded_at": datetime.now(UTC)}
        assert append_rows(con, "ds", "model_metrics", MODEL_METRICS.schema, [row]) == 1
        columns = con.sql(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'model_metrics' ORDER BY ordinal_position"
        ).fetchall()
        assert [c[0] for c in columns] == [f["name"] for f in MODEL_METRICS.schema]
        assert ("recorded_at", "TIMESTAMP WITH TIME ZONE", "NO") in columns
        with pytest.raises(Exception, match="NOT NULL"):
            append_rows(con, "ds", "model_metrics", MODEL_METRICS.schema, [{"run_id": "r"}])


def test_bigquery_sql_runs_with_named_parameters(tmp_path):
    with connect(tmp_path / "w.duckdb") as con:
        rows = [{"run_id": f"r{i}", "metric": "m", "value": float(i),
                 "recorded_at": datetime(2024, 5, i, tzinfo=UTC)} for i in (1, 2, 3)]  # fmt: skip
        append_rows(con, "ds", "model_metrics", MODEL_METRICS.schema, rows)
        result = query(
            con,
            "SELECT COUNTIF(value > 1) AS above, SAFE_DIVIDE(SUM(value), 0) AS nothing "
            "FROM `ds`.`model_metrics` WHERE recorded_at <= @until",
            {"until": datetime(2024, 5, 2, 12, tzinfo=UTC)},
        ).to_pylist()
    assert result == [{"above": 1, "nothing": None}]


def test_the_sample_fills_the_curated_table_as_the_contract_says(tmp_path):
    env = LocalEnvironment(root=tmp_path / "state")
    assert ingest_sample(env) == 344
    contract = env.contract
    with connect(env.warehouse_path, read_only=True) as con:
        keys = [r[0] for r in con.sql(f"SELECT penguin_id FROM {env.dataset}.penguins").fetchall()]
        lineage = con.sql(
            f"SELECT DISTINCT _batch_id, _source_uri FROM {env.dataset}.penguins"
        ).fetchall()
    pattern = re.compile(contract.column("penguin_id").pattern)
    assert len(set(keys)) == 344 and all(pattern.match(k) for k in keys)
    # Ingested as an upload: one batch, named after the landing object it came from.
    ((batch_id, source_uri),) = lineage
    assert source_uri == f"gs://{env.landing_bucket}/incoming/palmerpenguins.csv"
    assert re.fullmatch(r"[0-9a-f]{32}", batch_id)
