"""Local ingestion: the emulated landing bucket and the real function, as Eventarc would call it.

`LocalLanding` starts gcp-storage-emulator in-process with the stack's landing and quarantine
buckets. An upload returns the object-finalized event the emulator cannot send itself (it has no
notifications); `deliver` posts that CloudEvent to the function, served by functions-framework
in this process, or over HTTP to a functions-framework server (tests, `serve`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import wire
from contracts.tables import INGESTION_LOG
from local.environment import LocalEnvironment
from stacks.config import PROJECT_ROOT, IngestionConfig

FUNCTION_DIR = PROJECT_ROOT / "function_src"
LANDING_PREFIX = IngestionConfig().landing_prefix
"""The stacks' default: local uploads land where a deployed stack's would."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def function_environment(env: LocalEnvironment, emulator_host: str) -> dict[str, str]:
    """The variables resources/ingestion.py sets on the deployed function, for local mode."""
    return {
        wire.CONTRACT_PATH: str(env.contract_path.resolve()),
        wire.LANDING_BUCKET: env.landing_bucket,
        wire.LANDING_PREFIX: LANDING_PREFIX,
        wire.QUARANTINE_BUCKET: env.quarantine_bucket,
        wire.BQ_PROJECT: env.project,
        wire.BQ_DATASET: env.dataset,
        wire.BQ_LOCATION: "local",
        wire.CURATED_TABLE: env.contract.name,
        wire.INGESTION_LOG_TABLE: INGESTION_LOG.table_id,
        wire.LOCAL_WAREHOUSE: str(env.warehouse_path.resolve()),
        "STORAGE_EMULATOR_HOST": emulator_host,
    }


def finalized_event(bucket: str, blob: Any) -> dict[str, Any]:
    """The CloudEvent Eventarc delivers for a finalized object: attributes and data."""
    return {
        "attributes": {
            "type": wire.FINALIZED,
            "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
            "subject": f"objects/{blob.name}",
            "id": uuid.uuid4().hex,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
        },
        "data": {
            "bucket": bucket,
            "name": blob.name,
            "generation": str(blob.generation),
            "size": str(blob.size),
            "contentType": blob.content_type or "text/csv",
        },
    }


def post_event(url_or_client: Any, event: Mapping[str, Any]) -> int:
    """Post a CloudEvent (structured mode) to the function; the HTTP status."""
    from cloudevents.conversion import to_structured
    from cloudevents.http import CloudEvent

    headers, body = to_structured(CloudEvent(dict(event["attributes"]), dict(event["data"])))
    if isinstance(url_or_client, str):
        import requests

        return requests.post(url_or_client, headers=headers, data=body, timeout=600).status_code
    return url_or_client.post("/", headers=headers, data=body).status_code


