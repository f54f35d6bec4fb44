"""The BigQuery adapter: the requests it sends, checked against a local fake of the REST API whose
backend runs the SQL for real on DuckDB, and the whole ingestion flow through it."""

from __future__ import annotations

import io
import json
import re
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts.tables import INGESTION_LOG
from function_src.ingestion.bigquery_warehouse import job_id
from function_src.ingestion.ingest import Ingestor, Landing
from function_src.ingestion.objects import Batch, StoredObject
from function_src.ingestion.storage import Storage
from local.environment import LocalEnvironment
from local.ingestion import LocalLanding
from local.warehouse import create_table, write_sample
from tests.function.bigquery_fake import STAGING_BUCKET as STAGING
from tests.function.bigquery_fake import FakeBigQuery

ROWS = 30


@dataclass
class Cloud:
    env: LocalEnvironment
    landing: LocalLanding
    fake: FakeBigQuery
    ingestor: Ingestor
    sample: str

    def ingest(self, name: str, data: str):
        event = self.landing.upload(f"incoming/{name}", data)
        return self.ingestor.handle(event["data"]), event

    def count(self, sql: str, *params) -> int:
        with self.fake.lock:
            return self.fake.con.execute(sql, list(params)).fetchall()[0][0]


@pytest.fixture
def cloud(tmp_path: Path):
    env = LocalEnvironment(root=tmp_path / "state").ensure()
    contract = env.contract
    sample = tmp_path / "sample.csv"
    write_sample(env, sample, ROWS)
    with LocalLanding(env) as landing, FakeBigQuery(env.warehouse_path, landing.client) as fake:
        # What Pulumi creates (resources/warehouse.py): the curated table and the log.
        create_table(fake.con, env.dataset, contract.name, contract.bigquery_schema())
        create_table(fake.con, env.dataset, "ingestion_log", INGESTION_LOG.schema)
        storage = Storage(env.project, landing.client)
        warehouse = fake.warehouse(env.project, env.dataset, storage)
        ingestor = Ingestor(
            contract, Landing(env.landing_bucket, "incoming/", env.quarantine_bucket),
            storage, lambda: nullcontext(warehouse),
            log_table="ingestion_log", curated_table=contract.name, out=io.StringIO(),
        )  # fmt: skip
        yield Cloud(env, landing, fake, ingestor, sample.read_text())


def test_a_good_file_is_loaded_from_a_copy_of_its_generation_then_one_transaction(cloud):
    outcome, _ = cloud.ingest("good.csv", cloud.sample)
    assert outcome.status == "LOADED" and outcome.rows_loaded == ROWS
    ds = cloud.env.dataset
    assert cloud.count(f'SELECT count(*) FROM "{ds}".penguins WHERE _batch_id = ?',
                       outcome.batch_id) == ROWS  # fmt: skip

    jobs = cloud.fake.jobs_inserted()
    load = next(j for j in jobs if "load" in j["configuration"])
    config = load["configuration"]["load"]
    uri = f"gs://{cloud.env.landing_bucket}/incoming/good.csv"
    staging = config["destinationTable"]["tableId"]
    attempt = staging.rsplit("_", 1)[1]
    # BigQuery reads a server-side copy of the event's generation (a load URI names none), under
    # a name of hex digits; the copy is gone once the attempt ends.
    copy = f"tmp/ingestion/{outcome.batch_id}-{attempt}.csv"
    assert config["sourceUris"] == [f"gs://{STAGING}/{copy}"]
    assert list(cloud.landing.client.list_blobs(STAGING)) == []
    assert {f["type"] for f in config["schema"]["fields"]} == {"STRING"}
    assert [f["name"] for f in config["schema"]["fields"]] == cloud.env.contract.column_names
    assert config["skipLeadingRows"] == "1" and config["fieldDelimiter"] == ","
    assert config["nullMarkers"] == ["", "NA"] and config["encoding"] == "UTF-8"
    assert config["maxBadRecords"] == 0 and config["allowJaggedRows"] is False
    assert config["writeDisposition"] == "WRITE_TRUNCATE"
    assert staging.startswith(f"_staging_{outcome.batch_id}_")

    prefix = f"ingest_{outcome.batch_id}_{attempt}_"
    assert load["jobReference"]["jobId"] == prefix + "stage"
    commits = [j for j in jobs if j["jobReference"]["jobId"].startswith(prefix)
               and j["jobReference"]["jobId"].endswith("_commit1")]  # fmt: skip
    # Two commits: the attempt's STARTED row, then its rows and outcome in one transaction.
    assert len(commits) == 2 and "STARTED" in json.dumps(commits[0])
    commit = commits[1]
    script = commit["configuration"]["query"]["query"]
    assert script.startswith("BEGIN TRANSACTION;") and script.endswith("COMMIT TRANSACTION;")
    assert "INSERT INTO `" + ds + "`.`penguins`" in script and "NOT EXISTS" in script
    params = {p["name"]: p for p in commit["configuration"]["query"]["queryParameters"]}
    assert params["batch_id"]["parameterValue"]["value"] == outcome.batch_id
    assert params["source_uri"]["parameterValue"]["value"] == uri
    assert params["source_generation"]["parameterType"]["type"] == "INT64"
    assert params["ingested_at"]["parameterType"]["type"] == "TIMESTAMP"

    # The staging table expires by itself if an attempt dies, and is dropped at the end.
    methods = [(m, p.rsplit("/", 1)[1]) for m, p, _ in cloud.fake.requests if "/tables/" in p]
    assert ("PATCH", staging) in methods and ("DELETE", staging) in methods
    patch = next(b for m, p, b in cloud.fake.requests if m == "PATCH")
    assert int(patch["expirationTime"]) > 0


