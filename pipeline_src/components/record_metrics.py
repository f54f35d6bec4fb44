"""record_metrics: the run's metrics and the gate's decision, as rows of the model_metrics table.

One row per metric (schema: contracts/tables.py MODEL_METRICS): the challenger's test metrics,
per-class precision and recall, the baseline's and the champion's test accuracy, and train and
validation scores, each with the run, the data snapshot, the registered version (when the gate
deployed) and the decision with its reason. Stakeholders follow model quality over time from it.
"""

from kfp.dsl import Artifact, Input, Metrics

from pipeline_src.components.common import pipeline_component


def metric_rows(
    evaluation: dict,
    training_scores: dict,
    champion_accuracy: float,
    common: dict,
) -> list:
    """model_metrics rows: (metric, value, split) with the fields every row shares."""
    values = [(k, v, "test") for k, v in evaluation["model"].items() if v is not None]
    for label, scores in evaluation["per_class"].items():
        values += [
            (f"precision/{label}", scores["precision"], "test"),
            (f"recall/{label}", scores["recall"], "test"),
        ]
    values += [
        (f"baseline/{k}", evaluation["baseline"][k], "test") for k in ("accuracy", "log_loss")
    ]
    if champion_accuracy >= 0:  # -1: there was no champion to compare with
        values.append(("champion/accuracy", champion_accuracy, "test"))
    for key, value in sorted(training_scores.items()):
        split_name, _, metric = key.partition("_")  # "validation_accuracy"
        values.append((metric, value, split_name))
    return [
        {**common, "metric": metric, "value": float(value), "split": split_name}
        for metric, value, split_name in values
    ]


@pipeline_component(packages=("google-cloud-bigquery",))
def record_metrics(
    evaluation: Input[Artifact],
    training_metrics: Input[Metrics],
    decision: str,
    reason: str,
    champion_accuracy: float,
    model_version: str,
    snapshot_id: str,
    run_id: str,
    project: str,
    bq_location: str,
    dataset: str,
    table: str = "model_metrics",
) -> int:
    """Append the run's metrics and decision to the model_metrics table; return the row count."""
    from datetime import UTC, datetime

    from pipeline_src.components.common import read_json
    from pipeline_src.components.record_metrics import metric_rows
    from pipeline_src.ports import backend

    common = {
        "run_id": run_id,
        "model_version": model_version or None,
        "data_snapshot": snapshot_id,
        "decision": decision,
        "reason": reason,
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    scores = {k: v for k, v in training_metrics.metadata.items() if isinstance(v, int | float)}
    rows = metric_rows(read_json(evaluation.path), scores, champion_accuracy, common)
    backend().warehouse(project, bq_location, dataset, "record_metrics").append_rows(table, rows)
    print(f"recorded {len(rows)} metrics of run {run_id} in {dataset}.{table} ({decision})")
    return len(rows)
