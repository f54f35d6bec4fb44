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
the new spans included, with the reason in its labels. Locally the claim is the request: the
local runner starts the training pipeline for it (pipeline_src/run_local_evaluation.py).

Whatever the outcome, one row goes to the evaluations table with the metric, the drift, the
decision, its reason and the run started, if any.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Input

from pipeline_src.components.common import (
    label_value,
    local_environment,
    pipeline_component,
    read_json,
    write_json,
)
from pipeline_src.components.new_data import (
    evaluation_row,
    query_local_warehouse,
    warehouse_rows,
)
from pipeline_src.components.record_metrics import write_rows_bigquery, write_rows_local


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
        return "healthy", (
            f"{measured}: at least {min_accuracy:.3f} and within {max_degradation:.3f} "
            "of the test-time accuracy"
        )
    degraded = f"{measured}: {' and '.join(problems)}"
    if triggered_run:
        return "already_triggered", (
            f"{degraded}; retraining {triggered_run} was already started for these batches"
        )
    return "degraded", f"{degraded}; retraining on data including these batches"


def retraining_run_id(batch_ids: list) -> str:
    """The retraining run's id: one per set of spans (a valid Vertex AI pipeline job id)."""
    import hashlib

    digest = hashlib.sha256("\n".join(sorted(batch_ids)).encode("utf-8")).hexdigest()
    return f"retrain-{digest[:20]}"


def claim_local(local_root: str, run_id: str, request: dict) -> bool:
    """Create the local retraining request `run_id`; False if it exists (already triggered)."""
    import json
    import os

    folder = local_environment(local_root).root / "retraining"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        handle = os.open(folder / f"{run_id}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump({**request, "status": "requested"}, out, indent=2, sort_keys=True)
    return True


def submit_vertex(
    project: str,
    location: str,
    run_id: str,
    training_spec: dict,
    parameters: dict,
    pipeline_root: str,
    service_account: str,
    labels: dict,
    kms_key: str = "",
) -> bool:
    """Submit the training pipeline as job `run_id`; False if that job exists already."""
    import os
    import tempfile

    from google.api_core.exceptions import AlreadyExists
    from google.cloud import aiplatform

    if not training_spec:
        raise ValueError("the evaluation needs the compiled training pipeline to retrain")
    aiplatform.init(project=project, location=location)
    with tempfile.TemporaryDirectory() as scratch:
        template = os.path.join(scratch, "training-pipeline.json")
        write_json(template, training_spec)
        job = aiplatform.PipelineJob(
            display_name=run_id,
            template_path=template,
            job_id=run_id,
            pipeline_root=pipeline_root or None,
            parameter_values=parameters,
            labels=labels,
            enable_caching=False,
            encryption_spec_key_name=kms_key or None,
        )
        try:
            job.submit(service_account=service_account or None)
        except AlreadyExists:
            return False
    return True


@pipeline_component(
    packages=("google-cloud-aiplatform", "google-cloud-bigquery", "pyarrow"),
    helpers=(
        label_value,
        local_environment,
        read_json,
        write_json,
        evaluation_row,
        query_local_warehouse,
        warehouse_rows,
        write_rows_bigquery,
        write_rows_local,
        decide,
        retraining_run_id,
        claim_local,
        submit_vertex,
    ),
)
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
    local_root: str = "",
) -> NamedTuple("Outputs", [("decision", str), ("reason", str), ("triggered_run", str)]):
    """Decide from the assessment, start retraining when degraded, record the evaluation."""
    import json
    from collections import namedtuple

    if not 0 < min_accuracy <= 1 or not 0 <= max_degradation <= 1:
        raise ValueError(
            f"min_accuracy must be in (0, 1] and max_degradation in [0, 1], got {min_accuracy} "
            f"and {max_degradation}"
        )
    result = read_json(assessment.path)
    spans = json.loads(batch_ids)
    run_id = retraining_run_id(spans)
    # A retraining recorded for these very spans (e.g. by a run whose claim file or job has
    # since been cleaned up) counts as started too.
    earlier = warehouse_rows(
        project, bq_location, local_root, dataset,
        f"SELECT COUNT(*) AS n FROM `{dataset}`.`{evaluations_table}` "
        "WHERE triggered_run = @run_id",
        {"run_id": run_id}, [evaluations_table],
    )  # fmt: skip
    already = run_id if earlier.to_pylist()[0]["n"] else ""
    args = (rows, min_new_rows, result["value"], result["test_value"], min_accuracy)
    decision, reason = decide(*args, max_degradation, already)
    triggered = ""
    if decision == "degraded":
        request = {
            "evaluation_id": evaluation_id,
            "model": result["model"],
            "batch_ids": spans,
            "snapshot_time": until,
            "reason": reason,
        }
        if local_root:
            started = claim_local(local_root, run_id, request)
        else:
            parameters = {**json.loads(training_parameters or "{}"), "snapshot_time": until}
            labels = {
                "managed-by": "evaluation-pipeline",
                "evaluation": label_value(evaluation_id),
                "evaluated-model": label_value(result["model"]),
            }
            started = submit_vertex(
                project, location, run_id, training_spec, parameters, pipeline_root,
                service_account, labels, kms_key,
            )  # fmt: skip
        if started:
            triggered = run_id
        else:
            decision, reason = decide(*args, max_degradation, run_id)
    drift = {name: entry["value"] for name, entry in result["drift"].items()}
    record = evaluation_row(
        evaluation_id, result["model"], spans, rows, decision, reason,
        metric=result["metric"], value=result["value"], baseline_value=result["test_value"],
        drift=json.dumps(drift, sort_keys=True), triggered_run=triggered or None,
    )  # fmt: skip
    if local_root:
        write_rows_local(local_root, dataset, evaluations_table, [record])
    else:
        write_rows_bigquery(project, bq_location, dataset, evaluations_table, [record])
    # One structured line (Cloud Logging's jsonPayload): the retraining alert matches it
    # (resources/monitoring.py EVALUATION_LOG_EVENT).
    line = {"event": "evaluation", "decision": decision, "model": result["model"],
            "triggered_run": triggered, "accuracy": result["value"], "reason": reason}  # fmt: skip
    print(json.dumps(line))
    outputs = namedtuple("Outputs", ["decision", "reason", "triggered_run"])
    return outputs(decision, reason, triggered)
