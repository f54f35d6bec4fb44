"""batch_predict: the served model's predictions for the new rows.

On Vertex AI this is a batch prediction job of the very model version the endpoint serves, on its
serving image (the predict contract of pipeline_src/serving: raw features in, a class and its
probabilities out), reading the instances as JSON Lines from the run's artifacts and writing its
predictions beside them. Locally the same bundle (`model.joblib`) predicts in the task. Either way
the output is one row per new row: its key, batch, true label, predicted class and probabilities.
"""

from kfp.dsl import Artifact, Dataset, Input, Output

from pipeline_src.components.common import (
    compute_threads,
    feature_spec,
    gcs_fuse_path,
    model_inputs,
    pipeline_component,
    read_json,
)
from pipeline_src.serving.integrity import bundle_digest, verify_bundle


def load_bundle(artifact_dir: str, digest: str):
    """The model of the bundle in `artifact_dir`, unpickled only once its digest matches
    `digest`, the one recorded at its registration."""
    import os

    import joblib

    verify_bundle(artifact_dir, digest)
    return joblib.load(os.path.join(artifact_dir, "model.joblib"))


def predict_frame(model, frame, spec: dict) -> list:
    """Predictions ({"class", "probabilities"}) of a loaded model for `frame`."""
    with compute_threads(len(frame)):
        probabilities = model.predict_proba(model_inputs(frame, spec))
    classes = [str(c) for c in model.classes_]
    return [
        {"class": classes[int(row.argmax())],
         "probabilities": {c: float(p) for c, p in zip(classes, row, strict=True)}}
        for row in probabilities
    ]  # fmt: skip


def predict_local(artifact_dir: str, digest: str, frame, spec: dict) -> list:
    """Predictions of the bundle in `artifact_dir` for `frame`, once its digest is checked."""
    return predict_frame(load_bundle(artifact_dir, digest), frame, spec)


def instances(frame, spec: dict) -> list:
    """The rows as predict-contract instances: each feature by name, None for missing."""
    import math

    names = [f["name"] for f in spec["features"]]
    records = frame[names].astype(object).to_dict(orient="records")
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
        for record in records
    ]


def instance_key(instance: dict) -> str:
    """An instance as comparable text: numbers as floats (a service may echo 39.0 as 39)."""
    import json

    def canonical(value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return value
        return float(value)

    return json.dumps({k: canonical(v) for k, v in instance.items()}, sort_keys=True)


def predict_vertex(
    project: str,
    location: str,
    model: str,
    frame,
    spec: dict,
    folder_uri: str,
    machine_type: str,
    service_account: str,
    kms_key: str = "",
    replica_count: int = 1,
    job_prefix: str = "evaluation",
) -> list:
    """Predictions of a Vertex AI batch prediction job of `model`, in the rows' order.

    Vertex AI writes results in no particular order, each beside the instance it answers; the
    instances are exactly the predict contract's (an extra field would be refused), so results
    are matched back to rows by instance content. Rows with identical features get identical
    predictions, so matching duplicates in any order is exact.
    """
    import glob
    import json
    import os

    from google.cloud import aiplatform

    local_folder = gcs_fuse_path(folder_uri)
    os.makedirs(local_folder, exist_ok=True)
    rows = instances(frame, spec)
    with open(os.path.join(local_folder, "instances.jsonl"), "w", encoding="utf-8") as out:
        for instance in rows:
            out.write(json.dumps(instance) + "\n")
    aiplatform.init(project=project, location=location)
    job = aiplatform.Model(model).batch_predict(
        job_display_name=f"{job_prefix}-{os.path.basename(folder_uri.rstrip('/'))}"[:128],
        gcs_source=f"{folder_uri.rstrip('/')}/instances.jsonl",
        gcs_destination_prefix=f"{folder_uri.rstrip('/')}/output",
        instances_format="jsonl",
        predictions_format="jsonl",
        machine_type=machine_type,
        starting_replica_count=replica_count,
        max_replica_count=replica_count,
        service_account=service_account or None,
        encryption_spec_key_name=kms_key or None,
        sync=True,
    )
    output_dir = gcs_fuse_path(job.output_info.gcs_output_directory)
    predictions: dict = {}
    failed = []
    for path in sorted(glob.glob(os.path.join(output_dir, "prediction.results-*"))):
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                result = json.loads(line)
                predictions[instance_key(result["instance"])] = result["prediction"]
    for path in sorted(glob.glob(os.path.join(output_dir, "prediction.errors_stats-*"))):
        with open(path, encoding="utf-8") as lines:
            failed += [line.strip() for line in lines if line.strip()]
    answered = [predictions.get(instance_key(instance)) for instance in rows]
    missing = sum(1 for a in answered if a is None)
    if missing:
        raise ValueError(
            f"batch prediction {job.resource_name} left {missing} of {len(rows)} rows "
            f"unanswered; errors: {failed[:3]}"
        )
    return answered


@pipeline_component(
    packages=("pandas", "pyarrow", "scikit-learn", "threadpoolctl", "google-cloud-aiplatform"),
    helpers=(
        bundle_digest,
        verify_bundle,
        compute_threads,
        feature_spec,
        model_inputs,
        read_json,
        gcs_fuse_path,
        load_bundle,
        predict_frame,
        predict_local,
        instances,
        instance_key,
        predict_vertex,
    ),
)
def batch_predict(
    contract: dict,
    new_rows: Input[Dataset],
    served: Input[Artifact],
    predictions: Output[Dataset],
    project: str,
    location: str,
    machine_type: str = "n1-standard-2",
    service_account: str = "",
    kms_key: str = "",
    local_root: str = "",
) -> int:
    """Predict the new rows with the served model; return how many were predicted."""
    import pandas as pd

    spec = feature_spec(contract)
    frame = pd.read_parquet(new_rows.path)
    if frame.empty:
        raise ValueError("no new rows to predict: new_data should have stopped the run")
    model = read_json(served.path)
    if local_root:
        results = predict_local(model["artifact_dir"], model.get("sha256", ""), frame, spec)
    else:
        results = predict_vertex(
            project, location, model["model"], frame, spec, predictions.uri + "-job",
            machine_type, service_account, kms_key,
        )  # fmt: skip
    out = frame[[*spec["keys"], "_batch_id", spec["label"]]].copy()
    out[spec["label"]] = out[spec["label"]].astype(str)
    out["predicted"] = [str(r["class"]) for r in results]
    for label in sorted({c for r in results for c in r["probabilities"]}):
        out[f"probability/{label}"] = [float(r["probabilities"].get(label, 0.0)) for r in results]
    out.to_parquet(predictions.path, index=False)
    predictions.metadata.update({"rows": len(out), "model": model["model"]})
    print(f"{len(out)} rows predicted by {model['model']} ({model['where']})")
    return len(out)
