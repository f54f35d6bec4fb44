"""The continuous evaluation pipeline: judge the production model on newly labelled data.

    new data? ─┬─ enough: batch predict ► assess ► decide and trigger ► report ► publish
               └─ not enough: record why ► publish

publish keeps the report beside the lifecycle page and refreshes the page (components/publish.py).

Only the DAG lives here; each step is a component in `components/`. Every parameter is explicit:
the schedule (resources/pipelines.py) and the local launcher (local/run_evaluation.py) pass them.
The warehouse, registry, endpoints and the retraining trigger are the run's backend, chosen by its
launcher, never a parameter (pipeline_src/ports.py).
"""

from typing import Any

from kfp import dsl

from pipeline_src.components.assess import assess
from pipeline_src.components.batch_predict import batch_predict
from pipeline_src.components.evaluation_report import evaluation_report
from pipeline_src.components.new_data import new_data, record_skip
from pipeline_src.components.publish import publish
from pipeline_src.components.trigger import decide_and_trigger
from pipeline_src.sizing import sized

PIPELINE_NAME = "tabular-mlops-evaluation"
COMPONENTS = (
    new_data, record_skip, batch_predict, assess, decide_and_trigger, evaluation_report, publish
)  # fmt: skip


# --- the steps the pipeline is built of. kfp builds the graph by running the pipeline function
# once it is declared, so they come first; each creates its tasks as it is called, in the order
# of the module's diagram.


def _new_data_step(contract, place: dict, **settings) -> Any:
    """new data?: the model the endpoint serves, and the labelled rows not judged yet."""
    return sized(
        new_data(
            contract=contract,
            **place,
            evaluation_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            **settings,
        ).set_display_name("enough new data?")
    )


def _measure_steps(contract, found, vertex: dict, **prediction) -> Any:
    """batch predict ► assess: the served model's predictions for the new rows (`prediction`:
    the job's machine, identity and key), then its metric and each feature's drift."""
    predict_task = sized(
        batch_predict(
            contract=contract,
            new_rows=found.outputs["new_rows"],
            served=found.outputs["served"],
            **vertex,
            **prediction,
        ).set_display_name("batch predict")
    )
    return sized(
        assess(
            contract=contract,
            new_rows=found.outputs["new_rows"],
            predictions=predict_task.outputs["predictions"],
            served=found.outputs["served"],
        ).set_display_name("metric and drift")
    )


def _decide_steps(
    found, assess_task, place: dict, warehouse: dict, *, evaluations_table, bars: dict,
    retraining: dict,
) -> Any:  # fmt: skip
    """decide and trigger ► report: healthy or degraded by the `bars` (a degraded model starts
    the `retraining` run, once per batches), recorded; then the report, with every evaluation."""
    decide_task = sized(
        decide_and_trigger(
            assessment=assess_task.outputs["assessment"],
            rows=found.outputs["rows"],
            batch_ids=found.outputs["batch_ids"],
            until=found.outputs["until"],
            evaluation_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            **bars,
            **place,
            **retraining,
            evaluations_table=evaluations_table,
        ).set_display_name("decide and trigger retraining")
    )
    return sized(
        evaluation_report(
            assessment=assess_task.outputs["assessment"],
            served=found.outputs["served"],
            new_rows=found.outputs["new_rows"],
            decision=decide_task.outputs["decision"],
            reason=decide_task.outputs["reason"],
            triggered_run=decide_task.outputs["triggered_run"],
            evaluation_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            min_accuracy=bars["min_accuracy"],
            **warehouse,
            evaluations_table=evaluations_table,
        ).set_display_name("report")
    )


def _skip_step(found, warehouse: dict, evaluations_table) -> Any:
    """record why: an evaluation that stopped for want of data (its batches stay new)."""
    return sized(
        record_skip(
            evaluation_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            model=found.outputs["model"],
            batch_ids=found.outputs["batch_ids"],
            rows=found.outputs["rows"],
            reason=found.outputs["reason"],
            **warehouse,
            evaluations_table=evaluations_table,
        ).set_display_name("record: not enough data")
    )


