"""The ingestion function's logic, kept apart from its entry point (`main.py`) so each piece is
tested on its own and the local stand-ins reuse it:

- `objects`: the uploaded object, the batch (one per object generation) and check outcomes;
- `head`: the checks that need only the file's first bytes (size, encoding, header);
- `sql`: every warehouse statement, written once in BigQuery dialect from the data contract;
- `port`: what the ingestion needs from a warehouse, with two adapters:
  `bigquery_warehouse` (the cloud) and `duckdb_warehouse` (local, through sqlglot);
- `storage`: reading the upload and quarantining it (google-cloud-storage);
- `ingest`: the flow that ties them together, exactly once per object generation.
"""
