"""decide: healthy or degraded, and when degraded, start the training pipeline — once per spans.

The decision table (`decide`):

| rows < min_new_rows                                   | not_enough_data (new_data stops there) |
| accuracy >= min_accuracy and drop <= max_degradation  | healthy: a pass is recorded             |
| otherwise, no retraining started for these batches    | degraded: retraining starts             |
| otherwise, a retraining already started for them      | already_triggered: nothing starts       |

`drop` is the model's own test-time accuracy minus its accuracy on the new rows. The retraining
run's id is derived from the batches (`retrain-<digest>`), and starting it is an atomic claim of
that id (a Vertex AI pipeline job id is unique in its location; locally a file created with
O_EXCL), so a repeated, retried or concurrent evaluation of the same spans never starts a second
one. The retraining runs on a snapshot taken at the evaluation's `until`: all data up to then,
the new spans included, with the reason in its labels. The pipeline runs port starts it
(pipeline_src/ports.py `PipelineRuns`); locally the claim is a request the local launcher
carries out after the evaluation (local/adapters.py).

Whatever the outcome, one row goes to the evaluations table with the metric, the drift, the
decision, its reason and the run started, if any.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Input

from pipeline_src.components.common import label_value, pipeline_component

EVALUATION_LOG_EVENT = "evaluation"
"""`event` of the decide step's one structured stdout line (Cloud Logging's `jsonPayload`),
`{"event": "evaluation", "decision": "healthy|degraded|already_triggered", "triggered_run": …}`:
the deployment's evaluations metric counts it and its retraining alert matches it
(resources/monitoring.py imports this name)."""
HEALTHY, DEGRADED, ALREADY_TRIGGERED = "healthy", "degraded", "already_triggered"
"""The line's `decision` once there was enough data (the module's table); the retraining alert
matches DEGRADED."""


def decide(
    rows: int,
    min_new_rows: int,
    accuracy: float,
    test_accuracy: float,
    min_accuracy: float,
    max_degradation: float,
    triggered_run: str = "",
) -> tuple:
    """(decision, reason) for an evaluation; see the module's decision table."""
    if rows < min_new_rows:
        return "not_enough_data", f"{rows} new labelled rows; at least {min_new_rows} are needed"
    drop = test_accuracy - accuracy
    change = f"drop {drop:.3f}" if drop >= 0 else f"gain {-drop:.3f}"
    measured = (
        f"accuracy {accuracy:.3f} on {rows} new rows vs {test_accuracy:.3f} at test time ({change})"
    )
    problems = []
    if accuracy < min_accuracy:
        problems.append(f"below the bar of {min_accuracy:.3f}")
    if drop > max_degradation:
        problems.append(f"a drop beyond the allowed {max_degradation:.3f}")
    if not problems:
        return HEALTHY, (
            f"{measured}: at least {min_accuracy:.3f} and within {max_degradation:.3f} "
            "of the test-time accuracy"
        )
    degraded = f"{measured}: {' and '.join(problems)}"
    if triggered_run:
        return ALREADY_TRIGGERED, (
            f"{degraded}; retraining {triggered_run} was already started for these batches"
        )
    return DEGRADED, f"{degraded}; retraining on data including these batches"


def retraining_run_id(batch_ids: list) -> str:
    """The retraining run's id: one per set of spans (a valid Vertex AI pipeline job id)."""
    import hashlib

    digest = hashlib.sha256("\n".join(sorted(batch_ids)).encode("utf-8")).hexdigest()
    return f"retrain-{digest[:20]}"


def retraining_labels(evaluation_id: str, model: str) -> dict:
    """The retraining run's labels: who started it, and for which evaluation and model."""
    return {
        "managed-by": "evaluation-pipeline",
        "evaluation": label_value(evaluation_id),
        "evaluated-model": label_value(model),
    }


def retraining(training, evaluation_id: str, model: str, spans: list, until: str, reason: str):
    """(request, run) that start the retraining: the request says why (the evaluation, model,
    batches, snapshot time and reason); the run is `training` (the spec, its parameters, where
    and as whom it runs) on a snapshot taken at `until`, labelled with who started it."""
    import dataclasses

    request = {"evaluation_id": evaluation_id, "model": model, "batch_ids": spans,
               "snapshot_time": until, "reason": reason}  # fmt: skip
    run = dataclasses.replace(
        training,
        parameters={**training.parameters, "snapshot_time": until},
        labels=retraining_labels(evaluation_id, model),
    )
    return request, run


