"""The composition: turn one stack's validated config into the platform's components.

This is the only place that knows both the config and the components. It decides names (through
`Naming`), hands each component the narrow args it needs, and makes each component wait for the
APIs it declares (and, with CMEK on, for the key grants). Stacks differ only through the config:
there is no `if stack == "prod"` here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_gcp as gcp

from contracts import DataContract, load_contract
from contracts.tables import EVALUATIONS, INGESTION_LOG, MODEL_METRICS, PREDICTIONS
from pipeline_src.compile import code_version, compile_spec
from pipeline_src.evaluation import evaluation_pipeline
from pipeline_src.image import image_uri, registry_path
from pipeline_src.lifecycle_page import LIFECYCLE_FOLDER, PAGE_OBJECT
from pipeline_src.publication import BROWSER
from pipeline_src.scoring import scoring_pipeline
from pipeline_src.submit import TrainingJob
from pipeline_src.training import CANDIDATE_ALIAS
from resources.access import PERSONAS, Grantee, Members, project_roles
from resources.base import PlatformComponent
from resources.budget import Budget, BudgetArgs
from resources.ci import CiIdentity, CiIdentityArgs, deployer_member
from resources.data_lake import DataLake, DataLakeArgs
from resources.encryption import Encryption, EncryptionArgs, agent_apis
from resources.identities import ACCOUNT_NAMES, WORKLOADS, Identities, IdentitiesArgs
from resources.ingestion import Ingestion, IngestionArgs, function_source
from resources.monitoring import Monitoring, MonitoringArgs
from resources.network import PrivateNetwork, PrivateNetworkArgs
from resources.pipelines import Pipelines, PipelinesArgs, ScheduledPipeline
from resources.services import ProjectServices, ProjectServicesArgs
from resources.serving import MODEL_READER, PREDICTOR, RolloutSettings, Serving, ServingArgs
from resources.warehouse import Warehouse, WarehouseArgs
from resources.workbench import Workbench, WorkbenchArgs
from stacks.config import (
    PROJECT_ROOT,
    ConfigError,
    PlatformConfig,
    ScheduleConfig,
    ServingConfig,
    StackConfig,
)
from stacks.naming import Naming

FUNCTION_DIR = PROJECT_ROOT / "function_src"

COMPONENTS: tuple[type[PlatformComponent], ...] = (
    Identities,
    DataLake,
    Warehouse,
    Ingestion,
    Serving,
    Pipelines,
    Monitoring,
)
OPTIONAL_COMPONENTS: tuple[type[PlatformComponent], ...] = (
    Workbench,
    Encryption,
    CiIdentity,
    Budget,
)
ALL_COMPONENTS = COMPONENTS + OPTIONAL_COMPONENTS
"""Every component a stack may declare: the source of docs/permissions.md."""


@dataclass(frozen=True)
class Platform:
    """The components of one stack, for `__main__.py` to export from."""

    naming: Naming
    contract: DataContract
    services: ProjectServices
    identities: Identities
    data_lake: DataLake
    warehouse: Warehouse
    ingestion: Ingestion
    serving: Serving
    pipelines: Pipelines
    training_job: TrainingJob
    """Where and with what a training run executes: `pipeline_src.submit`'s job file."""
    monitoring: Monitoring
    model_readers: dict[str, pulumi.Output[str]]
    """This stack's identities that deploy another stack's models (READER_ROLES): exported as
    `model_readers`, read by that stack through a stack reference."""
    workbench: Workbench | None
    encryption: Encryption | None
    ci: CiIdentity | None
    budget: Budget | None
    private_network: PrivateNetwork | None
    """The network the endpoint and the pipelines' runs are on (`serving.private_network`)."""


