"""`make contract FROM=file.csv [LABEL=column] [OUT=path.yaml]`: a first contract for a file.

    python -m contracts.draft FILE [--label COLUMN] [--out PATH]

It reads the file the way ingestion will (UTF-8, an optional byte-order mark, LF or CRLF, `"`
quotes) and drafts: the delimiter (DuckDB's CSV sniffer, as datacontract-cli's CSV import uses
it), warehouse-safe names beside the file's headers, types by the ingestion's own rules (INT64 /
FLOAT64 / BOOL / DATE / TIMESTAMP / STRING, a date format only when every value fits it), null
markers, nullability, allowed values for low-cardinality text, ranges with a margin, the label and
a key only for an identifier-like column (unique text or integer ids under an id-like name, never a
measurement that happens to be unique). Lines marked `# REVIEW:` need a person's judgement. The
draft is validated by the contract loader before it is written; its path is printed last.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from contracts import dates
from contracts.model import DataContract, load_contract

NULL_MARKERS = ("", "NA", "N/A", "n/a", "NaN", "null", "NULL", "None", "-", "?")
BOOL_PAIRS = (("true", "false"), ("yes", "no"), ("y", "n"), ("t", "f"))
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%d.%m.%Y",
                "%Y/%m/%d")  # fmt: skip
TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M",
                     "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M", "%d.%m.%Y %H:%M")  # fmt: skip
MAX_ALLOWED = 12
"""Text columns with at most this many distinct values (each seen twice or more) get a list."""
_ID_NAME = re.compile(r"(^|_)(id|key|code|ref|uuid|no|number)$")
_ID_VALUE = re.compile(r"^(?=.*[0-9])[A-Za-z0-9][A-Za-z0-9_.:/-]*$")
_INT = re.compile(r"^[+-]?[0-9]+$")


@dataclass
class Drafted:
    """One column's draft: the contract entry and the comments for its reviewer."""

    entry: dict
    notes: list[str] = field(default_factory=list)


