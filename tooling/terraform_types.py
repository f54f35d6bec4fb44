"""Pulumi type tokens as Terraform resource types, through pulumi-gcp's own mapping.

pulumi-gcp is generated from the Terraform google provider. Its build records, for every Terraform
resource, the Pulumi token it became and the shape of its nested blocks: which ones Pulumi
flattened into one object (`maxItemsOne`) and which stay lists (and got a plural name). That
record is `provider/cmd/pulumi-resource-gcp/bridge-metadata.json` in the pulumi/pulumi-gcp
repository. `terraform_types.json` beside this module keeps the part of it for the provider
modules this platform uses; regenerate it from a pulumi-gcp checkout with

    python -m tooling.terraform_types --bridge-metadata PATH/bridge-metadata.json --commit SHA
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

MAPPING_FILE = Path(__file__).with_name("terraform_types.json")
# The provider modules (the `gcp:<module>/…` part of a token) whose resources are kept: those the
# platform declares today and their neighbours (networking, scheduling, secrets) it may grow into.
MODULES = (
    "artifactregistry", "bigquery", "billing", "cloudbuild", "cloudfunctionsv2", "cloudrunv2",
    "cloudscheduler", "colab", "compute", "dns", "eventarc", "iam", "kms", "logging", "monitoring",
    "networkconnectivity", "notebooks", "organizations", "projects", "pubsub", "secretmanager",
    "serviceaccount", "servicenetworking", "storage", "vertex", "workbench",
)  # fmt: skip


@dataclass(frozen=True)
class TerraformType:
    """One Terraform resource type and the block structure of its arguments."""

    name: str
    """The Terraform type, e.g. `google_storage_bucket`."""
    blocks: dict[str, Any]
    """Nested blocks by Terraform name: `{"one": bool, "blocks": {…}}` (`one`: at most one item,
    which Pulumi flattens into an object). Arguments not listed are scalars or maps."""


@cache
def load() -> dict[str, TerraformType]:
    """Pulumi token → Terraform type, for the modules kept in terraform_types.json."""
    data = json.loads(MAPPING_FILE.read_text())
    return {
        token: TerraformType(entry["terraform"], entry.get("blocks", {}))
        for token, entry in data["resources"].items()
    }


def source() -> str:
    """Where the committed mapping was taken from."""
    return json.loads(MAPPING_FILE.read_text())["source"]


def _blocks(fields: dict[str, Any]) -> dict[str, Any]:
    """bridge-metadata's field tree, reduced to what the export needs."""
    out = {}
    for name, field in sorted(fields.items()):
        children = _blocks(field.get("elem", {}).get("fields", {}))
        entry: dict[str, Any] = {"one": bool(field.get("maxItemsOne"))}
        if children:
            entry["blocks"] = children
        out[name] = entry
    return out


def generate(bridge_metadata: Path, commit: str) -> dict[str, Any]:
    resources = json.loads(bridge_metadata.read_text())["auto-aliasing"]["resources"]
    kept = {}
    for terraform, entry in sorted(resources.items()):
        token = entry["current"]
        if token.split(":")[1].split("/")[0] not in MODULES:
            continue
        kept[token] = {"terraform": terraform}
        blocks = _blocks(entry.get("fields", {}))
        if blocks:
            kept[token]["blocks"] = blocks
    return {
        "source": f"pulumi/pulumi-gcp {commit} provider/cmd/pulumi-resource-gcp/"
        "bridge-metadata.json",
        "modules": list(MODULES),
        "resources": dict(sorted(kept.items())),
    }


def _one_type_a_line(mapping: dict[str, Any]) -> str:
    """JSON with one resource type a line: a regenerated file's diff names the types it changes."""
    rows = ",\n".join(
        f"  {json.dumps(token)}: {json.dumps(entry, separators=(',', ':'))}"
        for token, entry in mapping["resources"].items()
    )
    head = {key: value for key, value in mapping.items() if key != "resources"}
    return json.dumps(head)[:-1] + ', "resources": {\n' + rows + "\n}}\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tooling.terraform_types")
    parser.add_argument("--bridge-metadata", type=Path, required=True)
    parser.add_argument("--commit", required=True, help="the pulumi-gcp commit it was read at")
    args = parser.parse_args(argv)
    mapping = generate(args.bridge_metadata, args.commit)
    MAPPING_FILE.write_text(_one_type_a_line(mapping))
    print(f"wrote {MAPPING_FILE.name}: {len(mapping['resources'])} resource types")


if __name__ == "__main__":
    main()
