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

from pipeline_src.components.common import pipeline_component


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


def write_new_rows(
    warehouse, spec: dict, dataset: str, table: str, evaluations_table: str, params: dict, path: str
) -> tuple[int, list]:
    """Write the new labelled rows (`new_rows_query`, its `params`) to the Parquet file `path`:
    how many there are, and their batches (sorted)."""
    import pyarrow.parquet as pq

    sql = new_rows_query(spec, dataset, table, evaluations_table)
    rows = warehouse.read(sql, params, tables=[evaluations_table])
    pq.write_table(rows, path)
    return rows.num_rows, sorted(set(rows.column("_batch_id").to_pylist()))


def served_model(endpoints, endpoint: str, fallback_endpoint: str, purpose: str):
    """(versioned name, artifact directory, endpoint, recorded bundle digest) of the model
    `endpoint` serves, or `fallback_endpoint` while it serves none (`endpoints`: the endpoint
    port); a clear error when neither does (`purpose`: what the run needed the model for)."""
    names = [e for e in (endpoint, fallback_endpoint) if e]
    for name in names:
        found = endpoints.serving(name)
        if found is not None:
            return found.name, found.artifact_dir, name, found.digest
    raise ValueError(
        f"no endpoint serves a model ({', '.join(names)}): nothing to {purpose} yet; "
        "run the training pipeline first"
    )


def served_details(endpoints, endpoint: str, fallback_endpoint: str) -> dict:
    """What the evaluation needs of the served model: its name, bundle (directory and recorded
    digest), where it was found, its training snapshot's time, test metrics and baseline."""
    import os

    from pipeline_src.components.common import read_json

    model, artifact_dir, serving_endpoint, digest = served_model(
        endpoints, endpoint, fallback_endpoint, "evaluate"
    )
    where = f"served by endpoint {serving_endpoint}"
    if serving_endpoint != endpoint:
        where += f" ({endpoint} serves nothing yet: evaluating {serving_endpoint}'s model)"
    baseline = read_json(os.path.join(artifact_dir, "baseline.json"))
    trained_until = baseline.get("snapshot_time") or ""
    if not trained_until:
        raise ValueError(
            f"model {model} has no training snapshot time in its baseline.json: retrain it with "
            "this version of the training pipeline, whose validate step records it"
        )
    return {
        "model": model,
        "artifact_dir": artifact_dir,
        "sha256": digest,  # batch_predict checks the bundle against it before unpickling
        "endpoint": serving_endpoint,
        "where": where,
        "trained_until": trained_until,
        "test_metrics": read_json(os.path.join(artifact_dir, "evaluation.json"))["model"],
        "baseline": baseline,
    }


def enough_data(rows: int, batches: int, min_new_rows: int, served: dict) -> tuple[str, str]:
    """("evaluate" | "not_enough_data", reason) for the new labelled rows found."""
    decision = "evaluate" if rows >= min_new_rows else "not_enough_data"
    return decision, (
        f"{rows} new labelled rows in {batches} batches ingested after the model's training "
        f"snapshot ({served['trained_until']}) and not yet evaluated; "
        + ("enough" if decision == "evaluate" else f"at least {min_new_rows} are needed")
        + f" to judge {served['model']}"
    )


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


@pipeline_component(packages=("google-cloud-aiplatform", "google-cloud-bigquery", "pyarrow"))
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
    from collections import namedtuple
    from datetime import UTC, datetime

    from pipeline_src.components.common import feature_spec, write_json
    from pipeline_src.components.new_data import enough_data, served_details, write_new_rows
    from pipeline_src.ports import backend

    if min_new_rows < 1:
        raise ValueError(f"min_new_rows must be at least 1, got {min_new_rows}")
    if not dataset or not table:
        raise ValueError("new_data needs the warehouse dataset and table")
    spec = feature_spec(contract)
    ports = backend()
    model = served_details(ports.endpoints(project, location), endpoint, fallback_endpoint)
    print(f"model {model['model']}, {model['where']}")
    until, trained_until = datetime.now(UTC), model["trained_until"]
    params = {"trained_until": datetime.fromisoformat(trained_until), "until": until}
    warehouse = ports.warehouse(project, bq_location, dataset, job_label="evaluation")
    rows, batch_ids = write_new_rows(
        warehouse, spec, dataset, table, evaluations_table, params, new_rows.path
    )
    write_json(served.path, model)
    new_rows.metadata.update({"rows": rows, "batches": len(batch_ids)})
    decision, reason = enough_data(rows, len(batch_ids), min_new_rows, model)
    print(
        f"{rows} new labelled rows in {len(batch_ids)} batches since {trained_until} "
        f"(at least {min_new_rows} needed): {decision}"
    )
    outputs = namedtuple("Outputs", ["decision", "reason", "rows", "batch_ids", "model", "until"])
    return outputs(decision, reason, rows, json.dumps(batch_ids), model["model"], until.isoformat())


@pipeline_component(packages=("google-cloud-bigquery",))
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
):
    """Record an evaluation that stopped for want of data (its batches stay new)."""
    import json

    from pipeline_src.components.new_data import evaluation_row
    from pipeline_src.ports import backend

    record = evaluation_row(
        evaluation_id, model, json.loads(batch_ids), rows, "not_enough_data", reason,
        metric="accuracy",
    )  # fmt: skip
    warehouse = backend().warehouse(project, bq_location, dataset, job_label="evaluation")
    warehouse.append_rows(evaluations_table, [record])
    print(f"not_enough_data: {reason}")
