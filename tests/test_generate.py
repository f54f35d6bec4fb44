"""The seeded generator: determinism, files that meet the contract, drift that really drifts."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from contracts import CONTRACTS_DIR, load_contract
from contracts.generate import (
    CHUNK_ROWS,
    Drift,
    default_key_prefix,
    generate_records,
    main,
    sample_profile,
    write_csv,
)
from contracts.sample import load_sample
from local.warehouse import DUCKDB_TYPES


@pytest.fixture(scope="module")
def contract():
    return load_contract(CONTRACTS_DIR / "penguins.yaml")


@pytest.fixture(scope="module")
def profile(contract):
    return sample_profile(contract)


def _read(contract, path) -> pd.DataFrame:
    """Read a CSV the strict way the contract describes (types, header, no extra columns)."""
    columns = ", ".join(f"'{c.name}': '{DUCKDB_TYPES[c.type]}'" for c in contract.columns)
    nulls = ", ".join(f"'{m}'" for m in contract.file.null_markers)
    return duckdb.sql(
        f"SELECT * FROM read_csv('{path}', header=true, auto_detect=false, strict_mode=true, "
        f"delim='{contract.file.delimiter}', columns={{{columns}}}, nullstr=[{nulls}])"
    ).df()


def test_same_seed_same_bytes_and_prefix_stable(profile, tmp_path):
    a = write_csv(profile, tmp_path / "a.csv", rows=CHUNK_ROWS + 10, seed=3)
    b = write_csv(profile, tmp_path / "b.csv", rows=CHUNK_ROWS + 10, seed=3)
    c = write_csv(profile, tmp_path / "c.csv", rows=CHUNK_ROWS + 10, seed=4, key_prefix="G3")
    short = write_csv(profile, tmp_path / "short.csv", rows=100, seed=3)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.path.read_bytes() != c.path.read_bytes()  # same keys, other values
    # The first rows of a file do not depend on how many rows follow them.
    assert a.path.read_text().splitlines()[:101] == short.path.read_text().splitlines()
    assert a.rows == CHUNK_ROWS + 10 and short.rows == 100


def test_file_meets_the_contract(contract, profile, tmp_path):
    result = write_csv(profile, tmp_path / "g.csv", rows=5000, seed=1)
    header = result.path.read_text().splitlines()[0]
    assert header.split(contract.file.delimiter) == contract.column_names
    frame = _read(contract, result.path)  # strict types: raises on any malformed value
    assert len(frame) == 5000
    for col in contract.columns:
        values = frame[col.name]
        if not col.nullable:
            assert values.notna().all(), col.name
        present = values.dropna()
        if col.allowed:
            assert set(present.astype(str)) <= set(col.allowed), col.name
        if col.min is not None:
            assert present.min() >= col.min, col.name
        if col.max is not None:
            assert present.max() <= col.max, col.name
        if col.pattern:
            assert present.map(lambda v, p=col.pattern: bool(re.search(p, v))).all(), col.name
        if col.max_length:
            assert present.str.len().max() <= col.max_length, col.name
    assert frame[contract.key_columns].drop_duplicates().shape[0] == 5000
    # Every class, island and sex appears; nullable features have the sample's few missing values.
    assert set(frame["species"]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert set(frame["island"]) == {"Biscoe", "Dream", "Torgersen"}
    assert 0 < frame["sex"].isna().mean() < 0.1


def test_generated_data_is_as_learnable_as_the_sample(contract, profile):
    """A model fit on generated rows classifies the real penguins well, and vice versa."""
    from sklearn.tree import DecisionTreeClassifier

    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    generated = pd.DataFrame(generate_records(profile, 3000, seed=2))
    real = load_sample(contract).dropna(subset=numeric)
    model = DecisionTreeClassifier(max_depth=6, random_state=0).fit(
        generated[numeric], generated["species"]
    )
    assert model.score(real[numeric], real["species"]) > 0.9
    back = DecisionTreeClassifier(max_depth=6, random_state=0).fit(real[numeric], real["species"])
    assert (
        back.score(generated[numeric].dropna(), generated.dropna(subset=numeric)["species"]) > 0.9
    )


def test_shift_moves_numeric_features_by_their_std(profile):
    clean = pd.DataFrame(generate_records(profile, 20_000, seed=5))
    shifted = pd.DataFrame(generate_records(profile, 20_000, seed=5, drift=Drift(shift=1.0)))
    for i, name in enumerate(profile.numeric):
        moved = (shifted[name].mean() - clean[name].mean()) / profile.numeric_std[i]
        assert moved == pytest.approx(1.0, abs=0.1), name  # clipping to the contract trims a little
    # Labels and categorical features keep their distribution.
    assert (shifted["species"] == clean["species"]).all()


def test_relabel_changes_the_class_feature_relationship(profile):
    clean = pd.DataFrame(generate_records(profile, 20_000, seed=6))
    drifted = pd.DataFrame(generate_records(profile, 20_000, seed=6, drift=Drift(relabel=0.4)))
    changed = (clean["species"] != drifted["species"]).mean()
    assert changed == pytest.approx(0.4, abs=0.02)
    # Features are untouched: only which class they are said to belong to moves.
    assert np.allclose(clean["bill_length_mm"].fillna(0), drifted["bill_length_mm"].fillna(0))


@pytest.mark.parametrize("drift", [Drift(shift=2.0), Drift(relabel=0.5)])
def test_drift_degrades_a_model_trained_on_clean_data(profile, drift):
    from sklearn.tree import DecisionTreeClassifier

    features = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    train = pd.DataFrame(generate_records(profile, 3000, seed=10))
    model = DecisionTreeClassifier(max_depth=6, random_state=0).fit(
        train[features], train["species"]
    )
    fresh = pd.DataFrame(generate_records(profile, 3000, seed=11))
    drifted = pd.DataFrame(generate_records(profile, 3000, seed=11, drift=drift))
    assert model.score(fresh[features], fresh["species"]) > 0.9
    assert model.score(drifted[features], drifted["species"]) < 0.7


def test_batches_never_share_keys(profile):
    clean = generate_records(profile, 50, seed=1)
    drifted = generate_records(profile, 50, seed=1, drift=Drift(shift=2.0))
    other = generate_records(profile, 50, seed=2)
    keys = [r["penguin_id"] for batch in (clean, drifted, other) for r in batch]
    assert len(set(keys)) == 150
    assert default_key_prefix(1, Drift(shift=2.0)) != default_key_prefix(1, Drift(shift=1.0))


def test_size_target_and_cli(contract, tmp_path, capsys):
    out = tmp_path / "sized.csv"
    assert main(["--size", "5MB", "--seed", "9", "--drift", "shift=1", str(out)]) == 0
    assert out.stat().st_size >= 5 * 1024**2
    assert "rows" in capsys.readouterr().out
    assert len(_read(contract, out)) > CHUNK_ROWS  # the whole file is valid, chunk after chunk


def test_bad_options_say_what_is_wrong(profile, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown kind 'tilt'"):
        Drift.parse("tilt=2")
    with pytest.raises(ValueError, match=r"relabel is a fraction"):
        Drift.parse("relabel=1.5")
    with pytest.raises(ValueError, match="pattern"):
        generate_records(profile, 1, key_prefix="lower-case")
    with pytest.raises(ValueError, match="exactly one of rows or size"):
        write_csv(profile, tmp_path / "x.csv")
    assert main(["--rows", "5", "--drift", "shift=abc", str(tmp_path / "y.csv")]) == 2
    assert "shift needs a number" in capsys.readouterr().err


def test_a_contract_without_key_and_with_file_headers_generates_its_own_file_shape(tmp_path):
    """The ANES 1996 contract: tab-separated, quoted headers, INT64 label 0/1, no key."""
    from function_src.ingestion.head import check_head

    anes = load_contract(CONTRACTS_DIR / "anes96.yaml")
    path = write_csv(sample_profile(anes), tmp_path / "anes.csv", rows=300, seed=3).path
    data = path.read_bytes()
    assert [c for c in check_head(data, len(data), anes) if not c.passed] == []
    header, *rows = data.decode().splitlines()
    assert header.split("\t") == anes.headers
    assert {row.split("\t")[-1] for row in rows} == {"0", "1"}
