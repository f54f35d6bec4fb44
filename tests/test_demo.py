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

    for number, (name, _) in enumerate(STAGES, start=1):
        assert f"[{number}/{len(STAGES)}] {name}:" in result.stdout
    report = result.stdout.split("=== report")[1]
    assert all(name in report for name, _ in STAGES)
    assert "stack staging:" in result.stdout and "stack prod:" in result.stdout
    ingest = report.split("ingest", 1)[1].split("\n")[0]
    assert "344 rows loaded; 1 file quarantined (column species: 2 of 344 rows not one of" in ingest
    assert "REJECTED: column species" in result.stdout
    assert "staging endpoint serves: tabular-mlops-local-penguins@1" in result.stdout
    assert "test accuracy" in report.split("train", 1)[1]
    # QA accepts staging's version, promotes it (a copy of the prod config), prod serves it.
    assert "staging (tabular-mlops-local-penguins@1) accepted:" in report and " passed" in report
    assert "platform.serving.model: projects/acme-mlops-staging/" in result.stdout
    assert "prod serves tabular-mlops-local-penguins@1 (before: nothing)" in report
    assert "prod answers with tabular-mlops-local-penguins@1" in report
    evaluate = report.split("\n  evaluate", 1)[1].split("\n")[0]
    assert evaluate.lstrip().startswith("degraded (accuracy"), evaluate
    assert "retrained: deploy, staging serves tabular-mlops-local-penguins@2" in evaluate
    # The retrained version goes to prod the same way, this time with a canary beside @1.
    release = report.split("\n  release", 1)[1].split("\n")[0]
    assert "staging (tabular-mlops-local-penguins@2) accepted:" in release
    assert (
        "prod serves tabular-mlops-local-penguins@2 (before: tabular-mlops-local-penguins@1, now "
        "undeployed)" in release
    )
    assert "canary: tabular-mlops-local-penguins@2 deployed as 2 with 10% of the traffic" in (
        result.stdout
    )
    assert "undeployed tabular-mlops-local-penguins@1 (1)" in result.stdout
    promoted = (tmp_path / "state" / "Pulumi.prod.yaml").read_text()
    assert "model: tabular-mlops-local-penguins@2" in promoted
    assert (PROJECT_ROOT / "Pulumi.prod.yaml").read_text() != promoted
    # It ends with where to look (the lifecycle page, every report) and what to run next.
    closing = result.stdout.split("=== where to look")[1]
    assert "index.html" in closing and "=== what next" in closing and "make serve" in closing
    reports = sorted((tmp_path / "state" / "reports").glob("*.html"))
    assert len(reports) == 3 and all(str(path) in closing for path in reports)
    assert (tmp_path / "state" / "index.html").is_file()
