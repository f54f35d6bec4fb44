"""Serving latency and throughput, side by side in one run (not a test).

    .venv/bin/python -m benchmarks.serving [--model-dir DIR] [--seconds 4] [--only ours,…]
    make bench-serve

Serves one model directory (default: what the local staging endpoint serves, `make pipeline`)
three ways, each a server process of its own with one compute thread per prediction:

- ours:     `python -m pipeline_src.serving --model-dir DIR` (FastAPI/uvicorn, the contract's
            checks, the frame built column by column);
- previous: the stdlib `ThreadingHTTPServer` this project served with before (its server.py and
            contract.py, read from git at `PREVIOUS_COMMIT` into a temporary package);
- fastapi:  a plain FastAPI/uvicorn app doing the minimum for the same model: a sync endpoint,
            pandas frame from the instances, predict_proba, the same response shape, no checks;

and measures in-process, beside each single-client cell: the floor (the model's `predict_proba`
on a ready frame, thread limits set once) and "ours in-process" (a request's bytes through the
server's `answer_predict`: what our code adds, without HTTP). A closed-loop load generator
(asyncio, one kept-alive connection per worker) sends single-instance and 100-instance requests;
a request without an answer in 30 s counts as lost.
Latencies count requests started after a 1 s warm-up: a row of "-" means none of them finished
within the cell (the first wave took longer), not that requests were lost.
Prints the table, the ratios the serving issue sets as targets and the cost per million
predictions on the prod stack's machine type.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREVIOUS_COMMIT = "861d88a"
"""The last commit serving with the stdlib server (issue 14 replaced it)."""
SERVERS = ("ours", "previous", "fastapi")
CELLS = ((1, 1), (1, 8), (1, 128), (100, 1), (100, 8))
"""(instances per request, concurrent clients)."""
TIMEOUT_SECONDS = 30.0
PRICES = PROJECT_ROOT / "tooling" / "prices" / "gcp.yaml"
"""The project's price table: the node hour of prod's serving machine type is read from it."""
INSTANCE = {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
            "flipper_length_mm": 192, "body_mass_g": 3500, "sex": "female"}  # fmt: skip
TABLE_HEAD = (
    "| server | instances | clients | req/s | inst/s | p50 ms | p95 ms | p99 ms | lost | non-200 |"
    "\n|---|---|---|---|---|---|---|---|---|---|"
)
_LISTENING = re.compile(r" on (http://\S+)")


# --- the servers ---------------------------------------------------------------------------------


def previous_package(into: Path) -> Path:
    """The previous server and contract, from git, as the package `previous_serving` in `into`."""
    package = into / "previous_serving"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("server.py", "contract.py"):
        source = subprocess.run(
            ["git", "show", f"{PREVIOUS_COMMIT}:pipeline_src/serving/{name}"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        source = source.replace("pipeline_src.serving.contract", "previous_serving.contract")
        (package / name).write_text(source)
    return into


def server_command(kind: str, model_dir: Path, scratch: Path) -> list[str]:
    if kind == "ours":
        return [sys.executable, "-m", "pipeline_src.serving", "--model-dir", str(model_dir),
                "--port", "0"]  # fmt: skip
    if kind == "previous":
        code = (
            f"import sys; sys.path.insert(0, {str(previous_package(scratch))!r})\n"
            "from previous_serving.server import ModelSource, make_server\n"
            f"server = make_server(ModelSource({str(model_dir)!r}), '127.0.0.1', 0)\n"
            "print(f'serving on http://127.0.0.1:{server.server_address[1]} ', flush=True)\n"
            "server.serve_forever()\n"
        )
        return [sys.executable, "-c", code]
    return [sys.executable, "-m", "benchmarks.serving", "--serve-plain", str(model_dir)]


def serve_plain(model_dir: Path) -> None:
    """The plain FastAPI/uvicorn app: what a tutorial would serve the model with."""
    import socket

    import joblib
    import pandas as pd
    import uvicorn
    from fastapi import FastAPI

    from pipeline_src.components.common import model_inputs

    pipeline = joblib.load(model_dir / "model.joblib")
    signature = json.loads((model_dir / "model.json").read_text())
    classes = [str(c) for c in pipeline.classes_]
    app = FastAPI()

    @app.post("/predict")
    def predict(body: dict) -> dict:
        frame = model_inputs(pd.DataFrame(body["instances"]), signature)
        rows = pipeline.predict_proba(frame)
        return {"predictions": [
            {"class": classes[int(row.argmax())],
             "probabilities": {c: round(float(p), 6) for c, p in zip(classes, row, strict=True)}}
            for row in rows
        ]}  # fmt: skip

    # Bound as uvicorn.run(app, host, port) binds (asyncio's create_server: proto IPPROTO_TCP, so
    # TCP_NODELAY on each connection), on port 0 so the port can be printed.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"serving on http://127.0.0.1:{sock.getsockname()[1]} ", flush=True)
    uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning")).run([sock])


def start(kind: str, model_dir: Path, scratch: Path) -> tuple[subprocess.Popen, str]:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    process = subprocess.Popen(
        server_command(kind, model_dir, scratch), cwd=PROJECT_ROOT, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    match = _LISTENING.search(process.stdout.readline())
    if not match:
        process.kill()
        raise RuntimeError(f"the {kind} server did not start")
    return process, match.group(1)


# --- the load generator ----------------------------------------------------------------------


@dataclass
class Cell:
    server: str
    instances: int
    concurrency: int
    latencies: list[float]
    lost: int
    errors: int
    seconds: float

    def row(self) -> str:
        done = sorted(self.latencies)
        rate = len(done) / self.seconds

        def pct(q: float) -> str:
            return f"{done[min(len(done) - 1, int(q * len(done)))] * 1000:.1f}" if done else "-"

        return (
            f"| {self.server} | {self.instances} | {self.concurrency} | {rate:.1f} | "
            f"{rate * self.instances:.0f} | {pct(0.5)} | {pct(0.95)} | {pct(0.99)} | "
            f"{self.lost} | {self.errors} |"
        )


async def one_client(port: int, request: bytes, until: float, warm_until: float, cell: Cell):
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError):
        cell.lost += 1
        return
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_SECONDS)
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            await asyncio.wait_for(reader.readexactly(length), TIMEOUT_SECONDS)
            if started >= warm_until:
                cell.latencies.append(time.perf_counter() - started)
                cell.errors += not head.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        cell.lost += 1
    finally:
        writer.close()


async def load(server: str, url: str, instances: int, concurrency: int, seconds: float) -> Cell:
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"instances": [INSTANCE] * instances}).encode()
    request = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    cell = Cell(server, instances, concurrency, [], 0, 0, seconds)
    warm_until = time.perf_counter() + 1.0
    until = warm_until + seconds
    await asyncio.gather(
        *(one_client(port, request, until, warm_until, cell) for _ in range(concurrency))
    )
    return cell


# --- the floor -------------------------------------------------------------------------------


def in_process_cell(name: str, call, instances: int, seconds: float) -> Cell:
    """`call()` in a loop in this process, for as long as a server's cell."""
    cell = Cell(name, instances, 1, [], 0, 0, seconds)
    warm_until = time.perf_counter() + 1.0
    until = warm_until + seconds
    while (started := time.perf_counter()) < until:
        call()
        if started >= warm_until:
            cell.latencies.append(time.perf_counter() - started)
    return cell


