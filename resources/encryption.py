"""Encryption: let the Google service agents use the stack's CMEK key (only when one is configured).

With `kms_key` set, every resource that supports customer-managed encryption is created with it
(buckets, BigQuery, the endpoint, the function and its image repository, Workbench disks). Each
service encrypts through its own service agent, which must be allowed to use the key before the
first resource is created; components with `KMS_AGENTS` wait for this one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from resources.access import Grantee, Permission
from resources.base import PlatformComponent, binder

# Agents created on demand through the Service Usage API (they may not exist in a fresh project).
_IDENTITY_SERVICES = {"aiplatform", "artifactregistry"}
# Agents that exist once their API is enabled, named after the project number.
_NUMBERED_AGENTS = {
    "cloudfunctions": "gcf-admin-robot.iam.gserviceaccount.com",
    "compute": "compute-system.iam.gserviceaccount.com",
}
AGENTS = ("storage", "bigquery", *sorted(_IDENTITY_SERVICES), *sorted(_NUMBERED_AGENTS))


def agent_apis(agents: tuple[str, ...]) -> tuple[str, ...]:
    """The APIs whose agents are looked up or created: each must be enabled first."""
    return tuple(f"{agent}.googleapis.com" for agent in agents)


@dataclass(frozen=True)
class EncryptionArgs:
    project: str
    kms_key: str
    agents: tuple[str, ...] = dataclasses.field(default=AGENTS)
    """Services whose agents encrypt this stack's resources (the components' KMS_AGENTS)."""


class Encryption(PlatformComponent):
    """Grants the CMEK key's encrypter/decrypter role to the service agents that need it."""

    TYPE = "tabular-mlops:kms:Encryption"
    APIS = ("cloudkms.googleapis.com",)
    TARGETS: ClassVar[dict[str, str]] = {"key": "CMEK key (`kms_key`, when set)"}
    PERMISSIONS = (
        Permission(
            Grantee.KMS_USERS,
            "roles/cloudkms.cryptoKeyEncrypterDecrypter",
            "key",
            "encrypt the stack's data at rest with the key: agents of Cloud Storage, BigQuery, "
            "Vertex AI, Artifact Registry, Cloud Functions and Compute Engine (Workbench disks)",
            # The key may be shared with other stacks in the project: destroying this one must not
            # lock them out of their data.
            shared=True,
        ),
    )

    agents: dict[str, pulumi.Output[str]]
    """Each agent's IAM member (`serviceAccount:…`), by service."""

    def __init__(self, name: str, args: EncryptionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        unknown = set(args.agents) - set(AGENTS)
        if unknown:
            raise ValueError(f"no known service agent for: {sorted(unknown)}")
        invoke = pulumi.InvokeOutputOptions(parent=self, depends_on=self._waits_for)
        number = gcp.organizations.get_project_output(project_id=args.project, opts=invoke).number
        self.agents = {}
        for service in sorted(args.agents):
            if service == "storage":
                email = gcp.storage.get_project_service_account_output(
                    project=args.project, opts=invoke
                ).email_address
            elif service == "bigquery":
                email = gcp.bigquery.get_default_service_account_output(
                    project=args.project, opts=invoke
                ).email
            elif service in _IDENTITY_SERVICES:
                email = gcp.projects.ServiceIdentity(
                    f"{name}-{service}-agent",
                    project=args.project,
                    service=f"{service}.googleapis.com",
                    opts=self.child(),
                ).email
            else:
                email = number.apply(
                    lambda n, domain=_NUMBERED_AGENTS[service]: f"service-{n}@{domain}"
                )
            self.agents[service] = pulumi.Output.concat("serviceAccount:", email)
        self.bindings = self.grant(
            args.project,
            {Grantee.KMS_USERS: self.agents},
            {"key": binder(self, gcp.kms.CryptoKeyIAMMember, crypto_key_id=args.kms_key)},
        )
        self.register_outputs({"agents": self.agents})
