"""Exactly once through the served function: duplicate, concurrent and crashed-then-redelivered
events each end with one load of each object generation."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from local.ingestion import FunctionServer
from tests.function.conftest import SAMPLE_ROWS, Harness


def statuses(harness: Harness, event) -> list[str]:
    """The outcomes logged for the event, in order (not the STARTED row each attempt writes)."""
    return [row["status"] for row in harness.log_rows(event) if row["status"] != "STARTED"]


def test_a_redelivered_event_is_a_duplicate_and_loads_nothing(harness: Harness):
    event = harness.upload("redelivered.csv", harness.sample)
    assert harness.deliver(event)["status"] == "LOADED"
    assert harness.server.post(event) == 200  # Eventarc delivers the same event again
    assert statuses(harness, event) == ["LOADED", "DUPLICATE"]
    assert harness.curated_rows(event) == SAMPLE_ROWS


def test_a_rejected_file_redelivered_stays_rejected_once(harness: Harness):
    event = harness.upload("rejected-twice.csv", harness.sample.replace(",Dream,", ",Atlantis,"))
    assert harness.deliver(event)["status"] == "REJECTED"
    harness.server.post(event)
    assert statuses(harness, event) == ["REJECTED", "DUPLICATE"]
    copies = [n for n in harness.landing.quarantined() if n.startswith("incoming/rejected-twice")]
    assert len(copies) == 2  # the file and its report, once


def test_a_new_generation_of_the_same_object_is_a_new_batch(harness: Harness):
    first = harness.upload("overwritten.csv", harness.sample)
    harness.deliver(first)
    second = harness.upload("overwritten.csv", harness.sample)
    assert second["data"]["generation"] != first["data"]["generation"]
    assert harness.deliver(second)["status"] == "LOADED"
    assert harness.curated_rows(first) == harness.curated_rows(second) == SAMPLE_ROWS


def test_the_same_event_delivered_concurrently_loads_once(harness: Harness):
    event = harness.upload("concurrent-duplicates.csv", harness.sample)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: harness.server.post(event), range(8)))
    assert codes == [200] * 8
    assert sorted(statuses(harness, event)) == ["DUPLICATE"] * 7 + ["LOADED"]
    assert harness.curated_rows(event) == SAMPLE_ROWS


def test_twenty_concurrent_uploads_each_load_once(harness: Harness):
    def upload_and_deliver(i: int):
        # Distinct keys per file: they all land in the same curated table.
        event = harness.upload(
            f"concurrent-{i:02d}.csv", harness.sample.replace("PAL0708", f"C{i:02d}")
        )
        return event, harness.server.post(event)  # fmt: skip

    started = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(upload_and_deliver, range(20)))
    elapsed = time.perf_counter() - started
    assert [code for _, code in results] == [200] * 20
    for event, _ in results:
        assert statuses(harness, event) == ["LOADED"]
        assert harness.curated_rows(event) == SAMPLE_ROWS
    assert elapsed < 60


def test_crashes_at_any_point_then_redelivery_load_exactly_once(harness: Harness, tmp_path):
    """The instance is killed ever later into its work on the same event (before staging, while
    staging, during the checks, in the commit, after it), and Eventarc redelivers each time,
    until an attempt finishes. Whatever the crash point, the file is loaded once; every killed
    attempt that had started is resolved as FAILED by a later one, and its scratch is removed."""
    header, *rows = harness.sample.rstrip("\n").split("\n")
    body = [f"K{i:06d}-X,{rows[0].split(',', 1)[1]}" for i in range(150_000)]
    event = harness.upload("crashed.csv", "\n".join([header, *body]) + "\n")
    # A 0 s function timeout: every earlier attempt a redelivery finds unfinished has ended (here
    # each was killed before the next delivery), so the redelivery resolves it.
    crashing_env = {**harness.landing.function_env, "TIMEOUT_SECONDS": "0", "TMPDIR": str(tmp_path)}

    crashed_mid_request = 0
    for delay in (0.1, 0.3, 0.5, 0.7, 0.9, 1.2, 1.6, 2.0, 3.0, 5.0, None):
        server = FunctionServer(crashing_env).start()
        outcome: list[object] = []
        posting = threading.Thread(target=lambda s=server, out=outcome: out.append(_post(s, event)))
        posting.start()
        posting.join(timeout=delay)  # the last delivery (None) is let finish, on a busy machine
        server.kill()
        posting.join()
        crashed_mid_request += isinstance(outcome[0], Exception)
        if "LOADED" in statuses(harness, event):
            break
    assert crashed_mid_request >= 1, "no attempt was cut short: nothing was tested"
    assert statuses(harness, event).count("LOADED") == 1
    assert harness.curated_rows(event) == 150_000
    rows = harness.log_rows(event)
    started = {r["attempt_id"] for r in rows if r["status"] == "STARTED"}
    ended = {r["attempt_id"]: r for r in rows if r["status"] != "STARTED"}
    assert started <= set(ended)  # no attempt without its outcome
    cut_short = [r for r in ended.values() if "was cut short" in (r["reason"] or "")]
    assert len(cut_short) == len(started) - 1  # all but the one that loaded
    # One more redelivery, to a new instance on the same machine: a duplicate. The attempt that
    # loaded may itself have been killed after its commit, before removing its scratch; the next
    # attempt on the machine sweeps what any dead attempt left.
    survivor = FunctionServer(crashing_env).start()
    try:
        assert survivor.post(event) == 200
    finally:
        survivor.stop()
    assert statuses(harness, event).count("LOADED") == 1
    assert statuses(harness, event)[-1] == "DUPLICATE"
    assert harness.curated_rows(event) == 150_000
    assert list((tmp_path / "tabular-mlops-ingest").iterdir()) == []


def _post(server: FunctionServer, event) -> int | Exception:
    try:
        return server.post(event)
    except Exception as error:  # the connection dies with the instance: that is the crash
        return error
