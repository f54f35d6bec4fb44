"""The endpoint port on Vertex AI endpoints: what one serves, and deploying a version to it."""

from __future__ import annotations

from pipeline_src.cloud.registry import model_ref
from pipeline_src.cloud.rollout import deploy_to_vertex_endpoint, undeploy_from_vertex_endpoint
from pipeline_src.ports import Deployed, Machines, ModelRef


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
        """The new model takes 100% of the traffic and the call returns once it serves; only
        then are the models that served before undeployed (they have no traffic left), so the
        endpoint never answers with nothing. The deploy routine is the one the prod stack's
        rollout uses too (pipeline_src/cloud/rollout.py)."""
        from google.cloud import aiplatform

        aiplatform.init(project=self.project, location=self.location)
        target = aiplatform.Endpoint(endpoint)
        previous = [d.id for d in target.list_models()]
        deployed = deploy_to_vertex_endpoint(
            target, model, 100, machines.machine_type, machines.min_replicas,
            machines.max_replicas, machines.service_account,
        )  # fmt: skip
        for deployed_model_id in previous:
            undeploy_from_vertex_endpoint(target, deployed_model_id)
        return Deployed(deployed, previous)
