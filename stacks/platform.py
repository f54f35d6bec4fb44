"""The composition: turn one stack's validated config into the platform's components.

This is the only place that knows both the config and the components. It decides names (through
`Naming`), hands each component the narrow args it needs, and makes each component wait for the
APIs it declares (and, with CMEK on, for the key grants). Stacks differ only through the config:
there is no `if stack == "prod"` here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp

from contracts import DataContract, load_contract
from contracts.tables import EVALUATIONS, INGESTION_LOG, MODEL_METRICS, PREDICTIONS
from pipeline_src.compile import code_version, compile_spec, typed_arguments
from pipeline_src.evaluation import evaluation_pipeline
from pipeline_src.image import image_uri, registry_path
from pipeline_src.lifecycle_page import PAGE_OBJECT
from pipeline_src.scoring import scoring_pipeline
from pipeline_src.training import CANDIDATE_ALIAS, TUNABLE
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
    NAMESPACE,
    PROJECT_ROOT,
    ConfigError,
    ScoringConfig,
    ServingConfig,
    StackConfig,
    stack_file_name,
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
    training_job: dict[str, Any]
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
    platform = config.platform
    project, region = config.project, config.region
    naming = Naming(project, stack, dict(platform.labels))
    labels = naming.labels
    contract_file = PROJECT_ROOT / platform.warehouse.contract
    contract = load_contract(contract_file)
    bq_location = platform.warehouse.location or region
    workbench_on = platform.workbench.enabled
    kms_key = platform.kms_key
    ci_on = platform.ci.github_repository is not None
    budget_on = platform.cost.budget.billing_account is not None

    # An explicit provider: every resource goes to the project and region the config names,
    # whatever `gcp:project` the person running Pulumi has set.
    provider = gcp.Provider("gcp", project=project, region=region)
    base = pulumi.ResourceOptions(providers={"gcp": provider})

    declared = [
        *COMPONENTS,
        *([Workbench] if workbench_on else []),
        *([Encryption] if kms_key else []),
        *([CiIdentity] if ci_on else []),
        *([Budget] if budget_on else []),
        *([PrivateNetwork] if platform.serving.private_network else []),
    ]
    # The CI accounts' KMS calls (the secrets provider, the grants on its key) need the API in
    # the project the accounts live in, wherever the key is.
    ci_apis = ("cloudkms.googleapis.com",) if ci_on and platform.ci.secrets_key else ()
    apis = sorted({api for component in declared for api in component.APIS} | set(ci_apis))
    services = ProjectServices(
        "services", ProjectServicesArgs(project=project, apis=tuple(apis)), base
    )

    encryption = None
    if kms_key:
        agents = tuple(sorted({a for component in declared for a in component.KMS_AGENTS}))
        encryption = Encryption(
            "encryption",
            EncryptionArgs(project=project, kms_key=kms_key, agents=agents),
            pulumi.ResourceOptions.merge(
                base,
                pulumi.ResourceOptions(
                    depends_on=services.needed_by(*Encryption.APIS, *agent_apis(agents))
                ),
            ),
        )

    def after(
        component: type[PlatformComponent], *others: pulumi.Resource
    ) -> pulumi.ResourceOptions:
        """Wait for the component's APIs, the key grants it relies on, and `others`."""
        waits: list[pulumi.Resource] = [*services.needed_by(*component.APIS), *others]
        if encryption is not None and component.KMS_AGENTS:
            waits.append(encryption)
        return pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(depends_on=waits))

    ci = None
    access = platform.access
    deployers = list(access.deployers)
    if ci_on:
        settings = platform.ci
        ci_args = CiIdentityArgs(
            project=project,
            pool_id=naming.resource("github", limit=32),
            deployer_account_id=naming.account_id("deployer"),
            previewer_account_id=naming.account_id("previewer"),
            display_prefix=naming.display_prefix,
            github_repository=settings.github_repository,
            github_repository_owner_id=settings.github_repository_owner_id,
            deploy_environment=settings.deploy_environment,
            state_bucket=settings.state_bucket,
            secrets_key=settings.secrets_key,
            cmek_key=kms_key,
            workbench=workbench_on,
            private_serving=platform.serving.private_network,
            project_roles=project_roles(
                declared,
                {
                    key: f"projects/{project}/roles/{naming.role_id(key)}"
                    for key in (PREDICTOR, MODEL_READER)
                },
                excluding=(Grantee.CI_DEPLOYER, Grantee.CI_PREVIEWER),
            ),
        )
        ci = CiIdentity("ci", ci_args, after(CiIdentity, *services.needed_by(*ci_apis)))
        # The CI deployer deploys the workloads too: it may act as their accounts.
        deployers = list(
            dict.fromkeys([*deployers, deployer_member(ci_args.deployer_account_id, project)])
        )
    people: Members = {
        grantee: list(getattr(access, grantee.value))
        for grantee in PERSONAS
        if getattr(access, grantee.value)
    }
    if deployers:
        people[Grantee.DEPLOYERS] = deployers
    workloads = [w for w in WORKLOADS if w != Grantee.WORKBENCH or workbench_on]
    identities = Identities(
        "identities",
        IdentitiesArgs(
            project=project,
            account_ids={w: naming.account_id(ACCOUNT_NAMES[w]) for w in workloads},
            display_prefix=naming.display_prefix,
            members=people,
        ),
        # IAM refuses a grant to an account that does not exist yet (the CI deployer's actAs).
        after(Identities, *([ci] if ci else [])),
    )
    members: Members = {**people, **identities.members}
    readers = _model_readers(platform.serving)
    if readers:
        members[Grantee.MODEL_READERS] = readers
    if workbench_on:
        members[Grantee.WORKBENCH_OWNER] = [f"user:{platform.workbench.owner}"]

    data_lake = DataLake(
        "data-lake",
        DataLakeArgs(
            project=project,
            location=region,
            landing_bucket=naming.bucket("landing"),
            quarantine_bucket=naming.bucket("quarantine"),
            artifacts_bucket=naming.bucket("artifacts"),
            access_logs_bucket=naming.bucket("access-logs"),
            models_bucket=naming.bucket("models"),
            labels=labels,
            settings=platform.data_lake,
            kms_key=kms_key,
            members=members,
        ),
        after(DataLake),
    )
    warehouse = Warehouse(
        "warehouse",
        WarehouseArgs(
            project=project,
            location=bq_location,
            dataset_id=naming.dataset_id(platform.warehouse.dataset),
            contract=contract,
            labels=labels,
            deletion_protection=platform.warehouse.deletion_protection,
            kms_key=kms_key,
            members=members,
        ),
        after(Warehouse),
    )
    # The Cloud Storage agent publishes the landing bucket's events (looked up, not created).
    storage_agent = gcp.storage.get_project_service_account_output(
        project=project,
        opts=pulumi.InvokeOutputOptions(
            provider=provider, depends_on=services.needed_by("storage.googleapis.com")
        ),
    )
    ingestion = Ingestion(
        "ingestion",
        IngestionArgs(
            project=project,
            region=region,
            function_name=naming.resource("ingest"),
            repository_id=naming.resource("functions"),
            source=function_source(FUNCTION_DIR, contract_file),
            settings=platform.ingestion,
            landing_bucket=data_lake.landing.name,
            landing_location=region,
            quarantine_bucket=data_lake.quarantine.name,
            artifacts_bucket=naming.bucket("artifacts"),
            dataset_id=warehouse.dataset.dataset_id,
            bq_location=bq_location,
            curated_table=warehouse.curated.table_id,
            ingestion_log_table=warehouse.tables[INGESTION_LOG.table_id].table_id,
            runtime_account_email=identities.ingestion.email,
            trigger_account_email=identities.ingestion_trigger.email,
            build_account_name=identities.function_build.name,
            labels=labels,
            kms_key=kms_key,
            members={**members, Grantee.STORAGE_AGENT: [storage_agent.member]},
        ),
        # The function handles events as soon as it exists: its grants on the buckets and the
        # dataset come first.
        after(Ingestion, data_lake, warehouse),
    )
    private = None
    if platform.serving.private_network:
        private = PrivateNetwork(
            "private-network",
            PrivateNetworkArgs(project, naming.resource("serving"), labels),
            after(PrivateNetwork),
        )
    # The network the endpoint serves on and the pipelines' runs join; None: Google's own.
    vertex_network = private.vertex_network if private else None
    serving = Serving(
        "serving",
        ServingArgs(
            project=project,
            region=region,
            display_name=naming.display_name("endpoint"),
            endpoint_id=naming.endpoint_id(),
            labels=labels,
            predictor_role_id=naming.role_id(PREDICTOR),
            model_reader_role_id=naming.role_id(MODEL_READER),
            rollout=_rollout(platform.serving, project, region, naming, contract.name),
            kms_key=kms_key,
            request_logging_dataset=(
                pulumi.Output.concat("bq://", project, ".", warehouse.dataset.dataset_id)
                if platform.serving.request_logging
                else None
            ),
            logging_sampling_rate=platform.serving.logging_sampling_rate,
            network=vertex_network,
            members=members,
        ),
        # A private endpoint is created on a network already peered with Vertex AI.
        after(Serving, *([private] if private else [])),
    )
    training = platform.pipelines.training
    repository_id = naming.resource("pipelines")
    image = image_uri(registry_path(region, project, repository_id))
    # What the pipeline's runs create (jobs, model versions) is managed by the pipeline.
    run_labels = {**labels, "managed-by": "training-pipeline"}
    # An endpoint whose config names the model it serves (prod) is deployed by promotion: the
    # Promotion resource owns its traffic, so a better model from this stack's training runs
    # (scheduled, or a retraining the evaluation starts) is registered for QA, not deployed.
    promoted = platform.serving.model is not None
    # Typed parameters travel in the spec as its defaults; strings as the run's parameters.
    typed_parameters = {
        "contract": contract.model_dump(mode="json", exclude_none=True),
        "min_accuracy": training.min_accuracy,
        "min_improvement": training.min_improvement,
        "serving_min_replicas": platform.serving.min_replicas,
        "serving_max_replicas": platform.serving.max_replicas,
        "model_labels": run_labels,
        **_tuned(training.hyperparameters, stack),
    }
    string_parameters = {
        "project": project,
        "location": region,
        "bq_location": bq_location,
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
        # One image for the components and for serving: what train pickles, serving unpickles.
        "serving_image": image,
        "serving_machine_type": platform.serving.machine_type,
        "git_commit": code_version(),
        "deploy_by": "promotion" if promoted else "pipeline",
        "model_alias": CANDIDATE_ALIAS if promoted else "staging",
    }
    pipeline_root = pulumi.Output.concat("gs://", data_lake.artifacts.name, "/pipeline-root")
    training_limits = {
        task: r.limits() for task, r in platform.pipelines.training.resources.items()
    }
    training_spec = compile_spec(image, defaults=typed_parameters, limits=training_limits)
    evaluation = platform.pipelines.evaluation
    evaluation_spec = compile_spec(
        image,
        defaults={
            "contract": typed_parameters["contract"],
            "min_new_rows": evaluation.min_new_rows,
            "min_accuracy": evaluation.min_accuracy,
            "max_degradation": evaluation.max_degradation,
            # Retraining runs the training code deployed with it, with its schedule's values.
            "training_spec": training_spec,
        },
        pipeline=evaluation_pipeline,
        limits={task: r.limits() for task, r in evaluation.resources.items()},
    )
    evaluation_parameters = {
        **{k: string_parameters[k] for k in ("project", "location", "bq_location", "dataset",
                                              "table", "endpoint", "model_id")},
        # Each stack judges the model its own endpoint serves: no fallback endpoint.
        "fallback_endpoint": "",
        "evaluations_table": warehouse.tables[EVALUATIONS.table_id].table_id,
        "training_parameters": pulumi.Output.json_dumps(string_parameters),
        "training_pipeline_root": pipeline_root,
        "training_service_account": identities.pipeline_runner.email,
        "prediction_service_account": identities.pipeline_runner.email,
        "prediction_machine_type": platform.serving.machine_type,
        "kms_key": kms_key or "",
    }  # fmt: skip
    pipelines = Pipelines(
        "pipelines",
        PipelinesArgs(
            project=project,
            region=region,
            repository_id=repository_id,
            templates_repository_id=naming.resource("pipeline-templates"),
            image=image,
            spec=training_spec,
            parameters=string_parameters,
            pipeline_root=pipeline_root,
            runner_email=identities.pipeline_runner.email,
            schedule_display_name=naming.display_name("training pipeline"),
            schedule=training.schedule,
            labels=labels,
            run_labels=run_labels,
            evaluation=ScheduledPipeline(
                display_name=naming.display_name("evaluation pipeline"),
                spec=evaluation_spec,
                parameters=evaluation_parameters,
                schedule=evaluation.schedule,
                run_labels={**labels, "managed-by": "evaluation-pipeline"},
            ),
            scoring=_scoring(
                platform.pipelines.scoring,
                image,
                typed_parameters["contract"],
                {
                    k: string_parameters[k]
                    for k in (
                        "project",
                        "location",
                        "bq_location",
                        "dataset",
                        "table",
                        "endpoint",
                        "model_id",
                    )
                },
                predictions_table=warehouse.tables[PREDICTIONS.table_id].table_id,
                runner_email=identities.pipeline_runner.email,
                kms_key=kms_key or "",
                display_name=naming.display_name("scoring pipeline"),
                run_labels={**labels, "managed-by": "scoring-pipeline"},
            ),
            kms_key=kms_key,
            network=vertex_network,
            members=members,
        ),
        # Runs read and write what the runner is granted in the data lake and the warehouse.
        after(Pipelines, identities, data_lake, warehouse, *([private] if private else [])),
    )
    training_job = {
        "project": project,
        "region": region,
        "image": image,
        "pipeline_root": pipeline_root,
        "service_account": identities.pipeline_runner.email,
        "parameters": {**typed_parameters, **string_parameters},
        "labels": run_labels,
        # Where `pipeline_src.submit --publish` publishes the compiled template.
        "template_registry": pipelines.template_registry,
        # CI compiles the same sized pipeline the schedule runs.
        "limits": training_limits,
        "network": vertex_network,
    }
    workbench = None
    if workbench_on:
        settings = platform.workbench
        workbench = Workbench(
            "workbench",
            WorkbenchArgs(
                project=project,
                region=region,
                zone=settings.zone or f"{region}-b",
                instance_name=naming.resource("workbench"),
                network_name=naming.resource("workbench"),
                service_account_email=identities.workbench.email,
                service_account_name=identities.workbench.name,
                settings=settings,
                labels=labels,
                kms_key=kms_key,
                members=members,
            ),
            after(Workbench, data_lake, warehouse),
        )
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            project=project,
            display_prefix=naming.display_prefix,
            metric_prefix=naming.metric_prefix,
            function_name=naming.resource("ingest"),
            endpoint_id=serving.endpoint.name,
            quarantine_bucket=data_lake.quarantine.name,
            labels=labels,
            settings=platform.monitoring,
            evaluation_pipeline=evaluation_pipeline.name,
            members=members,
            # The page the pipelines write to the artifacts bucket (stakeholders read it).
            lifecycle_page=pulumi.Output.concat(
                "https://storage.cloud.google.com/", data_lake.artifacts.name, "/", PAGE_OBJECT
            ),
        ),
        after(Monitoring),
    )
    budget = None
    if budget_on:
        # Its grant to the CI deployer waits for that account (IAM refuses a member not created).
        budget_opts = after(Budget, *([ci] if ci is not None else []))
        budget = _budget(config, naming, monitoring, ci_on, budget_opts)
    offered = {
        "pipeline_runner": identities.pipeline_runner.member,
        "vertex_agent": serving.vertex_agent.member,
        **({"deployer": ci.deployer.member} if ci is not None else {}),
    }
    return Platform(
        model_readers=offered,
        naming=naming,
        contract=contract,
        services=services,
        identities=identities,
        data_lake=data_lake,
        warehouse=warehouse,
        ingestion=ingestion,
        serving=serving,
        pipelines=pipelines,
        training_job=training_job,
        monitoring=monitoring,
        workbench=workbench,
        encryption=encryption,
        ci=ci,
        budget=budget,
        private_network=private,
    )