class LocalLanding:
    """The emulated buckets, and the function in this process (functions-framework's app)."""

    def __init__(self, env: LocalEnvironment):
        self.env = env.ensure()
        self.port = free_port()
        self.host = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._app_client: Any = None
        self.log_lines: list[dict[str, Any]] = []

    def __enter__(self) -> LocalLanding:
        from gcp_storage_emulator.server import create_server
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self._server = create_server("127.0.0.1", self.port, in_memory=True)
        self._server.start()
        self.client = storage.Client(
            project=self.env.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.host},
        )
        for bucket in (self.env.landing_bucket, self.env.quarantine_bucket):
            self.client.create_bucket(bucket)
        return self

    def __exit__(self, *exc: object) -> None:
        self._keep_quarantine()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._server.stop()

    @property
    def function_env(self) -> dict[str, str]:
        return function_environment(self.env, self.host)

    def upload(self, name: str, data: bytes | str, content_type: str = "text/csv") -> dict:
        """Upload to the landing bucket; the finalized event Eventarc would deliver."""
        blob = self.client.bucket(self.env.landing_bucket).blob(name)
        blob.upload_from_string(data, content_type=content_type)
        blob.reload()
        return finalized_event(self.env.landing_bucket, blob)

    def upload_file(self, name: str, path: Path) -> dict:
        blob = self.client.bucket(self.env.landing_bucket).blob(name)
        blob.upload_from_filename(str(path), content_type="text/csv")
        blob.reload()
        return finalized_event(self.env.landing_bucket, blob)

    def deliver(self, event: Mapping[str, Any]) -> int:
        """Run the function on the event, in this process; the HTTP status it answers."""
        if self._app_client is None:
            import functions_framework

            for name, value in self.function_env.items():
                self._saved_env.setdefault(name, os.environ.get(name))
                os.environ[name] = value
            app = functions_framework.create_app(
                target="ingest", source=str(FUNCTION_DIR / "main.py"), signature_type="cloudevent"
            )
            self._app_client = app.test_client()
        # The function's structured log lines (Cloud Logging's jsonPayload), kept, not printed.
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            status = post_event(self._app_client, event)
        self.log_lines += [json.loads(line) for line in captured.getvalue().splitlines()
                           if line.startswith("{")]  # fmt: skip
        return status

    def ingest(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Deliver the event and return the attempt's outcome, as the ingestion log records it."""
        status = self.deliver(event)
        outcome = latest_outcome(self.env, event)
        if outcome is None:
            raise RuntimeError(f"the function answered {status} and logged no outcome")
        return outcome

    def _keep_quarantine(self) -> None:
        """The emulator holds objects in memory: rejected files and their reports are copied to
        the environment's quarantine folder, so the paths printed can be opened afterwards."""
        for name, data in self.quarantined().items():
            path = self.env.quarantine_dir / self.env.quarantine_bucket / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def quarantined(self) -> dict[str, bytes]:
        """Every object in the quarantine bucket, by name."""
        bucket = self.client.bucket(self.env.quarantine_bucket)
        return {b.name: b.download_as_bytes() for b in self.client.list_blobs(bucket)}


class FunctionServer:
    """The function served over HTTP by functions-framework (gunicorn) in its own process group."""

    def __init__(self, function_env: Mapping[str, str], port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.environ = {
            **os.environ,
            **function_env,
            "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> FunctionServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "functions_framework", "--target", "ingest",
             "--source", str(FUNCTION_DIR / "main.py"), "--signature-type", "cloudevent",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.environ, cwd=str(FUNCTION_DIR), start_new_session=True,
        )  # fmt: skip
        _wait_for_port(self.port, self.process)
        return self

    def kill(self) -> None:
        """SIGKILL the server and its workers, as a crashed instance would stop."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            # wait() reaps the master only; its workers die a moment later, and until then they
            # hold their attempts' scratch locks. A crashed instance is gone before a redelivery
            # reaches another one, so wait for the whole group, as that would.
            _wait_until_group_exits(self.process.pid)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def post(self, event: Mapping[str, Any]) -> int:
        return post_event(self.url, event)


def _wait_until_group_exits(group: int, timeout: float = 10.0) -> None:
    """Until no live process (zombies do not count: they hold no files) is in the group."""
    proc = Path("/proc")
    deadline = time.monotonic() + timeout
    while proc.is_dir() and time.monotonic() < deadline:
        if not any(_in_group_and_alive(stat, group) for stat in proc.glob("[0-9]*/stat")):
            return
        time.sleep(0.02)


def _in_group_and_alive(stat: Path, group: int) -> bool:
    try:
        state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
    except (OSError, IndexError, ValueError):
        return False  # exited meanwhile
    return int(pgrp) == group and state not in ("Z", "X")


@contextmanager
def function_server(function_env: Mapping[str, str]) -> Iterator[FunctionServer]:
    server = FunctionServer(function_env).start()
    try:
        yield server
    finally:
        server.stop()


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"functions-framework exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"functions-framework did not listen on port {port} in {timeout} s")


def latest_outcome(env: LocalEnvironment, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ingestion log's row for the event's batch: its final one, else its latest attempt."""
    from function_src.ingestion.objects import FINAL, StoredObject, batch_id_of
    from local.warehouse import connect, table_exists

    batch_id = batch_id_of(StoredObject.from_event(event["data"]))
    if not env.warehouse_path.is_file():
        return None
    log_table = INGESTION_LOG.table_id
    final = ", ".join(f"'{status}'" for status in FINAL)
    with connect(env.warehouse_path, read_only=True) as con:
        if not table_exists(con, env.dataset, log_table):
            return None
        rows = (
            con.sql(
                f'SELECT * FROM "{env.dataset}"."{log_table}" WHERE batch_id = $batch_id '
                f"ORDER BY status IN ({final}) DESC, finished_at DESC LIMIT 1",
                params={"batch_id": batch_id},
            )
            .to_arrow_table()
            .to_pylist()
        )
    return rows[0] if rows else None