def test_a_bad_file_is_rejected_with_keys_in_place_of_row_numbers(cloud):
    bad = cloud.sample.replace(",Adelie,", ",Emperor,", 1)
    outcome, event = cloud.ingest("bad.csv", bad)
    assert outcome.status == "REJECTED"
    assert "column species: 1 of 30 rows not one of Adelie, Chinstrap, Gentoo (e.g. 'Emperor')" \
        in outcome.reason  # fmt: skip
    problem = next(c for c in outcome.checks if not c.passed)
    assert problem.samples == [{"row_number": None, "penguin_id": "PAL0708-ADE-001",
                                "value": "Emperor"}]  # fmt: skip
    report = json.loads(cloud.landing.quarantined()[
        f"incoming/bad.csv@{event['data']['generation']}.report.json"])  # fmt: skip
    assert report["problems"][0]["check"] == "species.allowed"
    assert cloud.count(f'SELECT count(*) FROM "{cloud.env.dataset}".penguins') == 0


def test_a_file_bigquery_cannot_parse_is_rejected_with_its_load_error(cloud):
    lines = cloud.sample.split("\n")
    lines[3] += ",extra"
    outcome, _ = cloud.ingest("ragged.csv", "\n".join(lines))
    assert outcome.status == "REJECTED"
    assert outcome.reason.startswith("a row has the wrong number of fields: ")
    assert "Too many values in row" in outcome.reason


def test_a_redelivered_event_runs_no_second_load(cloud):
    first, event = cloud.ingest("twice.csv", cloud.sample)
    loads_before = len([j for j in cloud.fake.jobs_inserted() if "load" in j["configuration"]])
    again = cloud.ingestor.handle(event["data"])
    assert (first.status, again.status) == ("LOADED", "DUPLICATE")
    loads_after = len([j for j in cloud.fake.jobs_inserted() if "load" in j["configuration"]])
    assert loads_after == loads_before
    assert cloud.count(f'SELECT count(*) FROM "{cloud.env.dataset}".penguins') == ROWS


def test_a_transaction_aborted_by_a_concurrent_one_is_retried_under_a_new_job_id(cloud):
    cloud.fake.abort_commits = 1
    outcome, _ = cloud.ingest("contended.csv", cloud.sample)
    assert outcome.status == "LOADED"
    ids = [j["jobReference"]["jobId"] for j in cloud.fake.jobs_inserted()]
    commits = [i for i in ids if re.search(r"_commit\d$", i)]
    # The first commit (the attempt's STARTED row) is aborted once, and retried as commit2 of
    # the same step; the rows and the outcome then commit at their first try.
    steps = [i.rsplit("_", 2)[1:] for i in commits]
    assert [n for _, n in steps] == ["commit1", "commit2", "commit1"]
    assert steps[0][0] == steps[1][0] != steps[2][0]
    assert "aborted due to concurrent update" in json.dumps(cloud.fake.jobs[commits[0]]["status"])
    assert cloud.count(f'SELECT count(*) FROM "{cloud.env.dataset}".penguins') == ROWS


