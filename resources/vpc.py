"""What the stack's two private networks share (resources/network.py, resources/workbench.py).

Each is a custom-mode network with regional routing (no automatic subnets: the component adds
what it needs, if anything), and its firewall is explicit rather than GCP's implied rules: every
rule logs what it matched, and every inbound connection is denied by a rule of its own.
"""

from __future__ import annotations

from typing import Protocol

import pulumi
import pulumi_gcp as gcp

from resources.base import PlatformComponent

# Explicit rules sit just above GCP's implied ones (65535), so a rule added later for a reason
# (priority 1000 by default) takes precedence over them.
DEFAULT_RULE_PRIORITY = 65534
EVERYWHERE = "0.0.0.0/0"


class NetworkArgs(Protocol):
    """What a component's args say about its network (PrivateNetworkArgs, WorkbenchArgs)."""

    @property
    def project(self) -> str: ...

    @property
    def network_name(self) -> str: ...


def custom_network(
    component: PlatformComponent, name: str, args: NetworkArgs, description: str
) -> gcp.compute.Network:
    """`<name>-network`: a network without automatic subnets, routing within its region."""
    return gcp.compute.Network(
        f"{name}-network",
        project=args.project,
        name=args.network_name,
        description=description,
        auto_create_subnetworks=False,
        routing_mode="REGIONAL",
        opts=component.child(),
    )


def firewall_rule(
    component: PlatformComponent,
    name: str,
    args: NetworkArgs,
    network: gcp.compute.Network,
    suffix: str,
    **rule: pulumi.Input,
) -> gcp.compute.Firewall:
    """`<name>-<suffix>`, named `<network_name>-<suffix>`, logging every connection it matches."""
    return gcp.compute.Firewall(
        f"{name}-{suffix}",
        project=args.project,
        name=f"{args.network_name}-{suffix}",
        network=network.id,
        log_config={"metadata": "INCLUDE_ALL_METADATA"},
        opts=component.child(),
        **rule,
    )


def deny_all(direction: str, description: str) -> dict[str, pulumi.Input]:
    """A rule (for firewall_rule) denying all traffic in `direction` from or to anywhere."""
    ranges = "source_ranges" if direction == "INGRESS" else "destination_ranges"
    return {
        "direction": direction,
        "priority": DEFAULT_RULE_PRIORITY,
        "denies": [{"protocol": "all"}],
        ranges: [EVERYWHERE],
        "description": description,
    }