def _scoring(
    scoring: ScoringConfig,
    image: str,
    contract: dict[str, Any],
    where: dict[str, pulumi.Input[str]],
    *,
    predictions_table: pulumi.Input[str],
    runner_email: pulumi.Input[str],
    kms_key: str,
    display_name: str,
    run_labels: dict[str, str],
) -> ScheduledPipeline:
    """The batch scoring pipeline on its schedule: the stack's endpoint's model (prod: the
    promoted version) scores `scoring.source` into the predictions table, its batch job sized
    by the stack (machine type and replicas, in the spec as defaults)."""
    spec = compile_spec(
        image,
        defaults={
            "contract": contract,
            "prediction_replica_count": scoring.replica_count,
        },
        pipeline=scoring_pipeline,
        limits={task: r.limits() for task, r in scoring.resources.items()},
    )
    parameters = {
        **where,
        # Each stack scores with the model its own endpoint serves: no fallback endpoint.
        "fallback_endpoint": "",
        "source": scoring.source,
        "predictions_table": predictions_table,
        "prediction_machine_type": scoring.machine_type,
        "prediction_service_account": runner_email,
        "kms_key": kms_key,
    }
    return ScheduledPipeline(
        display_name=display_name,
        spec=spec,
        parameters=parameters,
        schedule=scoring.schedule,
        run_labels=run_labels,
    )


