"""Events that must not poison the function, each through the real function (served by
functions-framework, or its in-process test client where a fault is injected) against the storage
emulator: the HTTP answer (2xx acknowledges, 5xx makes Eventarc redeliver) and the log row."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cloudevents.conversion import to_structured
from cloudevents.http import CloudEvent

from function_src.ingestion.objects import Batch
from local.ingestion import FunctionServer
from local.warehouse import connect
from tests.function.conftest import SAMPLE_ROWS, Harness


def post_data(harness: Harness, data: object) -> int:
    """A finalized event whose `data` is anything at all (the event, not the object, is wrong)."""
    attributes = harness.upload("poison-shape.csv", harness.sample)["attributes"]
    headers, body = to_structured(CloudEvent(dict(attributes), data))
    return requests.post(harness.server.url, headers=headers, data=body, timeout=60).status_code


def rows_of_batch(harness: Harness, batch_id: str) -> list[dict]:
    with connect(harness.env.warehouse_path, read_only=True) as con:
        return (
            con.sql(
                f'SELECT * FROM "{harness.env.dataset}".ingestion_log WHERE batch_id = $b',
                params={"b": batch_id},
            )
            .to_arrow_table()
            .to_pylist()
        )


def outcomes(harness: Harness, event) -> list[tuple[str, str]]:
    return [(r["status"], r["reason"]) for r in harness.log_rows(event) if r["status"] != "STARTED"]


@pytest.mark.parametrize("data", ["incoming/x.csv", ["incoming/x.csv", 1]], ids=["str", "list"])
def test_data_that_is_no_object_is_a_failed_row_and_acknowledged(harness: Harness, data):
    assert post_data(harness, data) == 200
    (row,) = rows_of_batch(harness, Batch.of_malformed(data).batch_id)
    assert row["status"] == "FAILED" and row["source_uri"] == "gs://?/?"
    assert row["reason"].startswith(f"the storage event's data is a {type(data).__name__}, not")


@pytest.mark.parametrize("size", [str(10**20), "-1"])
def test_an_impossible_size_is_a_failed_row_and_acknowledged(harness: Harness, size):
    event = harness.upload(f"size{size[:3]}.csv", harness.sample)
    event["data"]["size"] = size
    assert harness.server.post(event) == 200
    ((status, reason),) = outcomes(harness, event)
    assert status == "FAILED"
    assert reason == f"the storage event's size {int(size)} is outside 0..5,497,558,138,880"
    assert harness.curated_rows(event) == 0


def test_an_event_for_another_bucket_is_failed_and_acknowledged(harness: Harness):
    event = harness.upload("misrouted.csv", harness.sample)
    event["data"]["bucket"] = "someone-elses-bucket"
    assert harness.server.post(event) == 200
    ((status, reason),) = outcomes(harness, event)
    assert status == "FAILED"
    assert reason.startswith("the event is for bucket 'someone-elses-bucket', not the landing")


def test_an_object_deleted_before_the_read_is_ignored_on_every_delivery(harness: Harness):
    event = harness.upload("deleted.csv", harness.sample)
    harness.landing.client.bucket(harness.env.landing_bucket).blob("incoming/deleted.csv").delete()
    assert [harness.server.post(event) for _ in range(2)] == [200, 200]
    gone = f"gs://{harness.env.landing_bucket}/incoming/deleted.csv"
    assert (
        outcomes(harness, event)
        == [("IGNORED", f"{gone} no longer exists (deleted before it was read)")] * 2
    )


def test_a_stale_event_never_loads_the_newer_generation(harness: Harness):
    """gen1's event arrives after gen2 overwrote the object: the emulator (like a bucket that
    keeps no old versions) cannot serve gen1, so it is IGNORED; gen2's own event loads gen2."""
    first = harness.upload("stale.csv", harness.sample)
    second = harness.upload("stale.csv", harness.sample.replace("PAL0708", "NEW0708"))
    assert harness.server.post(first) == 200
    ((status, reason),) = outcomes(harness, first)
    gen2 = second["data"]["generation"]
    assert status == "IGNORED" and f"overwritten by generation {gen2}" in reason
    assert harness.curated_rows(first) == 0
    assert harness.deliver(second)["status"] == "LOADED"
    assert harness.curated_rows(second) == SAMPLE_ROWS


