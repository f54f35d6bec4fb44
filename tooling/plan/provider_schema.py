"""The input schema of a resource type, read from the installed provider package's own types.

pulumi-gcp (and pulumiverse-time) generate one `*Args` class per resource and per nested input
object, from the provider's schema: which inputs exist (by their Pulumi name, as the engine sends
them), which are required, their types, and, in each input's docstring, the enum values the
Terraform schema validates ("Possible values are: `A`, `B`"). `schema_of(token)` turns those into
a plain tree the offline plan checks every registered resource against (provider_rules.py).

Reading the types costs about as much as planning a stack, so the trees are cached as JSON under
build/, keyed by the packages' versions: a new provider version reads them afresh.
"""

from __future__ import annotations

import collections.abc
import importlib
import importlib.metadata
import json
import re
import typing
from pathlib import Path
from typing import Any

from stacks.config import PROJECT_ROOT

CACHE_DIR = PROJECT_ROOT / "build" / "provider-schema"
# Token package -> (Python package, distribution whose version keys the cache).
PACKAGES = {"gcp": ("pulumi_gcp", "pulumi_gcp"), "time": ("pulumiverse_time", "pulumiverse_time")}
# "Possible values are: `A`, `B`, `C`." / "Possible values: A B C": how the generated docstrings
# state the enum values the Terraform schema validates (magic-modules `enum_values`).
_ENUM_QUOTED = re.compile(r"Possible values(?: are)?:\s*((?:`[^`]+`(?:,\s*|\s+and\s+|\s+or\s+)?)+)")
_ENUM_BARE = re.compile(r"Possible values:\s*((?:[A-Z][A-Z0-9_]*\s*)+)")

Schema = dict[str, Any]
"""{"kind": "str"|"int"|"float"|"bool"|"any"} | {"kind": "list", "item": Schema} |
{"kind": "map", "value": Schema} | {"kind": "object", "class": name, "props": {name: Prop}},
Prop = {"schema": Schema, "required": bool, "enum": [values] | None}."""


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class SchemaCache:
    """Schemas by resource token, read from the package once per version and kept on disk."""

    def __init__(self, directory: Path = CACHE_DIR):
        self.directory = directory
        self._loaded: dict[str, dict[str, Schema | None]] = {}
        self._dirty: set[str] = set()

    def _file(self, package: str) -> Path:
        module, distribution = PACKAGES[package]
        return self.directory / f"{module}-{_version(distribution)}.json"

    def _table(self, package: str) -> dict[str, Schema | None]:
        if package not in self._loaded:
            path = self._file(package)
            try:
                self._loaded[package] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._loaded[package] = {}
        return self._loaded[package]

    def schema(self, token: str) -> Schema | None:
        """The token's input schema; None for types no package here describes."""
        package = token.split(":", 1)[0]
        if package not in PACKAGES:
            return None
        table = self._table(package)
        if token not in table:
            table[token] = read_schema(token)
            self._dirty.add(package)
        return table[token]

    def save(self) -> None:
        """Write what was read since loading (best effort: a read-only tree only costs time)."""
        for package in self._dirty:
            path = self._file(package)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(self._loaded[package], sort_keys=True), "utf-8")
            except OSError:
                pass
        self._dirty.clear()


def args_class(token: str) -> type | None:
    """`gcp:storage/bucket:Bucket` -> pulumi_gcp.storage.BucketArgs (None if there is none)."""
    package, module_path, name = token.split(":")
    python_package = PACKAGES[package][0]
    module = module_path.split("/")[0]
    qualified = python_package if module == "index" else f"{python_package}.{module}"
    try:
        return getattr(importlib.import_module(qualified), f"{name}Args", None)
    except ImportError:
        return None


def read_schema(token: str) -> Schema | None:
    cls = args_class(token)
    return None if cls is None else _object(cls, {})


def _object(cls: type, seen: dict[type, Schema]) -> Schema:
    from pulumi import _types

    if cls in seen:  # recursive input types (rare): the reference is enough
        return {"kind": "object", "class": cls.__name__, "props": seen[cls]["props"]}
    node: Schema = {"kind": "object", "class": cls.__name__, "props": {}}
    seen[cls] = node
    required = _types._required_property_names(cls)
    docs = {
        pulumi_name: (prop.fget.__doc__ or "")
        for _, pulumi_name, prop in _types._py_properties(cls)
    }
    for pulumi_name, hint in _types.input_type_types(cls).items():
        node["props"][pulumi_name] = {
            "schema": _type(hint, seen),
            "required": pulumi_name in required,
            "enum": _enum(docs.get(pulumi_name, "")),
        }
    return node


def _type(hint: Any, seen: dict[type, Schema]) -> Schema:
    from pulumi import _types

    hint = _types.unwrap_type(hint)
    origin = typing.get_origin(hint)
    if origin in (list, collections.abc.Sequence):
        return {"kind": "list", "item": _type(typing.get_args(hint)[0], seen)}
    if origin in (dict, collections.abc.Mapping):
        return {"kind": "map", "value": _type(typing.get_args(hint)[1], seen)}
    if origin is typing.Union:
        # Input[T] inside a container: Union[T, Awaitable[T], Output[None]].
        return _type(typing.get_args(hint)[0], seen)
    if isinstance(hint, type) and _types.is_input_type(hint):
        return _object(hint, seen)
    kinds = {str: "str", int: "int", float: "float", bool: "bool"}
    return {"kind": kinds.get(hint, "any")} if isinstance(hint, type) else {"kind": "any"}


def _enum(doc: str) -> list[str] | None:
    doc = re.sub(r"\s+", " ", doc)
    if match := _ENUM_QUOTED.search(doc):
        return re.findall(r"`([^`]+)`", match[1])
    if match := _ENUM_BARE.search(doc):
        return match[1].split()
    return None