def test_job_ids_are_deterministic_and_a_retried_insert_reuses_its_job(cloud):
    obj = StoredObject(cloud.env.landing_bucket, "incoming/retry.csv", 7, 10)
    batch = Batch.start(obj)
    assert job_id(batch, "stage") == job_id(batch, "stage")
    assert re.fullmatch(r"ingest_[0-9a-f]{32}_[0-9a-f]{8}_stage", job_id(batch, "stage"))
    assert job_id(Batch.start(obj), "stage") != job_id(batch, "stage")  # a new attempt

    # The first insert reached BigQuery but its response was lost: the retry meets a 409 and
    # continues with the job that exists rather than loading the file again.
    landing = cloud.landing.upload("incoming/retry.csv", cloud.sample)["data"]
    obj = StoredObject.from_event(landing)
    batch = Batch.start(obj)
    warehouse = cloud.fake.warehouse(cloud.env.project, cloud.env.dataset, cloud.ingestor.storage)
    warehouse.stage(batch, cloud.env.contract)
    warehouse.stage(batch, cloud.env.contract)
    loads = [j for j in cloud.fake.jobs_inserted() if "load" in j["configuration"]]
    assert [j["jobReference"]["jobId"] for j in loads] == [job_id(batch, "stage")] * 2
    assert len(cloud.fake.jobs) == 1  # the second insert was refused (409), not run
    rows = warehouse.query(
        f"SELECT COUNT(*) AS n FROM `{cloud.env.dataset}`.`{batch.staging_table}`"
    )
    assert rows == [{"n": ROWS}]
    warehouse.drop_staging(batch)


def test_a_name_bigquery_reads_as_a_wildcard_loads_only_its_own_generation(cloud):
    # Loaded from its own URI, `incoming/star*.csv` would also match (and load) star-other.csv.
    cloud.landing.upload("incoming/star-other.csv", cloud.sample.replace("PAL0708", "OTH0708"))
    outcome, _ = cloud.ingest("star*.csv", cloud.sample)
    assert (outcome.status, outcome.rows_loaded) == ("LOADED", ROWS)
    (load,) = [j for j in cloud.fake.jobs_inserted() if "load" in j["configuration"]]
    (uri,) = load["configuration"]["load"]["sourceUris"]
    assert re.fullmatch(rf"gs://{STAGING}/tmp/ingestion/[0-9a-f]{{32}}-[0-9a-f]{{8}}\.csv", uri)
    assert cloud.count(f'SELECT count(*) FROM "{cloud.env.dataset}".penguins') == ROWS


def test_a_stale_or_deleted_generation_is_ignored_and_never_loaded(cloud):
    first = cloud.landing.upload("incoming/over.csv", cloud.sample)["data"]
    cloud.landing.upload("incoming/over.csv", cloud.sample.replace("PAL0708", "NEW0708"))
    stale = cloud.ingestor.handle(first)
    assert stale.status == "IGNORED" and "overwritten by generation" in stale.reason
    fine, _ = cloud.ingest("fine.csv", cloud.sample)
    assert fine.status == "LOADED"
    deleted = cloud.landing.upload("incoming/deleted.csv", cloud.sample)["data"]
    cloud.landing.client.bucket(cloud.env.landing_bucket).blob("incoming/deleted.csv").delete()
    assert cloud.ingestor.handle(deleted).status == "IGNORED"
    assert len([j for j in cloud.fake.jobs_inserted() if "load" in j["configuration"]]) == 1
    assert cloud.count(f'SELECT count(*) FROM "{cloud.env.dataset}".penguins') == ROWS
    assert list(cloud.landing.client.list_blobs(STAGING)) == []
