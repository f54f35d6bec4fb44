"""Checks that need only the first bytes of the file: size, encoding, line endings, header.

A UTF-8 byte-order mark and CRLF line endings (Excel's "CSV UTF-8") are accepted unless the
contract opts out; header names are matched to the contract's `source` (or `name`) in any order
unless it asks for the exact order.

They run before any warehouse work, on at most HEAD_BYTES read from Cloud Storage, so a file with
the wrong shape is rejected in milliseconds whatever its size.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from contracts import DataContract

if TYPE_CHECKING:
    from contracts.model import FileRules

from .objects import Check

HEAD_BYTES = 64 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = {
    b"\xff\xfe": "a UTF-16 byte-order mark: the file is UTF-16, the contract requires UTF-8",
    b"\xfe\xff": "a UTF-16 byte-order mark: the file is UTF-16, the contract requires UTF-8",
}
_OTHER_DELIMITERS = (";", "\t", "|", ",")


def check_head(head: bytes, size: int, contract: DataContract) -> list[Check]:
    """Every head check in order; the first failure ends the list (the rest would echo it)."""
    checks: list[Check] = []
    for name, problem in _checks(head, size, contract):
        if problem is not None:
            return [*checks, problem]
        checks.append(Check.ok(name))
    return checks


def _checks(head: bytes, size: int, contract: DataContract) -> Iterator[tuple[str, Check | None]]:
    """(name, its failure or None) of each check in order. Lazy: check_head stops asking at the
    first failure, so no check runs on what an earlier one refused."""
    rules = contract.file
    yield "size", _size_problem(size, rules)
    complete = size <= len(head)  # the head is the whole file
    text, problem = _text(head, rules, complete=complete)
    yield "encoding", problem
    end = text.find("\n")
    header_line = text if end < 0 else text[:end]
    yield "line_endings", _first_line_problem(header_line, rules, whole=complete or end >= 0)
    header = _parse_header(header_line, rules.delimiter)
    yield "delimiter", _delimiter_problem(header_line, header, contract)
    yield "header", _header_problem(header, contract)
    body = text[end + 1 :] if end >= 0 else ""
    no_rows = Check.failed("rows.present", "the file has a header but no data rows")
    yield "rows.present", no_rows if complete and not body.strip() else None


def _size_problem(size: int, rules: FileRules) -> Check | None:
    if size == 0:
        return Check.failed("size.empty", "the file is empty (0 bytes)")
    if size > rules.max_bytes:
        return Check.failed(
            "size.max_bytes",
            f"the file is {size:,} bytes; the contract accepts at most {rules.max_bytes:,}",
        )
    return None


def _text(head: bytes, rules: FileRules, *, complete: bool) -> tuple[str, Check | None]:
    """The head as text (a UTF-8 byte-order mark taken off), or why it is not UTF-8 text."""
    if head.startswith(_UTF8_BOM):
        if rules.bom == "reject":
            return "", Check.failed("encoding.bom", "the file starts with a UTF-8 byte-order mark "
                                    "(BOM); the contract sets bom: reject (save it as UTF-8 "
                                    "without BOM)")  # fmt: skip
        head = head[len(_UTF8_BOM) :]
    for bom, what in _UTF16_BOMS.items():
        if head.startswith(bom):
            return "", Check.failed("encoding.bom", f"the file starts with {what}")
    text, bad_at = _decode(head, complete=complete)
    if bad_at is None:
        return text, None
    line = head[:bad_at].count(b"\n") + 1
    return "", Check.failed(
        "encoding.utf8",
        f"the file is not UTF-8: byte 0x{head[bad_at]:02X} on line {line} "
        f"(the contract requires {rules.encoding})",
        samples=[{"line": line, "text": head[head.rfind(b"\n", 0, bad_at) + 1 :][:80].decode(
            "utf-8", errors="replace")}],
    )  # fmt: skip


def _first_line_problem(line: str, rules: FileRules, *, whole: bool) -> Check | None:
    """A first line the head does not hold whole, or one ending in CRLF where LF is required."""
    if not whole:
        return Check.failed("header.columns", f"the first line is longer than {HEAD_BYTES:,} bytes")
    if line.endswith("\r") and rules.line_endings == "lf":
        return Check.failed(
            "line_endings",
            "the file has Windows (CRLF) line endings; the contract requires Unix (LF) ones",
        )
    return None


def _delimiter_problem(line: str, header: list[str], contract: DataContract) -> Check | None:
    """A header of one column that another delimiter would split into the contract's columns."""
    delimiter, expected = contract.file.delimiter, contract.headers
    if len(header) == 1 and len(expected) > 1:
        for other in _OTHER_DELIMITERS:
            if other != delimiter and len(line.split(other)) >= len(expected) - 1:
                return Check.failed(
                    "delimiter",
                    f"the header is separated by {other!r}; the contract's delimiter is "
                    f"{delimiter!r}",
                    samples=[{"line": 1, "text": line[:200]}],
                )
    return None


