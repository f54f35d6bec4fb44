"""`make ingest FILE=…`: a rejected file says why, exits 1, and its report stays on disk."""

from __future__ import annotations

import json
from pathlib import Path

from local.environment import DEFAULT_CONTRACT, LocalEnvironment
from local.ingest_file import main
from local.warehouse import write_sample


def test_a_rejected_file_prints_the_reason_and_keeps_file_and_report(tmp_path, capsys):
    root = tmp_path / "state"
    env = LocalEnvironment(root=root, contract_path=DEFAULT_CONTRACT)
    good = tmp_path / "field-notes.csv"
    write_sample(env, good, rows=20)
    bad = tmp_path / "bad-notes.csv"
    bad.write_text(good.read_text().replace(",Adelie,", ",Emperor,", 1))

    assert main([str(bad), "--root", str(root), "--contract", str(DEFAULT_CONTRACT)]) == 1
    first, last = capsys.readouterr().out.splitlines()
    assert first.startswith("REJECTED: column species: 1 of 20 rows not one of Adelie")
    report = Path(last.removeprefix("report: "))
    assert json.loads(report.read_text())["status"] == "REJECTED"
    assert (
        report.with_name(report.name.removesuffix(".report.json")).read_bytes() == bad.read_bytes()
    )

    assert main([str(good), "--root", str(root), "--contract", str(DEFAULT_CONTRACT)]) == 0
    assert capsys.readouterr().out.startswith("LOADED 20 rows into ")
