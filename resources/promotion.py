"""Promotion: the model version the prod stack's config names, rolled out to its endpoint.

No native Pulumi resource deploys a model to a Vertex AI endpoint, so this is a small dynamic
resource. Promotion is GitOps: QA's PR changes `platform.serving.model` in `Pulumi.prod.yaml`
(`make promote` writes it), `pulumi preview` shows this resource's update with the old and new
version, and the merge's `pulumi up` rolls it out. Rolling back is reverting that change: the same
rollout brings the earlier version back.

This module is only the Pulumi side: the resource, its arguments and its provider. The rollout
itself (canary, full traffic, retiring the old; resuming a half-done one) is domain code in
`pipeline_src/rollout.py`, which the local endpoints use too (`local/promotion.py`); the provider
drives it through Vertex AI's adapters (`pipeline_src/cloud/rollout.py`: re-registration across
projects and the one deploy routine the training pipeline's deploy step shares).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi import dynamic

from pipeline_src.cloud.rollout import (
    VertexEndpoint,
    VertexRegistry,
    undeploy_from_vertex_endpoint,
)
from pipeline_src.rollout import roll_out

# A type only: Pulumi's provider host imports this module to unpickle the provider and needs
# none of the config code.
if TYPE_CHECKING:
    from stacks.config import ServingConfig

# --- the dynamic resource ---------------------------------------------------------------------

ROLLOUT_INPUTS = ("model", "canary_percent", "canary_minutes", "machine_type", "min_replicas",
                  "max_replicas")  # fmt: skip
"""Inputs whose change rolls out again (in place); a change of endpoint or project replaces."""
REPLACING_INPUTS = ("project", "region", "endpoint", "model_id")


# The state of every deployed `serving-promotion` holds this provider pickled BY REFERENCE
# (dill pickles a class of an importable module by its path): update and delete unpickle
# `resources.promotion.PromotionProvider` (pulumi/pulumi#7453). Moving or renaming this module
# or class breaks existing stacks: if it must move, leave a shim here that re-exports it
# (`from <new module> import PromotionProvider`) until every stack has been updated once.
PROVIDER_PATH = "resources.promotion.PromotionProvider"


class PromotionProvider(dynamic.ResourceProvider):
    """Create / diff / update / delete of a model rollout on a Vertex AI endpoint.

    Holds no state and no clients (it is pickled when the resource is declared); the SDK is
    imported inside the calls.
    """

    def _roll_out(self, props: dict[str, Any]) -> dict[str, Any]:
        from google.cloud import aiplatform

        aiplatform.init(project=props["project"], location=props["region"])
        registry = VertexRegistry(
            props["project"], props["region"], props["model_id"], props["display_name"],
            props.get("labels") or {},
        )  # fmt: skip
        endpoint = VertexEndpoint(
            props["endpoint"], props["machine_type"], int(props["min_replicas"]),
            int(props["max_replicas"]),
        )  # fmt: skip
        result = roll_out(
            registry,
            endpoint,
            props["model"],
            int(props["canary_percent"]),
            float(props["canary_minutes"]),
            say=pulumi.log.info,
        )
        return {
            **props,
            "served_model": result.model,
            "deployed_model_id": result.deployed_model_id,
            "undeployed": result.undeployed,
            "steps": result.steps,
        }

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outs = self._roll_out(props)
        return dynamic.CreateResult(id_=f"{props['endpoint']}/promotion", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [k for k in (*ROLLOUT_INPUTS, *REPLACING_INPUTS) if olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k in REPLACING_INPUTS]
        return dynamic.DiffResult(
            changes=bool(changed), replaces=replaces, delete_before_replace=bool(replaces)
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=self._roll_out(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Undeploy what the rollout deployed; registered versions stay (the registry's history)."""
        from google.api_core.exceptions import NotFound
        from google.cloud import aiplatform

        aiplatform.init(project=props["project"], location=props["region"])
        try:
            endpoint = aiplatform.Endpoint(props["endpoint"])
            deployed = {d.id for d in endpoint.list_models()}
        except NotFound:
            return  # the endpoint went first: nothing is deployed any more
        if props.get("deployed_model_id") in deployed:
            undeploy_from_vertex_endpoint(endpoint, props["deployed_model_id"])


@dataclass(frozen=True)
class RolloutSettings:
    """The model version the endpoint serves, and how a new one is rolled out."""

    model: str
    """`settings.model` by its full name: projects/P/locations/R/models/ID@VERSION (of this
    project or another)."""
    model_id: str
    """This project's model a version of another project is re-registered under."""
    model_display_name: str
    settings: ServingConfig
    """The canary (share and period) and the deployed model's machine type and replicas: the
    stack's `serving:` section as validated."""


@dataclass(frozen=True)
class PromotionArgs:
    project: str
    region: str
    endpoint: pulumi.Input[str]
    """The endpoint's resource name, projects/P/locations/R/endpoints/ID."""
    labels: dict[str, str]
    rollout: RolloutSettings


class Promotion(dynamic.Resource, module="vertex", name="Promotion"):
    """The model version a stack's endpoint serves, rolled out with a canary."""

    served_model: pulumi.Output[str]
    """The versioned name serving all traffic (the re-registered copy across projects)."""
    deployed_model_id: pulumi.Output[str]

    def __init__(self, name: str, args: PromotionArgs, opts: pulumi.ResourceOptions | None = None):
        rollout = args.rollout
        # The provider's inputs (what `pulumi preview` diffs; ROLLOUT_INPUTS, REPLACING_INPUTS).
        props = {
            "project": args.project,
            "region": args.region,
            "endpoint": args.endpoint,
            "model": rollout.model,
            "model_id": rollout.model_id,
            "display_name": rollout.model_display_name,
            "labels": dict(args.labels),
            "canary_percent": rollout.settings.canary_percent,
            "canary_minutes": rollout.settings.canary_minutes,
            "machine_type": rollout.settings.machine_type,
            "min_replicas": rollout.settings.min_replicas,
            "max_replicas": rollout.settings.max_replicas,
            "served_model": None,
            "deployed_model_id": None,
            "undeployed": None,
            "steps": None,
        }
        super().__init__(PromotionProvider(), name, props, opts)