def _budget(
    config: StackConfig,
    naming: Naming,
    monitoring: Monitoring,
    ci_on: bool,
    opts: pulumi.ResourceOptions,
) -> Budget:
    """The stack's budget, alerting its notification channel; CI's deployer may maintain it."""
    settings = config.platform.cost.budget
    deployer = deployer_member(naming.account_id("deployer"), config.project)
    return Budget(
        "budget",
        BudgetArgs(
            project=config.project,
            billing_account=str(settings.billing_account),
            display_name=f"{naming.display_prefix}: monthly budget",
            monthly_usd=float(settings.monthly_usd or 0),
            alert_thresholds=tuple(settings.alert_thresholds),
            notification_channel=monitoring.channel.name if monitoring.channel else None,
            members={Grantee.CI_DEPLOYER: [deployer]} if ci_on else {},
        ),
        opts,
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


def _tuned(hyperparameters: dict[str, Any], stack: str) -> dict[str, Any]:
    """The stack's training hyperparameters, checked against the pipeline's tunable parameters."""
    try:
        untunable = sorted(set(hyperparameters) - TUNABLE)
        if untunable:
            raise ValueError(
                f"not tunable: {', '.join(untunable)} (tunable: {', '.join(sorted(TUNABLE))})"
            )
        return typed_arguments(hyperparameters)
    except ValueError as error:
        raise ConfigError(
            f"{stack_file_name(stack)}: {NAMESPACE}:platform.pipelines.training.hyperparameters: "
            f"{error}"
        ) from None
