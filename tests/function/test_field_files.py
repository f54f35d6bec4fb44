"""A raw field file, as a spreadsheet saves it, through both warehouse adapters.

The contract maps headers like `Date Egg` to warehouse-safe names, reads US dates with an explicit
format (never guessed: without it the same file is rejected, not loaded as the year 0011), spells
BOOL as Yes/No, keeps "NA" as a station code in one column while it means NULL in another, lets a
comment start with "@", and has no key. The same BigQuery SQL runs on DuckDB (local adapter) and
on the fake BigQuery (load job + query jobs, DuckDB behind it): the loaded values must agree.
"""

from __future__ import annotations

import functools
import io
from contextlib import nullcontext
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from contracts import load_contract
from contracts.tables import INGESTION_LOG
from function_src.ingestion.duckdb_warehouse import DuckDbWarehouse
from function_src.ingestion.ingest import Ingestor, Landing
from function_src.ingestion.storage import Storage
from local.environment import LocalEnvironment
from local.ingestion import LocalLanding
from local.warehouse import connect, create_table
from tests.function.bigquery_fake import FakeBigQuery

CONTRACT = {
    "name": "nests",
    "version": 1,
    "file": {"null_markers": ["", "NA"]},
    "columns": [
        {"name": "station", "source": "Station", "type": "STRING", "null_markers": []},
        {"name": "date_egg", "source": "Date Egg", "type": "DATE", "format": "%m/%d/%y",
         "min": "2007-01-01", "max": "2009-12-31", "role": "metadata"},
        {"name": "seen_at", "source": "Seen At", "type": "TIMESTAMP",
         "format": "%d.%m.%Y %H:%M", "role": "metadata"},
        {"name": "clutch_completion", "source": "Clutch Completion", "type": "BOOL",
         "true_values": ["Yes"], "false_values": ["No"]},
        {"name": "body_mass_g", "source": "Body Mass (g)", "type": "FLOAT64", "min": 2000},
        {"name": "comments", "source": "Comments", "type": "STRING", "role": "metadata",
         "reject_formulas": False},
        {"name": "species", "source": "Species", "type": "STRING", "role": "label",
         "nullable": False},
    ],
}  # fmt: skip
# Columns in another order than the contract's, a BOM and CRLF: Excel's "CSV UTF-8".
FILE = (
    "\ufeffSpecies,Station,Date Egg,Seen At,Clutch Completion,Body Mass (g),Comments\r\n"
    "Adelie,NA,11/11/07,01.02.2008 13:45,Yes,3750,@ nest 3 re-checked\r\n"
    "Gentoo,TOR,1/2/08,15.12.2008 07:05,no,NA,\r\n"
)
EXPECTED = [
    {"species": "Adelie", "station": "NA", "date_egg": date(2007, 11, 11),
     "seen_at": datetime(2008, 2, 1, 13, 45, tzinfo=UTC), "clutch_completion": True,
     "body_mass_g": 3750.0, "comments": "@ nest 3 re-checked"},
    {"species": "Gentoo", "station": "TOR", "date_egg": date(2008, 1, 2),
     "seen_at": datetime(2008, 12, 15, 7, 5, tzinfo=UTC), "clutch_completion": False,
     "body_mass_g": None, "comments": None},
]  # fmt: skip


def _ingestor(contract, env, landing, warehouse) -> Ingestor:
    return Ingestor(
        contract, Landing(env.landing_bucket, "incoming/", env.quarantine_bucket),
        Storage(env.project, landing.client),
        warehouse, log_table=INGESTION_LOG.table_id, curated_table=contract.name, out=io.StringIO(),
    )  # fmt: skip


@pytest.fixture(params=["duckdb", "bigquery"])
def ingest(request, tmp_path: Path):
    """ingest(contract document, file) -> (outcome, rows loaded), on one adapter."""
    env = LocalEnvironment(root=tmp_path / "state").ensure()

    def run(document: dict, data: str):
        path = tmp_path / f"{document['name']}.yaml"
        path.write_text(yaml.safe_dump(document))
        contract = load_contract(path)
        with LocalLanding(env) as landing:
            event = landing.upload("incoming/nests.csv", data.encode())
            if request.param == "duckdb":
                storage = Storage(env.project, landing.client)
                warehouse = functools.partial(
                    DuckDbWarehouse.open, env.warehouse_path, env.dataset, contract.name,
                    INGESTION_LOG.table_id, storage.download,
                )  # fmt: skip
                outcome = _ingestor(contract, env, landing, warehouse).handle(event["data"])
            else:
                with FakeBigQuery(env.warehouse_path, landing.client) as fake:
                    create_table(fake.con, env.dataset, contract.name, contract.bigquery_schema())
                    create_table(fake.con, env.dataset, INGESTION_LOG.table_id,
                                 INGESTION_LOG.schema)  # fmt: skip
                    storage = Storage(env.project, landing.client)
                    bq = fake.warehouse(env.project, env.dataset, storage)
                    ingestor = _ingestor(contract, env, landing, lambda: nullcontext(bq))
                    outcome = ingestor.handle(event["data"])
        names = ", ".join(contract.column_names)
        with connect(env.warehouse_path, read_only=True) as con:
            rows = con.sql(f"SELECT {names} FROM {env.dataset}.{contract.name} ORDER BY species")
            return outcome, rows.to_arrow_table().to_pylist()

    return run


def test_a_field_file_loads_with_its_formats_names_and_spellings(ingest):
    outcome, rows = ingest(CONTRACT, FILE)
    assert outcome.status == "LOADED", outcome.reason
    assert rows == EXPECTED


def test_us_dates_without_their_format_are_rejected_never_misread(ingest):
    iso = {**CONTRACT, "columns": [{k: v for k, v in c.items() if k != "format"}
                                   if c["name"] == "date_egg" else c
                                   for c in CONTRACT["columns"]]}  # fmt: skip
    outcome, rows = ingest(iso, FILE)
    assert outcome.status == "REJECTED" and rows == []
    assert "column date_egg: 2 of 2 rows not a DATE written %Y-%m-%d (e.g. '11/11/07'" \
        in outcome.reason  # fmt: skip


def test_a_four_digit_year_format_refuses_two_digit_years_and_dates_outside_the_range(ingest):
    four = {**CONTRACT, "columns": [{**c, "format": "%m/%d/%Y"} if c["name"] == "date_egg"
                                    else c for c in CONTRACT["columns"]]}  # fmt: skip
    outcome, _ = ingest(four, FILE)
    assert outcome.status == "REJECTED"
    assert "column date_egg: 2 of 2 rows not a DATE written %m/%d/%Y" in outcome.reason
    late = FILE.replace("1/2/08", "1/2/10")
    outcome, _ = ingest(CONTRACT, late)
    assert outcome.status == "REJECTED"
    assert "column date_egg: 1 of 2 rows outside [2007-01-01, 2009-12-31] (e.g. '1/2/10'" \
        in outcome.reason  # fmt: skip
