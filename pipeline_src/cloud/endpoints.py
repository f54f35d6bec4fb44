"""The endpoint port on Vertex AI endpoints: what one serves, and deploying a version to it."""

from __future__ import annotations

from pipeline_src.cloud.registry import model_ref
from pipeline_src.cloud.rollout import VertexEndpoint
from pipeline_src.ports import Deployed, Machines, ModelRef
from pipeline_src.rollout import replace_all


class VertexEndpoints:
    def __init__(self, project: str, location: str):
        self.project, self.location = project, location

    def serving(self, endpoint: str) -> ModelRef | None:
        from google.cloud import aiplatform

        aiplatform.init(project=self.project, location=self.location)
        target = aiplatform.Endpoint(endpoint)
        deployed = target.list_models()
        if not deployed:
            return None
        traffic = target.traffic_split
        top = max(deployed, key=lambda d: traffic.get(d.id, 0))
        return model_ref(aiplatform.Model(top.model, version=top.model_version_id))

    def traffic(self, endpoint: str) -> dict[str, int]:
        from google.cloud import aiplatform

        aiplatform.init(project=self.project, location=self.location)
        target = aiplatform.Endpoint(endpoint)
        split = target.traffic_split
        return {
            f"{deployed.model}@{deployed.model_version_id}": split[deployed.id]
            for deployed in target.list_models()
            if split.get(deployed.id)
        }

    def deploy(self, endpoint: str, model: str, machines: Machines) -> Deployed:
        """All traffic to the new version, then the previous ones retired (`replace_all`), on
        the rollout's Vertex AI endpoint adapter: one deploy routine with the prod stack's
        rollout (pipeline_src/cloud/rollout.py)."""
        from google.cloud import aiplatform

        aiplatform.init(project=self.project, location=self.location)
        target = VertexEndpoint(
            endpoint, machines.machine_type, machines.min_replicas, machines.max_replicas,
            machines.service_account,
        )  # fmt: skip
        return Deployed(*replace_all(target, model))
