"""The platform's own warehouse tables, beside the curated table the data contract describes.

Declared once here and used three ways: Pulumi creates them in BigQuery (resources/warehouse.py,
which creates one table per entry, whatever this module lists), the ingestion function and the
pipelines write to them, and the local DuckDB warehouse creates the same tables. Schemas are in
BigQuery's JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PlatformTable:
    table_id: str
    description: str
    schema: tuple[dict[str, str], ...]
    partition_field: str | None = None
    clustering: tuple[str, ...] = ()


def _f(name: str, type_: str, description: str, mode: str = "NULLABLE") -> dict[str, str]:
    return {"name": name, "type": type_, "mode": mode, "description": description}


INGESTION_LOG = PlatformTable(
    table_id="ingestion_log",
    description="One row per ingestion attempt of an uploaded object generation: outcome, counts, "
    "checks and timings. The data analysts' and stakeholders' view of every upload.",
    schema=(
        _f(
            "batch_id", "STRING", "bucket/object#generation digest; the idempotency key", "REQUIRED"
        ),
        _f("source_uri", "STRING", "gs:// URI of the uploaded object", "REQUIRED"),
        _f("source_generation", "INT64", "object generation", "REQUIRED"),
        _f(
            "attempt_id",
            "STRING",
            "this attempt; a redelivered event is a new attempt of the same batch",
            "REQUIRED",
        ),
        _f(
            "status",
            "STRING",
            "LOADED, REJECTED, DUPLICATE, FAILED, IGNORED (the generation can no longer be read), "
            "or STARTED (written as an attempt begins; one alone marks an attempt cut short)",
            "REQUIRED",
        ),
        _f("rows_loaded", "INT64", "rows inserted into the curated table"),
        _f("rows_in_file", "INT64", "data rows the file held"),
        _f("reason", "STRING", "why the file was rejected or failed, for people"),
        _f("checks", "STRING", "JSON list of every check with its outcome"),
        _f("quarantine_uri", "STRING", "where the rejected file and its report were copied"),
        _f("bytes", "INT64", "object size"),
        _f("started_at", "TIMESTAMP", "when this attempt started", "REQUIRED"),
        _f("finished_at", "TIMESTAMP", "when this attempt finished"),
        _f("duration_ms", "INT64", "wall time of the attempt"),
    ),
    partition_field="started_at",
)

MODEL_METRICS = PlatformTable(
    table_id="model_metrics",
    description="Metrics of every trained model (challengers and champions) with the gate's "
    "decision, so stakeholders can follow model quality over time.",
    schema=(
        _f("run_id", "STRING", "pipeline run that produced the model", "REQUIRED"),
        _f("model_version", "STRING", "registry version, when registered"),
        _f("data_snapshot", "STRING", "snapshot the model was trained on"),
        _f("metric", "STRING", "metric name", "REQUIRED"),
        _f("value", "FLOAT64", "metric value", "REQUIRED"),
        _f("split", "STRING", "train, validation or test"),
        _f(
            "decision",
            "STRING",
            "the gate's decision: deploy, register (a candidate awaiting promotion) or "
            "keep_champion",
        ),
        _f("reason", "STRING", "why the gate decided so"),
        _f("recorded_at", "TIMESTAMP", "when the metric was recorded", "REQUIRED"),
    ),
    partition_field="recorded_at",
)

EVALUATIONS = PlatformTable(
    table_id="evaluations",
    description="Continuous evaluation of the production model on newly ingested batches: metric, "
    "drift and the retraining decision.",
    schema=(
        _f("evaluation_id", "STRING", "evaluation run id", "REQUIRED"),
        _f("model_version", "STRING", "model that was evaluated"),
        _f("batch_ids", "STRING", "JSON list of the ingestion batches (spans) evaluated"),
        _f("rows", "INT64", "labelled rows evaluated"),
        _f("metric", "STRING", "metric name"),
        _f("value", "FLOAT64", "metric on the new data"),
        _f("baseline_value", "FLOAT64", "the model's own test-time metric"),
        _f("drift", "STRING", "JSON map of feature to drift statistic"),
        _f("decision", "STRING", "not_enough_data, healthy, degraded or already_triggered"),
        _f("reason", "STRING", "why"),
        _f("triggered_run", "STRING", "training run started, if any"),
        _f("evaluated_at", "TIMESTAMP", "when the evaluation ran", "REQUIRED"),
    ),
    partition_field="evaluated_at",
)

PREDICTIONS = PlatformTable(
    table_id="predictions",
    description="Batch predictions of the served model for analysts: one row per scored row and "
    "scoring run, append-only, each traceable to the model version that made it.",
    schema=(
        _f("scoring_run_id", "STRING", "the scoring pipeline run that wrote the row", "REQUIRED"),
        _f(
            "model_version", "STRING", "registry version that predicted (model@version)", "REQUIRED"
        ),
        _f("row_key", "STRING", "JSON of the contract's key columns of the scored row, if any"),
        _f("source_uri", "STRING", "gs:// URI of the uploaded file the row came from, if ingested"),
        _f("source_generation", "INT64", "Cloud Storage generation of that file"),
        _f("source_batch_id", "STRING", "ingestion batch (span) of the row, if ingested"),
        _f("source_row", "INT64", "the row's position in the run's input (0-based)", "REQUIRED"),
        _f("predicted_class", "STRING", "the class with the highest probability", "REQUIRED"),
        _f("probabilities", "STRING", "JSON map of class to probability", "REQUIRED"),
        _f("scored_at", "TIMESTAMP", "when the run scored the rows", "REQUIRED"),
    ),
    partition_field="scored_at",
    clustering=("model_version",),
)

PLATFORM_TABLES: tuple[PlatformTable, ...] = (
    INGESTION_LOG, MODEL_METRICS, EVALUATIONS, PREDICTIONS,
)  # fmt: skip