def build_platform(config: StackConfig, stack: str) -> Platform:
    """The stack's components, each built by the function of its concern below, in the order
    they wait for each other."""
    env = _environment(config, stack)
    ci = _ci(env)
    identities, members = _identities(env, ci)
    data_lake = _data_lake(env, members)
    warehouse = _warehouse(env, members)
    ingestion = _ingestion(env, members, identities, data_lake, warehouse)
    private = _private_network(env)
    serving = _serving(env, members, warehouse, private)
    runs = _runs(env, identities, data_lake, warehouse, serving)
    pipelines = _pipelines(env, members, runs, identities, data_lake, warehouse, private)
    workbench = _workbench(env, members, identities, data_lake, warehouse)
    monitoring = _monitoring(env, members, data_lake, serving)
    budget = _budget(env, monitoring, ci)
    return Platform(
        model_readers={
            "pipeline_runner": identities.pipeline_runner.member,
            "vertex_agent": serving.vertex_agent.member,
            **({"deployer": ci.deployer.member} if ci is not None else {}),
        },
        naming=env.naming,
        contract=env.contract,
        services=env.services,
        identities=identities,
        data_lake=data_lake,
        warehouse=warehouse,
        ingestion=ingestion,
        serving=serving,
        pipelines=pipelines,
        training_job=_training_job(env, runs, pipelines, private),
        monitoring=monitoring,
        workbench=workbench,
        encryption=env.encryption,
        ci=ci,
        budget=budget,
        private_network=private,
    )


# --- what every builder shares ----------------------------------------------------------------


@dataclass(frozen=True)
class _Environment:
    """One stack's config and names, and what its components wait for (APIs, key grants)."""

    config: StackConfig
    stack: str
    naming: Naming
    contract: DataContract
    contract_file: Path
    provider: gcp.Provider
    base: pulumi.ResourceOptions
    """Every resource goes through the stack's explicit provider."""
    declared: tuple[type[PlatformComponent], ...]
    services: ProjectServices
    encryption: Encryption | None

    @property
    def platform(self) -> PlatformConfig:
        return self.config.platform

    @property
    def project(self) -> str:
        return self.config.project

    @property
    def region(self) -> str:
        return self.config.region

    @property
    def bq_location(self) -> str:
        return self.platform.warehouse.location or self.region

    def after(
        self, component: type[PlatformComponent], *others: pulumi.Resource
    ) -> pulumi.ResourceOptions:
        """Wait for the component's APIs, the key grants it relies on, and `others`."""
        waits: list[pulumi.Resource] = [*self.services.needed_by(*component.APIS), *others]
        if self.encryption is not None and component.KMS_AGENTS:
            waits.append(self.encryption)
        return pulumi.ResourceOptions.merge(self.base, pulumi.ResourceOptions(depends_on=waits))


def _environment(config: StackConfig, stack: str) -> _Environment:
    """The provider, the project's APIs and, with CMEK on, the key grants: what all wait for."""
    platform, project = config.platform, config.project
    contract_file = PROJECT_ROOT / platform.warehouse.contract
    # An explicit provider: every resource goes to the project and region the config names,
    # whatever `gcp:project` the person running Pulumi has set.
    provider = gcp.Provider("gcp", project=project, region=config.region)
    base = pulumi.ResourceOptions(providers={"gcp": provider})
    declared = _declared(platform)
    apis = sorted(
        {api for component in declared for api in component.APIS} | set(_ci_apis(platform))
    )
    services = ProjectServices(
        "services", ProjectServicesArgs(project=project, apis=tuple(apis)), base
    )
    encryption = None
    if platform.kms_key:
        agents = tuple(sorted({a for component in declared for a in component.KMS_AGENTS}))
        encryption = Encryption(
            "encryption",
            EncryptionArgs(project=project, kms_key=platform.kms_key, agents=agents),
            pulumi.ResourceOptions.merge(
                base,
                pulumi.ResourceOptions(
                    depends_on=services.needed_by(*Encryption.APIS, *agent_apis(agents))
                ),
            ),
        )
    return _Environment(
        config=config,
        stack=stack,
        naming=Naming(project, stack, dict(platform.labels)),
        contract=load_contract(contract_file),
        contract_file=contract_file,
        provider=provider,
        base=base,
        declared=declared,
        services=services,
        encryption=encryption,
    )


def _declared(platform: PlatformConfig) -> tuple[type[PlatformComponent], ...]:
    """The components this stack declares: every stack's, and the optional ones it enables."""
    return (
        *COMPONENTS,
        *([Workbench] if platform.workbench.enabled else []),
        *([Encryption] if platform.kms_key else []),
        *([CiIdentity] if platform.ci.github_repository is not None else []),
        *([Budget] if platform.cost.budget.billing_account is not None else []),
        *([PrivateNetwork] if platform.serving.private_network else []),
    )


def _ci_apis(platform: PlatformConfig) -> tuple[str, ...]:
    """The CI accounts' KMS calls (the secrets provider, the grants on its key) need the API in
    the project the accounts live in, wherever the key is."""
    ci = platform.ci
    return ("cloudkms.googleapis.com",) if ci.github_repository and ci.secrets_key else ()


