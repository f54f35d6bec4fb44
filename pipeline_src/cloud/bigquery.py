"""The warehouse port on BigQuery: queries, streamed reads and appends by load jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline_src.ports import Streamed


class BigQueryWarehouse:
    """One BigQuery dataset. The platform (Pulumi) creates every table, so `tables` needs no
    action here: a missing one is BigQuery's own NotFound."""

    def __init__(self, project: str, location: str, dataset: str, job_label: str):
        if not project:
            raise ValueError(f"{job_label} needs the GCP project of the warehouse")
        self.project, self.location, self.dataset = project, location, dataset
        self.job_label = job_label

    def _client(self):
        from google.cloud import bigquery

        return bigquery.Client(project=self.project, location=self.location or None)

    def _query(self, sql: str, params: dict | None):
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(
                    name, "TIMESTAMP" if hasattr(value, "tzinfo") else "STRING", value
                )
                for name, value in (params or {}).items()
            ],
            labels={"component": self.job_label},
        )
        return self._client().query(sql, job_config=config)

    def read(self, sql: str, params: dict | None = None, tables: Sequence[str] = ()) -> Any:
        return self._query(sql, params).result().to_arrow()

    def stream(self, sql: str, params: dict | None = None, tables: Sequence[str] = ()) -> Streamed:
        """Rows read by the BigQuery Storage Read API in one ordered stream, as the query
        orders them."""
        from google.cloud import bigquery_storage

        rows = self._query(sql, params).result()
        reader = bigquery_storage.BigQueryReadClient()
        return Streamed(
            rows.to_arrow_iterable(bqstorage_client=reader), lambda: rows.to_arrow().schema
        )

    def append_rows(self, table: str, rows: list[dict]) -> None:
        """A load job: no streaming buffer, no cost."""
        from google.cloud import bigquery

        config = bigquery.LoadJobConfig(
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            # The table and its schema belong to the platform (Pulumi); never create or guess one.
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            autodetect=False,
        )
        destination = f"{self.project}.{self.dataset}.{table}"
        self._client().load_table_from_json(rows, destination, job_config=config).result()

    def append_parquet(self, table: str, uri: str) -> None:
        """A load job from the gs:// file: the rows never pass through a streaming insert."""
        from google.cloud import bigquery

        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            labels={"component": self.job_label},
        )
        destination = f"{self.project}.{self.dataset}.{table}"
        self._client().load_table_from_uri(uri, destination, job_config=config).result()
