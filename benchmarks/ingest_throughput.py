"""Ingestion throughput and peak memory, side by side with the usual alternatives (not a test).

    .venv/bin/python -m benchmarks.ingest_throughput [--size 1GB] [--file F.csv] [--only ours,…]

Writes a CSV of the given size with the seeded generator (contracts/generate.py), then validates
and loads that same file four ways, each in a fresh child process so peak RSS is its own:

- ours:     the ingestion flow (head checks, staging, the contract's checks as SQL, the commit)
            on the local DuckDB adapter, exactly as the function runs it;
- duckdb:   DuckDB's raw typed `read_csv` into a table: no checks, the practical ceiling;
- pandas:   `pandas.read_csv` with the contract's dtypes, then the same rules vectorised;
- row-wise: Python's csv module, every rule checked cell by cell (the tutorial function);
- ours-text (only with --only): ours with the typed fast path off, every file staged as text.

Prints MB/s, peak RSS, CPU time and the ratios the ingestion issue sets as targets, the time
ours spent in each step (a "text staging" step in ours: the typed fast path fell back), and the
load average before and after. Sizes are MiB (1024**2 bytes); a size beyond the contract's
max_bytes (2 GiB for penguins) is refused, as the function would reject that file: the largest
honest size is 2000MB.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from contracts import DataContract, load_contract
from local.environment import contract_path_of

VARIANTS = ("ours", "duckdb", "pandas", "row-wise")
EXTRA = ("ours-text",)
"""Run only when asked (--only): ours with the typed fast path off, as before it existed."""


# --- the variants, each run in a child process ------------------------------------------------


def run_ours(path: Path, contract: DataContract, work: Path, *, typed: bool = True) -> int:
    from function_src.ingestion.duckdb_warehouse import DuckDbWarehouse
    from function_src.ingestion.ingest import Ingestor, Landing

    class FileStorage:
        """The object is already a local file: no download to time."""

        def pin(self, obj):
            """The local file is the generation."""

        def head(self, obj, length):
            with path.open("rb") as f:
                return f.read(length)

        def download(self, obj, target):
            os.symlink(path, target)

        def quarantine(self, obj, bucket, report):
            raise AssertionError(f"the benchmark file was rejected: {report['reason']}")

    @contextmanager
    def warehouse():
        with DuckDbWarehouse.open(
            work / "warehouse.duckdb", "bench", contract.name, "ingestion_log",
            FileStorage().download, memory_limit=os.environ.get("BENCH_MEMORY_LIMIT", "512MB"),
        ) as opened:  # fmt: skip
            if not typed:
                opened.stage_typed = lambda *args, **kwargs: False
            yield _timed(opened)

    ingestor = Ingestor(
        contract, Landing("bench", "incoming/", "quarantine"), FileStorage(), warehouse,
        log_table="ingestion_log", curated_table=contract.name, out=io.StringIO(),
    )  # fmt: skip
    size = path.stat().st_size
    outcome = ingestor.handle(
        {"bucket": "bench", "name": "incoming/bench.csv", "generation": "1", "size": str(size)}
    )
    assert outcome.status == "LOADED", outcome.reason
    return outcome.rows_loaded or 0


PHASES: dict[str, float] = {}
"""Seconds ours spent in each step of the warehouse port (reported with its figures)."""


def _timed(warehouse):
    """The adapter with its port methods timed into PHASES: which path ran, and its cost."""
    names = {"stage_typed": "typed staging", "stage": "text staging", "query": "queries (checks)",
             "commit": "commits (load; the fast path's checks too)"}  # fmt: skip
    for method, phase in names.items():
        original = getattr(warehouse, method)

        def timed(*args, _original=original, _phase=phase, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                PHASES[_phase] = PHASES.get(_phase, 0.0) + time.perf_counter() - started

        setattr(warehouse, method, timed)
    return warehouse


def run_duckdb(path: Path, contract: DataContract, work: Path) -> int:
    from function_src.ingestion.duckdb_warehouse import DUCKDB_TYPES, connect

    columns = {c.name: DUCKDB_TYPES[c.type] for c in contract.columns}
    with connect(work / "raw.duckdb") as con:
        con.execute(
            "CREATE TABLE t AS SELECT * FROM read_csv($p, header = true, columns = $c, "
            "auto_detect = false, nullstr = $n, delim = $d)",
            {
                "p": str(path),
                "c": columns,
                "n": contract.file.null_markers,
                "d": contract.file.delimiter,
            },
        )
        return con.execute("SELECT count(*) FROM t").fetchall()[0][0]


def run_pandas(path: Path, contract: DataContract, work: Path) -> int:
    import pandas as pd

    dtypes = {"STRING": "string", "INT64": "Int64", "FLOAT64": "float64", "BOOL": "boolean"}
    frame = pd.read_csv(
        path, dtype={c.header: dtypes[c.type] for c in contract.columns},
        na_values=contract.file.null_markers, keep_default_na=False, sep=contract.file.delimiter,
    ).rename(columns={c.header: c.name for c in contract.columns})  # fmt: skip
    problems = 0
    for c in contract.columns:
        values = frame[c.name]
        if not c.nullable:
            problems += int(values.isna().sum())
        if c.type == "FLOAT64":
            problems += int((~values.dropna().map(float.__abs__).lt(float("inf"))).sum())
        if c.min is not None:
            problems += int((values < c.min).sum())
        if c.max is not None:
            problems += int((values > c.max).sum())
        if c.allowed is not None:
            problems += int((~values.dropna().astype(str).isin(c.allowed)).sum())
        if c.pattern is not None:
            problems += int((~values.dropna().str.match(c.pattern)).sum())
        if c.max_length is not None:
            problems += int((values.dropna().str.len() > c.max_length).sum())
    if contract.key_columns:
        problems += int(frame.duplicated(subset=contract.key_columns).sum())
    assert problems == 0, f"pandas found {problems} problems in a good file"
    return len(frame)


def run_row_wise(path: Path, contract: DataContract, work: Path) -> int:
    nulls = set(contract.file.null_markers)
    checks = []
    for c in contract.columns:
        pattern = re.compile(c.pattern) if c.pattern else None
        allowed = set(c.allowed) if c.allowed else None
        checks.append((c, pattern, allowed))
    seen: set[tuple[str, ...]] = set()
    keys = [contract.column_names.index(k) for k in contract.key_columns]
    rows = 0
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=contract.file.delimiter)
        header = next(reader)
        assert header == contract.headers
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise ValueError(f"line {line}: {len(row)} fields")
            for value, (c, pattern, allowed) in zip(row, checks, strict=True):
                if value in nulls:
                    if not c.nullable:
                        raise ValueError(f"line {line}: {c.name} is required")
                    continue
                if c.type in ("INT64", "FLOAT64"):
                    number = int(value) if c.type == "INT64" else float(value)
                    if number != number or number in (float("inf"), float("-inf")):
                        raise ValueError(f"line {line}: {c.name} not finite")
                    if (c.min is not None and number < c.min) or (
                        c.max is not None and number > c.max
                    ):
                        raise ValueError(f"line {line}: {c.name} out of range")
                if allowed is not None and value not in allowed:
                    raise ValueError(f"line {line}: {c.name} not allowed")
                if pattern is not None and not pattern.search(value):
                    raise ValueError(f"line {line}: {c.name} pattern")
                if c.max_length is not None and len(value) > c.max_length:
                    raise ValueError(f"line {line}: {c.name} too long")
            key = tuple(row[i] for i in keys)
            if keys and key in seen:
                raise ValueError(f"line {line}: duplicate key")
            seen.add(key)
            rows += 1
    return rows


# The ingestion issue's targets: (compared with, figure, target as text, met?).
TARGETS = (
    ("duckdb", lambda r: r["mb_s"], "throughput >= 0.7x", lambda x: x >= 0.7),
    ("row-wise", lambda r: r["mb_s"], "throughput >= 5x", lambda x: x >= 5),
    ("pandas", lambda r: r["mb_s"], "throughput >= 0.8x", lambda x: x >= 0.8),
    ("pandas", lambda r: r["peak_rss_mb"], "peak RSS <= 0.33x", lambda x: x <= 0.33),
)

LIBRARIES = {
    "ours": ("duckdb", "sqlglot", "pyarrow", "function_src.ingestion.ingest"),
    "ours-text": ("duckdb", "sqlglot", "pyarrow", "function_src.ingestion.ingest"),
    "duckdb": ("duckdb",),
    "pandas": ("pandas",),
    "row-wise": (),
}
RUNNERS = {"ours": run_ours, "duckdb": run_duckdb, "pandas": run_pandas, "row-wise": run_row_wise,
           "ours-text": functools.partial(run_ours, typed=False)}  # fmt: skip


def child(variant: str, path: Path, contract_path: Path) -> None:
    """Run one variant; print its figures as JSON (peak RSS is this process's own)."""
    contract = load_contract(contract_path)
    for module in LIBRARIES[variant]:  # imported before the clock starts
        importlib.import_module(module)
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        started, cpu_before = time.perf_counter(), _cpu_seconds()
        rows = RUNNERS[variant](path, contract, Path(work))
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"variant": variant, "rows": rows, "seconds": seconds, "cpu_seconds": cpu,
                      "peak_rss_mb": peak_kb / 1024, "phases": PHASES}))  # fmt: skip


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): on a shared machine, wall time also counts the
    time others held the cores, so the CPU time is the steadier figure to compare."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the parent: generate, run each child, print the table ------------------------------------


