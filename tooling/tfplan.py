"""A stack's offline plan as Terraform plan JSON, for policy engines that read Terraform plans.

Every custom resource the program registers (tooling/plan/offline.py's record) becomes a resource of
`planned_values.root_module`, under the Terraform type pulumi-gcp maps its token to
(tooling/terraform_types.py), its inputs renamed as Terraform names them: snake_case, list blocks
singular, a block Pulumi flattened to one object back in a list of one. Map arguments (labels,
metadata) keep their keys. Each input that another resource's output fed (the record's property
dependencies) becomes an expression with `references` in `configuration`, so an engine's graph
connects a subnetwork to its network, a grant to its bucket.

What has no Terraform twin is listed, not dropped silently: the provider (in `configuration`
as provider config) and resources of other providers (the dynamic resource that rolls out the
served model). A `gcp:` type the mapping does not know is an error.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tooling.plan.offline import ResourceRecord, StackRecord
from tooling.terraform_types import TerraformType, load, source

GCP_PROVIDER = "pulumi:providers:gcp"
TERRAFORM_PROVIDER = "registry.terraform.io/hashicorp/google"
# Terraform plan readers require these fields. No Terraform ran: the version is that of the plan
# format the document follows; who wrote it is under `pulumi_export`.
FORMAT_VERSION = "1.2"
TERRAFORM_VERSION = "1.9.0"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass
class PlanExport:
    """One stack's Terraform plan JSON, and how it accounts for every resource of the plan."""

    stack: str
    plan: dict[str, Any]
    addresses: dict[str, str] = field(default_factory=dict)
    """Terraform address → Pulumi type, for every exported resource."""
    no_twin: Counter[str] = field(default_factory=Counter)
    """Pulumi types with no Terraform resource, and how many of each the plan declares."""
    planned: int = 0
    """Custom resources in the plan (components are groupings, not resources)."""


class ExportError(ValueError):
    """The plan holds something the export cannot represent faithfully."""


def export(record: StackRecord) -> PlanExport:
    types = load()
    result = PlanExport(stack=record.stack, plan={})
    addresses: dict[str, str] = {}  # URN → address, for references
    exported: list[tuple[ResourceRecord, TerraformType, str]] = []
    for resource in record.resources:
        if resource.is_component:
            continue
        result.planned += 1
        terraform = types.get(resource.type)
        if terraform is None:
            if resource.type.startswith("gcp:") and resource.type != GCP_PROVIDER:
                raise ExportError(
                    f"stack {record.stack}: {resource.type} ({resource.name}) has no Terraform "
                    f"type in tooling/terraform_types.json; regenerate it (its docstring says how)"
                )
            result.no_twin[resource.type] += 1
            continue
        address = f"{terraform.name}.{_terraform_name(resource.name)}"
        if address in result.addresses:
            raise ExportError(f"stack {record.stack}: two resources export as {address}")
        result.addresses[address] = resource.type
        addresses[resource.urn] = address
        exported.append((resource, terraform, address))
    result.plan = {
        "format_version": FORMAT_VERSION,
        "terraform_version": TERRAFORM_VERSION,
        "pulumi_export": {"stack": record.stack, "type_mapping": source()},
        "planned_values": {
            "root_module": {"resources": [_planned(r, t, a) for r, t, a in exported]}
        },
        "resource_changes": [_change(r, t, a) for r, t, a in exported],
        "configuration": {
            "provider_config": _provider_config(record),
            "root_module": {"resources": [_configured(r, t, a, addresses) for r, t, a in exported]},
        },
    }
    return result


def terraform_values(inputs: dict[str, Any], blocks: dict[str, Any]) -> dict[str, Any]:
    """Pulumi inputs as Terraform's arguments of a resource or block with these `blocks`."""
    values: dict[str, Any] = {}
    for key, value in inputs.items():
        if key.startswith("__"):  # the engine's bookkeeping (__defaults), not an argument
            continue
        name = argument_name(key, blocks)
        block = blocks.get(name)
        if block is None:
            values[name] = _revealed(value)
        elif value is None:
            values[name] = []
        else:
            items = [value] if block["one"] else list(value)
            values[name] = [
                terraform_values(item, block.get("blocks", {})) if isinstance(item, dict) else item
                for item in items
            ]
    return values


def argument_name(key: str, blocks: dict[str, Any]) -> str:
    """A Pulumi input's Terraform name: snake_case, and singular where Pulumi pluralized a list."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()
    if snake in blocks:
        return snake
    for plural, singular in (("ies", "y"), ("es", ""), ("s", "")):
        if snake.endswith(plural):
            candidate = snake[: -len(plural)] + singular
            if candidate in blocks and not blocks[candidate]["one"]:
                return candidate
    return snake


def _revealed(value: Any) -> Any:
    """Secrets recorded as {'secret': value} are checked like any value."""
    if isinstance(value, dict) and set(value) == {"secret"}:
        return value["secret"]
    return value


def _terraform_name(name: str) -> str:
    """Terraform names are identifiers (letters, digits, '_' and '-'); Pulumi's are freer."""
    return name if _NAME.match(name) else "_" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _identity(terraform: TerraformType, address: str) -> dict[str, Any]:
    """What every entry of a Terraform plan says about the resource it is about."""
    return {
        "address": address,
        "mode": "managed",
        "type": terraform.name,
        "name": address.split(".", 1)[1],
    }


def _planned(resource: ResourceRecord, terraform: TerraformType, address: str) -> dict[str, Any]:
    return {
        **_identity(terraform, address),
        "provider_name": TERRAFORM_PROVIDER,
        "schema_version": 0,
        "values": terraform_values(resource.inputs, terraform.blocks),
        "sensitive_values": {},
    }


def _change(resource: ResourceRecord, terraform: TerraformType, address: str) -> dict[str, Any]:
    return {
        **_identity(terraform, address),
        "provider_name": TERRAFORM_PROVIDER,
        "change": {
            "actions": ["create"],
            "before": None,
            "after": terraform_values(resource.inputs, terraform.blocks),
            "after_unknown": {},
        },
    }


def _configured(
    resource: ResourceRecord, terraform: TerraformType, address: str, addresses: dict[str, str]
) -> dict[str, Any]:
    """The resource's configuration: which arguments reference which other resources."""
    expressions = {}
    for key, urns in sorted(resource.property_dependencies.items()):
        references = [
            ref for urn in urns if urn in addresses for ref in _references(addresses[urn])
        ]
        if references:
            expressions[argument_name(key, terraform.blocks)] = {"references": references}
    return {
        **_identity(terraform, address),
        "provider_config_key": "google",
        "expressions": expressions,
        "schema_version": 0,
    }


def _references(address: str) -> list[str]:
    # As Terraform lists them: the attribute read (an id, for want of knowing which) and the
    # resource itself.
    return [f"{address}.id", address]


def _provider_config(record: StackRecord) -> dict[str, Any]:
    providers = record.of_type(GCP_PROVIDER)
    inputs = providers[0].inputs if providers else {}
    return {
        "google": {
            "name": "google",
            "full_name": TERRAFORM_PROVIDER,
            "expressions": {
                key: {"constant_value": inputs[key]}
                for key in ("project", "region")
                if key in inputs
            },
        }
    }
