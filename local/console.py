"""Console output of the local commands: every line fits a terminal of 100 columns."""

from __future__ import annotations

import textwrap


def fit(message: str, indent: str, width: int = 100) -> str:
    """A message within `width` columns: wrapped at spaces, continued further indented (a word
    longer than a line, such as a URI, keeps its own line)."""
    lead = indent + " " * (len(message) - len(message.lstrip(" ")))
    return "\n".join(
        textwrap.wrap(
            message.strip(" "),
            width,
            initial_indent=lead,
            subsequent_indent=lead + "    ",
            break_long_words=False,
            break_on_hyphens=False,
        )
        or [indent]
    )