# --- who: CI, the workloads' identities, every grantee's members --------------------------------


def _ci(env: _Environment) -> CiIdentity | None:
    """Keyless CI/CD's deployer and previewer, when the config names a GitHub repository."""
    platform, naming, project = env.platform, env.naming, env.project
    settings = platform.ci
    if settings.github_repository is None:
        return None
    args = CiIdentityArgs(
        project=project,
        pool_id=naming.resource("github", limit=32),
        deployer_account_id=naming.account_id("deployer"),
        previewer_account_id=naming.account_id("previewer"),
        display_prefix=naming.display_prefix,
        settings=settings,
        cmek_key=platform.kms_key,
        workbench=platform.workbench.enabled,
        private_serving=platform.serving.private_network,
        project_roles=project_roles(
            env.declared,
            {
                key: f"projects/{project}/roles/{naming.role_id(key)}"
                for key in (PREDICTOR, MODEL_READER)
            },
            excluding=(Grantee.CI_DEPLOYER, Grantee.CI_PREVIEWER),
        ),
    )
    waits = env.services.needed_by(*_ci_apis(platform))
    return CiIdentity("ci", args, env.after(CiIdentity, *waits))


def _identities(env: _Environment, ci: CiIdentity | None) -> tuple[Identities, Members]:
    """The workloads' accounts, and who plays each grantee: the personas the config names, the
    deployers (CI's among them), the workloads, the readers of the stack's models and the
    Workbench owner."""
    platform, naming = env.platform, env.naming
    access = platform.access
    people: Members = {
        grantee: list(getattr(access, grantee.value))
        for grantee in PERSONAS
        if getattr(access, grantee.value)
    }
    deployers = list(access.deployers)
    if ci is not None:
        # The CI deployer deploys the workloads too: it may act as their accounts.
        ci_deployer = deployer_member(naming.account_id("deployer"), env.project)
        deployers = list(dict.fromkeys([*deployers, ci_deployer]))
    if deployers:
        people[Grantee.DEPLOYERS] = deployers
    workbench_on = platform.workbench.enabled
    workloads = [w for w in WORKLOADS if w != Grantee.WORKBENCH or workbench_on]
    identities = Identities(
        "identities",
        IdentitiesArgs(
            project=env.project,
            account_ids={w: naming.account_id(ACCOUNT_NAMES[w]) for w in workloads},
            display_prefix=naming.display_prefix,
            members=people,
        ),
        # IAM refuses a grant to an account that does not exist yet (the CI deployer's actAs).
        env.after(Identities, *([ci] if ci else [])),
    )
    members: Members = {**people, **identities.members}
    readers = _model_readers(platform.serving)
    if readers:
        members[Grantee.MODEL_READERS] = readers
    if workbench_on:
        members[Grantee.WORKBENCH_OWNER] = [f"user:{platform.workbench.owner}"]
    return identities, members


# --- data: the lake, the warehouse and the ingestion between them ------------------------------


def _data_lake(env: _Environment, members: Members) -> DataLake:
    naming = env.naming
    return DataLake(
        "data-lake",
        DataLakeArgs(
            project=env.project,
            location=env.region,
            landing_bucket=naming.bucket("landing"),
            quarantine_bucket=naming.bucket("quarantine"),
            artifacts_bucket=naming.bucket("artifacts"),
            access_logs_bucket=naming.bucket("access-logs"),
            models_bucket=naming.bucket("models"),
            labels=naming.labels,
            settings=env.platform.data_lake,
            kms_key=env.platform.kms_key,
            members=members,
        ),
        env.after(DataLake),
    )


def _warehouse(env: _Environment, members: Members) -> Warehouse:
    settings = env.platform.warehouse
    return Warehouse(
        "warehouse",
        WarehouseArgs(
            project=env.project,
            location=env.bq_location,
            dataset_id=env.naming.dataset_id(settings.dataset),
            contract=env.contract,
            labels=env.naming.labels,
            deletion_protection=settings.deletion_protection,
            kms_key=env.platform.kms_key,
            members=members,
        ),
        env.after(Warehouse),
    )


