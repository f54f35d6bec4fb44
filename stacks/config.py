"""The typed configuration of one stack, validated once at the edge of the program.

A stack file (`Pulumi.<stack>.yaml`) holds three keys in the `tabular-mlops` namespace:
`project` and `region` (declared in Pulumi.yaml) and `platform`, a structured object with one
section per concern. Pulumi.yaml cannot declare object-typed keys, so `platform` is described by
this module instead; docs/configuration.md is generated from it.

Every error names the stack file, the key path and what was expected, for example
`Pulumi.prod.yaml: tabular-mlops:platform.serving.min_replicas: must be >= 1, got 0`.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

NAMESPACE = "tabular-mlops"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- value types shared by several sections ---------------------------------------------------

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_MEMBER = re.compile(r"^(user|group|serviceAccount|domain):[^\s]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
_CRON_FIELD = r"[0-9*/,\-A-Za-z]+"
_CRON = re.compile(rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")
_MODEL_VERSION = re.compile(
    r"^(projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/locations/[a-z]+-[a-z]+[0-9]/models/)?"
    r"[a-z0-9][a-z0-9_-]{0,127}@[0-9]+$"
)


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, val in value.items():
        if not _LABEL_KEY.match(key):
            raise ValueError(
                f"label key {key!r} must be lowercase letters, digits, '_' or '-', "
                "starting with a letter (GCP label rules)"
            )
        if not _LABEL_VALUE.match(val):
            raise ValueError(
                f"label {key}={val!r}: values must be lowercase letters, digits, '_' or '-', "
                "at most 63 characters (GCP label rules)"
            )
    return value


def _member(value: str) -> str:
    if value in ("allUsers", "allAuthenticatedUsers"):
        raise ValueError(f"{value} would make the resource public; name users or groups")
    if not _MEMBER.match(value):
        raise ValueError(
            f"{value!r} is not an IAM member; expected user:, group:, serviceAccount: or domain:"
        )
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _cron(value: str) -> str:
    if not _CRON.match(value.strip()):
        raise ValueError(f"{value!r} is not a 5-field cron expression (min hour dom month dow)")
    return value.strip()


def _model_version(value: str) -> str:
    if not _MODEL_VERSION.match(value):
        raise ValueError(
            f"{value!r} is not a model version: expected "
            "projects/PROJECT/locations/REGION/models/MODEL_ID@VERSION (what `make promote` "
            "writes), or MODEL_ID@VERSION for a model of the stack's own project; VERSION is the "
            "numeric version id, not an alias"
        )
    return value


Labels = Annotated[dict[str, str], AfterValidator(_labels)]
Member = Annotated[str, AfterValidator(_member)]
Email = Annotated[str, AfterValidator(_email)]
Cron = Annotated[str, AfterValidator(_cron)]
ModelVersionName = Annotated[str, AfterValidator(_model_version)]
GcpProjectId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
Region = Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]$")]
# A GitHub login (up to 39 characters) or an organisation's team as org/team-slug.
GithubReviewer = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}(/[A-Za-z0-9._-]+)?$")
]
KmsKeyName = Annotated[
    str,
    Field(pattern=r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$"),
]


# --- one section per concern -----------------------------------------------------------------


class DataLakeConfig(StrictModel):
    """Cloud Storage: landing (analysts' CSVs), quarantine (rejected files), pipeline artifacts."""

    force_destroy: bool = Field(
        default=False,
        description="let `pulumi destroy` delete non-empty buckets; keep false where data matters",
    )
    artifacts_retention_days: int = Field(
        default=30, ge=1, le=3650, description="age at which transient pipeline artifacts expire"
    )
    noncurrent_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="how long overwritten landing objects are kept as noncurrent versions",
    )
    access_log_retention_days: int = Field(
        default=365,
        ge=1,
        le=3650,
        description="how long the data buckets' access logs (who read or changed what) are kept",
    )
    models_retention_days: int = Field(
        default=30,
        ge=0,
        le=3650,
        description="age before which a registered model bundle can be neither deleted nor "
        "replaced (the models bucket's retention policy; 0: none); bundles never expire",
    )


