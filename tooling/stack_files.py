"""Reading and editing the stack files round-trip: comments, order and other keys stay as written.

`make init`, `make promote` and the bootstrap's writes go through here, so a re-run edits the
lines it owns and nothing else. PyYAML (stacks/config.py) reads; ruamel.yaml keeps what a person
wrote beside the values.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from stacks.config import NAMESPACE

# Values the committed stack files carry as examples: none may survive `make init`.
EXAMPLE_MARKERS = ("acme", "example.com", "example.org", "123456789012", "012345-6789AB-CDEF01")


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never re-wrap a long value onto a continuation line
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def load(path: Path) -> CommentedMap:
    return parse(path.read_text(encoding="utf-8"), path.name)


def parse(text: str, source: str) -> CommentedMap:
    """A stack file's text as an editable document (`source` names it in the error)."""
    document = _yaml().load(text)
    if not isinstance(document, CommentedMap) or not isinstance(document.get("config"), dict):
        raise ValueError(f"{source}: has no `config:` mapping")
    return document


def dump(document: CommentedMap) -> str:
    out = io.StringIO()
    _yaml().dump(document, out)
    return out.getvalue()


def plain(node: Any) -> Any:
    """The document as plain dicts and lists, as PyYAML would have read it."""
    return json.loads(json.dumps(node))


def full_key(path: str) -> tuple[str, list[str]]:
    """`platform.ci.state_bucket` -> ('tabular-mlops:platform', ['ci', 'state_bucket'])."""
    head, *rest = path.split(".")
    return f"{NAMESPACE}:{head}", rest


def get(document: CommentedMap, path: str) -> Any:
    top, rest = full_key(path)
    node = document["config"].get(top)
    for part in rest:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def put(document: CommentedMap, path: str, value: Any) -> bool:
    """Set one value, creating the sections on the way; True when it changed.

    A list is edited in place, so its flow style and the comment after it stay.
    """
    top, rest = full_key(path)
    parent, key = document["config"], top
    for part in rest:
        if not isinstance(parent.get(key), dict):
            parent[key] = CommentedMap()
        parent, key = parent[key], part
    current = parent.get(key)
    if plain(current) == plain(value):
        return False
    if isinstance(current, CommentedSeq) and isinstance(value, list):
        current[:] = value
    else:
        parent[key] = value
    return True


def example_values(node: Any, path: str = "") -> list[str]:
    """Key paths whose value still holds an example (acme-…, example.com, the mock number)."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in example_values(v, f"{path}.{k}".strip("."))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in example_values(v, f"{path}[{i}]")]
    if isinstance(node, str) and any(marker in node for marker in EXAMPLE_MARKERS):
        return [path]
    return []


def is_example(value: Any) -> bool:
    return bool(example_values(plain(value)))
