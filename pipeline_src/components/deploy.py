"""deploy: the registered version to the staging endpoint with all traffic, then retire the old.

The new model is deployed with 100% of the traffic and the call returns once it serves; only then
are the models that served before undeployed (they have no traffic left), so the endpoint never
answers with nothing. The endpoint port does it (pipeline_src/ports.py `Endpoints.deploy`): on
Vertex AI, pipeline_src/cloud/endpoints.py; locally a state file the local prediction server
reads (local/registry.py).
"""

from typing import NamedTuple

from pipeline_src.components.common import pipeline_component


@pipeline_component(packages=("google-cloud-aiplatform",))
def deploy(
    model: str,
    project: str,
    location: str,
    endpoint: str,
    machine_type: str = "n1-standard-2",
    min_replicas: int = 1,
    max_replicas: int = 1,
    service_account: str = "",
) -> NamedTuple("Outputs", [("deployed_model_id", str), ("undeployed", list)]):
    """Deploy `model` (a versioned registry name) to `endpoint` with all traffic."""
    from collections import namedtuple

    from pipeline_src.ports import Machines, backend

    if not model or not endpoint:
        raise ValueError("deploy needs the registered model version and the endpoint")
    if not 1 <= min_replicas <= max_replicas:
        raise ValueError(
            f"replicas must satisfy 1 <= min_replicas <= max_replicas, got {min_replicas} and "
            f"{max_replicas}"
        )
    machines = Machines(machine_type, min_replicas, max_replicas, service_account)
    deployed, undeployed = backend().endpoints(project, location).deploy(endpoint, model, machines)
    print(f"endpoint {endpoint}: {model} serves all traffic; undeployed {undeployed or 'none'}")
    return namedtuple("Outputs", ["deployed_model_id", "undeployed"])(deployed, undeployed)