class WarehouseConfig(StrictModel):
    """BigQuery: curated table from the data contract, ingestion log, metrics and evaluations."""

    dataset: str = Field(
        default="tabular_mlops",
        pattern=r"^[a-z][a-z0-9_]{0,900}$",
        description="dataset id prefix; the stack name is appended",
    )
    location: str | None = Field(
        default=None, description="BigQuery location; defaults to the stack's region"
    )
    contract: str = Field(
        default="contracts/penguins.yaml",
        description="data contract file, relative to the project root",
    )
    deletion_protection: bool = Field(
        default=True, description="refuse to delete tables and the dataset on `pulumi destroy`"
    )

    @model_validator(mode="after")
    def _contract_exists(self) -> WarehouseConfig:
        if not (PROJECT_ROOT / self.contract).is_file():
            raise ValueError(f"contract file {self.contract!r} does not exist")
        return self


class IngestionConfig(StrictModel):
    """The Cloud Function that checks and loads every uploaded CSV."""

    landing_prefix: str = Field(
        default="incoming/",
        pattern=r"^([A-Za-z0-9._-]+/)*$",
        description="only objects under this prefix are ingested ('' for the whole bucket)",
    )
    min_instances: int = Field(default=0, ge=0, le=100, description="instances kept warm")
    max_instances: int = Field(
        default=10, ge=1, le=1000, description="upper bound on concurrent instances (and cost)"
    )
    memory: str = Field(default="1Gi", pattern=r"^[0-9]+(Mi|Gi)$", description="per instance")
    timeout_seconds: int = Field(
        default=540, ge=60, le=540, description="event-driven functions stop at 540 s"
    )

    @model_validator(mode="after")
    def _bounds(self) -> IngestionConfig:
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances ({self.min_instances}) exceeds max_instances ({self.max_instances})"
            )
        return self


class WorkbenchConfig(StrictModel):
    """Vertex AI Workbench for the data scientists' exploration; usually staging only."""

    enabled: bool = Field(default=False, description="create the instance in this stack")
    owner: Email | None = Field(default=None, description="the one instance owner (an email)")
    machine_type: str = Field(default="e2-standard-4", description="Compute Engine machine type")
    idle_shutdown_minutes: int = Field(
        default=60, ge=10, le=1440, description="stop the instance after this long idle"
    )
    zone: str | None = Field(
        default=None,
        pattern=r"^[a-z]+-[a-z]+[0-9]-[a-z]$",
        # Not "-a": europe-west1 and us-east1, among others, have no zone a.
        description="Compute Engine zone; defaults to <region>-b",
    )
    internet_egress: bool = Field(
        default=True,
        description="outbound-only internet through Cloud NAT (pip install); no inbound access",
    )

    @model_validator(mode="after")
    def _owner_when_enabled(self) -> WorkbenchConfig:
        if self.enabled and not self.owner:
            raise ValueError("owner is required when the workbench is enabled")
        return self


class LoadTestConfig(StrictModel):
    """The load test a serving endpoint passes before its model is promoted (`make loadtest`,
    CD after each staging deploy, the demo's accept stage): locust, closed loop, one instance
    per request."""

    users: int = Field(default=4, ge=1, le=1000, description="concurrent clients")
    seconds: float = Field(default=20, gt=0, le=600, description="how long the load lasts")
    p95_ms: float = Field(default=1000, gt=0, description="SLO: 95th percentile latency, ms")
    max_error_rate: float = Field(
        default=0.01, ge=0, le=1, description="SLO: share of requests failed (not 200)"
    )
    min_rps: float = Field(default=5, ge=0, description="SLO: requests per second served")


