"""Serving: the stack's Vertex AI endpoint (the staging endpoint in staging, production in prod).

Which model serves is not decided here: the training pipeline deploys to the staging endpoint, and
the prod stack's promotion config deploys to the production endpoint. The traffic split belongs to
those deployments, so this component never sets it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from resources.access import CustomRole, Grantee, Members, Permission
from resources.base import PlatformComponent, binder

PREDICTOR = "endpointPredictor"


@dataclass(frozen=True)
class ServingArgs:
    project: str
    region: str
    display_name: str
    labels: Mapping[str, str]
    predictor_role_id: str
    """Id of the project custom role that may only call the endpoint (unique per stack)."""
    kms_key: str | None = None
    request_logging_dataset: pulumi.Input[str] | None = None
    """`bq://project.dataset` to log requests and responses to; no logging when None."""
    logging_sampling_rate: float = 1.0
    members: Members = dataclasses.field(default_factory=dict)
    """Who plays each grantee of PERMISSIONS in this stack (resources/access.py)."""


class Serving(PlatformComponent):
    """One Vertex AI endpoint, and a predict-only role for the people who test it."""

    TYPE = "tabular-mlops:vertex:Serving"
    APIS = ("aiplatform.googleapis.com", "iam.googleapis.com")
    KMS_AGENTS = ("aiplatform",)
    TARGETS: ClassVar[dict[str, str]] = {"endpoint": "the stack's Vertex AI endpoint"}
    CUSTOM_ROLES: ClassVar[dict[str, CustomRole]] = {
        PREDICTOR: CustomRole(
            title="Endpoint predictor",
            # Every predefined Vertex AI role that can predict can also deploy and undeploy.
            permissions=("aiplatform.endpoints.get", "aiplatform.endpoints.predict"),
            description="Call the endpoint for predictions; cannot change what it serves.",
        )
    }
    PERMISSIONS = (
        Permission(
            Grantee.QA,
            PREDICTOR,
            "endpoint",
            "run the acceptance suite against the model the endpoint serves",
        ),
        Permission(
            Grantee.DATA_SCIENTISTS,
            PREDICTOR,
            "endpoint",
            "try the deployed model on examples",
        ),
    )

    endpoint: gcp.vertex.AiEndpoint
    """The endpoint models are deployed to; `name` is its numeric id."""
    predictor_role: gcp.projects.IAMCustomRole
    """The custom role granting predict (and get) only."""

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        logging = None
        if args.request_logging_dataset is not None:
            logging = {
                "enabled": True,
                "sampling_rate": args.logging_sampling_rate,
                # A dataset only: Vertex creates the logging table itself, and fails when a
                # table it is told to create already exists.
                "bigquery_destination": {"output_uri": args.request_logging_dataset},
            }
        self.endpoint = gcp.vertex.AiEndpoint(
            f"{name}-endpoint",
            project=args.project,
            location=args.region,
            region=args.region,
            display_name=args.display_name,
            description="Serves the tabular model; deployments set the traffic split.",
            labels=dict(args.labels),
            encryption_spec={"kms_key_name": args.kms_key} if args.kms_key else None,
            predict_request_response_logging_config=logging,
            # Deployments own the traffic split; re-applying it from here would wipe it.
            opts=self.child(ignore_changes=["trafficSplit"]),
        )
        spec = self.CUSTOM_ROLES[PREDICTOR]
        self.predictor_role = gcp.projects.IAMCustomRole(
            f"{name}-predictor-role",
            project=args.project,
            role_id=args.predictor_role_id,
            title=spec.title,
            description=spec.description,
            permissions=list(spec.permissions),
            opts=self.child(),
        )
        self.bindings = self.grant(
            args.project,
            args.members,
            {
                "endpoint": binder(
                    self,
                    gcp.vertex.AiEndpointIamMember,
                    project=args.project,
                    location=args.region,
                    endpoint=self.endpoint.name,
                )
            },
            roles={PREDICTOR: self.predictor_role.name},
        )
        self.register_outputs({"endpoint": self.endpoint.name})