def check_bars(min_accuracy: float, max_degradation: float) -> None:
    if not 0 < min_accuracy <= 1 or not 0 <= max_degradation <= 1:
        raise ValueError(
            f"min_accuracy must be in (0, 1] and max_degradation in [0, 1], got {min_accuracy} "
            f"and {max_degradation}"
        )


def recorded_retraining(warehouse, dataset: str, evaluations_table: str, run_id: str) -> str:
    """`run_id` when an evaluation already recorded starting it (e.g. a run whose claim file or
    job has since been cleaned up: it counts as started too), else ""."""
    earlier = warehouse.read(
        f"SELECT COUNT(*) AS n FROM `{dataset}`.`{evaluations_table}` "
        "WHERE triggered_run = @run_id",
        {"run_id": run_id}, tables=[evaluations_table],
    )  # fmt: skip
    return run_id if earlier.to_pylist()[0]["n"] else ""


def evaluation_record(
    evaluation_id: str, result: dict, spans: list, rows: int, outcome: tuple, triggered: str
) -> dict:
    """The evaluation's row of the evaluations table; `outcome` is (decision, reason)."""
    import json

    from pipeline_src.components.new_data import evaluation_row

    drift = {name: entry["value"] for name, entry in result["drift"].items()}
    return evaluation_row(
        evaluation_id, result["model"], spans, rows, *outcome,
        metric=result["metric"], value=result["value"], baseline_value=result["test_value"],
        drift=json.dumps(drift, sort_keys=True), triggered_run=triggered or None,
    )  # fmt: skip


@pipeline_component(packages=("google-cloud-aiplatform", "google-cloud-bigquery", "pyarrow"))
def decide_and_trigger(
    assessment: Input[Artifact],
    rows: int,
    batch_ids: str,
    until: str,
    evaluation_id: str,
    min_new_rows: int,
    min_accuracy: float,
    max_degradation: float,
    project: str,
    location: str,
    bq_location: str,
    dataset: str,
    training_spec: dict,
    training_parameters: str,
    pipeline_root: str,
    service_account: str,
    kms_key: str = "",
    evaluations_table: str = "evaluations",
) -> NamedTuple("Outputs", [("decision", str), ("reason", str), ("triggered_run", str)]):
    """Decide from the assessment, start retraining when degraded, record the evaluation."""
    import json
    from collections import namedtuple

    from pipeline_src.components.common import read_json
    from pipeline_src.components.trigger import (
        DEGRADED,
        EVALUATION_LOG_EVENT,
        check_bars,
        decide,
        evaluation_record,
        recorded_retraining,
        retraining,
        retraining_run_id,
    )
    from pipeline_src.ports import TrainingRun, backend

    check_bars(min_accuracy, max_degradation)
    result = read_json(assessment.path)
    spans = json.loads(batch_ids)
    run_id = retraining_run_id(spans)
    ports = backend()
    warehouse = ports.warehouse(project, bq_location, dataset, job_label="evaluation")
    already = recorded_retraining(warehouse, dataset, evaluations_table, run_id)
    args = (rows, min_new_rows, result["value"], result["test_value"], min_accuracy)
    decision, reason = decide(*args, max_degradation, already)
    if decision == DEGRADED:
        training = TrainingRun(training_spec, json.loads(training_parameters or "{}"),
                               pipeline_root, service_account, kms_key=kms_key)  # fmt: skip
        request, run = retraining(training, evaluation_id, result["model"], spans, until, reason)
        if not ports.pipeline_runs(project, location).start(run_id, request, run):
            decision, reason = decide(*args, max_degradation, run_id)  # it was started already
    triggered = run_id if decision == DEGRADED else ""  # degraded still: this run started it
    record = evaluation_record(evaluation_id, result, spans, rows, (decision, reason), triggered)
    warehouse.append_rows(evaluations_table, [record])
    line = {"event": EVALUATION_LOG_EVENT, "decision": decision, "model": result["model"],
            "triggered_run": triggered, "accuracy": result["value"], "reason": reason}  # fmt: skip
    print(json.dumps(line))  # one structured line (jsonPayload): the retraining alert matches it
    outputs = namedtuple("Outputs", ["decision", "reason", "triggered_run"])
    return outputs(decision, reason, triggered)
