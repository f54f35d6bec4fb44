"""tabular-mlops: the Google Cloud platform for the MLOps lifecycle of one tabular dataset.

One program, one stack per environment (Pulumi.staging.yaml, Pulumi.prod.yaml). The stack's config
is validated once, here; the components never read config themselves.
"""

import pulumi

from contracts import ContractError
from stacks.config import ConfigError, load_pulumi_config
from stacks.platform import build_platform

try:
    config = load_pulumi_config()
    # The data contract the config names is read (and checked) as the platform is built.
    platform = build_platform(config, stack=pulumi.get_stack())
except (ConfigError, ContractError) as error:
    # A RunError is reported without a Python traceback: the message says what to fix, and where.
    raise pulumi.RunError(f"invalid configuration:\n{error}") from None

pulumi.export("project", config.project)
pulumi.export("region", config.region)
pulumi.export("landing_bucket", platform.data_lake.landing.name)
pulumi.export("quarantine_bucket", platform.data_lake.quarantine.name)
pulumi.export("artifacts_bucket", platform.data_lake.artifacts.name)
pulumi.export("models_bucket", platform.data_lake.models.name)
pulumi.export("dataset", platform.warehouse.dataset.dataset_id)
pulumi.export("curated_table", platform.warehouse.curated.table_id)
pulumi.export("endpoint", platform.serving.endpoint.name)
pulumi.export("ingestion_function", platform.ingestion.function.name)
# CI submits pipeline runs as the runner; `make`/CI read these rather than rebuilding names.
pulumi.export("pipeline_runner", platform.identities.pipeline_runner.email)
# What CI publishes (the pipeline image) and submits with (`python -m pipeline_src.submit`).
pulumi.export("pipeline_image", platform.pipelines.image)
pulumi.export("training_pipeline", vars(platform.training_job))
# Read by the stack this one deploys models from (its `serving.model_readers_from`).
pulumi.export("model_readers", platform.model_readers)
if platform.serving.promotion is not None:
    # The version prod serves once `pulumi up` has rolled it out (its registered copy across
    # projects): CD's acceptance run expects it (`make acceptance MODEL=…`).
    pulumi.export("served_model", platform.serving.promotion.served_model)
if platform.workbench is not None:
    pulumi.export("workbench_instance", platform.workbench.instance.name)
if platform.ci is not None:
    # What the GitHub workflows authenticate with (docs/ci-cd.md): variables, not secrets.
    pulumi.export("ci_workload_identity_provider", platform.ci.provider.name)
    pulumi.export("ci_deployer_service_account", platform.ci.deployer.email)
    pulumi.export("ci_previewer_service_account", platform.ci.previewer.email)
