"""The data contract model and the shipped penguins contract."""

from __future__ import annotations

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
        (lambda d: d["columns"][0].update(role="feature"), "role 'key'"),
        (lambda d: d["columns"][0].update(nullable=True), "key column cannot be nullable"),
        (lambda d: d["columns"].append(dict(d["columns"][3])), "duplicate column names"),
        (lambda d: d["columns"][3].update(name="_hidden"), "must start with a letter"),
        (lambda d: d["columns"][3].update(pattern="(["), "not a valid regular expression"),
        (lambda d: d["columns"][2].update(min=1), "min/max apply to INT64 and FLOAT64 only"),
        (lambda d: d.update(colums=[]), "Extra inputs are not permitted"),
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
