"""Serve a model over HTTP with Vertex AI's routes and payloads.

    python -m pipeline_src.serving --model-dir DIR     # one model directory
    python -m pipeline_src.serving                     # the container on Vertex
    python -m local.serving --endpoint staging         # a local endpoint (local/serving.py)

On Vertex AI the container is started without arguments: the model comes from AIP_STORAGE_URI
(a gs:// copy of the model's artifact_uri), the port and routes from AIP_HTTP_PORT,
AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE. Locally the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from pipeline_src.serving.http_server import stderr_log_config
from pipeline_src.serving.server import ModelSource, Routes, make_server

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_threads(environ: dict[str, str]) -> None:
    """One compute thread per prediction, set once for the process before the model's native
    libraries load (they read these at start). The server runs one prediction per core at a
    time; a per-request `threadpool_limits` cost ~3.5 ms of a 15 ms prediction."""
    for name in THREAD_VARIABLES:
        os.environ[name] = environ.get(name, "1")


def default_workers(environ: dict[str, str], in_container: bool) -> int:
    """SERVING_WORKERS if set; else in the container one server process per core it may use
    (a prediction holds the GIL most of its time, so one process uses about one core), and one
    process elsewhere (`make serve`, tests: the machine is shared)."""
    if environ.get("SERVING_WORKERS"):
        return int(environ["SERVING_WORKERS"])
    return len(os.sched_getaffinity(0)) if in_container else 1


def positive(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"at least 1, got {number}")
    return number


def download(uri: str, destination: Path) -> Path:
    """Copy a gs:// model directory to `destination` (the container's local disk)."""
    from google.cloud import storage

    bucket_name, _, prefix = uri.removeprefix("gs://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    client = storage.Client()
    count = 0
    for blob in client.list_blobs(bucket_name, prefix=prefix):
        relative = blob.name[len(prefix) :]
        if relative and not relative.endswith("/"):
            target = destination / relative
            if not target.resolve().is_relative_to(destination.resolve()):
                raise ValueError(f"gs://{bucket_name}/{blob.name}: a name outside {uri}")
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
            count += 1
    if not count:
        raise FileNotFoundError(f"{uri} holds no files: not a model directory")
    return destination


def expected_digest(model_dir: Path | None, environ: dict[str, str]) -> str | None:
    """The bundle digest to check before loading: the version's MODEL_SHA256, which Vertex AI
    sets in the container from the model's registration ("" when missing: refused). Only a
    directory given by hand (`--model-dir`) may be served unverified, when none is given."""
    if model_dir is not None and "MODEL_SHA256" not in environ:
        print(f"note: serving {model_dir} unverified (no MODEL_SHA256 given)", file=sys.stderr)
        return None
    return environ.get("MODEL_SHA256", "")


def server_arguments(parser: argparse.ArgumentParser, environ: dict[str, str]) -> None:
    """The options every way of serving takes: where to listen, how long a request may take,
    how many server processes."""
    in_container = "AIP_HTTP_PORT" in environ
    parser.add_argument(
        "--host", default="0.0.0.0" if in_container else "127.0.0.1", help="address to bind"
    )
    parser.add_argument(
        "--port", type=int, default=int(environ.get("AIP_HTTP_PORT", 8080)), help="0: any free"
    )
    parser.add_argument(
        "--request-timeout", type=float, default=30.0,
        help="seconds a request may take to arrive (slow clients get a 408)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=positive, default=default_workers(environ, in_container),
        help="server processes (default: SERVING_WORKERS, else one per core in the container, "
        "1 elsewhere)",
    )  # fmt: skip
    parser.add_argument(
        "--access-log", action="store_true", help="log a line per request on stderr (off: cost)"
    )


def serve(source, args: argparse.Namespace, environ: dict[str, str]) -> int:
    """Serve `source` (a ModelSource or EndpointSource) until stopped, on the routes Vertex AI
    names in the environment; the first line printed says where."""
    routes = Routes(
        health=environ.get("AIP_HEALTH_ROUTE", Routes.health),
        predict=environ.get("AIP_PREDICT_ROUTE", Routes.predict),
    )
    server = make_server(
        source, args.host, args.port, routes,
        request_timeout=args.request_timeout, log_config=stderr_log_config(),
        access_log=args.access_log,
    )  # fmt: skip
    host, port = server.server_address[:2]
    processes = f", {args.workers} processes" if args.workers > 1 else ""
    # The first line says where to reach it (tests and the demo read it to learn a port 0 choice).
    print(
        f"serving {source.describe()} on http://{host}:{port} "
        f"(GET {routes.health}, POST {routes.predict}{processes})",
        flush=True,
    )
    try:
        if args.workers > 1:
            return server.serve_in_processes(args.workers)
        server.serve_forever()  # uvicorn stops on SIGINT and SIGTERM
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(prog="python -m pipeline_src.serving", description=__doc__)
    parser.add_argument("--model-dir", type=Path, help="serve one model directory")
    server_arguments(parser, environ)
    args = parser.parse_args(argv)
    limit_threads(environ)
    model_dir = args.model_dir or environ.get("AIP_STORAGE_URI")
    if not model_dir:
        parser.error("give --model-dir (AIP_STORAGE_URI on Vertex AI)")
    if str(model_dir).startswith("gs://"):
        model_dir = download(str(model_dir), Path(tempfile.mkdtemp(prefix="model-")))
    return serve(ModelSource(model_dir, expected_digest(args.model_dir, environ)), args, environ)


if __name__ == "__main__":
    sys.exit(main())
