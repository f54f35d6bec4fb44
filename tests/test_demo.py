"""`make demo` is covered: its driver runs, fast, on a scratch folder."""

from __future__ import annotations

import subprocess
import sys

from stacks.config import PROJECT_ROOT


def test_demo_runs_every_stage_and_reports(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "local.demo", "--fast", "--root", str(tmp_path / "state")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    from local.demo import STAGES

    # Every line fits 100 columns; only a single word too long for a line (a URI) stands alone.
    too_wide = [
        line for line in result.stdout.splitlines() if len(line) > 100 and " " in line.strip()
    ]
    assert too_wide == []
    # Lines wrap, so the checks read the output as one run of words.
    flat = " ".join(result.stdout.split())
    for number, (name, _) in enumerate(STAGES, start=1):
        assert f"[{number}/{len(STAGES)}] {name}:" in flat
    entries = _report_entries(flat.split("=== report")[1], [name for name, _ in STAGES])
    assert "stack staging:" in flat and "stack prod:" in flat
    assert (
        "344 rows loaded; 1 file quarantined (column species: 2 of 344 rows not one of"
        in (entries["ingest"])
    )
    assert "REJECTED: column species" in flat
    assert "staging endpoint serves: tabular-mlops-local-penguins@1" in flat
    assert "test accuracy" in entries["train"]
    # QA accepts staging's version, promotes it (a copy of the prod config), prod serves it.
    assert "staging (tabular-mlops-local-penguins@1) accepted:" in entries["accept"]
    assert " passed" in entries["accept"]
    assert "platform.serving.model: projects/acme-mlops-staging/" in flat
    assert "prod serves tabular-mlops-local-penguins@1 (before: nothing)" in entries["promote"]
    assert "prod answers with tabular-mlops-local-penguins@1" in entries["serve-prod"]
    # An analyst's unlabelled batch, scored by prod's version into the predictions table.
    assert "200 rows scored by tabular-mlops-local-penguins@1 into" in entries["score"]
    assert "tabular_mlops_local.predictions" in entries["score"]
    assert entries["evaluate"].startswith("degraded (accuracy"), entries["evaluate"]
    assert (
        "retrained: deploy, staging serves tabular-mlops-local-penguins@2" in (entries["evaluate"])
    )
    # The retrained version goes to prod the same way, this time with a canary beside @1.
    release = entries["release"]
    assert "staging (tabular-mlops-local-penguins@2) accepted:" in release
    assert (
        "prod serves tabular-mlops-local-penguins@2 (before: tabular-mlops-local-penguins@1, now "
        "undeployed)" in release
    )
    assert "canary: tabular-mlops-local-penguins@2 deployed as 2 with 10% of the traffic" in flat
    assert "undeployed tabular-mlops-local-penguins@1 (1)" in flat
    promoted = (tmp_path / "state" / "Pulumi.prod.yaml").read_text()
    assert "model: tabular-mlops-local-penguins@2" in promoted
    assert (PROJECT_ROOT / "Pulumi.prod.yaml").read_text() != promoted
    # It ends with where to look (the lifecycle page, every report) and what to run next.
    closing = flat.split("=== where to look")[1]
    assert "index.html" in closing and "=== what next" in closing and "make serve" in closing
    reports = sorted((tmp_path / "state" / "reports").glob("*.html"))
    assert len(reports) == 3 and all(str(path) in closing for path in reports)
    assert (tmp_path / "state" / "index.html").is_file()


def _report_entries(report: str, names: list[str]) -> dict[str, str]:
    """Each stage's summary in the closing report (as one run of words), by stage name."""
    starts = []
    position = 0
    for name in names:
        position = report.index(f" {name} ", position)
        starts.append(position)
    ends = [*starts[1:], len(report)]
    return {
        name: report[start + len(name) + 2 : end].strip()
        for name, start, end in zip(names, starts, ends, strict=True)
    }
