"""select_rows and score_rows: the scoring pipeline's two steps.

select_rows finds the model the stack's endpoint serves (the evaluation's own lookup: prod serves
the promoted version) and the rows to score, streamed to a Parquet artifact: the table or query
named in config, or else every curated row of an ingestion batch no scoring run has scored yet
(a batch is scored once, whatever happened between runs).

score_rows predicts them with that model and appends one row per scored row to the predictions
table (contracts/tables.py PREDICTIONS). On Vertex AI a batch prediction job of the served version
predicts (the evaluation's `predict_vertex`, sized by the stack's machine type and replicas), and
BigQuery appends the predictions by a load job from the run's artifact: the rows never pass through
a streaming insert. Locally the verified bundle predicts chunk by chunk, and DuckDB appends the
same file. The append is the run's last act, so a failed run writes nothing.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Output

from pipeline_src.components.batch_predict import (
    instance_key,
    instances,
    load_bundle,
    predict_frame,
    predict_vertex,
)
from pipeline_src.components.common import (
    compute_threads,
    feature_spec,
    gcs_fuse_path,
    local_environment,
    model_inputs,
    pipeline_component,
    read_json,
    write_json,
)
from pipeline_src.components.extract import (
    query_bigquery,
    query_local,
    snapshot_moment,
    write_batches,
)
from pipeline_src.components.new_data import (
    served_model,
    served_model_local,
    served_model_vertex,
)
from pipeline_src.serving.integrity import bundle_digest, verify_bundle, vertex_bundle_digest


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


def ensure_local_predictions(local_root: str, dataset: str, predictions_table: str) -> None:
    """Create the local predictions table if new (in the cloud Pulumi creates it)."""
    from contracts.tables import PREDICTIONS
    from local.warehouse import connect, create_table

    with connect(local_environment(local_root).warehouse_path) as con:
        create_table(con, dataset, predictions_table, PREDICTIONS.schema)


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


def append_local(local_root: str, dataset: str, table: str, path: str) -> None:
    """Append the predictions file to the local warehouse's table (DuckDB reads the file)."""
    from contracts.tables import PREDICTIONS
    from local.warehouse import connect, create_table

    with connect(local_environment(local_root).warehouse_path) as con:
        create_table(con, dataset, table, PREDICTIONS.schema)
        con.execute(
            f'INSERT INTO "{dataset}"."{table}" BY NAME SELECT * FROM read_parquet(?)', [path]
        )


def append_bigquery(project: str, location: str, dataset: str, table: str, uri: str) -> None:
    """Append the predictions file at gs:// `uri` to the table by a BigQuery load job."""
    from google.cloud import bigquery

    client = bigquery.Client(project=project, location=location or None)
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        labels={"component": "score_rows"},
    )
    client.load_table_from_uri(uri, f"{project}.{dataset}.{table}", job_config=config).result()


@pipeline_component(
    packages=(
        "google-cloud-aiplatform", "google-cloud-bigquery", "google-cloud-bigquery-storage",
        "pyarrow",
    ),
    helpers=(
        feature_spec, gcs_fuse_path, local_environment, write_json, vertex_bundle_digest,
        served_model_local, served_model_vertex, served_model, snapshot_moment, query_bigquery,
        query_local, write_batches, scoring_query, ensure_local_predictions,
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
    local_root: str = "",
) -> NamedTuple("Outputs", [("selected", int), ("model", str)]):
    """Find the served model and stream the rows to score to a Parquet artifact."""
    from collections import namedtuple

    if not dataset or not table:
        raise ValueError("select_rows needs the warehouse dataset and curated table")
    spec = feature_spec(contract)
    found = served_model(
        project, location, local_root, endpoint, fallback_endpoint, model_id, "score with"
    )
    model, artifact_dir, serving_endpoint, digest = found
    where = f"served by endpoint {serving_endpoint}"
    write_json(
        served.path,
        {"model": model, "artifact_dir": artifact_dir, "sha256": digest, "where": where},
    )
    moment, _ = snapshot_moment("")
    sql = scoring_query(spec, dataset, table, predictions_table, source)
    if local_root:
        ensure_local_predictions(local_root, dataset, predictions_table)
        # query_local checks the table it is given exists: the curated one, unless a source
        # names the rows (then a missing table is the query's own error).
        checked = predictions_table if source.strip() else table
        batches = query_local(local_root, dataset, checked, sql, moment)
        written = write_batches(*batches, rows.path)
    else:
        written = write_batches(*query_bigquery(project, bq_location, sql, moment), rows.path)
    what = source.strip() or f"batches of {dataset}.{table} not scored yet"
    rows.metadata.update({"rows": written, "source": what, "selected_at": moment.isoformat()})
    print(f"{written} rows to score ({what}) with {model}, {where}")
    return namedtuple("Outputs", ["selected", "model"])(written, model)


@pipeline_component(
    packages=(
        "google-cloud-aiplatform", "google-cloud-bigquery", "pandas", "pyarrow", "scikit-learn",
        "threadpoolctl",
    ),
    helpers=(
        bundle_digest, verify_bundle, compute_threads, feature_spec, model_inputs, read_json,
        gcs_fuse_path, local_environment, load_bundle, predict_frame, instances, instance_key,
        predict_vertex, prediction_schema, prediction_rows, append_local, append_bigquery,
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
    local_root: str = "",
) -> int:
    """Predict the selected rows with the served model and append them to the predictions table;
    return how many were scored."""
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    spec = feature_spec(contract)
    model = read_json(served.path)
    source = pq.ParquetFile(rows.path)
    run = {"model_version": model["model"], "scoring_run_id": scoring_run_id,
           "scored_at": datetime.now(UTC)}  # fmt: skip
    if local_root:
        bundle = load_bundle(model["artifact_dir"], model.get("sha256", ""))

        def predict(frame):
            return predict_frame(bundle, frame, spec)
    else:
        # One job for the whole input: each job pays minutes of start-up.
        chunk_rows = max(source.metadata.num_rows, 1)

        def predict(frame):
            return predict_vertex(
                project, location, model["model"], frame, spec, predictions.uri + "-job",
                machine_type, service_account, kms_key, replica_count, "scoring",
            )  # fmt: skip

    scored = 0
    with pq.ParquetWriter(predictions.path, prediction_schema()) as writer:
        for batch in source.iter_batches(batch_size=chunk_rows):
            results = predict(batch.to_pandas())
            writer.write_table(prediction_rows(batch, results, spec, run, scored))
            scored += batch.num_rows
    if scored and local_root:
        append_local(local_root, dataset, predictions_table, predictions.path)
    elif scored:
        append_bigquery(project, bq_location, dataset, predictions_table, predictions.uri)
    predictions.metadata.update({"rows": scored, "model": model["model"]})
    print(f"{scored} rows scored by {model['model']} into {dataset}.{predictions_table}")
    return scored
