"""Continuous evaluation in both stacks' plans: its schedule, the retraining it starts, alerts."""

from __future__ import annotations

import json

from pipeline_src.components.trigger import decide_and_trigger
from pipeline_src.evaluation import PIPELINE_NAME, evaluation_pipeline
from resources.monitoring import EVALUATION_LOG_EVENT
from tests.infra.records import compiled_parameters, config_of, job_of, scheduled_job


def test_the_evaluation_schedule_runs_the_compiled_evaluation_with_the_stack_values(stack_record):
    config = config_of(stack_record).platform.pipelines.evaluation
    # One run at a time: two runs would judge the same batches.
    job = scheduled_job(stack_record, "pipelines-evaluation-schedule", config.schedule)
    _, defaults = compiled_parameters(stack_record, job, evaluation_pipeline)
    assert defaults["min_new_rows"] == config.min_new_rows
    assert defaults["min_accuracy"] == config.min_accuracy
    assert defaults["max_degradation"] == config.max_degradation


def test_retraining_runs_the_deployed_training_code_with_its_schedule_parameters(stack_record):
    evaluation = job_of(stack_record, "pipelines-evaluation-schedule")
    training = job_of(stack_record, "pipelines-training-schedule")
    defaults = json.loads(evaluation["pipelineSpec"])["root"]["inputDefinitions"]["parameters"]
    assert defaults["training_spec"]["defaultValue"] == json.loads(training["pipelineSpec"])
    values = evaluation["runtimeConfig"]["parameterValues"]
    assert json.loads(values["training_parameters"]) == training["runtimeConfig"]["parameterValues"]
    assert values["training_service_account"] == training["serviceAccount"]
    assert values["training_pipeline_root"] == training["runtimeConfig"]["gcsOutputDirectory"]


def test_the_evaluation_judges_the_stack_endpoint_as_the_runner_with_strings_only(stack_record):
    evaluation = job_of(stack_record, "pipelines-evaluation-schedule")
    training = job_of(stack_record, "pipelines-training-schedule")
    values = evaluation["runtimeConfig"]["parameterValues"]
    assert all(isinstance(v, str) for v in values.values())
    declared = json.loads(evaluation["pipelineSpec"])["root"]["inputDefinitions"]["parameters"]
    assert not {n for n, p in declared.items() if not p.get("isOptional") and n not in values}
    assert values["endpoint"] == training["runtimeConfig"]["parameterValues"]["endpoint"]
    assert values["fallback_endpoint"] == ""  # one endpoint per stack
    assert values["evaluations_table"] == "evaluations"
    assert (
        evaluation["serviceAccount"]
        == values["prediction_service_account"]
        == (training["serviceAccount"])
    )
    assert evaluation["labels"]["managed-by"] == "evaluation-pipeline"
    assert (
        evaluation["runtimeConfig"]["gcsOutputDirectory"]
        == (training["runtimeConfig"]["gcsOutputDirectory"])
    )


def test_alerts_for_a_failed_evaluation_and_a_started_retraining(stack_record):
    alerts = {
        r.name: r.inputs for r in stack_record.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    }
    failed = alerts["monitoring-evaluation-failures"]["conditions"][0]["conditionMatchedLog"]
    assert f'jsonPayload.pipelineName="{PIPELINE_NAME}"' in failed["filter"]
    assert "PIPELINE_STATE_FAILED" in failed["filter"]
    general = alerts["monitoring-pipeline-failures"]["conditions"][0]["conditionMatchedLog"]
    assert f'NOT jsonPayload.pipelineName="{PIPELINE_NAME}"' in general["filter"]  # alerted once
    retraining = alerts["monitoring-retraining-triggered"]
    matched = retraining["conditions"][0]["conditionMatchedLog"]["filter"]
    assert f'jsonPayload.event="{EVALUATION_LOG_EVENT}"' in matched
    assert 'jsonPayload.decision="degraded"' in matched
    assert (
        retraining["severity"] == "WARNING"
        and "triggered_run" in retraining["documentation"]["content"]
    )
    # The decide step writes exactly the line the alert matches: one name, imported by both
    # (tests/pipeline/test_evaluation_components.py runs the step and reads its line).
    source = decide_and_trigger.component_spec.implementation.container.command[-1]
    assert '{"event": EVALUATION_LOG_EVENT, "decision": decision' in source


def test_the_dashboard_counts_evaluations_by_decision(stack_record):
    metric = stack_record.named("monitoring-evaluations").inputs
    assert f'jsonPayload.event="{EVALUATION_LOG_EVENT}"' in metric["filter"]
    assert metric["labelExtractors"] == {"decision": "EXTRACT(jsonPayload.decision)"}
    dashboard = json.loads(stack_record.named("monitoring-dashboard").inputs["dashboardJson"])
    titles = json.dumps(dashboard)
    assert "Continuous evaluations by decision (per day)" in titles
    assert f"logging.googleapis.com/user/{metric['name']}" in titles
