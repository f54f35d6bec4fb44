"""A contract's validation errors, for people: where, what, and the likely fix.

One message per mistake: pydantic reports a bad value of a union field once per member, and the
same slip repeated over many columns (`float64` for `FLOAT64`) once per column; both become one
line here. Misspelt keys and wrongly cased values get a "did you mean".
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import ValidationError


def problems(error: ValidationError, raw: dict) -> list[str]:
    """One line per distinct mistake: 'columns[3] (body_mass_g).min: …'."""
    grouped: dict[tuple, list[tuple]] = {}
    seen: set[tuple] = set()
    for e in error.errors():
        loc = _field_loc(e["loc"])
        if loc in seen:  # another member of the same union, or a second error on one field
            continue
        seen.add(loc)
        message = _message(e, loc)
        shape = tuple("*" if isinstance(part, int) else part for part in loc)
        grouped.setdefault((shape, message), []).append(loc)
    lines = []
    for (_, message), locs in grouped.items():
        lines.append(f"{_where(raw, locs)}: {message}")
    return lines


def _field_loc(loc: tuple) -> tuple:
    """The location up to the contract's own field (dropping pydantic's union member tags)."""
    if loc and loc[0] == "columns":
        return loc[:3]
    if loc and loc[0] == "file":
        return loc[:2]
    return loc[:1]


def _fields(loc: tuple) -> list[str]:
    from contracts.model import Column, DataContract, FileRules

    model = DataContract
    if loc[:1] == ("columns",) and len(loc) == 3:
        model = Column
    elif loc[:1] == ("file",) and len(loc) == 2:
        model = FileRules
    return list(model.model_fields)


def _message(e: dict[str, Any], loc: tuple) -> str:
    if e["type"] == "extra_forbidden":
        key = str(loc[-1])
        return f"unknown key {key!r}" + _did_you_mean(key, _fields(loc))
    if e["type"] == "literal_error":
        choices = re.findall(r"'([^']*)'", e.get("ctx", {}).get("expected", ""))
        value = e.get("input")
        return f"{value!r} is not one of {', '.join(choices)}" + _did_you_mean(str(value), choices)
    return e["msg"].removeprefix("Value error, ")


def _did_you_mean(word: str, choices: list[str]) -> str:
    same_case = [c for c in choices if c.lower() == word.lower()]
    near = same_case or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def _where(raw: dict, locs: list[tuple]) -> str:
    """'columns[3] (body_mass_g).min', or 'columns[2] (a), [5] (b) +3 more.type' for a group."""
    first = _location(raw, locs[0])
    if len(locs) == 1:
        return first
    named = [_location(raw, loc).split(".")[0] for loc in locs]
    field = ".".join(str(p) for p in locs[0][2:])
    shown = ", ".join(named[:3]) + (f" +{len(named) - 3} more" if len(named) > 3 else "")
    return f"{shown}.{field}" if field else shown


def _location(raw: dict, loc: tuple) -> str:
    """'columns[3] (body_mass_g).min' rather than pydantic's bare tuple."""
    parts: list[str] = []
    node: object = raw
    for item in loc:
        if isinstance(item, int):
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            parts[-1] += f"[{item}]" + (f" ({name})" if isinstance(name, str) else "")
            node = entry
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"