class ServingConfig(StrictModel):
    """The stack's Vertex AI endpoint (staging endpoint in staging, production in prod)."""

    machine_type: str = Field(default="n1-standard-2", description="machine type per replica")
    min_replicas: int = Field(default=1, ge=1, description="dedicated resources need at least 1")
    max_replicas: int = Field(default=1, ge=1, le=100, description="autoscaling upper bound")
    request_logging: bool = Field(default=False, description="log requests/responses to BigQuery")
    logging_sampling_rate: float = Field(
        default=1.0, gt=0, le=1, description="share of requests logged when logging is on"
    )
    model: ModelVersionName | None = Field(
        default=None,
        description="the model version the endpoint serves, rolled out by `pulumi up` (prod: "
        "written by `make promote`): projects/P/locations/R/models/ID@VERSION, or ID@VERSION "
        "in the stack's project; unset: the stack deploys none (staging: the training pipeline "
        "does)",
    )
    canary_percent: int = Field(
        default=10,
        ge=0,
        le=99,
        description="share of the traffic a newly rolled-out version gets before all of it; "
        "0: all at once",
    )
    canary_minutes: float = Field(
        default=0,
        ge=0,
        le=120,
        description="how long the canary serves beside the old version before taking all traffic",
    )
    load_test: LoadTestConfig = Field(
        default_factory=LoadTestConfig,
        description="the load test and its SLO, which the endpoint must pass before promotion",
    )
    private_network: bool = Field(
        default=False,
        description="serve on a private endpoint peered with the stack's own VPC network (no "
        "public predict route) and run the pipelines on that network; a peered endpoint serves "
        "one model, so canary_percent must be 0; QA's acceptance run must come from inside the "
        "network (docs/security.md)",
    )
    model_readers: list[Member] = Field(
        default=[],
        description="identities of another stack's project that deploy this stack's models "
        "(its deployer, its Vertex AI service agent) or read the one it serves (its pipeline "
        "runner: the gate's champion, the evaluated model): read them in the registry, their "
        "bundles and the serving image",
    )

    model_readers_from: str | None = Field(
        default=None,
        pattern=r"^([A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$",
        description="the stack (`organization/tabular-mlops/prod`) whose identities deploy this "
        "stack's models, read from its `model_readers` output through a stack reference: it is "
        "deployed first (docs/deploy.md); adds to `model_readers`",
    )

    @model_validator(mode="after")
    def _replica_bounds(self) -> ServingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self


class ScheduleConfig(StrictModel):
    """When a pipeline runs."""

    cron: Cron = Field(description="5-field cron expression")
    time_zone: str = Field(default="UTC", description="IANA time zone of the cron expression")
    paused: bool = Field(default=True, description="created paused until switched on")


TrainingTask = Literal[
    "extract", "validate", "split", "train", "evaluate", "gate", "register", "record_metrics",
    "deploy", "publish",
]  # fmt: skip
"""The training pipeline's tasks (pipeline_src/training.py COMPONENTS; a test keeps them equal)."""
EvaluationTask = Literal[
    "new_data", "record_skip", "batch_predict", "assess", "decide_and_trigger",
    "evaluation_report", "publish",
]  # fmt: skip
"""The evaluation pipeline's tasks (pipeline_src/evaluation.py COMPONENTS)."""
ScoringTask = Literal["select_rows", "score_rows"]
"""The scoring pipeline's tasks (pipeline_src/scoring.py COMPONENTS)."""
Accelerator = Literal[
    "NVIDIA_TESLA_T4", "NVIDIA_L4", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_A100", "NVIDIA_A100_80GB", "NVIDIA_H100_80GB",
]  # fmt: skip


class TaskResources(StrictModel):
    """What one pipeline task asks Vertex AI for; unset: the default machine, e2-standard-4
    (4 vCPU, 16 GB). Vertex AI runs the task on a machine that has at least this much."""

    cpu: float | None = Field(
        default=None, gt=0, le=96, description="CPU limit in vCPUs (Vertex AI allows up to 96)"
    )
    memory_gb: float | None = Field(
        default=None, gt=0, le=624, description="memory limit in GB (Vertex AI allows up to 624)"
    )
    accelerator: Accelerator | None = Field(
        default=None,
        description="GPU type, e.g. NVIDIA_TESLA_T4; the shipped model (scikit-learn) uses none",
    )
    accelerator_count: int = Field(
        default=1, ge=1, le=8, description="GPUs of that type, when `accelerator` is set"
    )

    def limits(self) -> dict[str, Any]:
        """As the pipelines apply them (pipeline_src/compile.py `sized`); only what is set."""
        out: dict[str, Any] = {}
        if self.cpu is not None:
            out["cpu"] = f"{self.cpu:g}"
        if self.memory_gb is not None:  # KFP takes whole units: 20.5 GB is 20500M
            gb = self.memory_gb
            out["memory"] = f"{gb:g}G" if gb == int(gb) else f"{round(gb * 1000)}M"
        if self.accelerator is not None:
            out["accelerator"] = self.accelerator
            out["accelerator_count"] = self.accelerator_count
        return out


