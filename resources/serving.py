"""Serving: the stack's Vertex AI endpoint (the staging endpoint in staging, production in prod).

Which model serves: in staging the training pipeline deploys to the endpoint; in a stack whose
config names a model (`serving.model`, prod) the `Promotion` dynamic resource rolls that version
out (resources/promotion.py), so a promotion is a reviewed config change. The traffic split
belongs to those deployments, so the endpoint resource never sets it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from resources.access import PROJECT, CustomRole, Grantee, Members, Permission
from resources.base import PlatformComponent, binder
from resources.promotion import Promotion, PromotionArgs, RolloutSettings

PREDICTOR = "endpointPredictor"
MODEL_READER = "modelReader"


@dataclass(frozen=True)
class ServingArgs:
    project: str
    region: str
    display_name: str
    endpoint_id: str
    """The endpoint's numeric id (`Naming.endpoint_id`): the API refuses any other form."""
    labels: Mapping[str, str]
    predictor_role_id: str
    """Id of the project custom role that may only call the endpoint (unique per stack)."""
    model_reader_role_id: str
    """Id of the project custom role that may only read registered models (unique per stack)."""
    rollout: RolloutSettings | None = None
    """The model the stack serves (prod); None: deployments are made elsewhere (staging)."""
    kms_key: str | None = None
    request_logging_dataset: pulumi.Input[str] | None = None
    """`bq://project.dataset` to log requests and responses to; no logging when None."""
    logging_sampling_rate: float = 1.0
    network: pulumi.Input[str] | None = None
    """`projects/<number>/global/networks/<name>`: serve on a private endpoint peered with this
    network (resources/network.py), no public predict route. None: the public route (IAM)."""
    members: Members = dataclasses.field(default_factory=dict)
    """Who plays each grantee of PERMISSIONS in this stack (resources/access.py)."""


class Serving(PlatformComponent):
    """One Vertex AI endpoint, and a predict-only role for the people who test it."""

    TYPE = "tabular-mlops:vertex:Serving"
    APIS = (
        "aiplatform.googleapis.com",
        "iam.googleapis.com",
        "cloudresourcemanager.googleapis.com",  # the model readers' project-level grant
    )
    KMS_AGENTS = ("aiplatform",)
    TARGETS: ClassVar[dict[str, str]] = {"endpoint": "the stack's Vertex AI endpoint"}
    CUSTOM_ROLES: ClassVar[dict[str, CustomRole]] = {
        PREDICTOR: CustomRole(
            title="Endpoint predictor",
            # Every predefined Vertex AI role that can predict can also deploy and undeploy.
            permissions=("aiplatform.endpoints.get", "aiplatform.endpoints.predict"),
            description="Call the endpoint for predictions; cannot change what it serves.",
        ),
        MODEL_READER: CustomRole(
            title="Model reader",
            # Models have no IAM of their own: the narrowest grant is this role on the project.
            permissions=("aiplatform.models.get", "aiplatform.models.list"),
            description="Read registered models and their versions; cannot change or deploy them.",
        ),
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
        Permission(
            Grantee.MODEL_READERS,
            MODEL_READER,
            PROJECT,
            "read the version another project's stack promotes, to re-register it there",
        ),
    )

    endpoint: gcp.vertex.AiEndpoint
    """The endpoint models are deployed to; `name` is its numeric id."""
    predictor_role: gcp.projects.IAMCustomRole
    """The custom role granting predict (and get) only."""
    model_reader_role: gcp.projects.IAMCustomRole
    """The custom role granting read access to registered models only."""
    promotion: Promotion | None
    """The rollout of the configured model version (None when the config names none)."""
    vertex_agent: gcp.projects.ServiceIdentity
    """The project's Vertex AI service agent, created rather than assumed: it deploys models,
    and another stack grants it the read of the models promoted here."""

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        self.vertex_agent = gcp.projects.ServiceIdentity(
            f"{name}-vertex-agent",
            project=args.project,
            service="aiplatform.googleapis.com",
            opts=self.child(),
        )
        self.endpoint = self._endpoint(name, args)
        roles = self._custom_roles(name, args)
        self.predictor_role, self.model_reader_role = roles[PREDICTOR], roles[MODEL_READER]
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
            roles={key: role.name for key, role in roles.items()},
        )
        rollout = args.rollout
        self.promotion = self._promotion(name, args, rollout) if rollout is not None else None
        self.register_outputs(
            {
                "endpoint": self.endpoint.name,
                "served_model": self.promotion.served_model if self.promotion else None,
            }
        )

    def _endpoint(self, name: str, args: ServingArgs) -> gcp.vertex.AiEndpoint:
        logging = None
        if args.request_logging_dataset is not None:
            logging = {
                "enabled": True,
                "sampling_rate": args.logging_sampling_rate,
                # A dataset only: Vertex creates the logging table itself, and fails when a
                # table it is told to create already exists.
                "bigquery_destination": {"output_uri": args.request_logging_dataset},
            }
        return gcp.vertex.AiEndpoint(
            f"{name}-endpoint",
            # Immutable: a new id replaces the endpoint (and what it serves).
            name=args.endpoint_id,
            project=args.project,
            location=args.region,
            region=args.region,
            display_name=args.display_name,
            description="Serves the tabular model; deployments set the traffic split.",
            labels=dict(args.labels),
            encryption_spec={"kms_key_name": args.kms_key} if args.kms_key else None,
            predict_request_response_logging_config=logging,
            network=args.network,
            # Deployments own the traffic split; re-applying it from here would wipe it.
            opts=self.child(ignore_changes=["trafficSplit"]),
        )

    def _custom_roles(self, name: str, args: ServingArgs) -> dict[str, gcp.projects.IAMCustomRole]:
        roles = {}
        for key, suffix, role_id in (
            (PREDICTOR, "predictor-role", args.predictor_role_id),
            (MODEL_READER, "model-reader-role", args.model_reader_role_id),
        ):
            spec = self.CUSTOM_ROLES[key]
            roles[key] = gcp.projects.IAMCustomRole(
                f"{name}-{suffix}",
                project=args.project,
                role_id=role_id,
                title=spec.title,
                description=spec.description,
                permissions=list(spec.permissions),
                opts=self.child(),
            )
        return roles

    def _promotion(self, name: str, args: ServingArgs, rollout: RolloutSettings) -> Promotion:
        """The rollout of the model the stack's config names (resources/promotion.py)."""
        return Promotion(
            f"{name}-promotion",
            PromotionArgs(
                project=args.project,
                region=args.region,
                endpoint=pulumi.Output.concat(
                    f"projects/{args.project}/locations/{args.region}/endpoints/",
                    self.endpoint.name,
                ),
                labels=dict(args.labels),
                rollout=rollout,
            ),
            opts=self.child(depends_on=[self.endpoint]),
        )
