"""new_data: is there enough newly labelled data to judge the model prod serves?

The model is the one `endpoint` serves (most traffic): in the cloud the stack's endpoint; locally
the prod endpoint, or while it serves nothing yet the `fallback_endpoint`'s (staging), and the run
says so. New data is every ingestion batch (a span, `_batch_id`)
committed after that model's training snapshot (so the model never saw it), up to now, that no
earlier evaluation reached a verdict on: a batch is judged once. Batches of a run that stopped for
want of data stay new, so they add up until there are `min_new_rows` labelled rows.

When there are too few, the pipeline records a `not_enough_data` evaluation (`record_skip`: why,
how many rows, which batches) and stops; otherwise the rows go on to batch prediction.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Output

from pipeline_src.components.common import (
    feature_spec,
    gcs_fuse_path,
    local_environment,
    pipeline_component,
    read_json,
    write_json,
)
from pipeline_src.components.record_metrics import write_rows_bigquery, write_rows_local
from pipeline_src.serving.integrity import vertex_bundle_digest


def new_rows_query(spec: dict, dataset: str, table: str, evaluations_table: str) -> str:
    """BigQuery SQL of the new labelled rows (newest per key), with `@trained_until`, `@until`."""
    columns = ", ".join(f"`{c['name']}`" for c in spec["columns"])
    keys = ", ".join(f"`{k}`" for k in spec["keys"])
    judged = (
        f"SELECT batch FROM `{dataset}`.`{evaluations_table}` AS e, "
        "UNNEST(JSON_VALUE_ARRAY(e.batch_ids)) AS batch WHERE e.decision != 'not_enough_data'"
    )
    sql = (
        f"SELECT {columns}, _batch_id, _ingested_at FROM `{dataset}`.`{table}` "
        f"WHERE _ingested_at > @trained_until AND _ingested_at <= @until "
        f"AND `{spec['label']}` IS NOT NULL AND _batch_id NOT IN ({judged})"
    )
    if not keys:  # no key: every new row counts
        return sql
    return sql + (
        f" QUALIFY ROW_NUMBER() OVER (PARTITION BY {keys} "
        "ORDER BY _ingested_at DESC, _batch_id DESC) = 1"
    )


def warehouse_rows(
    project: str,
    bq_location: str,
    local_root: str,
    dataset: str,
    sql: str,
    params: dict,
    tables: list,
):
    """Run BigQuery SQL (datetime parameters as TIMESTAMP, others as STRING) on BigQuery, or
    on the local warehouse.

    Locally, the platform `tables` the SQL reads are created first when missing (in the cloud
    Pulumi creates them), so a first evaluation finds an empty history rather than an error.
    """
    if local_root:
        return query_local_warehouse(local_root, dataset, sql, params, tables)
    from google.cloud import bigquery

    client = bigquery.Client(project=project, location=bq_location or None)
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter(
                name, "TIMESTAMP" if hasattr(value, "tzinfo") else "STRING", value
            )
            for name, value in params.items()
        ],
        labels={"component": "evaluation"},
    )
    return client.query(sql, job_config=config).to_arrow()


def query_local_warehouse(local_root: str, dataset: str, sql: str, params: dict, tables: list):
    """Run BigQuery SQL on the local warehouse, creating the platform `tables` it reads if new."""
    from contracts.tables import PLATFORM_TABLES
    from local.warehouse import connect, create_table, query

    with connect(local_environment(local_root).warehouse_path) as con:
        for table in PLATFORM_TABLES:
            if table.table_id in tables:
                create_table(con, dataset, table.table_id, table.schema)
        return query(con, sql, params)


def served_model_local(local_root: str, endpoints: list, model_id: str):
    """(versioned name, artifact directory, endpoint, recorded bundle digest) of the first
    endpoint serving a model."""
    from local.registry import LocalEndpoint, LocalModelRegistry

    env = local_environment(local_root)
    registry = LocalModelRegistry(env.registry_dir)
    for endpoint in endpoints:
        serving = LocalEndpoint(env.endpoints_dir, endpoint).serving()
        if serving is not None:
            version = registry.get(serving.model_id, serving.version_id)
            return version.resource_name, version.artifact_uri, endpoint, version.bundle_sha256
    return None


def served_model_vertex(project: str, location: str, endpoints: list, model_id: str):
    """(versioned name, artifact directory, endpoint, recorded bundle digest) of the first
    endpoint serving a model."""
    from google.cloud import aiplatform

    aiplatform.init(project=project, location=location)
    for endpoint in endpoints:
        serving = aiplatform.Endpoint(endpoint)
        deployed = serving.list_models()
        if deployed:
            traffic = serving.traffic_split
            top = max(deployed, key=lambda d: traffic.get(d.id, 0))
            model = aiplatform.Model(top.model, version=top.model_version_id)
            uri, digest = gcs_fuse_path(model.uri), vertex_bundle_digest(model)
            return model.versioned_resource_name, uri, endpoint, digest
    return None


def served_model(
    project: str,
    location: str,
    local_root: str,
    endpoint: str,
    fallback_endpoint: str,
    model_id: str,
    purpose: str,
):
    """(versioned name, artifact directory, endpoint, recorded bundle digest) of the model
    `endpoint` serves, or `fallback_endpoint` while it serves none; a clear error when neither
    does (`purpose`: what the run needed the model for)."""
    endpoints = [e for e in (endpoint, fallback_endpoint) if e]
    if local_root:
        found = served_model_local(local_root, endpoints, model_id)
    else:
        found = served_model_vertex(project, location, endpoints, model_id)
    if found is None:
        raise ValueError(
            f"no endpoint serves a model ({', '.join(endpoints)}): nothing to {purpose} yet; "
            "run the training pipeline first"
        )
    return found


def evaluation_row(
    evaluation_id: str,
    model: str,
    batch_ids: list,
    rows: int,
    decision: str,
    reason: str,
    **fields,
) -> dict:
    """One row of the evaluations table (contracts/tables.py EVALUATIONS)."""
    import json
    from datetime import UTC, datetime

    return {
        "evaluation_id": evaluation_id,
        "model_version": model,
        "batch_ids": json.dumps(sorted(batch_ids)),
        "rows": rows,
        "decision": decision,
        "reason": reason,
        "evaluated_at": datetime.now(UTC).isoformat(),
        **fields,
    }


@pipeline_component(
    packages=("google-cloud-aiplatform", "google-cloud-bigquery", "pyarrow"),
    helpers=(
        feature_spec,
        gcs_fuse_path,
        local_environment,
        read_json,
        write_json,
        new_rows_query,
        query_local_warehouse,
        warehouse_rows,
        vertex_bundle_digest,
        served_model_local,
        served_model_vertex,
        served_model,
    ),
)
def new_data(
    contract: dict,
    project: str,
    location: str,
    bq_location: str,
    dataset: str,
    table: str,
    endpoint: str,
    fallback_endpoint: str,
    model_id: str,
    min_new_rows: int,
    evaluation_id: str,
    new_rows: Output[Dataset],
    served: Output[Artifact],
    evaluations_table: str = "evaluations",
    local_root: str = "",
) -> NamedTuple(
    "Outputs",
    [
        ("decision", str),
        ("reason", str),
        ("rows", int),
        ("batch_ids", str),
        ("model", str),
        ("until", str),
    ],
):
    """Find the served model and the labelled rows it has not seen; stop when they are too few."""
    import json
    import os
    from collections import namedtuple
    from datetime import UTC, datetime

    import pyarrow.parquet as pq

    if min_new_rows < 1:
        raise ValueError(f"min_new_rows must be at least 1, got {min_new_rows}")
    if not dataset or not table:
        raise ValueError("new_data needs the warehouse dataset and table")
    spec = feature_spec(contract)
    found = served_model(
        project, location, local_root, endpoint, fallback_endpoint, model_id, "evaluate"
    )
    model, artifact_dir, serving_endpoint, digest = found
    where = f"served by endpoint {serving_endpoint}"
    if serving_endpoint != endpoint:
        where += f" ({endpoint} serves nothing yet: evaluating {serving_endpoint}'s model)"
    print(f"model {model}, {where}")
    baseline = read_json(os.path.join(artifact_dir, "baseline.json"))
    test_metrics = read_json(os.path.join(artifact_dir, "evaluation.json"))["model"]
    trained_until = baseline.get("snapshot_time") or ""
    if not trained_until:
        raise ValueError(
            f"model {model} has no training snapshot time in its baseline.json: retrain it with "
            "this version of the training pipeline, whose validate step records it"
        )
    until = datetime.now(UTC)
    sql = new_rows_query(spec, dataset, table, evaluations_table)
    params = {"trained_until": datetime.fromisoformat(trained_until), "until": until}
    rows = warehouse_rows(
        project, bq_location, local_root, dataset, sql, params, [evaluations_table]
    )
    pq.write_table(rows, new_rows.path)
    batch_ids = sorted(set(rows.column("_batch_id").to_pylist()))
    served_info = {
        "model": model,
        "artifact_dir": artifact_dir,
        "sha256": digest,  # batch_predict checks the bundle against it before unpickling
        "endpoint": serving_endpoint,
        "where": where,
        "trained_until": trained_until,
        "test_metrics": test_metrics,
        "baseline": baseline,
    }
    write_json(served.path, served_info)
    new_rows.metadata.update({"rows": rows.num_rows, "batches": len(batch_ids)})
    decision = "evaluate" if rows.num_rows >= min_new_rows else "not_enough_data"
    print(
        f"{rows.num_rows} new labelled rows in {len(batch_ids)} batches since {trained_until} "
        f"(at least {min_new_rows} needed): {decision}"
    )
    reason = (
        f"{rows.num_rows} new labelled rows in {len(batch_ids)} batches ingested after the "
        f"model's training snapshot ({trained_until}) and not yet evaluated; "
        + ("enough" if decision == "evaluate" else f"at least {min_new_rows} are needed")
        + f" to judge {model}"
    )
    outputs = namedtuple("Outputs", ["decision", "reason", "rows", "batch_ids", "model", "until"])
    return outputs(decision, reason, rows.num_rows, json.dumps(batch_ids), model, until.isoformat())


@pipeline_component(
    packages=("google-cloud-bigquery",),
    helpers=(local_environment, evaluation_row, write_rows_bigquery, write_rows_local),
)
def record_skip(
    evaluation_id: str,
    model: str,
    batch_ids: str,
    rows: int,
    reason: str,
    project: str,
    bq_location: str,
    dataset: str,
    evaluations_table: str = "evaluations",
    local_root: str = "",
):
    """Record an evaluation that stopped for want of data (its batches stay new)."""
    import json

    record = evaluation_row(
        evaluation_id, model, json.loads(batch_ids), rows, "not_enough_data", reason,
        metric="accuracy",
    )  # fmt: skip
    if local_root:
        write_rows_local(local_root, dataset, evaluations_table, [record])
    else:
        write_rows_bigquery(project, bq_location, dataset, evaluations_table, [record])
    print(f"not_enough_data: {reason}")