def _ingestion(
    env: _Environment,
    members: Members,
    identities: Identities,
    data_lake: DataLake,
    warehouse: Warehouse,
) -> Ingestion:
    project, region, naming = env.project, env.region, env.naming
    # The Cloud Storage agent publishes the landing bucket's events (looked up, not created).
    storage_agent = gcp.storage.get_project_service_account_output(
        project=project,
        opts=pulumi.InvokeOutputOptions(
            provider=env.provider, depends_on=env.services.needed_by("storage.googleapis.com")
        ),
    )
    return Ingestion(
        "ingestion",
        IngestionArgs(
            project=project,
            region=region,
            function_name=naming.resource("ingest"),
            repository_id=naming.resource("functions"),
            source=function_source(FUNCTION_DIR, env.contract_file),
            settings=env.platform.ingestion,
            landing_bucket=data_lake.landing.name,
            landing_location=region,
            quarantine_bucket=data_lake.quarantine.name,
            artifacts_bucket=naming.bucket("artifacts"),
            dataset_id=warehouse.dataset.dataset_id,
            bq_location=env.bq_location,
            curated_table=warehouse.curated.table_id,
            ingestion_log_table=warehouse.tables[INGESTION_LOG.table_id].table_id,
            runtime_account_email=identities.ingestion.email,
            trigger_account_email=identities.ingestion_trigger.email,
            build_account_name=identities.function_build.name,
            labels=naming.labels,
            kms_key=env.platform.kms_key,
            members={**members, Grantee.STORAGE_AGENT: [storage_agent.member]},
        ),
        # The function handles events as soon as it exists: its grants on the buckets and the
        # dataset come first.
        env.after(Ingestion, data_lake, warehouse),
    )


# --- serving: the endpoint and the network it may serve on -------------------------------------


def _private_network(env: _Environment) -> PrivateNetwork | None:
    if not env.platform.serving.private_network:
        return None
    return PrivateNetwork(
        "private-network",
        PrivateNetworkArgs(env.project, env.naming.resource("serving"), env.naming.labels),
        env.after(PrivateNetwork),
    )


def _vertex_network(private: PrivateNetwork | None) -> pulumi.Input[str] | None:
    """The network the endpoint serves on and the pipelines' runs join; None: Google's own."""
    return private.vertex_network if private else None


def _serving(
    env: _Environment, members: Members, warehouse: Warehouse, private: PrivateNetwork | None
) -> Serving:
    project, region, naming = env.project, env.region, env.naming
    serving = env.platform.serving
    return Serving(
        "serving",
        ServingArgs(
            project=project,
            region=region,
            display_name=naming.display_name("endpoint"),
            endpoint_id=naming.endpoint_id(),
            labels=naming.labels,
            predictor_role_id=naming.role_id(PREDICTOR),
            model_reader_role_id=naming.role_id(MODEL_READER),
            rollout=_rollout(serving, project, region, naming, env.contract.name),
            kms_key=env.platform.kms_key,
            request_logging_dataset=(
                pulumi.Output.concat("bq://", project, ".", warehouse.dataset.dataset_id)
                if serving.request_logging
                else None
            ),
            logging_sampling_rate=serving.logging_sampling_rate,
            network=_vertex_network(private),
            members=members,
        ),
        # A private endpoint is created on a network already peered with Vertex AI.
        env.after(Serving, *([private] if private else [])),
    )


# --- pipelines: training, evaluation and scoring on one image ----------------------------------

WHERE = ("project", "location", "bq_location", "dataset", "table", "endpoint", "model_id")
"""The training run's string parameters the evaluation and the scoring runs share: where the
data, the endpoint and the model are."""


@dataclass(frozen=True)
class _Runs:
    """What the stack's pipeline runs share: one image, one root, the training run's
    parameters and the runner they run as."""

    repository_id: str
    image: str
    """One image for the components and for serving: what train pickles, serving unpickles."""
    pipeline_root: pulumi.Output[str]
    labels: dict[str, str]
    """Of what the training runs create (jobs, model versions), managed by the pipeline."""
    typed: dict[str, Any]
    """Typed parameters travel in the spec as its defaults."""
    strings: dict[str, pulumi.Input[str]]
    """String parameters travel as the run's parameters."""
    limits: dict[str, dict[str, Any]]
    spec: dict[str, Any]
    """The compiled training pipeline."""
    runner_email: pulumi.Output[str]

    def where(self) -> dict[str, pulumi.Input[str]]:
        return {key: self.strings[key] for key in WHERE}


