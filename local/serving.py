"""A local endpoint served by a real server process, for the demo and the tests.

    python -m local.serving --endpoint staging [--root .local] [--port 8080]   # make serve

`serve_endpoint(env, "staging")` starts that server on a free port, waits until it answers
health, and stops it on leaving the `with` block. It is the model server of the pipeline image
(pipeline_src/serving) given the local endpoint as its source: the server re-reads the endpoint's
state on every request, so deployments made while it runs (a promotion's canary, then full
traffic) are served at once, as on Vertex AI.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from local.environment import LocalEnvironment
from stacks.config import PROJECT_ROOT

_LISTENING = re.compile(r" on (http://\S+) ")


@dataclass(frozen=True)
class RunningServer:
    url: str
    """Base URL, e.g. http://127.0.0.1:40123."""
    log: Path
    """The server's stderr: one line per request."""
    pid: int


@contextlib.contextmanager
def serve_endpoint(
    env: LocalEnvironment, endpoint: str, *, startup_seconds: float = 120.0
) -> Iterator[RunningServer]:
    """Serve a local endpoint from a server process until the block ends."""
    from pipeline_src.serving.client import HttpEndpointClient

    logs = env.ensure().root / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"serve-{endpoint}.log"
    command = [
        sys.executable, "-m", "local.serving",
        "--endpoint", endpoint, "--root", str(env.root.resolve()), "--port", "0",
        "--contract", str(env.contract_path),
    ]  # fmt: skip
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        first_line = process.stdout.readline()  # the server says where it listens, then serves
        match = _LISTENING.search(first_line)
        if not match:
            process.wait(timeout=10)
            raise RuntimeError(
                f"the server for endpoint {endpoint} did not start (exit {process.returncode}): "
                f"{first_line.strip()} {log.read_text()[-2000:]}"
            )
        server = RunningServer(url=match.group(1), log=log, pid=process.pid)
        client = HttpEndpointClient(server.url, timeout=startup_seconds)
        health = client.health()  # answers once the models it serves are loaded
        client.close()
        if health.status != 200:
            raise RuntimeError(f"endpoint {endpoint} cannot serve: {health.body}")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    """Serve a local endpoint (`make serve ENDPOINT=staging`)."""
    import argparse
    import os

    from local.environment import DEFAULT_ROOT, add_contract_argument, contract_path_of
    from local.registry import LocalEndpoint
    from pipeline_src.serving.__main__ import limit_threads, serve, server_arguments
    from pipeline_src.serving.server import EndpointSource

    environ = dict(os.environ)
    parser = argparse.ArgumentParser(prog="python -m local.serving", description=__doc__)
    parser.add_argument("--endpoint", required=True, help="the local endpoint (staging, prod, …)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="local state folder")
    add_contract_argument(parser)
    server_arguments(parser, environ)
    args = parser.parse_args(argv)
    limit_threads(environ)
    env = LocalEnvironment(root=args.root, contract_path=contract_path_of(args))
    return serve(EndpointSource(LocalEndpoint(env.endpoints_dir, args.endpoint)), args, environ)


if __name__ == "__main__":
    sys.exit(main())
