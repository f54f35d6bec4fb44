"""Checks that need only the first bytes of the file: size, encoding, line endings, header.

They run before any warehouse work, on at most HEAD_BYTES read from Cloud Storage, so a file with
the wrong shape is rejected in milliseconds whatever its size.
"""

from __future__ import annotations

import csv

from contracts import DataContract

from .objects import Check

HEAD_BYTES = 64 * 1024
_BOMS = {
    b"\xef\xbb\xbf": "a UTF-8 byte-order mark (BOM); save the file as UTF-8 without BOM",
    b"\xff\xfe": "a UTF-16 byte-order mark: the file is UTF-16, the contract requires UTF-8",
    b"\xfe\xff": "a UTF-16 byte-order mark: the file is UTF-16, the contract requires UTF-8",
}
_OTHER_DELIMITERS = (";", "\t", "|", ",")


def check_head(head: bytes, size: int, contract: DataContract) -> list[Check]:
    """Every head check in order; the first failure ends the list (the rest would echo it)."""
    rules = contract.file
    checks: list[Check] = []

    def fail(name: str, reason: str, **details) -> list[Check]:
        return [*checks, Check.failed(name, reason, **details)]

    if size == 0:
        return fail("size.empty", "the file is empty (0 bytes)")
    if size > rules.max_bytes:
        return fail(
            "size.max_bytes",
            f"the file is {size:,} bytes; the contract accepts at most {rules.max_bytes:,}",
        )
    checks.append(Check.ok("size"))
    for bom, what in _BOMS.items():
        if head.startswith(bom):
            return fail("encoding.bom", f"the file starts with {what}")
    text, bad_at = _decode(head, complete=size <= len(head))
    if bad_at is not None:
        line = head[:bad_at].count(b"\n") + 1
        return fail(
            "encoding.utf8",
            f"the file is not UTF-8: byte 0x{head[bad_at]:02X} on line {line} "
            f"(the contract requires {rules.encoding})",
            samples=[{"line": line, "text": head[head.rfind(b"\n", 0, bad_at) + 1 :][:80].decode(
                "utf-8", errors="replace")}],
        )  # fmt: skip
    checks.append(Check.ok("encoding"))

    end = text.find("\n")
    if end < 0 and size > len(head):
        return fail("header.columns", f"the first line is longer than {HEAD_BYTES:,} bytes")
    header_line = text if end < 0 else text[:end]
    if header_line.endswith("\r") and rules.line_endings == "lf":
        return fail(
            "line_endings",
            "the file has Windows (CRLF) line endings; the contract requires Unix (LF) ones",
        )
    checks.append(Check.ok("line_endings"))
    header = next(csv.reader([header_line.rstrip("\r")], delimiter=rules.delimiter))
    expected = contract.column_names

    if len(header) == 1 and len(expected) > 1:
        for other in _OTHER_DELIMITERS:
            if other != rules.delimiter and len(header_line.split(other)) >= len(expected) - 1:
                return fail(
                    "delimiter",
                    f"the header is separated by {other!r}; the contract's delimiter is "
                    f"{rules.delimiter!r}",
                    samples=[{"line": 1, "text": header_line[:200]}],
                )
    checks.append(Check.ok("delimiter"))
    if len(header) == len(expected) + 1 and header[-1] == "" and header[:-1] == expected:
        return fail(
            "header.trailing_delimiter",
            f"the header ends with a delimiter (an unnamed column {len(header)}); remove the "
            "trailing delimiter from every line",
        )
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        return fail("header.duplicate", f"the header repeats column(s) {', '.join(duplicated)}")
    missing = [c for c in expected if c not in header]
    extra = [h for h in header if h not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {', '.join(repr(e) for e in extra)}")
        near = {e: m for e in extra for m in missing if e.strip().lower() == m.lower()}
        hint = "".join(f"; {e!r} should be spelled {m!r}" for e, m in near.items())
        return fail(
            "header.columns",
            f"the header does not match contract {contract.name} v{contract.version}: "
            + "; ".join(parts) + hint,
            samples=[{"expected": expected, "found": header}],
        )  # fmt: skip
    if header != expected:
        first = next(i for i, (h, e) in enumerate(zip(header, expected, strict=True)) if h != e)
        return fail(
            "header.order",
            f"the columns are in the wrong order: column {first + 1} is {header[first]!r}, "
            f"the contract expects {expected[first]!r} (order: {', '.join(expected)})",
            samples=[{"expected": expected, "found": header}],
        )
    checks.append(Check.ok("header"))
    body = text[end + 1 :] if end >= 0 else ""
    if size <= len(head) and not body.strip():
        return fail("rows.present", "the file has a header but no data rows")
    checks.append(Check.ok("rows.present"))
    return checks


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
