"""The reviewed skip list: each finding of the policy engine the project accepts, and why.

tooling/compliance_skips.yaml holds a list of entries:

    - check: CKV_GCP_49                     # the engine's check id
      resource: google_project_iam_member.… # the Terraform address of the exported resource
      stacks: [staging]                     # optional: the stacks it applies to (default: all)
      reason: why the finding is accepted rather than fixed

docs/security.md renders it (make docs), so a reviewer reads every trade-off in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

SKIPS_FILE = Path(__file__).with_name("compliance_skips.yaml")
_CHECK = re.compile(r"^CKV2?_[A-Z0-9]+_[0-9]+$")
_ADDRESS = re.compile(r"^google_[a-z0-9_]+\.[A-Za-z_][A-Za-z0-9_-]*$")
_KEYS = {"check", "resource", "reason", "stacks"}
MIN_REASON = 20
"""A reason shorter than this cannot say why (\"accepted\", \"by design\")."""


class SkipListError(ValueError):
    """The skip list is malformed: the message names the file, the entry and the key."""


class _Finding(Protocol):
    check: str
    resource: str


@dataclass(frozen=True)
class Skip:
    check: str
    resource: str
    reason: str
    stacks: tuple[str, ...] = ()
    """The stacks it applies to; empty: every stack."""

    def applies_to(self, stacks: Iterable[str]) -> list[str]:
        return [s for s in stacks if not self.stacks or s in self.stacks]

    def matches(self, stack: str, finding: _Finding) -> bool:
        return (
            bool(self.applies_to([stack]))
            and finding.check == self.check
            and finding.resource == self.resource
        )


def load_skips(path: Path = SKIPS_FILE) -> list[Skip]:
    data = yaml.safe_load(path.read_text()) or []
    if not isinstance(data, list):
        raise SkipListError(f"{path.name}: expected a list of entries, got {type(data).__name__}")
    skips = [_entry(path.name, number, entry) for number, entry in enumerate(data, start=1)]
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    for number, skip in enumerate(skips, start=1):
        key = (skip.check, skip.resource, skip.stacks)
        if key in seen:
            raise SkipListError(f"{path.name}: entry {number}: {skip.check} {skip.resource} twice")
        seen.add(key)
    return skips


def _entry(file: str, number: int, entry: Any) -> Skip:
    where = f"{file}: entry {number}"
    if not isinstance(entry, dict):
        raise SkipListError(f"{where}: expected a mapping with check, resource, reason")
    unknown = set(entry) - _KEYS
    if unknown:
        raise SkipListError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    for key in ("check", "resource", "reason"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise SkipListError(f"{where}: '{key}' is missing or empty")
    if not _CHECK.match(entry["check"]):
        raise SkipListError(f"{where}: check {entry['check']!r} is not a check id (CKV_GCP_49)")
    if not _ADDRESS.match(entry["resource"]):
        raise SkipListError(
            f"{where}: resource {entry['resource']!r} is not a Terraform address (type.name)"
        )
    if len(entry["reason"].strip()) < MIN_REASON:
        raise SkipListError(f"{where}: the reason must say why (at least {MIN_REASON} characters)")
    stacks = entry.get("stacks", [])
    if not isinstance(stacks, list) or not all(isinstance(s, str) for s in stacks):
        raise SkipListError(f"{where}: 'stacks' must be a list of stack names")
    return Skip(entry["check"], entry["resource"], " ".join(entry["reason"].split()), tuple(stacks))
