"""A local stand-in for the BigQuery REST API: a real HTTP server on loopback, DuckDB behind it.

It records every request the google-cloud-bigquery client sends (so tests can check load job
configurations, job ids and SQL) and serves them for real: load jobs read the gs:// object from the
storage emulator with the request's CSV options, query jobs run their BigQuery SQL on DuckDB
through the same sqlglot transpilation as the local adapter. Failures come back the way BigQuery
reports them (a DONE job with `errorResult`), with BigQuery's wording for CSV errors.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from function_src.ingestion.duckdb_warehouse import connect, duckdb_statements

STAGING_BUCKET = "artifacts"
"""Where the adapter's load copies go (the stack's artifacts bucket, under tmp/ingestion/)."""
_TYPES = {"int64": "INTEGER", "double": "FLOAT", "bool": "BOOLEAN", "string": "STRING"}


class FakeBigQuery:
    def __init__(self, warehouse: Path, storage_client: Any):
        self.con = connect(warehouse)
        self.lock = threading.Lock()
        self.storage = storage_client
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.abort_commits = 0
        """How many transactions to abort as if another one had updated the same table."""
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> FakeBigQuery:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.con.close()

    def warehouse(self, project: str, dataset: str, storage: Any) -> Any:
        """The BigQuery adapter, talking to this fake; load copies go to STAGING_BUCKET."""
        from google.auth.credentials import AnonymousCredentials

        from function_src.ingestion.bigquery_warehouse import BigQueryWarehouse, StagingCopies

        with contextlib.suppress(Exception):  # created by an earlier warehouse of this test
            self.storage.create_bucket(STAGING_BUCKET)
        return BigQueryWarehouse.connect(
            project, "EU", dataset, StagingCopies(storage, f"gs://{STAGING_BUCKET}/tmp/ingestion/"),
            credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint},
        )  # fmt: skip

    def jobs_inserted(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.requests
                if method == "POST" and path.endswith("/jobs")]  # fmt: skip

    # --- the API --------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict | None]:
        self.requests.append((method, path, body))
        parts = path.removeprefix("/bigquery/v2/").split("/")
        if method == "POST" and parts[2:] == ["jobs"]:
            return self._insert_job(body)
        if method == "GET" and parts[2] == "jobs":
            job = self.jobs.get(parts[3])
            return (200, job) if job else (404, _error(404, f"Not found: Job {parts[3]}"))
        if method == "GET" and parts[2] == "queries":
            return 200, self.results[parts[3]]
        if parts[2] == "datasets" and parts[4] == "tables":
            dataset, table = parts[3], parts[5]
            return self._table(method, parts[1], dataset, table, body)
        return 400, _error(400, f"the fake does not serve {method} {path}")

    def _insert_job(self, body: dict[str, Any]) -> tuple[int, dict]:
        ref = body["jobReference"]
        if ref["jobId"] in self.jobs:
            return 409, _error(409, f"Already Exists: Job {ref['projectId']}:{ref['jobId']}")
        config = body["configuration"]
        error = None
        with self.lock:
            try:
                if "load" in config:
                    self._load(config["load"])
                    self.results[ref["jobId"]] = {"jobReference": ref, "jobComplete": True}
                else:
                    self.results[ref["jobId"]] = self._query(ref, config["query"])
            except _JobFailed as failed:
                error = failed.error
        job = {**body, "id": f"{ref['projectId']}:{ref['jobId']}",
               "status": {"state": "DONE"}}  # fmt: skip
        if error:
            job["status"] = {"state": "DONE", "errorResult": error, "errors": [error]}
        self.jobs[ref["jobId"]] = job
        return 200, job

    def _load(self, load: dict[str, Any]) -> None:
        (uri,) = load["sourceUris"]
        bucket, name = uri.removeprefix("gs://").split("/", 1)
        dest = load["destinationTable"]
        columns = {f["name"]: "VARCHAR" for f in load["schema"]["fields"]}
        nulls = load.get("nullMarkers", [load.get("nullMarker", "")])
        with tempfile.TemporaryDirectory() as scratch:
            objects = self._matching(bucket, name)
            local = [Path(scratch) / f"object{i}.csv" for i in range(len(objects))]
            for path, blob in zip(local, objects, strict=True):
                blob.download_to_filename(str(path))
            if not local:
                raise _JobFailed({"reason": "notFound", "message": f"Not found: URI {uri}"})
            try:
                self.con.execute(
                    f'CREATE SCHEMA IF NOT EXISTS "{dest["datasetId"]}"; '
                    f'CREATE OR REPLACE TABLE "{dest["datasetId"]}"."{dest["tableId"]}" AS '
                    "SELECT * FROM read_csv($path, header = $header, columns = $columns, "
                    "auto_detect = false, strict_mode = $strict, delim = $delim, "
                    "quote = $quote, nullstr = $nulls)",
                    {"path": [str(p) for p in local],
                     "header": int(load.get("skipLeadingRows", 0)) == 1,
                     "columns": columns, "strict": not load.get("allowJaggedRows", False),
                     "delim": load.get("fieldDelimiter", ","), "quote": load.get("quote", '"'),
                     "nulls": nulls},
                )  # fmt: skip
            except Exception as error:
                raise _JobFailed(_bigquery_csv_error(str(error))) from None

    def _matching(self, bucket: str, name: str) -> list[Any]:
        """The objects a load URI names: as BigQuery does, a `*` in it matches any characters."""
        if "*" not in name:
            return [self.storage.bucket(bucket).blob(name)]
        prefix = name.split("*", 1)[0]
        pattern = re.compile(".*".join(re.escape(part) for part in name.split("*")))
        blobs = self.storage.list_blobs(bucket, prefix=prefix)
        return sorted((b for b in blobs if pattern.fullmatch(b.name)), key=lambda b: b.name)

    def _query(self, ref: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        params = {p["name"]: _param(p) for p in query.get("queryParameters", [])}
        statements = duckdb_statements(query["query"])
        result = None
        try:
            for sql in statements:
                if sql.upper().startswith("COMMIT") and self.abort_commits:
                    self.abort_commits -= 1
                    self.con.execute("ROLLBACK")
                    raise _JobFailed({
                        "reason": "invalidQuery", "message": "Transaction is aborted due to "
                        "concurrent update against table tabular_mlops.ingestion_log.",
                    })  # fmt: skip
                used = {k: v for k, v in params.items() if f"${k}" in sql}
                result = self.con.sql(sql, params=used)
        except _JobFailed:
            raise
        except Exception as error:
            with contextlib.suppress(Exception):  # a failed statement ends its transaction
                self.con.execute("ROLLBACK")
            raise _JobFailed({"reason": "invalidQuery", "message": str(error)[:500]}) from None
        out: dict[str, Any] = {"jobReference": ref, "jobComplete": True}
        if result is not None:
            table = result.to_arrow_table()
            out["schema"] = {"fields": [{"name": f.name, "type": _bq_type(f.type),
                                         "mode": "NULLABLE"} for f in table.schema]}  # fmt: skip
            out["rows"] = [{"f": [{"v": _cell(v)} for v in row.values()]}
                           for row in table.to_pylist()]  # fmt: skip
            out["totalRows"] = str(table.num_rows)
        return out

    def _table(self, method: str, project: str, dataset: str, table: str, body: dict):
        ref = {"projectId": project, "datasetId": dataset, "tableId": table}
        with self.lock:
            exists = self.con.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = ? AND table_name = ?", [dataset, table],
            ).fetchall()[0][0]  # fmt: skip
            if not exists:
                return 404, _error(404, f"Not found: Table {project}:{dataset}.{table}")
            if method == "DELETE":
                self.con.execute(f'DROP TABLE "{dataset}"."{table}"')
                return 204, None
        return 200, {**body, "tableReference": ref, "etag": "etag", "kind": "bigquery#table"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, payload = fake.handle(self.command, urlparse(self.path).path, body)
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handler


class _JobFailed(Exception):
    def __init__(self, error: dict[str, str]):
        super().__init__(error["message"])
        self.error = error


def _error(code: int, message: str) -> dict:
    status = {404: "notFound", 409: "duplicate", 400: "invalid"}[code]
    return {"error": {"code": code, "message": message,
                      "errors": [{"reason": status, "message": message}]}}  # fmt: skip


def _bigquery_csv_error(message: str) -> dict[str, str]:
    """DuckDB's read_csv error in BigQuery's words (what a real load job would report)."""
    if "Expected Number of Columns" in message:
        text = "Error while reading data, error message: Too many values in row starting at "
        text += "position: 120."
    elif "unterminated quote" in message:
        text = 'Error while reading data, error message: Missing close double quote (") character.'
    elif "unicode" in message.lower():
        text = "Error while reading data, error message: Bad character (ASCII 0) encountered."
    else:
        text = f"Error while reading data, error message: {message.splitlines()[0]}"
    return {"reason": "invalid", "message": text}


def _param(p: dict[str, Any]) -> Any:
    value = p.get("parameterValue", {}).get("value")
    type_ = p["parameterType"]["type"]
    if value is None:
        return None
    if type_ == "INT64":
        return int(value)
    if type_ == "FLOAT64":
        return float(value)
    if type_ == "BOOL":
        return value == "true"
    if type_ == "TIMESTAMP":
        return datetime.fromisoformat(re.sub(r" ?(\+00:00|Z)$", "+00:00", value))
    return value


def _bq_type(arrow_type: Any) -> str:
    return _TYPES.get(str(arrow_type), "TIMESTAMP" if "timestamp" in str(arrow_type) else "STRING")


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return str(value.timestamp())
    return str(value)
