"""The ingestion benchmark's script runs (on a tiny file: the figures themselves are not tested)."""

from __future__ import annotations

import subprocess
import sys

from stacks.config import PROJECT_ROOT


def test_the_benchmark_compares_every_variant_on_the_same_rows():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest_throughput", "--size", "256KB"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ("ours", "duckdb", "pandas", "row-wise") and len(parts) == 6:
            rows[parts[0]] = parts[1]
    assert set(rows) == {"ours", "duckdb", "pandas", "row-wise"}
    assert len(set(rows.values())) == 1 and rows["ours"] != "0"
    assert "ours vs duckdb" in result.stdout and "target peak RSS <= 0.33x" in result.stdout
