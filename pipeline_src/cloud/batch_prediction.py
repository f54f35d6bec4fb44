"""The batch prediction port on Vertex AI: a batch prediction job of the served version.

The job runs the version's serving image (the predict contract of pipeline_src/serving: raw
features in, a class and its probabilities out), reads the instances as JSON Lines from the run's
artifacts and writes its predictions beside them.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Callable
from typing import Any

from pipeline_src.cloud.storage import gcs_fuse_path
from pipeline_src.ports import PredictionJob


def instances(frame, spec: dict) -> list:
    """The rows as predict-contract instances: each feature by name, None for missing."""
    names = [f["name"] for f in spec["features"]]
    records = frame[names].astype(object).to_dict(orient="records")
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
        for record in records
    ]


def instance_key(instance: dict) -> str:
    """An instance as comparable text: numbers as floats (a service may echo 39.0 as 39)."""

    def canonical(value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value
        return float(value)

    return json.dumps({k: canonical(v) for k, v in instance.items()}, sort_keys=True)


def predict_vertex(project: str, location: str, model: str, frame, spec: dict, job: PredictionJob):
    """Predictions of a Vertex AI batch prediction job of `model`, in the rows' order.

    Vertex AI writes results in no particular order, each beside the instance it answers; the
    instances are exactly the predict contract's (an extra field would be refused), so results
    are matched back to rows by instance content. Rows with identical features get identical
    predictions, so matching duplicates in any order is exact.
    """
    from google.cloud import aiplatform

    folder = job.folder_uri.rstrip("/")
    os.makedirs(gcs_fuse_path(folder), exist_ok=True)
    rows = instances(frame, spec)
    with open(os.path.join(gcs_fuse_path(folder), "instances.jsonl"), "w", encoding="utf-8") as out:
        for instance in rows:
            out.write(json.dumps(instance) + "\n")
    aiplatform.init(project=project, location=location)
    finished = aiplatform.Model(model).batch_predict(
        job_display_name=f"{job.job_prefix}-{os.path.basename(folder)}"[:128],
        gcs_source=f"{folder}/instances.jsonl",
        gcs_destination_prefix=f"{folder}/output",
        instances_format="jsonl",
        predictions_format="jsonl",
        machine_type=job.machine_type,
        starting_replica_count=job.replica_count,
        max_replica_count=job.replica_count,
        service_account=job.service_account or None,
        encryption_spec_key_name=job.kms_key or None,
        sync=True,
    )
    answers, failed = job_output(gcs_fuse_path(finished.output_info.gcs_output_directory))
    answered = [answers.get(instance_key(instance)) for instance in rows]
    missing = sum(1 for a in answered if a is None)
    if missing:
        raise ValueError(
            f"batch prediction {finished.resource_name} left {missing} of {len(rows)} rows "
            f"unanswered; errors: {failed[:3]}"
        )
    return answered


def job_output(output_dir: str) -> tuple[dict[str, Any], list[str]]:
    """A finished job's predictions by instance key, and its error lines."""
    predictions: dict[str, Any] = {}
    failed: list[str] = []
    for path in sorted(glob.glob(os.path.join(output_dir, "prediction.results-*"))):
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                result = json.loads(line)
                predictions[instance_key(result["instance"])] = result["prediction"]
    for path in sorted(glob.glob(os.path.join(output_dir, "prediction.errors_stats-*"))):
        with open(path, encoding="utf-8") as lines:
            failed += [line.strip() for line in lines if line.strip()]
    return predictions, failed


class VertexBatchPrediction:
    def __init__(self, project: str, location: str):
        self.project, self.location = project, location

    def predictor(
        self, served: dict[str, Any], spec: dict, job: PredictionJob
    ) -> Callable[[Any], list[dict]]:
        def predict(frame) -> list[dict]:
            return predict_vertex(self.project, self.location, served["model"], frame, spec, job)

        return predict

    def rows_per_call(self, requested: int, total: int) -> int:
        """One job for the whole input: each job pays minutes of start-up."""
        return max(total, 1)