@pytest.mark.parametrize("name", ["wild*.csv", "wild?.csv", "wild[1].csv"])
def test_names_a_load_uri_would_read_as_a_pattern_load_only_their_own_rows(harness, name):
    harness.upload("wild-1.csv", harness.sample.replace("PAL0708", "OTH0708"))  # a match for *
    event = harness.upload(name, harness.sample)
    assert harness.deliver(event)["status"] == "LOADED"
    assert harness.curated_rows(event) == SAMPLE_ROWS


@pytest.fixture
def in_process(harness: Harness):
    """The function in this process (functions-framework's test client), to inject faults."""
    harness.landing.deliver(harness.landing.upload("elsewhere/warm.txt", "x"))  # IGNORED
    return sys.modules["ingestion.storage"].Storage  # the module main.py imported


def test_a_transient_error_is_retried_until_the_event_is_too_old(harness, in_process, monkeypatch):
    from google.api_core.exceptions import ServiceUnavailable

    def unavailable(self, obj, length):
        raise ServiceUnavailable("backend error")

    event = harness.upload("transient.csv", harness.sample)
    with monkeypatch.context() as faulty:
        faulty.setattr(in_process, "head", unavailable)
        assert harness.landing.deliver(event) == 500  # fresh: Eventarc redelivers it
        old = {**event, "attributes": {**event["attributes"],
               "time": (datetime.now(UTC) - timedelta(hours=7)).isoformat()}}  # fmt: skip
        assert harness.landing.deliver(old) == 200  # past the retry window: acknowledged
    failed = outcomes(harness, event)
    assert [s for s, _ in failed] == ["FAILED", "FAILED"]
    assert failed[0][1] == "ServiceUnavailable: 503 backend error"
    assert "given up: the event is 7.0 h old, past the 6:00:00 retry window" in failed[1][1]
    assert harness.landing.deliver(event) == 200  # the store answers again: loaded once
    assert harness.curated_rows(event) == SAMPLE_ROWS


def test_scratch_is_removed_on_every_exit_and_a_dead_attempts_is_swept(harness, tmp_path: Path):
    root = tmp_path / "tabular-mlops-ingest"
    dead = root / "attempt-killed"
    dead.mkdir(parents=True)
    (dead / ".lock").touch()  # its process is gone, so nobody holds the lock
    (dead / "copy.csv").write_bytes(b"x" * 1_000_000)
    unnamed = root / ".new-killed-before-rename"  # killed between making and naming its scratch
    unnamed.mkdir()
    os.utime(unnamed, (time.time() - 120, time.time() - 120))
    server = FunctionServer({**harness.landing.function_env, "TMPDIR": str(tmp_path)}).start()
    try:
        lines = harness.sample.split("\n")
        ragged = "\n".join([*lines[:3], lines[3] + ",extra", *lines[4:]])
        for name, data, expected in [("scratch-ok.csv", harness.sample, "LOADED"),
                                     ("scratch-ragged.csv", ragged, "REJECTED")]:  # fmt: skip
            event = harness.upload(name, data)
            assert server.post(event) == 200
            assert outcomes(harness, event)[-1][0] == expected
            assert list(root.iterdir()) == []
    finally:
        server.stop()


def test_attempts_and_sweeps_racing_never_lose_a_live_scratch(tmp_path: Path):
    """Every attempt sweeps before making its own directory; many at once must never remove a
    live one (each finds its directory and file intact until it ends) and leave nothing behind."""
    from concurrent.futures import ThreadPoolExecutor

    from function_src.ingestion.scratch import attempt_scratch

    root = tmp_path / "tabular-mlops-ingest"

    def attempt(i: int) -> bool:
        with attempt_scratch(root) as scratch:
            (scratch / "copy.csv").write_text(str(i))
            return (scratch / "copy.csv").read_text() == str(i) and (scratch / ".lock").exists()

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(attempt, range(400)))
    assert list(root.iterdir()) == []
