"""Time and peak memory of the local training pipeline as the curated table grows (not a test).

    .venv/bin/python -m benchmarks.training_growth [--rows 10000 100000 1000000]

Each size runs in a process of its own, from an empty scratch folder: that many rows generated
from the stack's contract, ingested by the real function, then the training pipeline on kfp.local
(every task a child process, as on Vertex AI every task is a machine of its own). Reported per
size: the pipeline's wall time, its slowest tasks, and the peak resident memory of the largest
task (ru_maxrss of the waited-for children). Then time and memory extrapolated along the line
(fixed + per row) through the two largest sizes, to 10M rows, and the rows at which a task
outgrows the machines pipelines.training.resources can ask for (docs/scaling.md turns
this into config).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ROWS = (10_000, 100_000, 1_000_000)
MACHINES_GB = {"e2-standard-4 (default)": 16, "64 GB": 64, "largest (624 GB)": 624}
"""Memory a task can have on Vertex AI: the default machine, a mid size, the limit."""


def one(rows: int) -> dict:
    """Ingest `rows` generated rows and run the training pipeline once; its figures."""
    from local.batches import ingest_generated
    from local.environment import LocalEnvironment
    from local.run_training import run

    with tempfile.TemporaryDirectory() as scratch:
        env = LocalEnvironment(root=Path(scratch)).ensure()
        started = time.perf_counter()
        ingest_generated(env, rows, seed=1)
        ingested = time.perf_counter() - started
        lines: list[str] = []
        outcome = run(env, say=lines.append)
    tasks = {}
    for line in lines:
        if " done in " in line:  # "train            done in 3.1 s"
            tasks[line.split()[0]] = float(line.split()[-2])
    return {
        "rows": rows,
        "ingest_s": round(ingested, 1),
        "pipeline_s": round(outcome.seconds, 1),
        "tasks": tasks,
        # Linux reports kilobytes: the largest of the pipeline tasks (child processes).
        "peak_task_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "accuracy": outcome.evaluation["model"]["accuracy"],
    }


def line(small: dict, large: dict, key: str) -> tuple[float, float]:
    """`key` as fixed + per-row cost, through the two points (the imports, the interpreter and
    kfp's bookkeeping are the fixed part; the data is the per-row part)."""
    per_row = (large[key] - small[key]) / (large["rows"] - small["rows"])
    return large[key] - per_row * large["rows"], per_row


def extrapolate(small: dict, large: dict, rows: int, key: str) -> float:
    fixed, per_row = line(small, large, key)
    return fixed + per_row * rows


def rows_fitting(small: dict, large: dict, memory_gb: float) -> int | None:
    """The rows at which the largest task's peak reaches `memory_gb`, on the same line."""
    fixed, per_row = line(small, large, "peak_task_mb")
    return int((memory_gb * 1024 - fixed) / per_row) if per_row > 0 else None


def report(results: list[dict]) -> None:
    print(f"\n{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"{'rows':>10} {'ingest s':>9} {'pipeline s':>11} {'peak task MB':>13}  slowest tasks")
    for r in results:
        slowest = sorted(r["tasks"].items(), key=lambda kv: -kv[1])[:3]
        named = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in slowest)
        print(f"{r['rows']:>10,} {r['ingest_s']:>9.1f} {r['pipeline_s']:>11.1f} "
              f"{r['peak_task_mb']:>13,}  {named}")  # fmt: skip
    if len(results) < 2:
        return
    small, large = results[-2], results[-1]
    seconds = extrapolate(small, large, 10_000_000, "pipeline_s")
    memory = extrapolate(small, large, 10_000_000, "peak_task_mb")
    print(f"\nextrapolated to 10,000,000 rows: pipeline {seconds / 60:.0f} min, "
          f"largest task {memory / 1024:.1f} GB")  # fmt: skip
    _, per_row = line(small, large, "peak_task_mb")
    print(f"  the largest task holds about {per_row * 2**20:,.0f} bytes per row")
    for machine, gb in MACHINES_GB.items():
        fits = rows_fitting(small, large, gb)
        print(f"  a task outgrows {machine} at about {fits:,} rows" if fits else
              "  memory did not grow between these sizes: run larger ones")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one)))
        return 0
    results = []
    for rows in sorted(args.rows):
        # A process per size: ru_maxrss of the children only ever grows within a process.
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.training_growth", "--one", str(rows)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if child.returncode:
            print(child.stderr[-3000:], file=sys.stderr)
            return child.returncode
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"{rows:,} rows: {json.dumps(results[-1])}", flush=True)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