def read_rows(path: Path) -> tuple[str, list[str], list[list[str]]]:
    """(delimiter, header, rows) of the file as the ingestion reads it."""
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    text = data.decode("utf-8")
    delimiter = _sniff_delimiter(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"')
    header, *rows = [row for row in reader if row]
    return delimiter, header, rows


def _sniff_delimiter(path: Path) -> str:
    import duckdb

    with duckdb.connect() as con:
        found = con.execute("SELECT Delimiter FROM sniff_csv(?)", [str(path)]).fetchall()
    return found[0][0] if found and found[0][0] else ","


def warehouse_name(header: str, taken: set[str]) -> str:
    """`Culmen Length (mm)` -> culmen_length_mm; `'selfLR'` -> self_lr; unique in `taken`."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", header.strip())
    name = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "column"
    name = name if name[0].isalpha() else f"c_{name}"
    name, base, n = name[:120], name[:120], 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def null_markers(columns: list[list[str]]) -> list[str]:
    """Markers that stand for a missing value in a column whose other values are not text."""
    found = {""}
    for values in columns:
        present = [v for v in values if v not in NULL_MARKERS]
        if present and _typed(present) != "STRING":
            found |= {v for v in values if v in NULL_MARKERS}
    return [m for m in NULL_MARKERS if m in found]


def _typed(values: list[str]) -> str:
    """The narrowest contract type every value fits (before dates)."""
    if all(_INT.match(v) and abs(int(v)) < 2**63 for v in values):
        return "INT64"
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        numbers = None
    if numbers is not None and all(math.isfinite(x) for x in numbers):
        return "FLOAT64"
    return "STRING"


def _formats(values: list[str], candidates: tuple[str, ...]) -> list[str]:
    """The candidate formats every value fits (guard and parse, as both warehouses would)."""
    fitting = []
    for fmt in candidates:
        shape = re.compile(dates.guard(fmt))
        try:
            if all(shape.match(v) and datetime.strptime(v, fmt) for v in values):
                fitting.append(fmt)
        except ValueError:
            continue
    return fitting


def draft_column(name: str, header: str, values: list[str], markers: list[str]) -> Drafted:
    present = [v for v in values if v not in markers]
    out = Drafted({"name": name} | ({"source": header} if header != name else {}))
    kind = _typed(present) if present else "STRING"
    lowered = {v.lower() for v in present}
    bools = next((p for p in BOOL_PAIRS if lowered and lowered <= set(p)), None)
    date_fits = _formats(present, DATE_FORMATS) if present and kind == "STRING" else []
    time_fits = [] if date_fits or kind != "STRING" or not present else _formats(
        present, TIMESTAMP_FORMATS)  # fmt: skip
    if bools and kind == "STRING":
        out.entry |= {"type": "BOOL", "true_values": sorted({v for v in present
                      if v.lower() == bools[0]}) or [bools[0]], "false_values": sorted(
                      {v for v in present if v.lower() == bools[1]}) or [bools[1]]}  # fmt: skip
    elif date_fits or time_fits:
        fits = date_fits or time_fits
        out.entry |= {"type": "DATE" if date_fits else "TIMESTAMP", "format": fits[0]}
        if len(fits) > 1:
            out.notes.append(f"REVIEW: the values also fit {', '.join(fits[1:])}: which is it?")
        _date_range(out, [datetime.strptime(v, fits[0]) for v in present], bool(date_fits))
    else:
        out.entry["type"] = kind
        if kind in ("INT64", "FLOAT64"):
            _number_range(out, [float(v) for v in present], kind)
    out.entry["nullable"] = len(present) < len(values)
    distinct = sorted(set(present))
    if kind == "STRING" and out.entry["type"] == "STRING":
        if len(distinct) <= MAX_ALLOWED and len(present) >= 2 * len(distinct):
            out.entry["allowed"] = distinct
            out.notes.append("allowed: every value seen; REVIEW for values the file lacks")
        out.entry["max_length"] = max(64, 2 * max((len(v) for v in present), default=1))
    return out


def _number_range(out: Drafted, numbers: list[float], kind: str) -> None:
    low, high = min(numbers), max(numbers)
    margin = max((high - low) * 0.1, 1.0 if kind == "INT64" else 0.0)
    lower = low - margin if low < 0 or low - margin >= 0 else 0
    bounds = (math.floor(lower), math.ceil(high + margin))
    out.entry |= {"min": bounds[0], "max": bounds[1]}
    out.notes.append(f"seen {_num(low)}..{_num(high)}; the range adds a 10% margin: REVIEW")


def _date_range(out: Drafted, moments: list[datetime], is_date: bool) -> None:
    first, last = min(moments), max(moments)
    low, high = date(first.year, 1, 1), date(last.year + 1, 12, 31)
    out.entry |= {"min": low if is_date else datetime.combine(low, datetime.min.time()),
                  "max": high if is_date else datetime.combine(high, datetime.max.time())
                  .replace(microsecond=0)}  # fmt: skip
    out.notes.append(f"seen {first.date()}..{last.date()}; range widened to whole years: REVIEW")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def choose_roles(drafts: list[Drafted], rows: int, label: str | None) -> None:
    """The label (given, or the last column), a key when one column is identifier-like."""
    names = [d.entry["name"] for d in drafts]
    headers = [d.entry.get("source", d.entry["name"]) for d in drafts]
    if label is not None and label not in names + headers:
        raise ValueError(f"LABEL={label}: no such column (columns: {', '.join(headers)})")
    chosen = next(d for d in drafts if label in (d.entry["name"], d.entry.get("source")))\
        if label else drafts[-1]  # fmt: skip
    chosen.entry["role"] = "label"
    if not label:
        chosen.notes.append("REVIEW: the label was taken to be the last column (LABEL=…)")
    if chosen.entry["type"] in ("STRING", "INT64") and "allowed" not in chosen.entry:
        values = chosen.entry.pop("_distinct", None)
        if values is not None and len(values) <= MAX_ALLOWED:
            chosen.entry["allowed"] = values  # the classes
            chosen.entry.pop("min", None), chosen.entry.pop("max", None)
            chosen.notes[:] = [n for n in chosen.notes if not n.startswith("seen")]
    for d in drafts:
        d.entry.pop("_distinct", None)
        if d is chosen:
            continue
        if d.entry["type"] in ("DATE", "TIMESTAMP"):
            d.entry["role"] = "metadata"
            d.notes.append("a date is no model feature: kept as metadata")
        elif _identifier_like(d, rows):
            d.entry["role"] = "key"
            d.notes.append("unique identifier-like values: drafted as the key; REVIEW")


def _identifier_like(d: Drafted, rows: int) -> bool:
    entry = d.entry
    if entry["type"] not in ("STRING", "INT64") or entry["nullable"] or "allowed" in entry:
        return False
    if entry.pop("_unique_count", None) != rows:
        return False
    return bool(_ID_NAME.search(entry["name"])) or (
        entry["type"] == "STRING" and entry.get("_id_values", False)
    )


def draft(path: Path, label: str | None = None) -> tuple[dict, list[list[str]]]:
    """The contract document and, per column, its review notes."""
    delimiter, header, rows = read_rows(path)
    columns = [[row[i] if i < len(row) else "" for row in rows] for i in range(len(header))]
    markers = null_markers(columns)
    taken: set[str] = set()
    drafts = []
    for head, values in zip(header, columns, strict=True):
        d = draft_column(warehouse_name(head, taken), head, values, markers)
        present = [v for v in values if v not in markers]
        d.entry["_unique_count"] = len(set(present)) if len(present) == len(values) else -1
        d.entry["_id_values"] = bool(present) and all(_ID_VALUE.match(v) for v in present)
        if d.entry["type"] in ("STRING", "INT64"):
            d.entry["_distinct"] = sorted(set(present), key=lambda v: (len(v), v))
        drafts.append(d)
    choose_roles(drafts, len(rows), label)
    for d in drafts:
        d.entry.pop("_unique_count", None)
        d.entry.pop("_id_values", None)
        if not any(d.entry.get("role") == r for r in ("key", "label", "metadata")):
            d.entry["role"] = "feature"
    stem = warehouse_name(path.stem, set())
    document = {
        "name": stem if stem[0].isalpha() else f"d_{stem}",
        "version": 1,
        "description": f"Drafted by make contract from {path.name} ({len(rows)} rows).",
        "file": {"delimiter": delimiter, "null_markers": markers},
        "columns": [d.entry for d in drafts],
    }
    return document, [d.notes for d in drafts]


def render(document: dict, notes: list[list[str]], source: Path) -> str:
    """The draft as YAML, each column followed by its review comments."""
    import yaml

    def dump(value: object) -> str:
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100)

    head = {k: v for k, v in document.items() if k != "columns"}
    lines = [
        f"# Data contract drafted by `make contract` from {source.name}. It is a starting point:",
        "# read every comment (REVIEW marks a guess), then keep or fix each value. A column",
        "# with no empty value in the file is drafted `nullable: false`: REVIEW whether one can",
        "# be missing.",
        dump(head).rstrip("\n"),
        "columns:",
    ]
    for entry, comments in zip(document["columns"], notes, strict=True):
        block = dump([entry]).rstrip("\n").splitlines()
        lines += ["  " + line for line in block]
        lines += [f"    # {comment}" for comment in comments]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make contract", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, help="the CSV file to describe")
    parser.add_argument("--label", help="the column the model predicts (default: the last)")
    parser.add_argument("--out", type=Path, help="where to write (default contracts/<file>.yaml)")
    args = parser.parse_args(argv)
    try:
        document, notes = draft(args.file, args.label)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        print(f"error: {args.file}: {error}", file=sys.stderr)
        return 2
    out = args.out or Path(__file__).parent / f"{document['name']}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(document, notes, args.file), encoding="utf-8")
    contract: DataContract = load_contract(out)  # a draft the loader refuses is a bug here
    reviews = sum(1 for column in notes for n in column if "REVIEW" in n)
    print(f"{len(contract.columns)} columns (label {contract.label_column}, key "
          f"{', '.join(contract.key_columns) or 'none'}), {reviews} lines to review")  # fmt: skip
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
