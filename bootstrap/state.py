"""The Pulumi state backend of the platform's stacks: a bucket, and a KMS key for their secrets."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

APIS = ("storage.googleapis.com", "cloudkms.googleapis.com")
# 90 days: a new key version encrypts new secrets; the old versions still decrypt the old ones.
ROTATION_PERIOD = "7776000s"
# Every `pulumi up` rewrites the stack's state file: keep the last versions of each, not all.
NONCURRENT_VERSIONS_KEPT = 20


@dataclass(frozen=True)
class StateBackendArgs:
    project: str
    location: str
    bucket: str
    key_ring: str
    key: str
    users: tuple[str, ...]
    """People who deploy by hand: read and write the state, encrypt and decrypt with the key.
    The CI identities get the same on both from the stacks themselves (resources/ci.py)."""


class StateBackend(pulumi.ComponentResource):
    """Versioned, private state bucket and the `gcpkms://` secrets key; both protected."""

    TYPE = "tabular-mlops-bootstrap:state:StateBackend"

    bucket: gcp.storage.Bucket
    key: gcp.kms.CryptoKey

    def __init__(
        self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(self.TYPE, name, None, opts)
        services = [
            gcp.projects.Service(
                f"{name}-{api.split('.')[0]}",
                project=args.project,
                service=api,
                # The stacks may use the same APIs: destroying this never turns them off.
                disable_on_destroy=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in APIS
        ]
        waits = pulumi.ResourceOptions(parent=self, depends_on=services)
        # Every stack's state and history: never deleted by a `pulumi destroy` of this program.
        kept = pulumi.ResourceOptions.merge(waits, pulumi.ResourceOptions(protect=True))
        self.bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            name=args.bucket,
            project=args.project,
            location=args.location,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning={"enabled": True},
            lifecycle_rules=[
                {
                    "action": {"type": "Delete"},
                    "condition": {
                        "num_newer_versions": NONCURRENT_VERSIONS_KEPT,
                        "with_state": "ARCHIVED",
                    },
                }
            ],
            force_destroy=False,
            opts=kept,
        )
        ring = gcp.kms.KeyRing(
            f"{name}-ring", name=args.key_ring, project=args.project, location=args.location,
            opts=kept,
        )  # fmt: skip
        self.key = gcp.kms.CryptoKey(
            f"{name}-key",
            name=args.key,
            key_ring=ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=ROTATION_PERIOD,
            opts=kept,
        )
        for member in args.users:
            self._grant(name, member)
        self.register_outputs({"bucket": self.bucket.url, "key": self.key.id})

    def _grant(self, name: str, member: str) -> None:
        slug = re.sub(r"[^a-z0-9]+", "-", member.lower()).strip("-")
        gcp.storage.BucketIAMMember(
            f"{name}-state-{slug}",
            bucket=self.bucket.name,
            role="roles/storage.objectUser",
            member=member,
            opts=pulumi.ResourceOptions(parent=self),
        )
        gcp.kms.CryptoKeyIAMMember(
            f"{name}-secrets-{slug}",
            crypto_key_id=self.key.id,
            role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
            member=member,
            opts=pulumi.ResourceOptions(parent=self),
        )
