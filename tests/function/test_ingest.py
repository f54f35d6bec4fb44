"""Good and bad uploads through the served function: rows with lineage, or quarantine + report."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.function.conftest import SAMPLE_ROWS, Harness


def set_cell(sample: str, row: int, column: str, value: str) -> str:
    """The sample with one cell of data row `row` (1-based) replaced."""
    lines = sample.split("\n")
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines)


def lines_of(sample: str, transform: Callable[[list[str]], list[str]]) -> str:
    return "\n".join(transform(sample.rstrip("\n").split("\n"))) + "\n"


def reorder(line: str) -> str:
    cells = line.split(",")
    cells[1], cells[2] = cells[2], cells[1]
    return ",".join(cells)


def late_latin1(s: str) -> bytes:
    """Valid UTF-8 for the first 64 KiB (the head), then one Latin-1 byte in a later row."""
    header, *rows = s.rstrip("\n").split("\n")
    lines = [header]
    while sum(map(len, lines)) < 70_000:
        lines += [f"PAL{len(lines):06d}-ADE-1,{row.split(',', 1)[1]}" for row in rows]
    tail = "PAL999999-ADE-1,Adelie,Torgersen,40,18,190,4000,m\xe4le,2007\n"
    return ("\n".join(lines) + "\n").encode() + tail.encode("latin-1")


# kind -> (the file, the check that must fail, words its reason must contain)
BAD_FILES: dict[str, tuple[Callable[[str], bytes | str], str, str]] = {
    "zero bytes": (lambda s: b"", "size.empty", "empty"),
    "header only": (lambda s: s.split("\n")[0] + "\n", "rows.present", "no data rows"),
    "utf-16": (lambda s: s.encode("utf-16"), "encoding.bom", "UTF-16"),
    "latin-1 in the head": (
        lambda s: set_cell(s, 2, "island", "Dr\xe9am").encode("latin-1"),
        "encoding.utf8", "byte 0xE9 on line 3",
    ),
    "latin-1 after the head": (late_latin1, "encoding.utf8", "not valid UTF-8"),
    "semicolon delimiter": (lambda s: s.replace(",", ";"), "delimiter", "';'"),
    "trailing delimiter": (
        lambda s: lines_of(s, lambda ls: [line + "," for line in ls]),
        "header.trailing_delimiter", "ends with a delimiter",
    ),
    "missing column": (
        lambda s: lines_of(s, lambda ls: [line.rsplit(",", 1)[0] for line in ls]),
        "header.columns", "missing column(s) 'year'",
    ),
    "extra column": (
        lambda s: lines_of(s, lambda ls: [ls[0] + ",notes"] + [x + ",hi" for x in ls[1:]]),
        "header.columns", "unexpected column(s) 'notes'",
    ),
    "misspelled column": (
        lambda s: s.replace("species", "Species", 1), "header.columns",
        "'Species' should be spelled 'species'",
    ),
    "duplicate column name": (
        lambda s: s.replace(",year\n", ",sex\n", 1), "header.duplicate", "repeats column(s) sex",
    ),
    "ragged row (extra field)": (
        lambda s: set_cell(s, 5, "year", "2007,1"), "rows.ragged", "line 6 has 10 fields",
    ),
    "ragged row (missing field)": (
        lambda s: lines_of(s, lambda ls: [*ls[:8], ls[8].rsplit(",", 1)[0], *ls[9:]]),
        "rows.ragged", "line 9 has 8 fields",
    ),
    "unbalanced quotes": (
        lambda s: set_cell(s, 3, "sex", '"female'), "rows.quotes", "never closed",
    ),
    "text in a numeric column": (
        lambda s: set_cell(s, 4, "bill_length_mm", "forty"), "bill_length_mm.type",
        "'forty' at row 4",
    ),
    "NaN in a numeric column": (
        lambda s: set_cell(s, 2, "bill_depth_mm", "NaN"), "bill_depth_mm.finite", "NaN or infinite",
    ),
    "inf in a numeric column": (
        lambda s: set_cell(s, 9, "body_mass_g", "inf"), "body_mass_g.finite", "at row 9",
    ),
    "fraction in an integer column": (
        lambda s: set_cell(s, 6, "year", "2007.5"), "year.type", "not a whole number",
    ),
    "out of range": (
        lambda s: set_cell(s, 10, "body_mass_g", "70000"), "body_mass_g.range",
        "outside [2000, 7000]",
    ),
    "value not allowed": (
        lambda s: set_cell(s, 11, "species", "Emperor"), "species.allowed", "'Emperor' at row 11",
    ),
    "required value missing": (
        lambda s: set_cell(s, 12, "island", "NA"), "island.not_null", "required",
    ),
    "key not matching its pattern": (
        lambda s: set_cell(s, 13, "penguin_id", "penguin 13"), "penguin_id.pattern",
        "'penguin 13'",
    ),
    "duplicate key": (
        lambda s: set_cell(s, 14, "penguin_id", "PAL0708-ADE-001"), "key.unique",
        "PAL0708-ADE-001 ×2",
    ),
    "formula-like cell": (
        lambda s: set_cell(s, 15, "penguin_id", "=HYPERLINK(1)"), "penguin_id.formula",
        "spreadsheet formula",
    ),
    "huge field": (
        lambda s: set_cell(s, 16, "sex", "x" * 20_000), "sex.field_length",
        "longer than 10,000 characters",
    ),
}  # fmt: skip


def test_a_good_file_is_loaded_with_lineage_and_logged(harness: Harness):
    event = harness.upload("good.csv", harness.sample)
    outcome = harness.deliver(event)
    assert outcome["status"] == "LOADED", outcome["reason"]
    assert outcome["rows_loaded"] == outcome["rows_in_file"] == SAMPLE_ROWS
    assert harness.curated_rows(event) == SAMPLE_ROWS
    checks = json.loads(outcome["checks"])
    assert checks and all(c["passed"] for c in checks)
    assert {"header", "key.unique", "species.allowed", "body_mass_g.range"} <= {
        c["check"] for c in checks
    }
    from local.warehouse import connect

    with connect(harness.env.warehouse_path, read_only=True) as con:
        row = (
            con.sql(
                f"SELECT * FROM {harness.env.dataset}.penguins "
                "WHERE penguin_id = 'PAL0708-ADE-004' AND _batch_id = $b",
                params={"b": outcome["batch_id"]},
            )
            .to_arrow_table()
            .to_pylist()[0]
        )
    # Typed as the contract says, empty cells NULL, lineage naming the exact object generation.
    assert row["year"] == 2007 and row["bill_length_mm"] is None and row["sex"] is None
    assert row["_source_uri"] == f"gs://{harness.env.landing_bucket}/incoming/good.csv"
    assert row["_source_generation"] == int(event["data"]["generation"])
    assert row["_ingested_at"] is not None
    assert harness.landing.quarantined().keys().isdisjoint({"incoming/good.csv"})


# What spreadsheets and field tools write, which the default file rules accept.
GOOD_VARIANTS: dict[str, Callable[[str], bytes | str]] = {
    "excel csv utf-8 (bom + crlf)": lambda s: b"\xef\xbb\xbf" + s.replace("\n", "\r\n").encode(),
    "columns in another order": lambda s: lines_of(s, lambda ls: [reorder(x) for x in ls]),
}


@pytest.mark.parametrize("kind", list(GOOD_VARIANTS))
def test_the_sample_as_excel_or_reordered_loads_with_the_same_values(harness, kind):
    name = kind.split(" (")[0].replace(" ", "-") + ".csv"
    plain = harness.ingest(f"plain-{name}", harness.sample)
    outcome = harness.ingest(name, GOOD_VARIANTS[kind](harness.sample))
    assert outcome["status"] == "LOADED", outcome["reason"]
    assert outcome["rows_loaded"] == SAMPLE_ROWS
    from local.warehouse import connect

    def rows(batch_id: str) -> list[dict]:
        columns = ", ".join(harness.env.contract.column_names)
        with connect(harness.env.warehouse_path, read_only=True) as con:
            return con.sql(
                f"SELECT {columns} FROM {harness.env.dataset}.penguins WHERE _batch_id = $b "
                "ORDER BY penguin_id", params={"b": batch_id},
            ).to_arrow_table().to_pylist()  # fmt: skip

    assert rows(outcome["batch_id"]) == rows(plain["batch_id"])


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_file_is_quarantined_with_its_reason_and_nothing_is_loaded(harness, kind):
    make, check, words = BAD_FILES[kind]
    name = kind.replace(" ", "-").replace("(", "").replace(")", "") + ".csv"
    data = make(harness.sample)
    event = harness.upload(name, data)
    outcome = harness.deliver(event)

    assert outcome["status"] == "REJECTED"
    assert outcome["rows_loaded"] == 0 and harness.curated_rows(event) == 0
    problems = {c["check"]: c for c in json.loads(outcome["checks"]) if not c["passed"]}
    assert check in problems, f"{kind}: expected {check}, got {outcome['reason']}"
    assert words in problems[check]["reason"], problems[check]["reason"]
    assert words in outcome["reason"] or check != next(iter(problems))

    # The file and its report are in quarantine; the original is still in the landing bucket.
    quarantined = harness.landing.quarantined()
    copy = f"incoming/{name}@{event['data']['generation']}"
    assert outcome["quarantine_uri"] == f"gs://{harness.env.quarantine_bucket}/{copy}"
    expected = data if isinstance(data, bytes) else data.encode()
    assert quarantined[copy] == expected
    report = json.loads(quarantined[copy + ".report.json"])
    assert report["status"] == "REJECTED" and report["reason"] == outcome["reason"]
    assert report["source_uri"].endswith(f"incoming/{name}")
    assert check in {p["check"] for p in report["problems"]}
    landing = harness.landing.client.bucket(harness.env.landing_bucket)
    assert landing.blob(f"incoming/{name}").download_as_bytes() == expected


def test_the_corpus_covers_twenty_kinds_of_bad_file():
    assert len(BAD_FILES) >= 20
    assert len({check for _, check, _ in BAD_FILES.values()}) >= 20


def test_a_malformed_event_is_logged_as_failed_and_not_retried(harness, capfd):
    event = harness.landing.upload("incoming/malformed.csv", harness.sample)
    del event["data"]["generation"]
    assert harness.server.post(event) == 200  # a 5xx would make Eventarc redeliver it forever
    (row,) = harness.log_rows(event)  # generation 0: the event named none
    assert (row["status"], row["source_generation"], row["bytes"]) == ("FAILED", 0, None)
    assert row["reason"].startswith("the storage event lacks generation: ")


@pytest.mark.parametrize(
    ("name", "why"),
    [("elsewhere/file.csv", "outside the landing prefix"), ("incoming/notes.txt", "not a .csv")],
)
def test_objects_outside_the_prefix_or_not_csv_are_ignored(harness, name, why, capfd):
    event = harness.landing.upload(name, harness.sample)
    assert harness.server.post(event) == 200
    assert harness.log_rows(event) == []
    assert harness.curated_rows(event) == 0
