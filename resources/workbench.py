"""Workbench: a Vertex AI Workbench instance for the data scientists' exploration.

The instance has no public IP: people reach JupyterLab through Google's authenticated proxy, and
the VM reaches Google APIs through Private Google Access on its own subnet. Cloud NAT (optional)
gives it outbound-only internet access, for `pip install`; nothing can connect to it from outside.
It stops itself when idle, so a forgotten notebook does not run up the bill.

The network's firewall is explicit rather than GCP's implied rules: every inbound connection is
denied, and outbound only HTTPS is allowed (Google APIs, the notebook proxy, and `pip install`
through the NAT), each rule logging what it matched. The subnet's flow logs record the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from resources.access import Grantee, Members, Permission
from resources.base import PlatformComponent, binder
from resources.vpc import EVERYWHERE, custom_network, deny_all, firewall_rule
from stacks.config import WorkbenchConfig

# The stack's own network: this range is private to it (no peering), so it cannot clash.
SUBNET_RANGE = "10.60.0.0/24"


@dataclass(frozen=True)
class WorkbenchArgs:
    project: str
    region: str
    zone: str
    """The settings' zone, or the composition's default for the region."""
    instance_name: str
    network_name: str
    service_account_email: pulumi.Input[str]
    service_account_name: pulumi.Input[str]
    settings: WorkbenchConfig
    """The instance's owner (only they can open it), size, idle shutdown and egress: the
    stack's `workbench:` section as validated (an enabled workbench has an owner)."""
    labels: Mapping[str, str]
    kms_key: str | None = None
    members: Members = dataclasses.field(default_factory=dict)
    """Who plays each grantee of PERMISSIONS (the owner included) in this stack."""


class Workbench(PlatformComponent):
    """The instance, its private network, and who may use it."""

    TYPE = "tabular-mlops:vertex:Workbench"
    APIS = (
        "notebooks.googleapis.com",
        "compute.googleapis.com",
        "aiplatform.googleapis.com",
        "iam.googleapis.com",
    )
    KMS_AGENTS = ("compute",)
    TARGETS: ClassVar[dict[str, str]] = {
        "instance": "Workbench instance",
        "account": "Workbench instance service account",
    }
    PERMISSIONS = (
        Permission(
            Grantee.WORKBENCH_OWNER,
            "roles/iam.serviceAccountUser",
            "account",
            "open the instance, which runs as this account",
        ),
        Permission(
            Grantee.DATA_SCIENTISTS,
            "roles/notebooks.viewer",
            "instance",
            "see the instance and its state (only the owner opens it)",
        ),
    )

    network: gcp.compute.Network
    subnet: gcp.compute.Subnetwork
    firewall: list[gcp.compute.Firewall]
    """Deny all inbound, allow outbound HTTPS only, deny other outbound: explicit and logged."""
    instance: gcp.workbench.Instance
    """The Workbench instance (no public IP, Shielded VM, idle shutdown)."""

    def __init__(self, name: str, args: WorkbenchArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        self.network = custom_network(
            self, name, args, "Private network of the Workbench instance."
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            project=args.project,
            region=args.region,
            name=args.network_name,
            network=self.network.id,
            ip_cidr_range=SUBNET_RANGE,
            # Google APIs (BigQuery, Storage, Vertex AI) without a public IP.
            private_ip_google_access=True,
            # Flow logs: who the instance talked to. Half the flows, aggregated over 10 minutes,
            # keep the logging bill small for one notebook's traffic.
            log_config={
                "aggregation_interval": "INTERVAL_10_MIN",
                "flow_sampling": 0.5,
                "metadata": "INCLUDE_ALL_METADATA",
            },
            opts=self.child(),
        )
        self.firewall = self._firewall(name, args)
        self._nat(name, args)
        self.instance = self._instance(name, args)
        self.bindings = self.grant(
            args.project,
            args.members,
            {
                "instance": binder(
                    self,
                    gcp.workbench.InstanceIamMember,
                    project=args.project,
                    location=args.zone,
                    name=self.instance.name,
                ),
                "account": binder(
                    self, gcp.serviceaccount.IAMMember, service_account_id=args.service_account_name
                ),
            },
        )
        self.register_outputs({"instance": self.instance.name, "network": self.network.name})

    def _nat(self, name: str, args: WorkbenchArgs) -> None:
        """Outbound-only internet (pip install) through Cloud NAT, when the settings allow it."""
        if not args.settings.internet_egress:
            return
        router = gcp.compute.Router(
            f"{name}-router",
            project=args.project,
            region=args.region,
            name=args.network_name,
            network=self.network.id,
            opts=self.child(),
        )
        gcp.compute.RouterNat(
            f"{name}-nat",
            project=args.project,
            region=args.region,
            name=args.network_name,
            router=router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="LIST_OF_SUBNETWORKS",
            subnetworks=[{"name": self.subnet.id, "source_ip_ranges_to_nats": ["ALL_IP_RANGES"]}],
            log_config={"enable": True, "filter": "ERRORS_ONLY"},
            opts=self.child(),
        )

    def _instance(self, name: str, args: WorkbenchArgs) -> gcp.workbench.Instance:
        disk_encryption = (
            {"disk_encryption": "CMEK", "kms_key": args.kms_key} if args.kms_key else {}
        )
        return gcp.workbench.Instance(
            f"{name}-instance",
            project=args.project,
            location=args.zone,
            name=args.instance_name,
            instance_owners=[args.settings.owner],
            labels=dict(args.labels),
            gce_setup={
                "machine_type": args.settings.machine_type,
                "disable_public_ip": True,
                "shielded_instance_config": {
                    "enable_secure_boot": True,
                    "enable_vtpm": True,
                    "enable_integrity_monitoring": True,
                },
                "service_accounts": [{"email": args.service_account_email}],
                "network_interfaces": [{"network": self.network.id, "subnet": self.subnet.id}],
                "boot_disk": {"disk_type": "PD_BALANCED", **disk_encryption},
                "data_disks": {"disk_type": "PD_BALANCED", **disk_encryption},
                "metadata": {
                    # Idle shutdown is read from guest attributes, which must be on.
                    "idle-timeout-seconds": str(args.settings.idle_shutdown_minutes * 60),
                    "enable-guest-attributes": "TRUE",
                    "notebook-disable-root": "true",
                    "enable-oslogin": "TRUE",
                },
            },
            opts=self.child(),
        )

    def _firewall(self, name: str, args: WorkbenchArgs) -> list[gcp.compute.Firewall]:
        rules = {
            "deny-ingress": deny_all(
                "INGRESS",
                "Workbench network: no inbound connection (the notebook proxy "
                "is reached by the instance, outbound)",
            ),
            "allow-https-egress": {
                "direction": "EGRESS",
                "priority": 1000,
                "allows": [{"protocol": "tcp", "ports": ["443"]}],
                "destination_ranges": [EVERYWHERE],
                "description": "Workbench network: outbound HTTPS (Google APIs, the notebook "
                "proxy, package downloads through the NAT)",
            },
            "deny-egress": deny_all("EGRESS", "Workbench network: no other outbound traffic"),
        }
        return [
            firewall_rule(self, name, args, self.network, suffix, **rule)
            for suffix, rule in rules.items()
        ]
