"""The training pipeline: from a warehouse snapshot to a better model on the staging endpoint.

    extract ► validate ► split ► train ► evaluate ► gate ─┬─ deploy: register ► deploy, record
                                                          ├─ register: register ► record
                                                          └─ keep champion: record
    … and each branch ends with publish.

publish keeps the report, headed by the gate's decision and the run's provenance, beside the
lifecycle page and refreshes the page (components/publish.py), whichever branch ran.

"register" is the gate's decision for a better model when the endpoint is deployed by
promotion (`deploy_by="promotion"`, prod): the version waits, as a candidate, for QA's
promotion PR rather than reaching the endpoint.

Only the DAG lives here; each step is a component in `components/`. Every parameter is explicit:
the schedule (resources/pipelines.py), CI (submit.py) and the local launcher
(local/run_training.py) pass them. What the steps reach outside the pipeline (warehouse, registry,
endpoint) is the run's backend, chosen by its launcher, never a parameter (pipeline_src/ports.py).
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

from kfp import dsl

from pipeline_src.components.deploy import deploy
from pipeline_src.components.evaluate import evaluate
from pipeline_src.components.extract import extract
from pipeline_src.components.gate import gate
from pipeline_src.components.publish import publish
from pipeline_src.components.record_metrics import record_metrics
from pipeline_src.components.register import register
from pipeline_src.components.split import split
from pipeline_src.components.train import train
from pipeline_src.components.validate import validate
from pipeline_src.sizing import sized

PIPELINE_NAME = "tabular-mlops-training"
COMPONENTS = (
    extract, validate, split, train, evaluate, gate, register, record_metrics, deploy, publish
)  # fmt: skip
CANDIDATE_ALIAS = "candidate"
"""The alias of the newest version awaiting promotion, in a stack deployed by promotion."""
TUNABLE = frozenset(
    {
        "min_rows_per_class", "max_missing_rate", "validation_fraction", "test_fraction", "seed",
        "learning_rate", "max_iter", "max_leaf_nodes", "min_samples_leaf", "l2_regularization",
    }
)  # fmt: skip
"""Parameters a stack may set through `pipelines.training.hyperparameters`; the others are the
platform's (resource names, the contract, the gate's bars, which have their own config keys)."""


class TrainingOutputs(NamedTuple):
    """What a run returns: the gate's decision and reason, the evaluation, and where its report
    is kept, headed by the decision (beside the lifecycle page)."""

    decision: str
    reason: str
    evaluation: dsl.Artifact
    report: str


# --- the stages the pipeline is built of. kfp builds the graph by running the pipeline function
# once it is declared, so they come first; each creates its tasks as it is called, in the order
# of the module's diagram.


class _Data(NamedTuple):
    extract: Any
    validate: Any
    split: Any


class _Model(NamedTuple):
    train: Any
    evaluate: Any


def _data_steps(
    contract, warehouse: dict, *, table, snapshot_time, min_rows_per_class, max_missing_rate,
    validation_fraction, test_fraction, seed,
) -> _Data:  # fmt: skip
    """extract ► validate ► split: the snapshot, checked against the contract, in three splits."""
    extract_task = sized(
        extract(
            contract=contract,
            **warehouse,
            table=table,
            snapshot_time=snapshot_time,
        ).set_display_name("extract snapshot")
    )
    validate_task = sized(
        validate(
            contract=contract,
            snapshot=extract_task.outputs["snapshot"],
            min_rows_per_class=min_rows_per_class,
            max_missing_rate=max_missing_rate,
        ).set_display_name("validate data")
    )
    split_task = sized(
        split(
            contract=contract,
            snapshot=extract_task.outputs["snapshot"],
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            seed=seed,
        )
        .after(validate_task)  # never split (or train on) data validate rejected
        .set_display_name("split train/validation/test")
    )
    return _Data(extract_task, validate_task, split_task)


def _model_steps(contract, data: _Data, *, seed, **hyperparameters) -> _Model:
    """train ► evaluate: the challenger, fitted on the training split with the hyperparameters,
    and its evaluation on the test split."""
    train_task = sized(
        train(
            contract=contract,
            train_data=data.split.outputs["train"],
            validation_data=data.split.outputs["validation"],
            **hyperparameters,
            seed=seed,
        ).set_display_name("train model")
    )
    evaluate_task = sized(
        evaluate(
            contract=contract,
            model=train_task.outputs["model"],
            train_data=data.split.outputs["train"],
            test_data=data.split.outputs["test"],
            seed=seed,
        ).set_display_name("evaluate and report")
    )
    return _Model(train_task, evaluate_task)


def _gate_step(contract, data: _Data, model: _Model, vertex: dict, **gate_settings) -> Any:
    """gate: the challenger against the bar and the champion; its decision picks the branch."""
    return sized(
        gate(
            contract=contract,
            evaluation=model.evaluate.outputs["evaluation"],
            test_data=data.split.outputs["test"],
            **vertex,
            **gate_settings,
        ).set_display_name("gate: challenger vs champion")
    )


@dataclass(frozen=True)
class _Release:
    """What follows the gate; each branch of its decision takes some of it. `registration`,
    `publication`: the register and publish steps' own settings."""

    contract: Any
    data: _Data
    model: _Model
    gate: Any
    warehouse: dict
    vertex: dict
    metrics_table: Any
    registration: dict
    publication: dict

    def by_decision(self, serving: dict) -> TrainingOutputs:
        """One branch per decision, so the run's outputs can name the report of whichever ran.
        `serving`: the deploy step's endpoint and machines."""
        decision = self.gate.outputs["decision"]
        with dsl.If(decision == "deploy", name="challenger-deploys"):
            deployed = self.register_version()
            deploy_task = sized(
                deploy(model=deployed.outputs["model"], **self.vertex, **serving)
                .set_display_name("deploy to staging")
            )  # fmt: skip
            recorded = self.record(deployed.outputs["model"])
            published_deploy = self.publish_run(deployed.outputs["model"], recorded, deploy_task)
        # Where the endpoint is QA's (deploy_by="promotion"): registered, never deployed here.
        with dsl.Elif(decision == "register", name="challenger-awaits-promotion"):
            candidate = self.register_version()
            recorded = self.record(candidate.outputs["model"])
            published_candidate = self.publish_run(candidate.outputs["model"], recorded)
        with dsl.Else(name="champion-stays"):
            published_kept = self.publish_run("", self.record(""))
        return TrainingOutputs(
            decision=decision,
            reason=self.gate.outputs["reason"],
            evaluation=self.model.evaluate.outputs["evaluation"],
            report=dsl.OneOf(
                published_deploy.output, published_candidate.output, published_kept.output
            ),
        )

    def record(self, model_version):
        """Every branch records the run's metrics and the gate's decision."""
        return sized(
            record_metrics(
                evaluation=self.model.evaluate.outputs["evaluation"],
                training_metrics=self.model.train.outputs["metrics"],
                decision=self.gate.outputs["decision"],
                reason=self.gate.outputs["reason"],
                champion_accuracy=self.gate.outputs["champion_accuracy"],
                model_version=model_version,
                snapshot_id=self.data.extract.outputs["snapshot_id"],
                run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                **self.warehouse,
                table=self.metrics_table,
            ).set_display_name("record metrics")
        )

    def register_version(self):
        """A winner becomes a registry version (deployed by this run or awaiting promotion)."""
        return sized(
            register(
                model=self.model.train.outputs["model"],
                evaluation=self.model.evaluate.outputs["evaluation"],
                baseline=self.data.validate.outputs["baseline"],
                report=self.model.evaluate.outputs["report"],
                **self.vertex,
                snapshot_id=self.data.extract.outputs["snapshot_id"],
                run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                gate_reason=self.gate.outputs["reason"],
                **self.registration,
            ).set_display_name("register version")
        )

    def publish_run(self, model_version, *after):
        """Every branch ends by keeping the report, headed by the decision, and refreshing the
        lifecycle page once the run's row is recorded (and its version deployed)."""
        return sized(
            publish(
                contract=self.contract,
                **{**self.vertex, **self.warehouse},
                run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                report=self.model.evaluate.outputs["report"],
                decision=self.gate.outputs["decision"],
                reason=self.gate.outputs["reason"],
                model_version=model_version,
                **self.publication,
            )
            .after(*after)
            .set_display_name("publish report and lifecycle page")
        )


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Warehouse snapshot -> validated splits -> model -> report -> gate -> "
    "registry version on the staging endpoint.",
)
def training_pipeline(
    contract: dict,
    project: str,
    location: str,
    bq_location: str,
    dataset: str,
    table: str,
    endpoint: str,
    model_id: str,
    model_display_name: str,
    models_uri: str,
    serving_image: str,
    lifecycle_uri: str,
    git_commit: str = "unknown",
    snapshot_time: str = "",
    min_rows_per_class: int = 10,
    max_missing_rate: float = 0.2,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 42,
    learning_rate: float = 0.1,
    max_iter: int = 100,
    max_leaf_nodes: int = 15,
    min_samples_leaf: int = 10,
    l2_regularization: float = 0.0,
    min_accuracy: float = 0.9,
    min_improvement: float = 0.0,
    model_alias: str = "staging",
    deploy_by: str = "pipeline",
    model_labels: dict = {},  # noqa: B006 (a spec default, never mutated)
    metrics_table: str = "model_metrics",
    serving_machine_type: str = "n1-standard-2",
    serving_min_replicas: int = 1,
    serving_max_replicas: int = 1,
    serving_service_account: str = "",
    page_endpoints: list = [],  # noqa: B006 (a spec default, never mutated)
) -> TrainingOutputs:
    """Train on a snapshot of the curated table; deploy (or register) it only if it is better.

    Args:
        contract: the data contract (`DataContract.model_dump(mode="json")`): features, label, key.
        project, location: GCP project and Vertex AI region.
        bq_location, dataset, table: the BigQuery location, dataset and curated table.
        endpoint: the stack's endpoint (resource name; locally the endpoint's name): what it
            serves is the champion; the model deploys to it unless `deploy_by` is "promotion".
        model_id, model_display_name: the registry model the versions belong to.
        models_uri: gs:// folder registered model bundles are copied to (outlives the run).
        serving_image: the container image Vertex AI serves the model with.
        lifecycle_uri: where the run's report is kept and the lifecycle page refreshed (the
            artifacts bucket's `lifecycle/`, which the dashboard links; locally the local root).
        git_commit: the code version, recorded on the model and stated in the report.
        snapshot_time: ISO time of the snapshot (empty: now); the same time gives the same data.
        min_rows_per_class, max_missing_rate: what validate accepts.
        validation_fraction, test_fraction, seed: the split (and the model's seed).
        learning_rate … l2_regularization: the gradient-boosted trees' hyperparameters.
        min_accuracy, min_improvement: the gate's absolute bar and margin over the champion.
        model_alias, model_labels: alias the new version takes; labels added to its own.
        deploy_by: "pipeline": a better model is deployed to `endpoint` (staging); "promotion":
            `endpoint` serves what QA promotes (prod), a better model is only registered.
        metrics_table: the platform table metrics and decisions go to.
        serving_*: the staging deployment's machine type, replicas and service account.
        page_endpoints: the endpoints the lifecycle page shows (empty: `endpoint`; locally
            staging and prod share one page).
    """
    # Where the steps' ports point; which backend answers is the run's (pipeline_src/ports.py).
    warehouse = dict(project=project, bq_location=bq_location, dataset=dataset)
    vertex = dict(project=project, location=location)
    data = _data_steps(
        contract, warehouse, table=table, snapshot_time=snapshot_time,
        min_rows_per_class=min_rows_per_class, max_missing_rate=max_missing_rate,
        validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed,
    )  # fmt: skip
    model = _model_steps(
        contract, data, seed=seed, learning_rate=learning_rate, max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes, min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization,
    )  # fmt: skip
    gate_task = _gate_step(
        contract, data, model, vertex, endpoint=endpoint, model_id=model_id,
        min_accuracy=min_accuracy, min_improvement=min_improvement, deploy_by=deploy_by,
    )  # fmt: skip
    release = _Release(
        contract, data, model, gate_task, warehouse, vertex, metrics_table,
        registration=dict(
            model_id=model_id, display_name=model_display_name, alias=model_alias,
            serving_image=serving_image, models_uri=models_uri, git_commit=git_commit,
            labels=model_labels, deploy_by=deploy_by,
        ),
        publication=dict(
            lifecycle_uri=lifecycle_uri, endpoint=endpoint, page_endpoints=page_endpoints,
            git_commit=git_commit,
        ),
    )  # fmt: skip
    return release.by_decision(
        serving=dict(
            endpoint=endpoint, machine_type=serving_machine_type,
            min_replicas=serving_min_replicas, max_replicas=serving_max_replicas,
            service_account=serving_service_account,
        )
    )  # fmt: skip