def measure(variant: str, path: Path, contract_path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest_throughput", "--child", variant,
         "--file", str(path), "--contract", str(contract_path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(results: list[dict], size_mb: float) -> list[str]:
    by = {r["variant"]: r for r in results}
    lines = [f"{'variant':<10} {'rows':>12} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12} "
             f"{'CPU s':>7}"]  # fmt: skip
    for r in results:
        mbs = size_mb / r["seconds"]
        r["mb_s"] = mbs
        lines.append(f"{r['variant']:<10} {r['rows']:>12,} {r['seconds']:>8.1f} {mbs:>7.1f} "
                     f"{r['peak_rss_mb']:>12.0f} {r['cpu_seconds']:>7.1f}")  # fmt: skip
    ours = by.get("ours")
    for r in results:
        if r.get("phases"):
            steps = ", ".join(f"{name} {sec:.1f} s" for name, sec in r["phases"].items())
            lines.append(f"{r['variant']} by step: {steps}")
    if ours and "duckdb" in by:
        cpu = by["duckdb"]["cpu_seconds"] / ours["cpu_seconds"]
        lines.append(f"ours vs duckdb in CPU time {cpu:.2f} "
                     "(steadier than wall time on a shared machine; not a target)")  # fmt: skip
    for other, what, target, ok in TARGETS:
        if ours and other in by:
            ratio = what(ours) / what(by[other])
            lines.append(f"ours vs {other:<9} {ratio:6.2f}  target {target:<22} "
                         f"{'met' if ok(ratio) else 'MISSED'}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    from contracts.generate import _parse_size, sample_profile, write_csv

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=_parse_size, default=_parse_size("1GB"))
    parser.add_argument(
        "--file", type=Path, help="an existing CSV of the contract (else generated)"
    )
    parser.add_argument("--contract", type=Path, default=None, help="default: the stack's")
    parser.add_argument("--only", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS + EXTRA)}")  # fmt: skip
    parser.add_argument("--child", choices=VARIANTS + EXTRA, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.contract = contract_path_of(args)
    if args.child:
        child(args.child, args.file, args.contract)
        return 0
    contract = load_contract(args.contract)
    limit = contract.file.max_bytes
    # (at the limit too: the generator stops after the chunk that reaches --size, past it)
    if not args.file and args.size >= limit:
        parser.error(f"--size {args.size / 1024**2:.0f} MB is not below the contract's max_bytes "
                     f"({limit / 1024**2:.0f} MB), which the function rejects: "
                     "the largest honest size is 2000MB")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-") if not args.file else nullcontext() as tmp:
        path = args.file or Path(tmp) / "bench.csv"
        if not args.file:
            written = write_csv(sample_profile(contract), path, size=args.size, seed=1)
            print(f"generated {path.name}: {written.rows:,} rows, {written.bytes / 1024**2:.0f} MB "
                  f"in {written.seconds:.1f} s", flush=True)  # fmt: skip
        size = path.stat().st_size
        if size > limit:  # the generator stops after the chunk that reaches --size
            parser.error(f"{path.name} is {size / 1024**2:.0f} MB, beyond the contract's max_bytes "
                         f"({limit / 1024**2:.0f} MB): ask for a smaller --size")  # fmt: skip
        load_before = os.getloadavg()[0]
        results = []
        for variant in args.only.split(","):
            results.append(measure(variant, path, args.contract))
            print(f"  {variant}: {results[-1]['seconds']:.1f} s", flush=True)
        print(f"\n{size / 1024**2:.0f} MB (max_bytes {limit / 1024**2:.0f} MB), "
              f"{os.cpu_count()} cores, load {load_before:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after")  # fmt: skip
        print("\n".join(table(results, size / 1024**2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
