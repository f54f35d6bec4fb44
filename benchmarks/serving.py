"""Serving latency and throughput, side by side in one run (not a test).

    .venv/bin/python -m benchmarks.serving [--model-dir DIR] [--seconds 4] [--only ours,…]
    make bench-serve

Serves one model directory (default: what the local staging endpoint serves, `make pipeline`)
five ways, each a server process of its own with one compute thread per prediction:

- ours:       `python -m pipeline_src.serving --model-dir DIR` (FastAPI/uvicorn, the contract's
              checks, the frame built column by column), one process;
- ours-2proc: the same with `--workers 2` (two server processes on the one socket);
- previous:   the stdlib `ThreadingHTTPServer` this project served with before (its server.py and
              contract.py, read from git at `PREVIOUS_COMMIT` into a temporary package);
- fastapi:    a plain FastAPI/uvicorn app doing the minimum for the same model: a sync endpoint,
              pandas frame from the instances, predict_proba, the same response shape, no checks;
- null:       a bare asyncio server answering `{}` at once: the load generator's own ceiling,
              so a figure near it measures the client, not the server;

and measures in-process, beside each single-client cell: the floor (the model's `predict_proba`
on a ready frame, thread limits set once) and "ours in-process" (a request's bytes through the
server's `answer_predict`: what our code adds, without HTTP). A closed-loop load generator
(asyncio, one kept-alive connection per worker, each request one send on a TCP_NODELAY socket)
sends single-instance and 100-instance requests; a request without an answer in 30 s counts as
lost. Latencies count requests started after a 1 s warm-up: a row of "-" means none of them
finished within the cell (the first wave took longer), not that requests were lost.

The machine may be shared: each row gives the 1-minute load average at its end, and the CPU
time the server spent per answered request (all its processes; in-process rows: this process),
which a busy machine disturbs far less than latencies. Prints the table, the targets of the
serving issue (p50 within 1.3x the floor's and no worse than plain FastAPI, batch throughput
within 1.3x the floor's, no request lost at 128 clients, p99 at 8 clients) and the cost per
million predictions on the prod stack's machine type.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREVIOUS_COMMIT = "861d88a"
"""The last commit serving with the stdlib server (issue 14 replaced it)."""
SERVERS = ("ours", "ours-2proc", "previous", "fastapi", "null")
CELLS = ((1, 1), (1, 8), (1, 128), (100, 1), (100, 8))
"""(instances per request, concurrent clients)."""
TIMEOUT_SECONDS = 30.0
SLICES = 8
"""Cells below 128 clients are measured in this many turns per server (see measure_cell)."""
PRICES = PROJECT_ROOT / "tooling" / "prices" / "gcp.yaml"
"""The project's price table: the node hour of prod's serving machine type is read from it."""
INSTANCE = {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
            "flipper_length_mm": 192, "body_mass_g": 3500, "sex": "female"}  # fmt: skip
TABLE_HEAD = (
    "| server | instances | clients | req/s | inst/s | p50 ms | p95 ms | p99 ms | lost | non-200 "
    "| CPU ms/req | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)
NULL_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
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
    if kind in ("ours", "ours-2proc"):
        return [sys.executable, "-m", "pipeline_src.serving", "--model-dir", str(model_dir),
                "--port", "0", "--workers", "2" if kind == "ours-2proc" else "1"]  # fmt: skip
    if kind == "null":
        return [sys.executable, "-m", "benchmarks.serving", "--serve-null"]
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


def serve_null() -> None:
    """The null server: `{}` for every request, one write each, TCP_NODELAY (asyncio's own
    listener): what the load generator reaches when the server costs nothing."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(_content_length(head)))
                writer.write(NULL_RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def run() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=2048)
        print(f"serving on http://127.0.0.1:{server.sockets[0].getsockname()[1]} ", flush=True)
        await server.serve_forever()

    asyncio.run(run())


