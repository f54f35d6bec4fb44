"""The ports' adapters where the components' tests do not reach them: artifact storage on both
backends, and the local warehouse's handling of the tables a query reads."""

from __future__ import annotations

from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.tables import PREDICTIONS
from local.adapters import LocalArtifactStorage, LocalWarehouse
from local.environment import LocalEnvironment
from local.warehouse import connect, table_exists
from pipeline_src.cloud.storage import CloudStorage


def test_local_artifact_storage_keeps_paths_and_maps_buckets_under_the_root(tmp_path):
    storage = LocalArtifactStorage(LocalEnvironment(root=tmp_path))
    assert storage.path("/some/run/artifact") == "/some/run/artifact"
    page = "gs://local-project-local-artifacts/lifecycle/index.html"
    written = storage.write_text(page, "<html>v1</html>")
    assert written == storage.path(page)
    assert written == str(tmp_path / "buckets/local-project-local-artifacts/lifecycle/index.html")
    storage.write_text(page, "<html>v2</html>")  # replaced whole, no scratch file left behind
    folder = tmp_path / "buckets/local-project-local-artifacts/lifecycle"
    assert [p.name for p in folder.iterdir()] == ["index.html"]
    assert (folder / "index.html").read_text() == "<html>v2</html>"


def test_cloud_artifact_storage_reads_through_the_mount_and_uploads_uncached():
    storage = CloudStorage()
    assert storage.path("gs://bucket/models/m/1") == "/gcs/bucket/models/m/1"
    with mock.patch("google.cloud.storage.Client") as client:
        assert storage.write_text("gs://bucket/lifecycle/index.html", "<html/>") == (
            "gs://bucket/lifecycle/index.html"
        )
    client.return_value.bucket.assert_called_once_with("bucket")
    blob = client.return_value.bucket.return_value.blob
    blob.assert_called_once_with("lifecycle/index.html")
    assert blob.return_value.cache_control == "no-cache"
    blob.return_value.upload_from_string.assert_called_once_with(
        "<html/>", content_type="text/html; charset=utf-8"
    )
    with pytest.raises(ValueError, match="gs:// locations"):
        storage.write_text("/tmp/page.html", "<html/>")


def test_the_local_warehouse_makes_platform_tables_and_names_a_missing_one(tmp_path):
    env = LocalEnvironment(root=tmp_path)
    env.ensure()
    warehouse = LocalWarehouse(env.warehouse_path, "ds")
    empty = warehouse.read("SELECT COUNT(*) AS n FROM `ds`.`predictions`", tables=["predictions"])
    assert empty.to_pylist() == [{"n": 0}]
    with pytest.raises(ValueError, match=r"has no table ds\.curated: load data"):
        warehouse.stream("SELECT * FROM `ds`.`curated`", tables=["curated"])

    rows = [{f["name"]: None for f in PREDICTIONS.schema}]
    rows[0].update(scoring_run_id="r", model_version="m@1", source_row=0, predicted_class="a",
                   probabilities="{}", scored_at="2030-01-01T00:00:00+00:00")  # fmt: skip
    warehouse.append_rows("predictions", rows)
    path = tmp_path / "more.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    warehouse.append_parquet("predictions", str(path))
    batches, schema = warehouse.stream(
        "SELECT scoring_run_id FROM `ds`.`predictions`", tables=["predictions"]
    )
    assert sum(batch.num_rows for batch in batches) == 2 and schema().names == ["scoring_run_id"]
    with connect(env.warehouse_path, read_only=True) as con:
        assert table_exists(con, "ds", "predictions")
