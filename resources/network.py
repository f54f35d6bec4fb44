"""Private serving network: the stack's own VPC network that Vertex AI is peered with.

With `serving.private_network`, the endpoint gets no public predict route: it is reachable only
from this network, through private services access (a range of the network reserved for Google's
services, and the Service Networking peering that hands it to them). The pipelines run on the
same network, so their jobs reach what the network reaches. The network has no subnet and no
instance of its own: whoever calls the endpoint (QA's acceptance runner, a client service) runs
on a subnet added to it, or on a network peered with it (docs/security.md says what that takes).
Its firewall denies every inbound connection explicitly, logged, rather than relying on GCP's
implied rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pulumi
import pulumi_gcp as gcp

from resources.base import PlatformComponent
from resources.vpc import custom_network, deny_all, firewall_rule

# The range Google's services take their addresses from: /20 (4096 addresses) leaves room for the
# endpoint's replicas and the pipelines' jobs on the same network.
PEERING_PREFIX_LENGTH = 20


@dataclass(frozen=True)
class PrivateNetworkArgs:
    project: str
    network_name: str
    labels: Mapping[str, str]


class PrivateNetwork(PlatformComponent):
    """A VPC network, its range reserved for Google's services, and the peering with them."""

    TYPE = "tabular-mlops:network:PrivateNetwork"
    APIS = ("compute.googleapis.com", "servicenetworking.googleapis.com")
    TARGETS: ClassVar[dict[str, str]] = {}
    PERMISSIONS = ()

    network: gcp.compute.Network
    peering: gcp.servicenetworking.Connection
    vertex_network: pulumi.Output[str]
    """The network as Vertex AI names it: `projects/<number>/global/networks/<name>`."""

    def __init__(
        self, name: str, args: PrivateNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(name, opts)
        self.network = custom_network(
            self, name, args, "Private network Vertex AI serves the endpoint on (peered)."
        )
        reserved = gcp.compute.GlobalAddress(
            f"{name}-services-range",
            project=args.project,
            name=f"{args.network_name}-services",
            description="Range reserved for Google's services (Vertex AI private endpoints).",
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            prefix_length=PEERING_PREFIX_LENGTH,
            network=self.network.id,
            labels=dict(args.labels),
            opts=self.child(),
        )
        self.peering = gcp.servicenetworking.Connection(
            f"{name}-peering",
            network=self.network.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[reserved.name],
            opts=self.child(),
        )
        no_inbound = "No inbound connection unless a rule added for a reason allows it."
        firewall_rule(
            self, name, args, self.network, "deny-ingress", **deny_all("INGRESS", no_inbound)
        )
        # Vertex AI names networks by project number, not id.
        number = gcp.organizations.get_project_output(
            project_id=args.project,
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=self._waits_for),
        ).number
        self.vertex_network = pulumi.Output.concat(
            "projects/", number, "/global/networks/", self.network.name
        )
        self.register_outputs({"network": self.network.name, "vertex_network": self.vertex_network})
