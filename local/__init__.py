"""Local mode: the whole lifecycle on one machine, on embedded stand-ins for the cloud services.

- Cloud Storage: gcp-storage-emulator, in-process, with the same google-cloud-storage client code.
- Eventarc -> Cloud Function: the driver builds the same CloudEvent; functions-framework serves
  the same function.
- BigQuery: a DuckDB file; warehouse SQL is written in BigQuery dialect and transpiled by sqlglot.
- Vertex AI Pipelines: kfp.local's SubprocessRunner, with the same components.
- Model Registry and endpoints: a registry folder and a local server speaking the Vertex predict
  contract.

The code that ships runs unchanged; only the adapter at the edge differs.
"""