def _runs(
    env: _Environment,
    identities: Identities,
    data_lake: DataLake,
    warehouse: Warehouse,
    serving: Serving,
) -> _Runs:
    """The training run: its parameters, its sizes and its compiled spec."""
    platform, naming, region = env.platform, env.naming, env.region
    training = platform.pipelines.training
    repository_id = naming.resource("pipelines")
    image = image_uri(registry_path(region, env.project, repository_id))
    labels = _run_labels(env, "training")
    typed = {
        "contract": env.contract.model_dump(mode="json", exclude_none=True),
        "min_accuracy": training.min_accuracy,
        "min_improvement": training.min_improvement,
        "serving_min_replicas": platform.serving.min_replicas,
        "serving_max_replicas": platform.serving.max_replicas,
        "model_labels": labels,
        **training.hyperparameters,
    }
    limits = {task: r.limits() for task, r in training.resources.items()}
    return _Runs(
        repository_id=repository_id,
        image=image,
        pipeline_root=pulumi.Output.concat("gs://", data_lake.artifacts.name, "/pipeline-root"),
        labels=labels,
        typed=typed,
        strings=_training_strings(env, image, data_lake, warehouse, serving),
        limits=limits,
        spec=compile_spec(image, defaults=typed, limits=limits),
        runner_email=identities.pipeline_runner.email,
    )


def _training_strings(
    env: _Environment, image: str, data_lake: DataLake, warehouse: Warehouse, serving: Serving
) -> dict[str, pulumi.Input[str]]:
    """The training run's string parameters: where its data, endpoint and model are, and who
    deploys the model it makes."""
    platform, naming, project, region = env.platform, env.naming, env.project, env.region
    contract = env.contract
    # An endpoint whose config names the model it serves (prod) is deployed by promotion: the
    # Promotion resource owns its traffic, so a better model from this stack's training runs
    # (scheduled, or a retraining the evaluation starts) is registered for QA, not deployed.
    promoted = platform.serving.model is not None
    return {
        "project": project,
        "location": region,
        "bq_location": env.bq_location,
        "dataset": warehouse.dataset.dataset_id,
        "table": warehouse.curated.table_id,
        "metrics_table": warehouse.tables[MODEL_METRICS.table_id].table_id,
        "endpoint": pulumi.Output.concat(
            "projects/", project, "/locations/", region, "/endpoints/", serving.endpoint.name
        ),
        "model_id": naming.model_id(contract.name),
        "model_display_name": naming.display_name(f"{contract.name} model"),
        # The models bucket: one home for every bundle, readable by the project models are
        # promoted to (listing included).
        "models_uri": pulumi.Output.concat("gs://", data_lake.models.name),
        "serving_image": image,
        # Each run keeps its report and refreshes the lifecycle page here (never expired).
        "lifecycle_uri": pulumi.Output.concat(
            "gs://", data_lake.artifacts.name, "/", LIFECYCLE_FOLDER
        ),
        "serving_machine_type": platform.serving.machine_type,
        "git_commit": code_version(),
        "deploy_by": "promotion" if promoted else "pipeline",
        "model_alias": CANDIDATE_ALIAS if promoted else "staging",
    }


def _pipelines(
    env: _Environment,
    members: Members,
    runs: _Runs,
    identities: Identities,
    data_lake: DataLake,
    warehouse: Warehouse,
    private: PrivateNetwork | None,
) -> Pipelines:
    """The pipeline image's and templates' repositories, and the three pipelines' schedules."""
    naming = env.naming
    return Pipelines(
        "pipelines",
        PipelinesArgs(
            project=env.project,
            region=env.region,
            repository_id=runs.repository_id,
            templates_repository_id=naming.resource("pipeline-templates"),
            image=runs.image,
            pipeline_root=runs.pipeline_root,
            runner_email=runs.runner_email,
            labels=naming.labels,
            training=_scheduled(
                env, "training", runs.spec, runs.strings, env.platform.pipelines.training.schedule
            ),
            evaluation=_evaluation(env, runs, warehouse),
            scoring=_scoring(env, runs, warehouse),
            kms_key=env.platform.kms_key,
            network=_vertex_network(private),
            members=members,
        ),
        # Runs read and write what the runner is granted in the data lake and the warehouse.
        env.after(Pipelines, identities, data_lake, warehouse, *([private] if private else [])),
    )