class TrainingConfig(StrictModel):
    """The training pipeline's schedule and the gate a challenger must clear."""

    schedule: ScheduleConfig = ScheduleConfig(cron="0 3 * * 1")
    min_accuracy: float = Field(
        default=0.9, gt=0, le=1, description="absolute bar a model must clear to be deployed"
    )
    min_improvement: float = Field(
        default=0.0, ge=0, le=1, description="margin by which a challenger must beat the champion"
    )
    hyperparameters: dict[str, float | int | str] = Field(
        default={},
        description="training pipeline parameters to tune (learning_rate, max_iter, "
        "max_leaf_nodes, min_samples_leaf, l2_regularization, seed, validation_fraction, "
        "test_fraction, min_rows_per_class, max_missing_rate), each checked against the pipeline's "
        "parameter of that name and its type",
    )
    resources: dict[TrainingTask, TaskResources] = Field(
        default={},
        description="CPU, memory and accelerator per task, e.g. {train: {cpu: 8, memory_gb: "
        "32}} (sizes by table: docs/scaling.md); unset tasks get the default machine",
    )

    @field_validator("hyperparameters")
    @classmethod
    def _tunable(cls, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """Checked against the training pipeline's own parameters and their types (imported
        only when a stack tunes something: compiling the pipeline takes a moment)."""
        if not hyperparameters:
            return hyperparameters
        from pipeline_src.compile import typed_arguments
        from pipeline_src.training import TUNABLE

        untunable = sorted(set(hyperparameters) - TUNABLE)
        if untunable:
            raise ValueError(
                f"not tunable: {', '.join(untunable)} (tunable: {', '.join(sorted(TUNABLE))})"
            )
        return typed_arguments(hyperparameters)


class EvaluationConfig(StrictModel):
    """Continuous evaluation: when to judge the production model and when to retrain."""

    schedule: ScheduleConfig = ScheduleConfig(cron="0 4 * * *")
    min_new_rows: int = Field(default=200, ge=1, description="labelled rows needed to judge")
    min_accuracy: float = Field(
        default=0.85, gt=0, le=1, description="retrain when accuracy on new data falls below"
    )
    max_degradation: float = Field(
        default=0.05, ge=0, le=1, description="allowed drop from the model's own test accuracy"
    )
    resources: dict[EvaluationTask, TaskResources] = Field(
        default={},
        description="CPU, memory and accelerator per task of the evaluation pipeline",
    )


_TABLE_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){1,2}$")


class ScoringConfig(StrictModel):
    """Batch scoring: the served model predicts new rows into the predictions table."""

    schedule: ScheduleConfig = ScheduleConfig(cron="0 5 * * *")
    source: str = Field(
        default="",
        description="the rows to score: a table (dataset.table or project.dataset.table) or a "
        "SELECT; empty: every ingested batch no scoring run has scored yet",
    )
    machine_type: str = Field(
        default="n1-standard-2", description="machine type of the batch prediction job"
    )
    replica_count: int = Field(
        default=1, ge=1, le=100, description="machines the batch prediction job runs on"
    )
    resources: dict[ScoringTask, TaskResources] = Field(
        default={}, description="CPU, memory and accelerator per task of the scoring pipeline"
    )

    @field_validator("source")
    @classmethod
    def _source(cls, source: str) -> str:
        text = source.strip()
        if text and not _TABLE_NAME.match(text) and not re.match(r"(?i)(select|with)\b", text):
            raise ValueError(
                f"source {source!r} is neither a table (dataset.table) nor a query starting "
                "with SELECT or WITH"
            )
        return text


class PipelinesConfig(StrictModel):
    """Vertex AI pipelines and their schedules."""

    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    scoring: ScoringConfig = ScoringConfig()


class MonitoringConfig(StrictModel):
    """Alerting and the stakeholders' dashboard."""

    notification_email: Email | None = Field(
        default=None, description="where alerts go; no channel is created when unset"
    )
    quarantine_alert_threshold: int = Field(
        default=1, ge=1, description="rejected files within an hour that raise an alert"
    )


