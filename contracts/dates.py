"""Date and timestamp formats of a contract: the few directives both warehouses parse alike.

A DATE or TIMESTAMP column is read with an explicit format, never guessed: BigQuery runs
`SAFE.PARSE_DATE(format, value)` / `SAFE.PARSE_TIMESTAMP(format, value)`, DuckDB `TRY_STRPTIME`
with the same format (function_src/ingestion/duckdb_warehouse.py). Both parsers are lenient in
different ways (BigQuery allows surrounding spaces, DuckDB reads `%Y` from two digits, so
`11/11/07` with `%m/%d/%Y` is the year 7), so every value must first match the format's *guard*,
a regular expression that admits exactly the digits each directive stands for. A value that
passes the guard parses to the same date on both engines, or fails (e.g. 31 February) on both.
docs/contracts.md has the table of BigQuery's documented results this relies on.
"""

from __future__ import annotations

import re

# Directive -> the digits it admits. One or two digits for month, day and time fields (what
# field tools write: 1/2/2007); exactly four for %Y and two for %y (00-68 -> 20xx, 69-99 -> 19xx
# on both engines).
DIRECTIVES: dict[str, str] = {
    "%Y": "[0-9]{4}",
    "%y": "[0-9]{2}",
    "%m": "(0?[1-9]|1[0-2])",
    "%d": "(0?[1-9]|[12][0-9]|3[01])",
    "%H": "([01]?[0-9]|2[0-3])",
    "%M": "[0-5]?[0-9]",
    "%S": "[0-5]?[0-9]",
}
DATE_PARTS = ("%Y", "%y", "%m", "%d")
TIME_PARTS = ("%H", "%M", "%S")
DEFAULT_FORMATS = {"DATE": "%Y-%m-%d", "TIMESTAMP": "%Y-%m-%d %H:%M:%S"}
# Separators a format may hold between directives (letters are kept for a literal T or Z).
_LITERAL = re.compile(r"[-/. :TZ_,]")
_TOKEN = re.compile(r"%.|.", re.DOTALL)


def format_problem(fmt: str, column_type: str) -> str | None:
    """Why `fmt` cannot describe a column of `column_type`, or None when it can."""
    tokens = _TOKEN.findall(fmt)
    unknown = [t for t in tokens if t.startswith("%") and t not in DIRECTIVES]
    if unknown:
        return (
            f"format {fmt!r} uses {', '.join(unknown)}; supported: {' '.join(DIRECTIVES)} "
            "with separators - / . : space T Z , _"
        )
    odd = [t for t in tokens if not t.startswith("%") and not _LITERAL.fullmatch(t)]
    if odd:
        return f"format {fmt!r} has {odd[0]!r} between its parts; use - / . : space T Z , _"
    used = [t for t in tokens if t in DIRECTIVES]
    if len(set(used)) != len(used):
        return f"format {fmt!r} repeats a directive"
    if ("%Y" in used) == ("%y" in used) or "%m" not in used or "%d" not in used:
        return f"format {fmt!r} needs %m, %d and one of %Y or %y"
    if column_type == "DATE" and any(t in used for t in TIME_PARTS):
        return f"format {fmt!r} has time parts; the column is a DATE (use TIMESTAMP)"
    if column_type == "TIMESTAMP" and not all(t in used for t in ("%H", "%M")):
        return f"format {fmt!r} needs at least %H and %M for a TIMESTAMP"
    return None


def guard(fmt: str) -> str:
    """The regular expression (RE2 syntax) a value must match before it is parsed with `fmt`."""
    parts = [DIRECTIVES.get(t, "[.]" if t == "." else t) for t in _TOKEN.findall(fmt)]
    return "^" + "".join(parts) + "$"