def in_process_cells(model_dir: Path, instances: int, seconds: float) -> list[Cell]:
    """The floor: predict_proba on a ready frame, thread limits set once (OMP_NUM_THREADS, set
    before the model's libraries load); and ours without HTTP: the request's bytes through
    `answer_predict` (JSON, the contract's checks, the frame, predict_proba, the answer's JSON)."""
    from pipeline_src.serving.server import ModelSource, answer_predict

    source = ModelSource(model_dir)
    frame = source.model.inputs([INSTANCE] * instances)
    body = json.dumps({"instances": [INSTANCE] * instances}).encode()
    return [
        in_process_cell("floor", lambda: source.model.pipeline.predict_proba(frame), instances,
                        seconds),
        in_process_cell("ours in-process", lambda: answer_predict(source, body), instances,
                        seconds),
    ]  # fmt: skip


# --- the run ---------------------------------------------------------------------------------


def default_model_dir() -> Path:
    from local.environment import LocalEnvironment
    from local.registry import LocalEndpoint

    env = LocalEnvironment()
    serving = LocalEndpoint(env.endpoints_dir, "staging").serving()
    if serving is None:
        raise SystemExit("no model on the local staging endpoint: run `make pipeline` first")
    return Path(serving.artifact_uri)


def measure(kinds: list[str], model_dir: Path, seconds: float) -> list[Cell]:
    """Every cell for every server, the servers taking turns cell by cell (and the floor before
    each single-client cell), so a change in the shared machine's load hits them alike."""
    cells = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        servers = {kind: start(kind, model_dir, Path(scratch)) for kind in kinds}
        try:
            for instances, concurrency in CELLS:
                turn = in_process_cells(model_dir, instances, seconds) if concurrency == 1 else []
                for kind, (_, url) in servers.items():
                    turn.append(asyncio.run(load(kind, url, instances, concurrency, seconds)))
                for cell in turn:
                    print(cell.row(), flush=True)
                cells += turn
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=10)
    return cells


