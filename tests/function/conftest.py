"""The real function served by functions-framework, against gcp-storage-emulator and DuckDB.

One emulator and one function server per test module (a server starts in about a second); each
test uploads objects of its own name, so tests share them without seeing each other's batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.environment import LocalEnvironment
from local.ingestion import FunctionServer, LocalLanding, latest_outcome
from local.warehouse import connect, write_sample

SAMPLE_ROWS = 40


@dataclass
class Harness:
    env: LocalEnvironment
    landing: LocalLanding
    server: FunctionServer
    sample: str
    """The first SAMPLE_ROWS rows of the sample, as the CSV an analyst uploads."""

    def upload(self, name: str, data: bytes | str) -> dict[str, Any]:
        return self.landing.upload(f"incoming/{name}", data)

    def deliver(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Post the event to the served function; the ingestion log's outcome for its batch."""
        status = self.server.post(event)
        outcome = latest_outcome(self.env, event)
        assert outcome is not None, f"no outcome logged (HTTP {status})"
        return outcome

    def ingest(self, name: str, data: bytes | str) -> dict[str, Any]:
        return self.deliver(self.upload(name, data))

    def curated_rows(self, event: Mapping[str, Any]) -> int:
        uri = f"gs://{event['data']['bucket']}/{event['data']['name']}"
        with connect(self.env.warehouse_path, read_only=True) as con:
            return con.execute(
                f'SELECT count(*) FROM "{self.env.dataset}".penguins '
                "WHERE _source_uri = ? AND _source_generation = ?",
                [uri, int(event["data"]["generation"])],
            ).fetchall()[0][0]

    def log_rows(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        uri = f"gs://{event['data']['bucket']}/{event['data']['name']}"
        if not self.env.warehouse_path.is_file():
            return []  # nothing has been written yet
        with connect(self.env.warehouse_path, read_only=True) as con:
            return (
                con.sql(
                    f'SELECT * FROM "{self.env.dataset}".ingestion_log WHERE source_uri = $uri '
                    "ORDER BY finished_at",
                    params={"uri": uri},
                )
                .to_arrow_table()
                .to_pylist()
            )


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Iterator[Harness]:
    root: Path = tmp_path_factory.mktemp("ingestion")
    env = LocalEnvironment(root=root / "state")
    sample_path = root / "sample.csv"
    write_sample(env, sample_path, SAMPLE_ROWS)
    with LocalLanding(env) as landing:
        server = FunctionServer(landing.function_env).start()
        try:
            yield Harness(env, landing, server, sample_path.read_text())
        finally:
            server.stop()
