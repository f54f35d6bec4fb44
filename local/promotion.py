"""Promotion on the local stand-ins: the prod stack's rollout, run on the local registry.

The same `roll_out` (pipeline_src/rollout.py) as the prod stack's Promotion resource, through
local adapters of its ports (the local registry and a local endpoint) in place of Vertex AI's: the
version is given the "prod" alias, deployed beside what the endpoint serves with a canary share,
then takes all the traffic, and the old versions are undeployed. Locally one registry serves every
endpoint, so nothing is re-registered.
"""

from __future__ import annotations

from collections.abc import Callable

from local.environment import LocalEnvironment
from local.registry import LocalEndpoint, LocalModelRegistry
from pipeline_src.rollout import PROMOTED_ALIAS, Deployed, RolloutResult, roll_out


class LocalRegistry:
    """The rollout's `ModelSource` on the local registry: the version itself, aliased "prod"."""

    def __init__(self, registry: LocalModelRegistry):
        self.registry = registry

    def make_available(self, source: str) -> str:
        version = self.registry.get(source)
        self.registry.add_version_aliases(version.model_id, version.version_id, [PROMOTED_ALIAS])
        return version.resource_name


class LocalEndpointTarget:
    """The rollout's `Endpoint` on a local endpoint (local/registry.py)."""

    def __init__(self, endpoint: LocalEndpoint, registry: LocalModelRegistry):
        self.endpoint, self.registry = endpoint, registry

    def deployed(self) -> list[Deployed]:
        return [
            Deployed(m.id, m.resource_name, m.traffic_percentage)
            for m in self.endpoint.deployed_models()
        ]

    def deploy(self, model: str, traffic: int) -> str:
        return self.endpoint.deploy(self.registry.get(model), traffic_percentage=traffic).id

    def set_traffic(self, split: dict[str, int]) -> None:
        self.endpoint.set_traffic(split)

    def undeploy(self, deployed_id: str) -> None:
        self.endpoint.undeploy(deployed_id)


def promote_locally(
    env: LocalEnvironment,
    endpoint: str,
    model: str,
    canary_percent: int,
    canary_minutes: float = 0,
    *,
    say: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] | None = None,
) -> RolloutResult:
    """Roll `model` (`<model id>@<version>`) out to a local endpoint, then refresh the lifecycle
    page: it shows what each endpoint serves, and no pipeline run follows a promotion to do it
    (the demo's page said prod served the version the release had just retired)."""
    from local.lifecycle import write_index

    registry = LocalModelRegistry(env.registry_dir)
    target = LocalEndpointTarget(LocalEndpoint(env.endpoints_dir, endpoint), registry)
    extra = {"sleep": sleep} if sleep is not None else {}
    result = roll_out(
        LocalRegistry(registry), target, model, canary_percent, canary_minutes, say=say, **extra
    )
    write_index(env)
    return result
