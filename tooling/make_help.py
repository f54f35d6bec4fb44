"""`make help`: every target with a `## ` comment, in the groups the Makefile names, in 100 columns.

    python3 tooling/make_help.py Makefile "TITLE|target target …" …

Each group is its title and the targets it lists, in that order; a target's description is its
`## ` comment, wrapped under it. A described target no group lists is shown last, under a heading
that says where to add it, and a listed name with no described target says so: a new target is
never hidden. Standard library only, so it runs before any virtualenv exists (any Python 3).
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

WIDTH = 100
NAME_COLUMN = 15  # names padded to this: the longest (14) keeps two spaces before its text
DESCRIBED = re.compile(r"^(?P<target>[a-z0-9-]+):.*?## (?P<text>.*)$")
UNGROUPED = "not in a group (add each to a HELP_ list in the Makefile):"
UNKNOWN = "(listed in a HELP_ group, but no target has this name and a ## comment)"


def described_targets(makefile: str) -> dict[str, str]:
    """Target -> its `## ` comment, in the Makefile's order."""
    found = (DESCRIBED.match(line) for line in makefile.splitlines())
    return {m["target"]: m["text"].strip() for m in found if m}


def parse_group(spec: str) -> tuple[str, list[str]]:
    """'TITLE|a b c' -> ('TITLE', ['a', 'b', 'c'])."""
    title, _, targets = spec.partition("|")
    return title.strip(), targets.split()


def entry(target: str, text: str) -> list[str]:
    """One target's lines: its name, then its description wrapped to WIDTH under itself."""
    head = f"  make {target:<{NAME_COLUMN}} "
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=head,
        subsequent_indent=" " * len(head),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [head.rstrip()]


def render(described: dict[str, str], groups: list[tuple[str, list[str]]]) -> list[str]:
    lines: list[str] = []
    listed: set[str] = set()
    for title, targets in groups:
        lines += ["", title]
        for target in targets:
            lines += entry(target, described.get(target, UNKNOWN))
            listed.add(target)
    ungrouped = [target for target in described if target not in listed]
    if ungrouped:
        lines += ["", UNGROUPED]
        for target in ungrouped:
            lines += entry(target, described[target])
    return lines[1:]  # no blank line before the first group


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: make_help.py MAKEFILE 'TITLE|target …' …", file=sys.stderr)
        return 2
    described = described_targets(Path(argv[0]).read_text(encoding="utf-8"))
    print("\n".join(render(described, [parse_group(spec) for spec in argv[1:]])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
