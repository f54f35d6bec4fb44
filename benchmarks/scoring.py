"""Batch scoring throughput: the scoring component's local path against the model's floor, and
what a 10M-row table would take on each stack's configured batch job (not a test).

    .venv/bin/python -m benchmarks.scoring [--model-dir DIR] [--rows 200000]
    make bench-score [ROWS=200000]

Scores `--rows` generated rows (contracts/generate.py, the label dropped) with one model directory
(default: what the local staging endpoint serves, `make pipeline`) two ways, in this process:

- floor: the model's `predict_proba` on the ready frame, chunk by chunk, with the same thread
  limits the component sets (pipeline_src/components/common.py `compute_threads`);
- ours:  `score_rows` itself (the component's Python function) on a scratch local warehouse: the
  Parquet read in chunks, the bundle's digest checked before unpickling, predictions, the
  predictions table's rows (key, lineage, JSON probabilities), the file written and appended by
  DuckDB.

The 10M-row figure extrapolates the per-vCPU rate of ours to each stack's batch job
(`pipelines.scoring.machine_type` x `replica_count`, vCPUs read from the machine type's name) and
adds a fixed start-up for the job; both are assumptions the output states.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_ROWS = 10_000_000
JOB_STARTUP_MINUTES = 10.0
"""Assumed: a Vertex AI batch prediction job provisions its machines and pulls the image before
the first prediction; minutes, whatever the table's size."""


def generated_rows(contract, rows: int, path: Path) -> None:
    """`rows` generated rows without the label, as one Parquet file."""
    import pyarrow.parquet as pq

    from contracts.generate import generate, sample_profile

    writer = None
    for table in generate(sample_profile(contract), rows, seed=11):
        table = table.drop_columns([contract.label_column])
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


def floor_seconds(model_dir: Path, spec: dict, path: Path, chunk_rows: int) -> float:
    """predict_proba alone over the file's chunks (frames built before the clock starts)."""
    import joblib
    import pyarrow.parquet as pq

    from pipeline_src.components.common import compute_threads, model_inputs

    model = joblib.load(model_dir / "model.joblib")
    frames = [
        model_inputs(batch.to_pandas(), spec)
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
    ]
    started = time.perf_counter()
    for frame in frames:
        with compute_threads(len(frame)):
            model.predict_proba(frame)
    return time.perf_counter() - started


def ours_seconds(model_dir: Path, contract, path: Path, chunk_rows: int, scratch: Path) -> float:
    """score_rows' local path, end to end, on a scratch warehouse."""
    from kfp import dsl

    from local.environment import LocalEnvironment
    from local.run_training import run_environment
    from pipeline_src.components.score import score_rows
    from pipeline_src.serving.integrity import bundle_digest

    served = scratch / "served.json"
    served.write_text(
        json.dumps(
            {"model": "benchmark@1", "artifact_dir": str(model_dir),
             "sha256": bundle_digest(str(model_dir)), "where": "benchmark"}
        ),
        encoding="utf-8",
    )  # fmt: skip
    (scratch / "state").mkdir()  # the local warehouse's folder (a run's env.ensure())
    started = time.perf_counter()
    with run_environment(LocalEnvironment(root=scratch / "state")):  # the local backend
        scored = score_rows.python_func(
            contract=contract.model_dump(mode="json", exclude_none=True),
            rows=dsl.Dataset(name="rows", uri=str(path)),
            served=dsl.Artifact(name="served", uri=str(served)),
            predictions=dsl.Dataset(name="predictions", uri=str(scratch / "predictions.parquet")),
            project="local", location="local", bq_location="", dataset="bench",
            scoring_run_id="benchmark", chunk_rows=chunk_rows,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    import pyarrow.parquet as pq

    expected = pq.ParquetFile(path).metadata.num_rows
    if scored != expected:
        raise SystemExit(f"score_rows scored {scored} of {expected} rows")
    return seconds


def vcpus(machine_type: str) -> int:
    """vCPUs of a predefined machine type: the number its name ends with (n1-standard-4: 4)."""
    tail = machine_type.rsplit("-", 1)[-1]
    if not tail.isdigit():
        raise ValueError(f"cannot read the vCPUs of machine type {machine_type!r}")
    return int(tail)


def extrapolate(rate_per_vcpu: float) -> list[str]:
    """How long TARGET_ROWS would take on each stack's configured batch job."""
    from stacks.config import PROJECT_ROOT, known_stacks, load_stack_file, stack_file_name

    lines = []
    for stack in known_stacks():
        scoring = load_stack_file(PROJECT_ROOT / stack_file_name(stack)).platform.pipelines.scoring
        cores = vcpus(scoring.machine_type) * scoring.replica_count
        minutes = TARGET_ROWS / (rate_per_vcpu * cores) / 60
        lines.append(
            f"  {stack}: {scoring.replica_count} x {scoring.machine_type} ({cores} vCPUs): "
            f"{minutes:.1f} min predicting + ~{JOB_STARTUP_MINUTES:.0f} min job start-up"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="default: the local staging model")
    parser.add_argument("--rows", type=int, default=200_000, help="generated rows to score")
    parser.add_argument("--chunk-rows", type=int, default=100_000, help="rows per prediction")
    args = parser.parse_args(argv)

    from benchmarks.serving import default_model_dir
    from local.environment import LocalEnvironment
    from pipeline_src.components.common import feature_spec

    model_dir = args.model_dir or default_model_dir()
    contract = LocalEnvironment().contract
    spec = feature_spec(contract.model_dump(mode="json", exclude_none=True))
    cores = os.cpu_count() or 1
    print(f"model {model_dir}; {args.rows} rows; {cores} cores, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as folder:
        scratch = Path(folder)
        path = scratch / "rows.parquet"
        generated_rows(contract, args.rows, path)
        floor = floor_seconds(model_dir, spec, path, args.chunk_rows)
        ours = ours_seconds(model_dir, contract, path, args.chunk_rows, scratch)
    print(f"floor (predict_proba only): {args.rows / floor:,.0f} rows/s ({floor:.2f} s)")
    print(f"ours (score_rows, local):   {args.rows / ours:,.0f} rows/s ({ours:.2f} s), "
          f"{ours / floor:.2f}x the floor's time")  # fmt: skip
    rate_per_vcpu = args.rows / ours / cores
    print(f"\n{TARGET_ROWS:,} rows at ours' rate per vCPU ({rate_per_vcpu:,.0f} rows/s; assumes "
          "the batch job's replicas scale with vCPUs as this machine's cores did):")  # fmt: skip
    for line in extrapolate(rate_per_vcpu):
        print(line)
    print(f"load at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
