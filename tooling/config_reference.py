"""docs/configuration.md: every key of a stack file, generated from the config model.

The model (stacks/config.py) is the one description of the keys: their types, defaults, bounds
and meaning come from it, so the page cannot drift (a test compares it with the committed page).
"""

from __future__ import annotations

import json
from typing import Any

from stacks.config import NAMESPACE, StackConfig


def configuration_reference() -> str:
    """docs/configuration.md: every key of a stack file, with type, default and meaning."""
    lines = [
        "# Stack configuration reference",
        "",
        "Generated from `stacks/config.py` by `make docs`; a test fails when it is out of date.",
        "Every key lives in a stack file (`Pulumi.<stack>.yaml`) under `config:`. Unknown keys",
        "are errors, and every error names the stack file and the key.",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    schema = StackConfig.model_json_schema()
    definitions = schema.get("$defs", {})

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = definitions[node["$ref"].split("/")[-1]]
        return node

    def walk(model_schema: dict, path: str) -> None:
        required = set(model_schema.get("required", []))
        for name, prop in model_schema.get("properties", {}).items():
            key = f"{path}{name}" if path.endswith(":") else f"{path}.{name}"
            target = resolve(prop)
            if target.get("type") == "object" and "properties" in target:
                lines.append(f"| `{key}` | section | | {_first_line(target.get('description'))} |")
                walk(target, key)
                continue
            default = "required" if name in required else f"`{json.dumps(prop.get('default'))}`"
            lines.append(
                f"| `{key}` | {_schema_type(prop, resolve)} | {default} | "
                f"{_first_line(prop.get('description') or target.get('description'))} |"
            )

    walk(schema, f"{NAMESPACE}:")
    return "\n".join(lines) + "\n"


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def _schema_type(prop: dict, resolve: Any) -> str:
    """A readable type from a JSON schema node, with its constraints."""
    options = prop.get("anyOf", [prop])
    parts = []
    for option in options:
        option = resolve(option)
        kind = option.get("type", "any")
        if kind == "null":
            continue
        if kind == "array":
            kind = f"list of {_schema_type(option.get('items', {}), resolve)}"
        elif kind == "object":
            values = option.get("additionalProperties")
            inner = _schema_type(values, resolve) if isinstance(values, dict) else "any"
            kind = f"map of {inner}"
        limits = [
            f"{sign} {option[bound]}"
            for bound, sign in (
                ("minimum", ">="),
                ("exclusiveMinimum", ">"),
                ("maximum", "<="),
                ("exclusiveMaximum", "<"),
            )
            if bound in option
        ]
        if "pattern" in option:
            limits.append(f"matching `{option['pattern']}`".replace("|", "\\|"))
        parts.append(kind + (f" ({', '.join(limits)})" if limits else ""))
    text = " or ".join(dict.fromkeys(parts)) or "any"
    return text + (", optional" if len(options) > 1 and len(parts) < len(options) else "")
