"""batch_predict: the served model's predictions for the new rows.

The batch prediction port predicts: on Vertex AI a batch prediction job of the very model version
the endpoint serves, on its serving image (pipeline_src/cloud/batch_prediction.py); locally the
same bundle (`model.joblib`) in the task (`load_bundle`, `predict_frame`). Either way the output
is one row per new row: its key, batch, true label, predicted class and probabilities.
"""

from kfp.dsl import Artifact, Dataset, Input, Output

from pipeline_src.components.common import compute_threads, model_inputs, pipeline_component
from pipeline_src.serving.integrity import verify_bundle


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


@pipeline_component(
    packages=("pandas", "pyarrow", "scikit-learn", "threadpoolctl", "google-cloud-aiplatform")
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
) -> int:
    """Predict the new rows with the served model; return how many were predicted."""
    import pandas as pd

    from pipeline_src.components.common import feature_spec, read_json
    from pipeline_src.ports import PredictionJob, backend

    spec = feature_spec(contract)
    frame = pd.read_parquet(new_rows.path)
    if frame.empty:
        raise ValueError("no new rows to predict: new_data should have stopped the run")
    model = read_json(served.path)
    job = PredictionJob(predictions.uri + "-job", machine_type, service_account, kms_key)
    predict = backend().batch_prediction(project, location).predictor(model, spec, job)
    results = predict(frame)
    out = frame[[*spec["keys"], "_batch_id", spec["label"]]].copy()
    out[spec["label"]] = out[spec["label"]].astype(str)
    out["predicted"] = [str(r["class"]) for r in results]
    for label in sorted({c for r in results for c in r["probabilities"]}):
        out[f"probability/{label}"] = [float(r["probabilities"].get(label, 0.0)) for r in results]
    out.to_parquet(predictions.path, index=False)
    predictions.metadata.update({"rows": len(out), "model": model["model"]})
    print(f"{len(out)} rows predicted by {model['model']} ({model['where']})")
    return len(out)
