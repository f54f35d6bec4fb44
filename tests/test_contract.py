"""The data contract model and the shipped penguins contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from contracts import CONTRACTS_DIR, LINEAGE_COLUMNS, ContractError, load_contract


@pytest.fixture
def penguins():
    return load_contract(CONTRACTS_DIR / "penguins.yaml")


def test_penguins_roles(penguins):
    assert penguins.key_columns == ["penguin_id"]
    assert penguins.label_column == "species"
    assert penguins.feature_columns == [
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
    ]


def test_bigquery_schema_has_contract_then_lineage_columns(penguins):
    schema = penguins.bigquery_schema()
    names = [f["name"] for f in schema]
    assert names == penguins.column_names + [c.name for c in LINEAGE_COLUMNS]
    modes = {f["name"]: f["mode"] for f in schema}
    assert modes["penguin_id"] == "REQUIRED"
    assert modes["sex"] == "NULLABLE"
    assert all(modes[c.name] == "REQUIRED" for c in LINEAGE_COLUMNS)


def _write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _base() -> dict:
    return yaml.safe_load((CONTRACTS_DIR / "penguins.yaml").read_text())


def test_errors_name_file_and_column(tmp_path):
    doc = _base()
    doc["columns"][4]["min"] = 100  # bill_depth_mm: min above max
    with pytest.raises(ContractError) as caught:
        load_contract(_write(tmp_path, doc))
    message = str(caught.value)
    assert "c.yaml" in message
    assert "columns[4] (bill_depth_mm)" in message
    assert "min 100.0 is greater than max 25.0" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["columns"][1].update(role="feature"), "exactly one column must have role"),
        (lambda d: d["columns"][0].update(type="DATE"), "not a DATE written %Y-%m-%d|pattern/max"),
        (lambda d: d["columns"][0].update(nullable=True), "key column cannot be nullable"),
        (lambda d: d["columns"].append(dict(d["columns"][3])), "duplicate column names"),
        (lambda d: d["columns"][3].update(name="_hidden"), "must start with a letter"),
        (lambda d: d["columns"][3].update(pattern="(["), "not a valid RE2 regular expression"),
        (lambda d: d["columns"][2].update(min=1), "min/max apply to INT64, FLOAT64, DATE"),
        (lambda d: d.update(colums=[]), "unknown key 'colums'; did you mean 'columns'"),
    ],
)
def test_invalid_contracts_are_refused(tmp_path, change, expected):
    doc = _base()
    change(doc)
    with pytest.raises(ContractError, match=expected):
        load_contract(_write(tmp_path, doc))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ContractError, match="contract file not found"):
        load_contract(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract(bad)


def test_a_pattern_python_accepts_but_re2_refuses_fails_at_load(tmp_path):
    doc = _base()
    doc["columns"][0]["pattern"] = "^(?=PAL)[A-Z0-9-]+$"  # a lookahead: fine for Python's re
    with pytest.raises(ContractError) as caught:
        load_contract(_write(tmp_path, doc))
    assert str(caught.value) == (
        f"{tmp_path / 'c.yaml'}: columns[0] (penguin_id).pattern: pattern "
        "'^(?=PAL)[A-Z0-9-]+$' is not a valid RE2 regular expression (BigQuery's and DuckDB's): "
        "invalid perl operator: (?="
    )


def test_misspelt_keys_and_wrong_case_say_did_you_mean_once_per_mistake(tmp_path):
    doc = _base()
    for column in doc["columns"][3:7]:
        column["type"] = "float64"
    doc["columns"][1]["nulable"] = False
    doc["file"]["line_ending"] = "any"
    with pytest.raises(ContractError) as caught:
        load_contract(_write(tmp_path, doc))
    lines = [line.split(": ", 1)[1] for line in str(caught.value).splitlines()]
    assert lines == [
        "file.line_ending: unknown key 'line_ending'; did you mean 'line_endings'?",
        "columns[1] (species).nulable: unknown key 'nulable'; did you mean 'nullable'?",
        "columns[3] (bill_length_mm), columns[4] (bill_depth_mm), columns[5] (flipper_length_mm) "
        "+1 more.type: 'float64' is not one of STRING, INT64, FLOAT64, BOOL, DATE, TIMESTAMP; "
        "did you mean 'FLOAT64'?",
    ]


def test_a_contract_without_a_key_and_with_field_headers_and_dates_loads(tmp_path):
    doc = {
        "name": "nests", "version": 1,
        "columns": [
            {"name": "culmen_length_mm", "source": "Culmen Length (mm)", "type": "FLOAT64"},
            {"name": "date_egg", "source": "Date Egg", "type": "DATE", "format": "%m/%d/%y",
             "min": "2007-01-01", "role": "metadata"},
            {"name": "species", "type": "STRING", "role": "label", "nullable": False},
        ],
    }  # fmt: skip
    contract = load_contract(_write(tmp_path, doc))
    assert contract.key_columns == []
    assert contract.headers == ["Culmen Length (mm)", "Date Egg", "species"]
    assert contract.column("date_egg").date_format == "%m/%d/%y"


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ({"type": "DATE", "format": "%d/%m"}, "needs %m, %d and one of %Y or %y"),
        ({"type": "DATE", "format": "%Y-%m-%d %H"}, "has time parts"),
        ({"type": "DATE", "format": "%Y-%j"}, "uses %j"),
        ({"type": "DATE", "min": 3}, "min/max of a DATE column are dates"),
        ({"type": "FLOAT64", "format": "%Y"}, "format applies to DATE and TIMESTAMP only"),
        ({"type": "BOOL", "true_values": ["y"], "false_values": ["Y"]}, "different spellings"),
        ({"type": "INT64", "reject_formulas": False}, "reject_formulas applies to STRING only"),
        ({"type": "STRING", "name": "Culmen Length (mm)"}, "keep the file's header in `source`"),
    ],
)
def test_new_column_settings_are_checked_against_the_type(tmp_path, column, expected):
    doc = _base()
    doc["columns"].append({"name": "extra", **column})
    with pytest.raises(ContractError, match=re.escape(expected)):
        load_contract(_write(tmp_path, doc))