def _evaluation(env: _Environment, runs: _Runs, warehouse: Warehouse) -> ScheduledPipeline:
    """The continuous evaluation on its schedule: it judges the model the stack's endpoint
    serves on new rows, and retrains with the training code deployed beside it."""
    evaluation = env.platform.pipelines.evaluation
    spec = compile_spec(
        runs.image,
        defaults={
            "contract": runs.typed["contract"],
            "min_new_rows": evaluation.min_new_rows,
            "min_accuracy": evaluation.min_accuracy,
            "max_degradation": evaluation.max_degradation,
            # Retraining runs the training code deployed with it, with its schedule's values.
            "training_spec": runs.spec,
        },
        pipeline=evaluation_pipeline,
        limits={task: r.limits() for task, r in evaluation.resources.items()},
    )
    parameters = {
        **runs.where(),
        # Each stack judges the model its own endpoint serves: no fallback endpoint.
        "fallback_endpoint": "",
        "lifecycle_uri": runs.strings["lifecycle_uri"],
        "evaluations_table": warehouse.tables[EVALUATIONS.table_id].table_id,
        "training_parameters": pulumi.Output.json_dumps(runs.strings),
        "training_pipeline_root": runs.pipeline_root,
        "training_service_account": runs.runner_email,
        "prediction_service_account": runs.runner_email,
        "prediction_machine_type": env.platform.serving.machine_type,
        "kms_key": env.platform.kms_key or "",
    }
    return _scheduled(env, "evaluation", spec, parameters, evaluation.schedule)


def _scoring(env: _Environment, runs: _Runs, warehouse: Warehouse) -> ScheduledPipeline:
    """The batch scoring pipeline on its schedule: the stack's endpoint's model (prod: the
    promoted version) scores `scoring.source` into the predictions table, its batch job sized
    by the stack (machine type and replicas, in the spec as defaults)."""
    scoring = env.platform.pipelines.scoring
    spec = compile_spec(
        runs.image,
        defaults={
            "contract": runs.typed["contract"],
            "prediction_replica_count": scoring.replica_count,
        },
        pipeline=scoring_pipeline,
        limits={task: r.limits() for task, r in scoring.resources.items()},
    )
    parameters = {
        **runs.where(),
        # Each stack scores with the model its own endpoint serves: no fallback endpoint.
        "fallback_endpoint": "",
        "source": scoring.source,
        "predictions_table": warehouse.tables[PREDICTIONS.table_id].table_id,
        "prediction_machine_type": scoring.machine_type,
        "prediction_service_account": runs.runner_email,
        "kms_key": env.platform.kms_key or "",
    }
    return _scheduled(env, "scoring", spec, parameters, scoring.schedule)


def _scheduled(
    env: _Environment,
    pipeline: str,
    spec: dict[str, Any],
    parameters: dict[str, pulumi.Input[str]],
    schedule: ScheduleConfig,
) -> ScheduledPipeline:
    """The `pipeline` ("scoring") on its schedule, the jobs its runs create labelled as its own."""
    return ScheduledPipeline(
        display_name=env.naming.display_name(f"{pipeline} pipeline"),
        spec=spec,
        parameters=parameters,
        schedule=schedule,
        run_labels=_run_labels(env, pipeline),
    )


def _run_labels(env: _Environment, pipeline: str) -> dict[str, str]:
    """The labels of the jobs (and, for training, the model versions) a pipeline's runs create:
    managed by that pipeline, not by Pulumi."""
    return {**env.naming.labels, "managed-by": f"{pipeline}-pipeline"}


def _training_job(
    env: _Environment, runs: _Runs, pipelines: Pipelines, private: PrivateNetwork | None
) -> TrainingJob:
    """Where and with what a training run executes: the job file `pipeline_src.submit` reads
    (its fields hold Outputs here, the strings they resolve to once exported)."""
    return TrainingJob(
        project=env.project,
        region=env.region,
        image=runs.image,
        pipeline_root=runs.pipeline_root,
        service_account=runs.runner_email,
        parameters={**runs.typed, **runs.strings},
        labels=runs.labels,
        # Where `pipeline_src.submit --publish` publishes the compiled template.
        template_registry=pipelines.template_registry,
        # CI compiles the same sized pipeline the schedule runs.
        limits=runs.limits,
        network=_vertex_network(private),
    )


# --- the rest: Workbench, monitoring, the budget -------------------------------------------------


