"""The Pulumi state backend of the platform's stacks: a bucket, and a KMS key for their secrets."""

from __future__ import annotations

import re

import pulumi
import pulumi_gcp as gcp

from bootstrap.settings import BootstrapSettings

APIS = ("storage.googleapis.com", "cloudkms.googleapis.com")
# 90 days: a new key version encrypts new secrets; the old versions still decrypt the old ones.
ROTATION_PERIOD = "7776000s"
# Every `pulumi up` rewrites the stack's state file: keep the last versions of each, not all.
NONCURRENT_VERSIONS_KEPT = 20


class StateBackend(pulumi.ComponentResource):
    """Versioned, private state bucket and the `gcpkms://` secrets key; both protected."""

    TYPE = "tabular-mlops-bootstrap:state:StateBackend"

    bucket: gcp.storage.Bucket
    key: gcp.kms.CryptoKey

    def __init__(
        self, name: str, settings: BootstrapSettings, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(self.TYPE, name, None, opts)
        services = [
            gcp.projects.Service(
                f"{name}-{api.split('.')[0]}",
                project=settings.state_project,
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
        self.bucket = self._bucket(name, settings, kept)
        self.key = self._key(name, settings, kept)
        for member in settings.deployers:
            self._grant(name, member)
        self.register_outputs({"bucket": self.bucket.url, "key": self.key.id})

    def _bucket(
        self, name: str, settings: BootstrapSettings, opts: pulumi.ResourceOptions
    ) -> gcp.storage.Bucket:
        """Private and versioned; superseded versions of a state file beyond the last ones go."""
        return gcp.storage.Bucket(
            f"{name}-bucket",
            name=settings.state_bucket,
            project=settings.state_project,
            location=settings.location,
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
            opts=opts,
        )

    def _key(
        self, name: str, settings: BootstrapSettings, opts: pulumi.ResourceOptions
    ) -> gcp.kms.CryptoKey:
        """The stacks' secrets key, in a key ring of its own, rotated every ROTATION_PERIOD."""
        ring = gcp.kms.KeyRing(
            f"{name}-ring",
            name=settings.key_ring,
            project=settings.state_project,
            location=settings.location,
            opts=opts,
        )
        return gcp.kms.CryptoKey(
            f"{name}-key",
            name=settings.key,
            key_ring=ring.id,
            purpose="ENCRYPT_DECRYPT",
            rotation_period=ROTATION_PERIOD,
            opts=opts,
        )

    def _grant(self, name: str, member: str) -> None:
        """Read and write the state (objects of the bucket), encrypt and decrypt with the key."""
        slug = re.sub(r"[^a-z0-9]+", "-", member.lower()).strip("-")
        for what, member_type, target, role in (
            ("state", gcp.storage.BucketIAMMember, {"bucket": self.bucket.name},
             "roles/storage.objectUser"),
            ("secrets", gcp.kms.CryptoKeyIAMMember, {"crypto_key_id": self.key.id},
             "roles/cloudkms.cryptoKeyEncrypterDecrypter"),
        ):  # fmt: skip
            member_type(
                f"{name}-{what}-{slug}",
                role=role,
                member=member,
                opts=pulumi.ResourceOptions(parent=self),
                **target,
            )
