"""Batch scoring in both stacks' plans: its schedule and batch job sizing, the predictions table,
who reads and writes it, and the alert a failed run raises."""

from __future__ import annotations

import json

from contracts.tables import PREDICTIONS
from pipeline_src.scoring import PIPELINE_NAME, scoring_pipeline
from tests.infra.records import bindings, compiled_parameters, config_of, job_of, scheduled_job


def test_the_scoring_schedule_runs_the_compiled_scoring_with_the_stack_values(stack_record):
    config = config_of(stack_record).platform.pipelines.scoring
    # One run at a time: two runs would score the same batches.
    job = scheduled_job(stack_record, "pipelines-scoring-schedule", config.schedule)
    declared, defaults = compiled_parameters(stack_record, job, scoring_pipeline)
    assert defaults["prediction_replica_count"] == config.replica_count
    values = job["runtimeConfig"]["parameterValues"]
    assert values["prediction_machine_type"] == config.machine_type
    assert values["source"] == config.source
    assert all(isinstance(v, str) for v in values.values())
    assert not {n for n, p in declared.items() if not p.get("isOptional") and n not in values}


def test_each_stack_sizes_its_batch_job_and_scores_with_its_own_endpoint(stack_records):
    sizes = {}
    for stack, record in stack_records.items():
        scoring = job_of(record, "pipelines-scoring-schedule")
        training = job_of(record, "pipelines-training-schedule")
        values = scoring["runtimeConfig"]["parameterValues"]
        assert values["endpoint"] == training["runtimeConfig"]["parameterValues"]["endpoint"]
        assert values["fallback_endpoint"] == ""  # prod scores with the promoted version only
        assert values["predictions_table"] == PREDICTIONS.table_id
        assert scoring["serviceAccount"] == values["prediction_service_account"]
        assert scoring["serviceAccount"] == training["serviceAccount"]  # the pipeline runner
        assert scoring["labels"]["managed-by"] == "scoring-pipeline"
        defaults = json.loads(scoring["pipelineSpec"])["root"]["inputDefinitions"]["parameters"]
        sizes[stack] = (
            values["prediction_machine_type"],
            defaults["prediction_replica_count"]["defaultValue"],
        )
    assert sizes["staging"] != sizes["prod"]  # stacks differ only in data, and they do here


def test_the_predictions_table_is_partitioned_by_day_and_analysts_read_it(stack_record):
    table = stack_record.named(f"warehouse-{PREDICTIONS.table_id}").inputs
    assert table["timePartitioning"] == {"type": "DAY", "field": "scored_at"}
    assert table["clusterings"] == ["model_version"]
    columns = [c["name"] for c in json.loads(table["schema"])]
    assert {"model_version", "scoring_run_id", "predicted_class", "probabilities"} <= set(columns)
    grants = bindings(stack_record)
    readers = {b.member for b in grants if b.target == PREDICTIONS.table_id}
    analysts = config_of(stack_record).platform.access.data_analysts
    assert set(analysts) <= readers
    assert all(
        b.role == "roles/bigquery.dataViewer" for b in grants if b.target == PREDICTIONS.table_id
    )
    runner = job_of(stack_record, "pipelines-scoring-schedule")["serviceAccount"]
    writes = {
        b.role for b in grants if b.member == f"serviceAccount:{runner}" and b.kind == "bigquery"
    }
    assert "roles/bigquery.dataEditor" in writes  # on the dataset: appends the predictions


def test_a_failed_scoring_run_alerts_through_the_pipeline_failure_policy(stack_record):
    alerts = {
        r.name: r.inputs for r in stack_record.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    }
    general = alerts["monitoring-pipeline-failures"]["conditions"][0]["conditionMatchedLog"]
    assert "PIPELINE_STATE_FAILED" in general["filter"]
    assert PIPELINE_NAME not in general["filter"]  # not excluded, as the evaluation is