def _workbench(
    env: _Environment,
    members: Members,
    identities: Identities,
    data_lake: DataLake,
    warehouse: Warehouse,
) -> Workbench | None:
    settings, region, naming = env.platform.workbench, env.region, env.naming
    if not settings.enabled:
        return None
    return Workbench(
        "workbench",
        WorkbenchArgs(
            project=env.project,
            region=region,
            zone=settings.zone or f"{region}-b",
            instance_name=naming.resource("workbench"),
            network_name=naming.resource("workbench"),
            service_account_email=identities.workbench.email,
            service_account_name=identities.workbench.name,
            settings=settings,
            labels=naming.labels,
            kms_key=env.platform.kms_key,
            members=members,
        ),
        env.after(Workbench, data_lake, warehouse),
    )


def _monitoring(
    env: _Environment, members: Members, data_lake: DataLake, serving: Serving
) -> Monitoring:
    naming = env.naming
    return Monitoring(
        "monitoring",
        MonitoringArgs(
            project=env.project,
            display_prefix=naming.display_prefix,
            metric_prefix=naming.metric_prefix,
            function_name=naming.resource("ingest"),
            endpoint_id=serving.endpoint.name,
            quarantine_bucket=data_lake.quarantine.name,
            labels=naming.labels,
            settings=env.platform.monitoring,
            evaluation_pipeline=evaluation_pipeline.name,
            members=members,
            # The page the pipelines write to the artifacts bucket (stakeholders read it).
            lifecycle_page=pulumi.Output.concat(
                BROWSER, data_lake.artifacts.name, "/", PAGE_OBJECT
            ),
        ),
        env.after(Monitoring),
    )


def _budget(env: _Environment, monitoring: Monitoring, ci: CiIdentity | None) -> Budget | None:
    """The stack's budget, alerting its notification channel; CI's deployer may maintain it."""
    settings, naming = env.platform.cost.budget, env.naming
    if settings.billing_account is None:
        return None
    deployer = deployer_member(naming.account_id("deployer"), env.project)
    return Budget(
        "budget",
        BudgetArgs(
            project=env.project,
            settings=settings,
            display_name=f"{naming.display_prefix}: monthly budget",
            notification_channel=monitoring.channel.name if monitoring.channel else None,
            members={Grantee.CI_DEPLOYER: [deployer]} if ci is not None else {},
        ),
        # Its grant to the CI deployer waits for that account (IAM refuses a member not created).
        env.after(Budget, *([ci] if ci is not None else [])),
    )


READER_ROLES = ("deployer", "pipeline_runner", "vertex_agent")
"""Who in the stack models are promoted to reads them: its deployer and Vertex AI agent
re-register a version (registry, bundle, image), its runner loads the served one's bundle."""
MODEL_READERS_OUTPUT = "model_readers"


def _model_readers(serving: ServingConfig) -> dict[str, pulumi.Input[str]]:
    """The members that read this stack's models: those the config lists, and the identities
    the stack models are promoted to exports (`model_readers_from`, a stack reference: the
    members exist once that stack is deployed, and no one types them by hand)."""
    readers: dict[str, pulumi.Input[str]] = {
        hashlib.sha256(member.encode()).hexdigest()[:8]: member for member in serving.model_readers
    }
    source = serving.model_readers_from
    if source:
        reference = pulumi.StackReference(f"{source.rsplit('/', 1)[-1]}-stack", stack_name=source)
        offered = reference.get_output(MODEL_READERS_OUTPUT)
        for role in READER_ROLES:
            readers[role] = offered.apply(lambda found, role=role: _offered(found, role, source))
    return readers


def _offered(found: Any, role: str, source: str) -> str:
    if not isinstance(found, dict) or not found.get(role):
        raise ConfigError(
            f"stack {source} exports no {MODEL_READERS_OUTPUT}.{role}: deploy it first "
            "(docs/deploy.md)"
        )
    return found[role]


def _rollout(
    serving: ServingConfig, project: str, region: str, naming: Naming, dataset: str
) -> RolloutSettings | None:
    """The model the stack's endpoint serves, by its full name; None when the config names none."""
    if serving.model is None:
        return None
    model = serving.model
    if not model.startswith("projects/"):  # ID@VERSION: a model of the stack's own project
        model = f"projects/{project}/locations/{region}/models/{model}"
    return RolloutSettings(
        model=model,
        model_id=naming.model_id(dataset),
        model_display_name=naming.display_name(f"{dataset} model"),
        settings=serving,
    )
