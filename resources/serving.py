"""Serving: the stack's Vertex AI endpoint (the staging endpoint in staging, production in prod).

Which model serves is not decided here: the training pipeline deploys to the staging endpoint, and
the prod stack's promotion config deploys to the production endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from resources.base import PlatformComponent


@dataclass(frozen=True)
class ServingArgs:
    project: str
    region: str
    display_name: str
    labels: Mapping[str, str]
    kms_key: str | None = None


class Serving(PlatformComponent):
    """One Vertex AI endpoint."""

    TYPE = "tabular-mlops:vertex:Serving"
    APIS = ("aiplatform.googleapis.com",)

    endpoint: gcp.vertex.AiEndpoint
    """The endpoint models are deployed to."""

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        self.endpoint = gcp.vertex.AiEndpoint(
            f"{name}-endpoint",
            project=args.project,
            location=args.region,
            region=args.region,
            display_name=args.display_name,
            description="Serves the tabular model; deployments set the traffic split.",
            labels=dict(args.labels),
            encryption_spec={"kms_key_name": args.kms_key} if args.kms_key else None,
            # Deployments own the traffic split; re-applying it from here would wipe it.
            opts=self.child(ignore_changes=["trafficSplit"]),
        )
        self.register_outputs({"endpoint": self.endpoint.name})
