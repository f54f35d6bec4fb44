"""select_rows and score_rows: the scoring pipeline's two steps.

select_rows finds the model the stack's endpoint serves (the evaluation's own lookup: prod serves
the promoted version) and the rows to score, streamed to a Parquet artifact: the table or query
named in config, or else every curated row of an ingestion batch no scoring run has scored yet
(a batch is scored once, whatever happened between runs).

score_rows predicts them with that model and appends one row per scored row to the predictions
table (contracts/tables.py PREDICTIONS). On Vertex AI a batch prediction job of the served version
predicts (the batch prediction port, sized by the stack's machine type and replicas), and
BigQuery appends the predictions by a load job from the run's artifact: the rows never pass through
a streaming insert. Locally the verified bundle predicts chunk by chunk, and DuckDB appends the
same file (local/adapters.py). The append is the run's last act, so a failed run writes nothing.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Output

from pipeline_src.components.common import pipeline_component


def scoring_query(spec: dict, dataset: str, table: str, predictions_table: str, source: str):
    """BigQuery SQL of the rows to score; `@snapshot_time` is the run's start.

    `source` is a table (`dataset.table`) or a SELECT; empty: the curated rows of every batch
    ingested up to the run's start that the predictions table holds no row of.
    """
    import re

    source = source.strip()
    if source:
        if re.fullmatch(r"[\w.-]+", source):
            source = "SELECT * FROM `" + source.replace(".", "`.`") + "`"
        # Every query takes the run's time, so both engines get the same parameters.
        return f"SELECT * FROM ({source}) WHERE @snapshot_time IS NOT NULL"
    # The lineage a prediction keeps (contracts/model.py LINEAGE_COLUMNS).
    lineage = ["_source_uri", "_source_generation", "_batch_id"]
    columns = [*spec["keys"], *(f["name"] for f in spec["features"]), *lineage]
    names = ", ".join(f"`{c}`" for c in dict.fromkeys(columns))
    return (
        f"SELECT {names} FROM `{dataset}`.`{table}` WHERE _ingested_at <= @snapshot_time "
        f"AND _batch_id NOT IN (SELECT source_batch_id FROM `{dataset}`.`{predictions_table}` "
        "WHERE source_batch_id IS NOT NULL) ORDER BY _ingested_at, _batch_id"
    )


def prediction_schema():
    """The predictions table's columns as Arrow types (contracts/tables.py PREDICTIONS; a test
    keeps them equal: the component cannot import the contracts package on Vertex AI). REQUIRED
    columns are non-nullable, so the Parquet file BigQuery loads declares them so: a nullable
    column appended to a REQUIRED one is refused as a change of mode."""
    import pyarrow as pa

    def required(name: str, kind) -> "pa.Field":
        return pa.field(name, kind, nullable=False)

    return pa.schema(
        [required("scoring_run_id", pa.string()), required("model_version", pa.string()),
         ("row_key", pa.string()), ("source_uri", pa.string()),
         ("source_generation", pa.int64()), ("source_batch_id", pa.string()),
         required("source_row", pa.int64()), required("predicted_class", pa.string()),
         required("probabilities", pa.string()),
         required("scored_at", pa.timestamp("us", tz="UTC"))]
    )  # fmt: skip


def prediction_rows(batch, results: list, spec: dict, run: dict, offset: int):
    """The predictions table's rows for one Arrow batch of scored rows and their `results`.

    `run` holds model_version, scoring_run_id and scored_at; `offset` is the batch's first
    row's position in the run's input.
    """
    import json

    import pyarrow as pa

    n = batch.num_rows

    def column(name: str) -> list:
        index = batch.schema.get_field_index(name)
        return batch.column(index).to_pylist() if index >= 0 else [None] * n

    keys = [k for k in spec["keys"] if batch.schema.get_field_index(k) >= 0]
    values = list(zip(*(column(k) for k in keys), strict=True)) if keys else []
    data = {
        "scoring_run_id": [run["scoring_run_id"]] * n,
        "model_version": [run["model_version"]] * n,
        "row_key": [json.dumps(dict(zip(keys, v, strict=True)), default=str) for v in values]
        or [None] * n,
        "source_uri": column("_source_uri"),
        "source_generation": column("_source_generation"),
        "source_batch_id": column("_batch_id"),
        "source_row": list(range(offset, offset + n)),
        "predicted_class": [str(r["class"]) for r in results],
        "probabilities": [json.dumps(r["probabilities"], sort_keys=True) for r in results],
        "scored_at": [run["scored_at"]] * n,
    }
    return pa.Table.from_pydict(data, schema=prediction_schema())


@pipeline_component(
    packages=(
        "google-cloud-aiplatform", "google-cloud-bigquery", "google-cloud-bigquery-storage",
        "pyarrow",
    ),
)  # fmt: skip
def select_rows(
    contract: dict,
    project: str,
    location: str,
    bq_location: str,
    dataset: str,
    table: str,
    endpoint: str,
    fallback_endpoint: str,
    model_id: str,
    rows: Output[Dataset],
    served: Output[Artifact],
    source: str = "",
    predictions_table: str = "predictions",
) -> NamedTuple("Outputs", [("selected", int), ("model", str)]):
    """Find the served model and stream the rows to score to a Parquet artifact."""
    from collections import namedtuple

    from pipeline_src.components.common import feature_spec, write_json
    from pipeline_src.components.extract import snapshot_moment, write_batches
    from pipeline_src.components.new_data import served_model
    from pipeline_src.components.score import scoring_query
    from pipeline_src.ports import backend

    if not dataset or not table:
        raise ValueError("select_rows needs the warehouse dataset and curated table")
    spec = feature_spec(contract)
    ports = backend()
    found = served_model(
        ports.endpoints(project, location), endpoint, fallback_endpoint, "score with"
    )
    model, artifact_dir, serving_endpoint, digest = found
    where = f"served by endpoint {serving_endpoint}"
    write_json(
        served.path,
        {"model": model, "artifact_dir": artifact_dir, "sha256": digest, "where": where},
    )
    moment, _ = snapshot_moment("")
    sql = scoring_query(spec, dataset, table, predictions_table, source)
    # The tables the query reads: the predictions (made empty where the platform did not make
    # it) and the curated one, unless a source names the rows (then a missing table is the
    # query's own error).
    reads = [predictions_table] + ([] if source.strip() else [table])
    warehouse = ports.warehouse(project, bq_location, dataset, job_label="extract")
    batches = warehouse.stream(sql, {"snapshot_time": moment}, tables=reads)
    written = write_batches(*batches, rows.path)
    what = source.strip() or f"batches of {dataset}.{table} not scored yet"
    rows.metadata.update({"rows": written, "source": what, "selected_at": moment.isoformat()})
    print(f"{written} rows to score ({what}) with {model}, {where}")
    return namedtuple("Outputs", ["selected", "model"])(written, model)


@pipeline_component(
    packages=(
        "google-cloud-aiplatform", "google-cloud-bigquery", "pandas", "pyarrow", "scikit-learn",
        "threadpoolctl",
    ),
)  # fmt: skip
def score_rows(
    contract: dict,
    rows: Input[Dataset],
    served: Input[Artifact],
    predictions: Output[Dataset],
    project: str,
    location: str,
    bq_location: str,
    dataset: str,
    scoring_run_id: str,
    predictions_table: str = "predictions",
    machine_type: str = "n1-standard-2",
    replica_count: int = 1,
    service_account: str = "",
    kms_key: str = "",
    chunk_rows: int = 100_000,
) -> int:
    """Predict the selected rows with the served model and append them to the predictions table;
    return how many were scored."""
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    from pipeline_src.components.common import feature_spec, read_json
    from pipeline_src.components.score import prediction_rows, prediction_schema
    from pipeline_src.ports import PredictionJob, backend

    spec = feature_spec(contract)
    model = read_json(served.path)
    source = pq.ParquetFile(rows.path)
    run = {"model_version": model["model"], "scoring_run_id": scoring_run_id,
           "scored_at": datetime.now(UTC)}  # fmt: skip
    ports = backend()
    prediction = ports.batch_prediction(project, location)
    job = PredictionJob(
        predictions.uri + "-job", machine_type, service_account, kms_key, replica_count, "scoring"
    )
    predict = prediction.predictor(model, spec, job)
    chunk_rows = prediction.rows_per_call(chunk_rows, source.metadata.num_rows)

    scored = 0
    with pq.ParquetWriter(predictions.path, prediction_schema()) as writer:
        for batch in source.iter_batches(batch_size=chunk_rows):
            results = predict(batch.to_pandas())
            writer.write_table(prediction_rows(batch, results, spec, run, scored))
            scored += batch.num_rows
    if scored:
        warehouse = ports.warehouse(project, bq_location, dataset, job_label="score_rows")
        warehouse.append_parquet(predictions_table, predictions.uri)
    predictions.metadata.update({"rows": scored, "model": model["model"]})
    print(f"{scored} rows scored by {model['model']} into {dataset}.{predictions_table}")
    return scored