def _content_length(head: bytes) -> bytes:
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    return match.group(1) if match else b"0"


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its child processes so far."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for each in [pid, *map(int, children.read_text().split())]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


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
    cpu_seconds: float | None = None
    """CPU time the server (or this process, in-process) spent in the measured window."""
    load: float = 0.0
    """1-minute load average at the cell's end."""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_request(self) -> float | None:
        if self.cpu_seconds is None or not self.latencies:
            return None
        return self.cpu_seconds / len(self.latencies)

    def percentile(self, q: float) -> float | None:
        done = sorted(self.latencies)
        return done[min(len(done) - 1, int(q * len(done)))] if done else None

    def row(self) -> str:
        def ms(q: float) -> str:
            value = self.percentile(q)
            return "-" if value is None else f"{value * 1000:.1f}"

        cpu = "-" if self.cpu_per_request is None else f"{self.cpu_per_request * 1000:.2f}"
        return (
            f"| {self.server} | {self.instances} | {self.concurrency} | {self.rate:.1f} | "
            f"{self.rate * self.instances:.0f} | {ms(0.5)} | {ms(0.95)} | {ms(0.99)} | "
            f"{self.lost} | {self.errors} | {cpu} | {self.load:.1f} |"
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
            length = int(_content_length(head))
            await asyncio.wait_for(reader.readexactly(length), TIMEOUT_SECONDS)
            if started >= warm_until:
                cell.latencies.append(time.perf_counter() - started)
                cell.errors += not head.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        cell.lost += 1
    finally:
        writer.close()


def request_bytes(instances: int) -> bytes:
    body = json.dumps({"instances": [INSTANCE] * instances}).encode()
    return (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body  # one send: headers and body in the same segment


@dataclass
class Server:
    """A server process under load: `url`, and `pid` whose CPU time (children included) counts."""

    url: str
    pid: int

    def measure(self, cell: Cell, seconds: float, warm: float) -> None:
        asyncio.run(self._load(cell, seconds, warm))

    async def _load(self, cell: Cell, seconds: float, warm: float) -> None:
        """`cell.concurrency` closed-loop clients, `warm` s uncounted, then `seconds` counted
        (and the answers to requests started by then)."""
        port = int(self.url.rsplit(":", 1)[1])
        request = request_bytes(cell.instances)
        warm_until = time.perf_counter() + warm
        until = warm_until + seconds
        before = []

        async def sample() -> None:
            await asyncio.sleep(warm_until - time.perf_counter())
            before.append(cpu_seconds(self.pid))

        await asyncio.gather(
            sample(),
            *(one_client(port, request, until, warm_until, cell) for _ in range(cell.concurrency)),
        )
        cell.cpu_seconds = (cell.cpu_seconds or 0.0) + cpu_seconds(self.pid) - before[0]
        cell.seconds += time.perf_counter() - warm_until
        cell.load = os.getloadavg()[0]


@dataclass
class InProcess:
    """`call()` in a loop in this process (one client)."""

    call: Callable[[], object]

    def measure(self, cell: Cell, seconds: float, warm: float) -> None:
        warm_until = time.perf_counter() + warm
        until = warm_until + seconds
        cell.cpu_seconds = cell.cpu_seconds or 0.0
        while (started := time.perf_counter()) < until:
            cpu = time.process_time()
            self.call()
            if started >= warm_until:
                cell.latencies.append(time.perf_counter() - started)
                cell.cpu_seconds += time.process_time() - cpu
        cell.seconds += time.perf_counter() - warm_until
        cell.load = os.getloadavg()[0]


# --- the floor -------------------------------------------------------------------------------


def in_process_targets(model_dir: Path, instances: int) -> dict[str, InProcess]:
    """The floor: predict_proba on a ready frame, thread limits set once (OMP_NUM_THREADS, set
    before the model's libraries load); and ours without HTTP: the request's bytes through
    `answer_predict` (JSON, the contract's checks, the frame, predict_proba, the answer's JSON)."""
    from pipeline_src.serving.server import ModelSource, answer_predict

    source = ModelSource(model_dir)
    frame = source.model.inputs([INSTANCE] * instances)
    body = json.dumps({"instances": [INSTANCE] * instances}).encode()
    return {
        "floor": InProcess(lambda: source.model.pipeline.predict_proba(frame)),
        "ours in-process": InProcess(lambda: answer_predict(source, body)),
    }


# --- the run ---------------------------------------------------------------------------------


def default_model_dir() -> Path:
    from local.environment import LocalEnvironment
    from local.registry import LocalEndpoint

    env = LocalEnvironment()
    serving = LocalEndpoint(env.endpoints_dir, "staging").serving()
    if serving is None:
        raise SystemExit("no model on the local staging endpoint: run `make pipeline` first")
    return Path(serving.artifact_uri)


def measure_cell(targets: dict, instances: int, concurrency: int, seconds: float) -> list[Cell]:
    """One cell for every target. Below 128 clients the targets take turns in SLICES slices
    (after a 1 s warm-up each), so a change in the shared machine's load hits them alike; at 128
    one stretch each (a slice would end in a long drain of the clients' last requests)."""
    cells = {name: Cell(name, instances, concurrency, [], 0, 0, 0.0) for name in targets}
    slices = 1 if concurrency >= 128 else SLICES
    for number in range(slices):
        for name, target in targets.items():
            target.measure(cells[name], seconds / slices, warm=1.0 if number == 0 else 0.0)
    return list(cells.values())


def measure(kinds: list[str], model_dir: Path, seconds: float) -> list[Cell]:
    """Every cell for every server (and, for one client, the floor and ours in-process)."""
    cells = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as scratch:
        processes = {kind: start(kind, model_dir, Path(scratch)) for kind in kinds}
        servers = {kind: Server(url, process.pid) for kind, (process, url) in processes.items()}
        try:
            for instances, concurrency in CELLS:
                local = in_process_targets(model_dir, instances) if concurrency == 1 else {}
                turn = measure_cell({**local, **servers}, instances, concurrency, seconds)
                for cell in turn:
                    print(cell.row(), flush=True)
                cells += turn
        finally:
            for process, _ in processes.values():
                process.terminate()
                process.wait(timeout=10)
    return cells


def find(cells: list[Cell], kind: str, instances: int, concurrency: int) -> Cell | None:
    return next(
        (
            c
            for c in cells
            if (c.server, c.instances, c.concurrency) == (kind, instances, concurrency)
        ),
        None,
    )


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def cpu_ratio(cell: Cell, floor: Cell) -> str:
    """CPU per request against the floor's per call: steadier than latency on a busy machine,
    where a busy loop (the in-process rows) gets less CPU than a server sleeping between
    requests."""
    if cell.cpu_per_request is None or not floor.cpu_per_request:
        return ""
    return f"; CPU per request {cell.cpu_per_request / floor.cpu_per_request:.2f}x the floor's"


def targets(cells: list[Cell], kind: str) -> list[str]:
    """The serving issue's targets for one server, each with the load its figures ran at."""
    floor, floor_batch = find(cells, "floor", 1, 1), find(cells, "floor", 100, 1)
    single, batch = find(cells, kind, 1, 1), find(cells, kind, 100, 1)
    lines = []
    if floor and single and single.latencies:
        ratio = single.percentile(0.5) / floor.percentile(0.5)
        lines.append(
            f"p50, 1 instance, 1 client: {ms(single.percentile(0.5))} = {ratio:.2f}x the floor's "
            f"{ms(floor.percentile(0.5))} (target 1.3x: {verdict(ratio <= 1.3)}; load "
            f"{floor.load:.1f}/{single.load:.1f}{cpu_ratio(single, floor)})"
        )
    plain = find(cells, "fastapi", 1, 1)
    if single and plain and single.latencies and plain.latencies and kind != "fastapi":
        lines.append(
            f"p50 vs plain FastAPI: {ms(single.percentile(0.5))} vs {ms(plain.percentile(0.5))} "
            f"(target no worse: {verdict(single.percentile(0.5) <= plain.percentile(0.5))}; "
            f"load {single.load:.1f}/{plain.load:.1f}); server CPU per request "
            f"{ms(single.cpu_per_request)} vs {ms(plain.cpu_per_request)}"
        )
    if floor_batch and batch and batch.rate:
        ratio = floor_batch.rate / batch.rate
        lines.append(
            f"100 instances, 1 client: the floor's throughput / {ratio:.2f} (target 1.3: "
            f"{verdict(ratio <= 1.3)}; load {floor_batch.load:.1f}/{batch.load:.1f}"
            f"{cpu_ratio(batch, floor_batch)})"
        )
    for instances in (1, 100):
        crowd = find(cells, kind, instances, 128)
        if crowd:
            lines.append(
                f"{instances} instance(s), 128 clients: {crowd.lost} without an answer, "
                f"{crowd.errors} non-200 (target none: {verdict(not crowd.lost)})"
            )
    eight = find(cells, kind, 1, 8)
    if eight:
        lines.append(
            f"p99, 1 instance, 8 clients: {ms(eight.percentile(0.99))} (load {eight.load:.1f})"
        )
    return lines


def summarise(cells: list[Cell]) -> None:
    print()
    for kind in [k for k in SERVERS if k != "null" and any(c.server == k for c in cells)]:
        print(f"{kind}:")
        for line in targets(cells, kind):
            print(f"  {line}")
    measured = next((k for k in ("ours-2proc", "ours") if find(cells, k, 1, 8)), None)
    if measured:
        price, source = node_hour_price()
        print(f"\ncost per million predictions, {measured} at 8 clients on this machine's "
              f"{os.cpu_count()} cores, one node ({source}; the node has at least these cores "
              "and the container runs one server process per core):")  # fmt: skip
        for instances in (1, 100):
            cell = find(cells, measured, instances, 8)
            if cell and cell.rate:
                per_second = cell.rate * instances
                usd = price / (per_second * 3600) * 1e6
                print(f"  {instances}-instance requests: {per_second:.0f} predictions/s "
                      f"-> USD {usd:.3f} (load {cell.load:.1f})")  # fmt: skip


def node_hour_price(stack: str = "prod"):
    """(USD per node hour, where the figure comes from) for Vertex AI online prediction on the
    stack's serving machine type in its region (its stack file)."""
    import yaml

    from stacks.config import load_stack_file, stack_file_name

    config = load_stack_file(PROJECT_ROOT / stack_file_name(stack))
    machine_type, region = config.platform.serving.machine_type, config.region
    table = yaml.safe_load(PRICES.read_text(encoding="utf-8"))
    row = next(r for r in table["prices"] if r["key"] == f"vertex-prediction/{machine_type}"
               and r["region"] == region)  # fmt: skip
    source = table["sources"][row["source"]]
    return row["usd"], (
        f"Vertex AI online prediction, {stack}'s {machine_type} node hour in {region}: "
        f"USD {row['usd']} "
        f"from {PRICES.relative_to(PROJECT_ROOT)} (source {source}, read {table['read']}, "
        f"certainty {row['certainty']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="default: the local staging model")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per cell")
    parser.add_argument("--only", default=",".join(SERVERS), help="servers, comma-separated")
    parser.add_argument("--serve-plain", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-null", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_plain:
        serve_plain(args.serve_plain)
        return 0
    if args.serve_null:
        serve_null()
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