def _publish_step(publication: dict, after, report=None) -> Any:
    """Both branches end by keeping the report (if any) and refreshing the lifecycle page."""
    given = {} if report is None else {"report": report}  # a task takes no None argument
    return sized(
        publish(
            **publication,
            run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            **given,
        )
        .after(after)
        .set_display_name("publish report and lifecycle page")
    )


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="New labelled batches -> batch prediction by the served model -> metric and "
    "drift -> retraining when degraded, once per batches.",
)
def evaluation_pipeline(
    contract: dict,
    project: str,
    location: str,
    bq_location: str,
    dataset: str,
    table: str,
    endpoint: str,
    fallback_endpoint: str,
    model_id: str,
    lifecycle_uri: str,
    min_new_rows: int = 200,
    min_accuracy: float = 0.85,
    max_degradation: float = 0.05,
    evaluations_table: str = "evaluations",
    training_spec: dict = {},  # noqa: B006 (a spec default, never mutated)
    training_parameters: str = "{}",
    training_pipeline_root: str = "",
    training_service_account: str = "",
    prediction_machine_type: str = "n1-standard-2",
    prediction_service_account: str = "",
    kms_key: str = "",
    page_endpoints: list = [],  # noqa: B006 (a spec default, never mutated)
) -> str:
    """Evaluate the model prod serves on the new batches; retrain when it has degraded.

    Args:
        contract: the data contract (`DataContract.model_dump(mode="json")`).
        project, location: GCP project and Vertex AI region.
        bq_location, dataset, table: the BigQuery location, dataset and curated table.
        endpoint, fallback_endpoint: the model `endpoint` serves is judged (the fallback's
            while it serves none; locally prod and staging, in the cloud the stack's endpoint).
        model_id: the registry model.
        lifecycle_uri: where the report is kept and the lifecycle page refreshed (the artifacts
            bucket's `lifecycle/`; locally the local root).
        min_new_rows: labelled rows, not yet evaluated, needed to judge.
        min_accuracy, max_degradation: retrain below this accuracy on the new rows, or when it
            is more than this below the model's own test-time accuracy.
        evaluations_table: the platform table evaluations are recorded in.
        training_spec, training_parameters: the compiled training pipeline and the parameters a
            retraining run gets (its schedule's, as JSON text: a schedule passes strings only);
            the snapshot time is the evaluation's.
        training_pipeline_root, training_service_account: where and as whom retraining runs.
        prediction_machine_type, prediction_service_account: the batch prediction job's.
        kms_key: the CMEK key the jobs it starts (batch prediction, retraining) encrypt with.
        page_endpoints: the endpoints the lifecycle page shows (empty: `endpoint` and
            `fallback_endpoint`).

    Returns where the report is kept ("" when there was not enough new data to judge).
    """
    # Where the steps' ports point; which backend answers is the run's (pipeline_src/ports.py).
    warehouse = dict(project=project, bq_location=bq_location, dataset=dataset)
    vertex = dict(project=project, location=location)
    place = {**vertex, **warehouse}
    publication = dict(
        contract=contract, **place, lifecycle_uri=lifecycle_uri, endpoint=endpoint,
        fallback_endpoint=fallback_endpoint, page_endpoints=page_endpoints,
    )  # fmt: skip
    found = _new_data_step(
        contract, place, table=table, endpoint=endpoint, fallback_endpoint=fallback_endpoint,
        model_id=model_id, min_new_rows=min_new_rows, evaluations_table=evaluations_table,
    )  # fmt: skip
    with dsl.If(found.outputs["decision"] == "evaluate", name="enough-new-data"):
        assess_task = _measure_steps(
            contract, found, vertex, machine_type=prediction_machine_type,
            service_account=prediction_service_account, kms_key=kms_key,
        )  # fmt: skip
        report_task = _decide_steps(
            found, assess_task, place, warehouse, evaluations_table=evaluations_table,
            bars=dict(min_new_rows=min_new_rows, min_accuracy=min_accuracy,
                      max_degradation=max_degradation),
            retraining=dict(training_spec=training_spec, training_parameters=training_parameters,
                            pipeline_root=training_pipeline_root,
                            service_account=training_service_account, kms_key=kms_key),
        )  # fmt: skip
        judged = _publish_step(publication, report_task, report_task.outputs["report"])
    with dsl.Else(name="not-enough-new-data"):
        not_judged = _publish_step(publication, _skip_step(found, warehouse, evaluations_table))
    return dsl.OneOf(judged.output, not_judged.output)
