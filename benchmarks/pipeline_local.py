"""Wall time of the training pipeline on kfp.local, per task and in total (not a test).

    .venv/bin/python -m benchmarks.pipeline_local [--runs 3]

Each run starts from an empty scratch folder (sample loaded, no champion), so every run trains,
registers and deploys: the longest path through the DAG. Prints the figures and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from local.environment import LocalEnvironment
from local.run_training import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    totals: list[float] = []
    tasks: dict[str, list[float]] = defaultdict(list)
    for number in range(1, runs + 1):
        with tempfile.TemporaryDirectory() as scratch:
            lines: list[str] = []
            started = time.perf_counter()
            outcome = run(LocalEnvironment(root=Path(scratch)), say=lines.append)
            totals.append(time.perf_counter() - started)
        for line in lines:
            if " done in " in line:  # "train            done in 3.1 s"
                tasks[line.split()[0]].append(float(line.split()[-2]))
        accuracy = outcome.evaluation["model"]["accuracy"]
        print(f"run {number}: {totals[-1]:.1f} s (pipeline {outcome.seconds:.1f} s), "
              f"test accuracy {accuracy:.3f}, {outcome.decision}", flush=True)  # fmt: skip
    print(f"\n{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"total: median {statistics.median(totals):.1f} s, max {max(totals):.1f} s")
    for name, seconds in tasks.items():
        print(f"  {name:<16} median {statistics.median(seconds):.1f} s")


if __name__ == "__main__":
    main()