class AccessConfig(StrictModel):
    """Who plays each persona. Bindings are created at resource scope for exactly these members."""

    data_analysts: list[Member] = Field(default=[], description="upload CSVs, read their outcome")
    data_scientists: list[Member] = Field(
        default=[], description="explore the warehouse, use Workbench, run pipelines"
    )
    qa: list[Member] = Field(default=[], description="test the staging endpoint, approve promotion")
    ml_engineers: list[Member] = Field(default=[], description="operate the platform and CI/CD")
    stakeholders: list[Member] = Field(default=[], description="read dashboards and model reports")
    deployers: list[Member] = Field(
        default=[],
        description="who runs `pulumi up` (people or CI): may act as each workload account",
    )


class CiConfig(StrictModel):
    """Keyless CI/CD: GitHub Actions deploy and preview this stack (resources/ci.py).

    Through Workload Identity Federation, without keys. Without `github_repository`, no CI
    identity is created."""

    github_repository: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$",
        description="owner/name of the GitHub repository whose workflows may deploy this stack",
    )
    github_repository_owner_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]+$",
        description="numeric id of the repository's owner: also required of every token, so a "
        "re-created account of the same name is not trusted",
    )
    deploy_environment: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9_.-]+)?$",
        description="GitHub environment whose jobs deploy this stack (restrict it to main; "
        "required reviewers for prod)",
    )
    reviewers: list[GithubReviewer] = Field(
        default=[],
        description="GitHub users (login) or teams (org/team-slug) one of whom must approve each "
        "deploy job of `deploy_environment` (its required reviewers, set by the bootstrap); "
        "empty: no approval",
    )
    state_bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$",
        description="Cloud Storage bucket of the Pulumi state (`pulumi login gs://…`)",
    )
    secrets_key: KmsKeyName | None = Field(
        default=None,
        description="Cloud KMS key of the stack's secrets provider (`gcpkms://…`)",
    )

    @model_validator(mode="after")
    def _environment_when_enabled(self) -> CiConfig:
        if self.github_repository and not self.deploy_environment:
            raise ValueError("deploy_environment is required when github_repository is set")
        return self


class BudgetConfig(StrictModel):
    """A Cloud Billing budget on the stack's project, alerting the stack's notification channel."""

    billing_account: str | None = Field(
        default=None,
        pattern=r"^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$",
        description="billing account id (XXXXXX-XXXXXX-XXXXXX) the project bills to; no budget "
        "is created when unset",
    )
    monthly_usd: float | None = Field(
        default=None,
        gt=0,
        description="the budget per month; at least the estimate's standing cost (`make plan`)",
    )
    alert_thresholds: list[Annotated[float, Field(gt=0, le=2)]] = Field(
        default=[0.5, 0.9, 1.0],
        min_length=1,
        description="shares of the budget (of actual spend) that alert the notification channel",
    )

    @model_validator(mode="after")
    def _amount_when_enabled(self) -> BudgetConfig:
        if self.billing_account and self.monthly_usd is None:
            raise ValueError("monthly_usd is required when billing_account is set")
        return self


class CostConfig(StrictModel):
    """What the monthly cost estimate assumes (`make plan`, docs/cost.md), and the budget.

    Standing costs (replicas, warm instances, the Workbench disks) come from the plan itself;
    these are the figures a plan cannot know: how long things run and how much data there is."""

    workbench_hours_per_month: float = Field(
        default=176,
        ge=0,
        le=730,
        description="hours the Workbench VM runs a month (22 working days x 8 h; idle shutdown "
        "stops it outside them)",
    )
    pipeline_task_minutes: float = Field(
        default=10, gt=0, le=1440, description="typical minutes one pipeline task runs"
    )
    storage_gb: float = Field(
        default=20, ge=0, description="GB held in the stack's Cloud Storage buckets"
    )
    warehouse_gb: float = Field(default=5, ge=0, description="GB stored in BigQuery")
    query_tib_per_month: float = Field(
        default=0.1, ge=0, description="TiB BigQuery scans a month (on-demand)"
    )
    registry_gb: float = Field(
        default=5, ge=0, description="GB of images and templates in Artifact Registry"
    )
    nat_gib_per_month: float = Field(
        default=10, ge=0, description="GiB through Cloud NAT a month (Workbench pip installs)"
    )
    budget: BudgetConfig = BudgetConfig()


