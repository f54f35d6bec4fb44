"""`make contract`: what it drafts from a raw field file, and that the draft loads."""

from __future__ import annotations

from datetime import date

from contracts import load_contract
from contracts.draft import draft, main

FIELD_FILE = (
    "\ufeffSample ID,Species,Date Egg,Clutch Completion,Culmen Length (mm),Body Mass (g),"
    "Comments\r\n"
    "N1A1,Adelie,11/11/07,Yes,39.1,3750,\r\n"
    "N1A2,Adelie,11/13/07,No,39.5,NA,Not enough blood\r\n"
    "N2A1,Gentoo,11/16/07,Yes,40.3,3250,\r\n"
    "N2A2,Gentoo,11/16/07,Yes,36.7,3450,\r\n"
    "N3A1,Adelie,11/16/07,No,39.3,3650,@ nest\r\n"
    "N3A2,Gentoo,12/1/08,Yes,38.9,3625,\r\n"
)


def _has(entry: dict, expected: dict) -> bool:
    return {k: entry.get(k) for k in expected} == expected


def _columns(tmp_path):
    path = tmp_path / "field notes.csv"
    path.write_bytes(FIELD_FILE.encode())
    document, notes = draft(path, label="Species")
    return document, {c["name"]: c for c in document["columns"]}, notes


def test_a_field_file_gets_names_types_formats_markers_and_roles(tmp_path):
    document, columns, _ = _columns(tmp_path)
    assert document["name"] == "field_notes" and document["file"]["null_markers"] == ["", "NA"]
    assert list(columns) == ["sample_id", "species", "date_egg", "clutch_completion",
                             "culmen_length_mm", "body_mass_g", "comments"]  # fmt: skip
    assert columns["culmen_length_mm"]["source"] == "Culmen Length (mm)"
    assert _has(
        columns["date_egg"],
        {
            "type": "DATE",
            "format": "%m/%d/%y",
            "role": "metadata",
            "min": date(2007, 1, 1),
            "max": date(2009, 12, 31),
        },
    )
    assert _has(columns["clutch_completion"], {"type": "BOOL", "true_values": ["Yes"],
                                                 "false_values": ["No"]})  # fmt: skip
    assert _has(
        columns["body_mass_g"], {"type": "INT64", "nullable": True, "min": 3200, "max": 3800}
    )
    assert _has(columns["species"], {"role": "label", "allowed": ["Adelie", "Gentoo"]})
    # An id-like unique column is the key; a unique measurement never is.
    assert columns["sample_id"]["role"] == "key"
    assert columns["culmen_length_mm"]["role"] == "feature"
    assert columns["comments"]["type"] == "STRING" and "allowed" not in columns["comments"]


def test_the_draft_is_written_loads_and_its_path_is_printed_last(tmp_path, capsys):
    source = tmp_path / "field.csv"
    source.write_bytes(FIELD_FILE.encode())
    out = tmp_path / "out" / "field.yaml"
    assert main([str(source), "--label", "Species", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(out)
    contract = load_contract(out)
    assert contract.key_columns == ["sample_id"] and contract.label_column == "species"
    assert "# unique identifier-like values: drafted as the key; REVIEW" in out.read_text()


def test_an_unknown_label_is_one_line(tmp_path, capsys):
    source = tmp_path / "field.csv"
    source.write_bytes(FIELD_FILE.encode())
    assert main([str(source), "--label", "Island"]) == 2
    assert "LABEL=Island: no such column" in capsys.readouterr().err