def summarise(cells: list[Cell]) -> None:
    def find(kind: str, instances: int, concurrency: int) -> tuple[float, float]:
        cell = next(c for c in cells if (c.server, c.instances, c.concurrency)
                    == (kind, instances, concurrency))  # fmt: skip
        return statistics.median(cell.latencies), len(cell.latencies) / cell.seconds * instances

    floor1, _ = find("floor", 1, 1)
    _, floor_rate = find("floor", 100, 1)
    print()
    for kind in sorted({c.server for c in cells} - {"floor"}, key=str.lower):
        single, _ = find(kind, 1, 1)
        _, rate = find(kind, 100, 1)
        print(f"{kind}: 1 instance, 1 client: p50 {single / floor1:.2f}x the floor's; 100 "
              f"instances, 1 client: the floor's throughput / {floor_rate / rate:.2f}")  # fmt: skip
    if any(c.server == "ours" for c in cells):
        price, source = node_hour_price()
        print(f"\ncost per million predictions, ours at 8 clients, one server process per node "
              f"({source}):")  # fmt: skip
        for instances in (1, 100):
            _, per_second = find("ours", instances, 8)
            usd = price / (per_second * 3600) * 1e6
            print(f"  {instances}-instance requests: {per_second:.0f} predictions/s "
                  f"-> USD {usd:.3f}")  # fmt: skip


def node_hour_price(machine_type: str = "n1-standard-4", region: str = "europe-west4"):
    """(USD per node hour, where the figure comes from) for Vertex AI online prediction."""
    import yaml

    table = yaml.safe_load(PRICES.read_text(encoding="utf-8"))
    row = next(r for r in table["prices"] if r["key"] == f"vertex-prediction/{machine_type}"
               and r["region"] == region)  # fmt: skip
    source = table["sources"][row["source"]]
    return row["usd"], (
        f"Vertex AI online prediction, {machine_type} node hour in {region}: USD {row['usd']} "
        f"from {PRICES.relative_to(PROJECT_ROOT)} (source {source}, read {table['read']}, "
        f"certainty {row['certainty']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="default: the local staging model")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per cell")
    parser.add_argument("--only", default=",".join(SERVERS), help="servers, comma-separated")
    parser.add_argument("--serve-plain", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_plain:
        serve_plain(args.serve_plain)
        return 0
    os.environ["OMP_NUM_THREADS"] = "1"  # the floor's thread limit, before sklearn loads
    model_dir = args.model_dir or default_model_dir()
    kinds = [k for k in args.only.split(",") if k]
    unknown = set(kinds) - set(SERVERS)
    if unknown:
        parser.error(
            f"--only: unknown {', '.join(sorted(unknown))} (servers: {', '.join(SERVERS)})"
        )
    print(f"model {model_dir}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}\n")
    print(TABLE_HEAD)
    summarise(measure(kinds, model_dir, args.seconds))
    print(f"\nload at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