def staging_columns(head: bytes, contract: DataContract) -> list[str]:
    """The staging table's columns, in the file's order: each header's contract column name.

    Headers the contract does not name (kept only with extra_columns: ignore) are staged as
    `_extra_<position>` and never loaded. Call after check_head passed.
    """
    text, _ = _decode(head.removeprefix(_UTF8_BOM), complete=False)
    header = _parse_header(text.split("\n", 1)[0], contract.file.delimiter)
    by_header = {c.header: c.name for c in contract.columns}
    return [by_header.get(h, f"_extra_{i + 1}") for i, h in enumerate(header)]


def _parse_header(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line.rstrip("\r")], delimiter=delimiter))


def _header_problem(header: list[str], contract: DataContract) -> Check | None:
    """The header's mismatch with the contract (by name; by position too with exact order)."""
    expected = contract.headers
    if len(header) == len(expected) + 1 and header[-1] == "" and header[:-1] == expected:
        return Check.failed(
            "header.trailing_delimiter",
            f"the header ends with a delimiter (an unnamed column {len(header)}); remove the "
            "trailing delimiter from every line",
        )
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        return Check.failed(
            "header.duplicate", f"the header repeats column(s) {', '.join(duplicated)}"
        )
    missing = [c for c in expected if c not in header]
    extra = [h for h in header if h not in expected]
    if contract.file.extra_columns == "ignore" and not missing:
        extra = []
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(repr(m) for m in missing)}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(repr(e) for e in extra)}")
        near = {}
        for e in extra:
            close = [m for m in missing if e.strip().lower() == m.lower()]
            close = close or difflib.get_close_matches(e, missing, n=1, cutoff=0.75)
            if close:
                near[e] = close[0]
        hint = "".join(f"; {e!r} should be spelled {m!r}" for e, m in near.items())
        return Check.failed(
            "header.columns",
            f"the header does not match contract {contract.name} v{contract.version}: "
            + "; ".join(parts) + hint,
            samples=[{"expected": expected, "found": header}],
        )  # fmt: skip
    if contract.file.header_order == "exact" and header != expected:
        first = next(i for i, (h, e) in enumerate(zip(header, expected, strict=False)) if h != e)
        return Check.failed(
            "header.order",
            f"the columns are in the wrong order: column {first + 1} is {header[first]!r}, "
            f"the contract expects {expected[first]!r} (header_order: exact; order: "
            f"{', '.join(expected)})",
            samples=[{"expected": expected, "found": header}],
        )
    return None


def _decode(head: bytes, *, complete: bool) -> tuple[str, int | None]:
    """The head as text, and the offset of the first byte that is not UTF-8 (None if all are).

    A multi-byte character cut by the end of an incomplete head is not an error.
    """
    try:
        return head.decode("utf-8"), None
    except UnicodeDecodeError as err:
        if not complete and err.reason == "unexpected end of data":
            return head[: err.start].decode("utf-8"), None
        return "", err.start