class PlatformConfig(StrictModel):
    """The platform's settings, one section per concern."""

    labels: Labels = Field(default={}, description="added to every labelled resource")
    kms_key: KmsKeyName | None = Field(
        default=None, description="CMEK key applied wherever supported; Google-managed when unset"
    )
    data_lake: DataLakeConfig = DataLakeConfig()
    warehouse: WarehouseConfig = WarehouseConfig()
    ingestion: IngestionConfig = IngestionConfig()
    workbench: WorkbenchConfig = WorkbenchConfig()
    serving: ServingConfig = ServingConfig()
    pipelines: PipelinesConfig = PipelinesConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    access: AccessConfig = AccessConfig()
    ci: CiConfig = CiConfig()
    cost: CostConfig = CostConfig()


class StackConfig(StrictModel):
    """Everything one stack needs: the GCP project, the region and the platform settings."""

    project: GcpProjectId = Field(description="GCP project id the stack deploys into")
    region: Region = Field(description="GCP region for every regional resource")
    platform: PlatformConfig = PlatformConfig()


# --- reading and reporting -------------------------------------------------------------------


class ConfigError(ValueError):
    """Invalid stack configuration. One line per problem: file, key path, what is expected."""


def stack_file_name(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


def parse_stack_config(values: dict[str, Any], source: str) -> StackConfig:
    """Validate the `tabular-mlops:*` values of one stack (other namespaces, e.g. `gcp:`, pass).

    `values` maps full keys (`tabular-mlops:project`) to values, either already structured (read
    from YAML) or as the JSON strings Pulumi hands a program.
    """
    prefix = f"{NAMESPACE}:"
    ours = {k.removeprefix(prefix): _decode(v) for k, v in values.items() if k.startswith(prefix)}
    lines = [f"{source}: {key}: {message}" for key, message in _namespace_problems(values)]
    try:
        config = StackConfig.model_validate(ours)
    except ValidationError as err:
        lines += [f"{source}: {_key_path(e['loc'])}: {_describe(e)}" for e in err.errors()]
        raise ConfigError("\n".join(lines)) from None
    if lines:
        raise ConfigError("\n".join(lines))
    problems = _location_problems(config)
    if problems:
        raise ConfigError(
            "\n".join(f"{source}: {NAMESPACE}:{key}: {message}" for key, message in problems)
        )
    return config


# The namespaces a stack file may use: ours, the Google provider's and Pulumi's own. Pulumi passes
# any other namespace through without a word, so a misspelt `tabular-mlop:platform:` would leave
# the whole platform on its defaults (no access grants, no alert channel): it is an error here.
KNOWN_NAMESPACES = (NAMESPACE, "gcp", "pulumi")


def _namespace_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """Keys outside our namespace that no one would read: unknown namespaces, unknown gcp keys."""
    problems = []
    for key in values:
        namespace, colon, name = str(key).partition(":")
        if not colon:
            problems.append((key, f"has no namespace; did you mean '{NAMESPACE}:{key}'?"))
        elif namespace not in KNOWN_NAMESPACES:
            problems.append(
                (
                    key,
                    f"unknown namespace {namespace!r}{_did_you_mean(namespace, KNOWN_NAMESPACES)} "
                    f"(known: {', '.join(KNOWN_NAMESPACES)})",
                )
            )
        elif namespace == "gcp" and name not in _gcp_provider_keys():
            hint = _did_you_mean(name, _gcp_provider_keys(), prefix="gcp:")
            problems.append((key, f"not a setting of the Google provider{hint}"))
    return problems


def _did_you_mean(word: str, choices: Any, prefix: str = "") -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{prefix}{close[0]}'?" if close else ""


@functools.cache
def _gcp_provider_keys() -> frozenset[str]:
    """The `gcp:` keys the provider reads (its config properties, in Pulumi's camelCase)."""
    from pulumi_gcp.config import vars as provider_config

    return frozenset(
        re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)
        for name, attribute in vars(provider_config._ExportableConfig).items()
        if isinstance(attribute, property)
    )


