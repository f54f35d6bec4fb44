"""The composition: turn one stack's validated config into the platform's components.

This is the only place that knows both the config and the components. It decides names (through
`Naming`), hands each component the narrow args it needs, and makes each component wait for the
APIs it declares. Stacks differ only through the config: there is no `if stack == "prod"` here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from contracts import DataContract, load_contract
from resources.data_lake import DataLake, DataLakeArgs
from resources.services import ProjectServices, ProjectServicesArgs
from resources.serving import Serving, ServingArgs
from resources.warehouse import Warehouse, WarehouseArgs
from stacks.config import PROJECT_ROOT, StackConfig
from stacks.naming import Naming

COMPONENTS = (DataLake, Warehouse, Serving)


@dataclass(frozen=True)
class Platform:
    """The components of one stack, for `__main__.py` to export from."""

    naming: Naming
    contract: DataContract
    services: ProjectServices
    data_lake: DataLake
    warehouse: Warehouse
    serving: Serving


def build_platform(config: StackConfig, stack: str) -> Platform:
    platform = config.platform
    naming = Naming(config.project, stack, dict(platform.labels))
    labels = naming.labels
    contract = load_contract(PROJECT_ROOT / platform.warehouse.contract)

    # An explicit provider: every resource goes to the project and region the config names,
    # whatever `gcp:project` the person running Pulumi has set.
    provider = gcp.Provider("gcp", project=config.project, region=config.region)
    base = pulumi.ResourceOptions(providers={"gcp": provider})

    apis = sorted({api for component in COMPONENTS for api in component.APIS})
    services = ProjectServices(
        "services", ProjectServicesArgs(project=config.project, apis=tuple(apis)), base
    )

    def after(component: type) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions.merge(
            base, pulumi.ResourceOptions(depends_on=services.needed_by(*component.APIS))
        )

    data_lake = DataLake(
        "data-lake",
        DataLakeArgs(
            project=config.project,
            location=config.region,
            landing_bucket=naming.bucket("landing"),
            quarantine_bucket=naming.bucket("quarantine"),
            artifacts_bucket=naming.bucket("artifacts"),
            labels=labels,
            force_destroy=platform.data_lake.force_destroy,
            artifacts_retention_days=platform.data_lake.artifacts_retention_days,
            noncurrent_retention_days=platform.data_lake.noncurrent_retention_days,
            kms_key=platform.kms_key,
        ),
        after(DataLake),
    )
    warehouse = Warehouse(
        "warehouse",
        WarehouseArgs(
            project=config.project,
            location=platform.warehouse.location or config.region,
            dataset_id=naming.dataset_id(platform.warehouse.dataset),
            contract=contract,
            labels=labels,
            deletion_protection=platform.warehouse.deletion_protection,
            kms_key=platform.kms_key,
        ),
        after(Warehouse),
    )
    serving = Serving(
        "serving",
        ServingArgs(
            project=config.project,
            region=config.region,
            display_name=naming.display_name("endpoint"),
            labels=labels,
            kms_key=platform.kms_key,
        ),
        after(Serving),
    )
    return Platform(
        naming=naming,
        contract=contract,
        services=services,
        data_lake=data_lake,
        warehouse=warehouse,
        serving=serving,
    )
