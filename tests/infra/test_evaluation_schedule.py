"""Continuous evaluation in both stacks' plans: its schedule, the retraining it starts, alerts."""

from __future__ import annotations

import json

from pipeline_src.compile import compile_spec
from pipeline_src.components.trigger import decide_and_trigger
from pipeline_src.evaluation import PIPELINE_NAME, evaluation_pipeline
from resources.monitoring import EVALUATION_LOG_EVENT
from stacks.config import PROJECT_ROOT, load_stack_file


def config_of(record):
    return load_stack_file(PROJECT_ROOT / f"Pulumi.{record.stack}.yaml")


def job_of(record, name: str) -> dict:
    return record.named(name).inputs["createPipelineJobRequest"]["pipelineJob"]


def test_the_evaluation_schedule_runs_the_compiled_evaluation_with_the_stack_values(stack_record):
    config = config_of(stack_record).platform.pipelines.evaluation
    schedule = stack_record.named("pipelines-evaluation-schedule").inputs
    assert schedule["cron"] == f"TZ={config.schedule.time_zone} {config.schedule.cron}"
    assert schedule["desiredState"] == ("PAUSED" if config.schedule.paused else "ACTIVE")
    assert schedule["maxConcurrentRunCount"] == "1"  # two runs would judge the same batches
    job = job_of(stack_record, "pipelines-evaluation-schedule")
    spec = json.loads(job["pipelineSpec"])
    declared = spec["root"]["inputDefinitions"]["parameters"]
    defaults = {n: p["defaultValue"] for n, p in declared.items() if "defaultValue" in p}
    image = stack_record.outputs["pipeline_image"]
    assert spec == compile_spec(image, defaults, pipeline=evaluation_pipeline)
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
