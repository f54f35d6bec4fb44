"""deploy: the registered version to the staging endpoint with all traffic, then retire the old.

The new model is deployed with 100% of the traffic and the call returns once it serves; only then
are the models that served before undeployed (they have no traffic left), so the endpoint never
answers with nothing. Locally the endpoint is a state file (local/registry.py) the local
prediction server reads.
"""

from typing import NamedTuple

from pipeline_src.components.common import local_environment, pipeline_component
from pipeline_src.vertex_rollout import deploy_to_vertex_endpoint, undeploy_from_vertex_endpoint


def deploy_local(local_root: str, endpoint: str, model: str):
    """(deployed model id, undeployed ids) on a local endpoint."""
    from local.registry import LocalEndpoint, LocalModelRegistry

    env = local_environment(local_root)
    version = LocalModelRegistry(env.registry_dir).get(model)
    target = LocalEndpoint(env.endpoints_dir, endpoint)
    previous = [m.id for m in target.deployed_models()]
    deployed = target.deploy(version, traffic_percentage=100)
    for deployed_model_id in previous:
        target.undeploy(deployed_model_id)
    return deployed.id, previous


def deploy_vertex(
    project: str,
    location: str,
    endpoint: str,
    model: str,
    machine_type: str,
    min_replicas: int,
    max_replicas: int,
    service_account: str,
):
    """(deployed model id, undeployed ids) on a Vertex AI endpoint, through the one deploy
    routine the prod stack's rollout uses too (pipeline_src/vertex_rollout.py)."""
    from google.cloud import aiplatform

    aiplatform.init(project=project, location=location)
    target = aiplatform.Endpoint(endpoint)
    previous = [d.id for d in target.list_models()]
    deployed = deploy_to_vertex_endpoint(
        target, model, 100, machine_type, min_replicas, max_replicas, service_account
    )
    for deployed_model_id in previous:
        undeploy_from_vertex_endpoint(target, deployed_model_id)
    return deployed, previous


@pipeline_component(
    packages=("google-cloud-aiplatform",),
    helpers=(
        local_environment,
        deploy_local,
        deploy_vertex,
        deploy_to_vertex_endpoint,
        undeploy_from_vertex_endpoint,
    ),
)
def deploy(
    model: str,
    project: str,
    location: str,
    endpoint: str,
    machine_type: str = "n1-standard-2",
    min_replicas: int = 1,
    max_replicas: int = 1,
    service_account: str = "",
    local_root: str = "",
) -> NamedTuple("Outputs", [("deployed_model_id", str), ("undeployed", list)]):
    """Deploy `model` (a versioned registry name) to `endpoint` with all traffic."""
    from collections import namedtuple

    if not model or not endpoint:
        raise ValueError("deploy needs the registered model version and the endpoint")
    if not 1 <= min_replicas <= max_replicas:
        raise ValueError(
            f"replicas must satisfy 1 <= min_replicas <= max_replicas, got {min_replicas} and "
            f"{max_replicas}"
        )
    if local_root:
        deployed, undeployed = deploy_local(local_root, endpoint, model)
    else:
        deployed, undeployed = deploy_vertex(
            project, location, endpoint, model, machine_type, min_replicas, max_replicas,
            service_account,
        )  # fmt: skip
    print(f"endpoint {endpoint}: {model} serves all traffic; undeployed {undeployed or 'none'}")
    return namedtuple("Outputs", ["deployed_model_id", "undeployed"])(deployed, undeployed)
