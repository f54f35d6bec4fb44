"""The function's handling of the event itself, before any file is read."""

from __future__ import annotations

import io
import json

import pytest

from contracts import load_contract
from function_src.ingestion.ingest import Ingestor, Landing
from function_src.ingestion.objects import StoredObject
from local.environment import DEFAULT_CONTRACT

EVENT = {"bucket": "landing", "name": "incoming/a.csv", "generation": "17", "size": "2048"}


def test_an_event_without_a_size_is_malformed_rather_than_an_empty_file():
    with pytest.raises(ValueError, match="lacks size"):
        StoredObject.from_event({k: v for k, v in EVENT.items() if k != "size"})
    for empty in ("0", 0):  # an empty object is not a missing size
        assert StoredObject.from_event({**EVENT, "size": empty}).size == 0
    assert StoredObject.from_event(EVENT).size == 2048


def test_a_warehouse_that_cannot_be_opened_is_logged_as_failed_and_retried():
    def locked():
        raise RuntimeError("Could not set lock on file warehouse.duckdb")

    out = io.StringIO()
    ingestor = Ingestor(
        load_contract(DEFAULT_CONTRACT), Landing("landing", "incoming/", "quarantine"),
        storage=None, warehouse=locked, log_table="ingestion_log", curated_table="penguins",
        out=out,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="Could not set lock"):  # Eventarc redelivers it
        ingestor.handle(dict(EVENT))
    line = json.loads(out.getvalue())
    assert line["event"] == "ingestion" and line["status"] == "FAILED"
    assert line["reason"].startswith("the warehouse could not be opened: RuntimeError: Could not")
    assert line["source_uri"] == "gs://landing/incoming/a.csv" and line["batch_id"]