def _location_problems(config: StackConfig) -> list[tuple[str, str]]:
    """Checks across sections, each reported at the key to change."""
    platform, region = config.platform, config.region
    problems = []
    zone = platform.workbench.zone
    if zone and not zone.startswith(f"{region}-"):
        problems.append(
            ("platform.workbench.zone", f"{zone!r} is not in the stack's region {region!r}")
        )
    if platform.kms_key:
        # A CMEK key protects only resources in its own location.
        key_location = platform.kms_key.split("/")[3]
        locations = {region, (platform.warehouse.location or region).lower()}
        if locations != {key_location}:
            problems.append(
                (
                    "platform.kms_key",
                    f"the key is in {key_location!r} but the stack's resources are in "
                    f"{' and '.join(sorted(locations))}: a CMEK key must be in their location",
                )
            )
    serving = platform.serving
    model = serving.model or ""
    if model.startswith("projects/") and model.split("/")[3] != region:
        problems.append(
            (
                "platform.serving.model",
                f"the model is in {model.split('/')[3]!r}; the endpoint serves models of the "
                f"stack's region {region!r}",
            )
        )
    if serving.canary_minutes and not serving.canary_percent:
        problems.append(
            ("platform.serving.canary_minutes", "a canary period needs canary_percent > 0")
        )
    if serving.private_network and serving.canary_percent:
        problems.append(
            (
                "platform.serving.canary_percent",
                "a private (VPC-peered) endpoint has no traffic split, so no canary: set 0 "
                "with private_network",
            )
        )
    return problems


def load_stack_file(path: str | Path) -> StackConfig:
    """Read and validate a `Pulumi.<stack>.yaml` file."""
    path = Path(path)
    return parse_stack_config(_read_config_mapping(path), source=path.name)


def stack_config_values(stack: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The raw `config:` mapping of a committed stack file, as Pulumi would pass it."""
    return dict(_read_config_mapping(root / stack_file_name(stack)))


def known_stacks(root: Path = PROJECT_ROOT) -> list[str]:
    """The stacks that have a stack file in `root`."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def _read_config_mapping(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file; one-line errors naming the file (and line) to fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        stacks = ", ".join(known_stacks(path.parent)) or "none"
        raise ConfigError(f"{path.name}: no such stack file (stacks: {stacks})") from None
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem} (check the indentation)") from None
    values = document.get("config") if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise ConfigError(f"{path.name}: has no `config:` mapping")
    return values


def load_pulumi_config() -> StackConfig:
    """Validate the config Pulumi passes to the running program (the current stack's)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return parse_stack_config(values, source=stack_file_name(pulumi.get_stack()))


def _decode(value: Any) -> Any:
    """Pulumi passes structured values as JSON text; YAML hands them over already parsed."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _key_path(loc: tuple) -> str:
    path = f"{NAMESPACE}:"
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if i else "") + str(part)
    return path


def _known_keys(loc: tuple) -> list[str]:
    """The keys the section at `loc` accepts (for a did-you-mean on an unknown one)."""
    model: Any = StackConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return []
        model = field.annotation
    return list(model.model_fields)


def _describe(error: dict) -> str:
    """Turn a pydantic error into 'what is expected, got what'."""
    kind, ctx, got = error["type"], error.get("ctx", {}), error.get("input")
    bounds = {
        "greater_than_equal": ">=",
        "greater_than": ">",
        "less_than_equal": "<=",
        "less_than": "<",
    }
    if kind == "missing":
        return "required, not set"
    if kind == "extra_forbidden":
        hint = _did_you_mean(str(error["loc"][-1]), _known_keys(error["loc"][:-1]))
        return f"unknown key{hint} (see docs/configuration.md)"
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit}, got {got!r}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be an integer, got {got!r}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number, got {got!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false, got {got!r}"
    if kind in ("string_type",):
        return f"must be a string, got {got!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping of keys, got {got!r}"
    if kind == "list_type":
        return f"must be a list, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}, got {got!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got!r}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg']}, got {got!r}"
