"""The batch scoring pipeline: the served model's predictions for new rows, for analysts.

    select rows (and the served model) ► score and append to the predictions table

Only the DAG lives here; each step is a component in `components/score.py`. Its schedule
(resources/pipelines.py) and the local launcher (local/run_scoring.py) pass every parameter.
The warehouse, registry and endpoints are the run's backend, chosen by its launcher, never a
parameter (pipeline_src/ports.py).
"""

from typing import NamedTuple

from kfp import dsl

from pipeline_src.components.score import score_rows, select_rows
from pipeline_src.sizing import sized

PIPELINE_NAME = "tabular-mlops-scoring"
COMPONENTS = (select_rows, score_rows)


class ScoringOutputs(NamedTuple):
    """What a run returns: the rows scored, the model that scored them, the predictions file."""

    scored: int
    model: str
    predictions: dsl.Dataset


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="New rows -> batch prediction by the model the endpoint serves -> appended to "
    "the predictions table with the model version and the run.",
)
def scoring_pipeline(
    contract: dict,
    project: str,
    location: str,
    bq_location: str,
    dataset: str,
    table: str,
    endpoint: str,
    fallback_endpoint: str,
    model_id: str,
    source: str = "",
    predictions_table: str = "predictions",
    prediction_machine_type: str = "n1-standard-2",
    prediction_replica_count: int = 1,
    prediction_service_account: str = "",
    kms_key: str = "",
    chunk_rows: int = 100_000,
) -> ScoringOutputs:
    """Score the rows `source` names (default: the batches not scored yet) with the served model.

    Args:
        contract: the data contract (`DataContract.model_dump(mode="json")`).
        project, location: GCP project and Vertex AI region.
        bq_location, dataset, table: the BigQuery location, dataset and curated table.
        endpoint, fallback_endpoint: the model `endpoint` serves scores (the fallback's while it
            serves none; locally prod and staging, in the cloud the stack's endpoint only).
        model_id: the registry model.
        source: a table (`dataset.table`) or a SELECT of the rows to score; empty: the curated
            rows of every ingestion batch no run has scored yet.
        predictions_table: the platform table predictions are appended to.
        prediction_machine_type, prediction_replica_count, prediction_service_account: the batch
            prediction job's machines, how many, and as whom it runs.
        kms_key: the CMEK key the batch prediction job encrypts with.
        chunk_rows: rows predicted at a time locally (the cloud job takes them all).
    """
    # Where the steps' ports point; which backend answers is the run's (pipeline_src/ports.py).
    place = dict(project=project, location=location, bq_location=bq_location, dataset=dataset)
    select_task = sized(
        select_rows(
            contract=contract,
            **place,
            table=table,
            endpoint=endpoint,
            fallback_endpoint=fallback_endpoint,
            model_id=model_id,
            source=source,
            predictions_table=predictions_table,
        ).set_display_name("rows to score")
    )
    score_task = sized(
        score_rows(
            contract=contract,
            rows=select_task.outputs["rows"],
            served=select_task.outputs["served"],
            **place,
            scoring_run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            predictions_table=predictions_table,
            machine_type=prediction_machine_type,
            replica_count=prediction_replica_count,
            service_account=prediction_service_account,
            kms_key=kms_key,
            chunk_rows=chunk_rows,
        ).set_display_name("score and append")
    )
    return ScoringOutputs(
        scored=score_task.outputs["Output"],
        model=select_task.outputs["model"],
        predictions=score_task.outputs["predictions"],
    )
