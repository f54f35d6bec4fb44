"""train: a scikit-learn pipeline, preprocessing included, fitted on the training split.

Preprocessing lives inside the fitted pipeline, so whatever serves the model sends raw features
(the contract's columns) and nothing has to repeat the encoding. The default estimator is
gradient-boosted trees (scikit-learn's histogram implementation); its hyperparameters are
pipeline parameters and the fit is seeded, so the same data and parameters give the same model.

The model artifact is a directory, the layout Vertex AI expects of an `artifact_uri`:
`model.joblib` (the fitted pipeline) and `model.json` (its signature: features with types and
categories, label, classes, contract, hyperparameters, library versions).
"""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from pipeline_src.components.common import compute_threads, model_inputs, pipeline_component


def build_model(
    spec: dict,
    learning_rate: float,
    max_iter: int,
    max_leaf_nodes: int,
    min_samples_leaf: int,
    l2_regularization: float,
    seed: int,
):
    """The unfitted pipeline: imputation and one-hot encoding, then gradient-boosted trees."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if not 0 < learning_rate <= 1:
        raise ValueError(f"learning_rate must be in (0, 1], got {learning_rate}")
    for name, value, low in (
        ("max_iter", max_iter, 1),
        ("max_leaf_nodes", max_leaf_nodes, 2),
        ("min_samples_leaf", min_samples_leaf, 1),
    ):
        if value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
    if l2_regularization < 0:
        raise ValueError(f"l2_regularization must be >= 0, got {l2_regularization}")

    numeric = [f["name"] for f in spec["features"] if not f["categorical"]]
    transformers = []
    if numeric:
        transformers.append(("numeric", SimpleImputer(strategy="median"), numeric))
    for feature in spec["features"]:
        if feature["categorical"]:
            # Fixed categories from the contract keep the encoding stable across snapshots;
            # missing and unknown values encode as all zeros.
            categories = [feature["categories"]] if feature["categories"] else "auto"
            encoder = OneHotEncoder(
                categories=categories, handle_unknown="ignore", sparse_output=False
            )
            transformers.append((f"onehot_{feature['name']}", encoder, [feature["name"]]))
    estimator = HistGradientBoostingClassifier(
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization,
        early_stopping=False,  # every training row is used; validation is our own split
        random_state=seed,
    )
    return Pipeline(
        [
            ("preprocess", ColumnTransformer(transformers, verbose_feature_names_out=False)),
            ("classifier", estimator),
        ]
    )


def fit_scores(model, frame, spec: dict) -> dict:
    """Accuracy and log loss of a fitted model on one split."""
    from sklearn.metrics import accuracy_score, log_loss

    features, labels = model_inputs(frame, spec), frame[spec["label"]].astype(str)
    probabilities = model.predict_proba(features)
    return {
        "accuracy": float(accuracy_score(labels, model.classes_[probabilities.argmax(axis=1)])),
        "log_loss": float(log_loss(labels, probabilities, labels=model.classes_)),
    }


def fit_and_score(pipeline, frame, validation_frame, spec: dict) -> dict:
    """Fit `pipeline` on the training split; its scores on that split and on the validation
    split (when it has rows)."""
    with compute_threads(len(frame)):
        pipeline.fit(model_inputs(frame, spec), frame[spec["label"]].astype(str))
        scores = {"train": fit_scores(pipeline, frame, spec)}
        if len(validation_frame):
            scores["validation"] = fit_scores(pipeline, validation_frame, spec)
    return scores


def signature(pipeline, spec: dict, hyperparameters: dict, seed: int, snapshot_id: str) -> dict:
    """The fitted model's `model.json`: what it takes and gives, and what made it."""
    import platform
    from datetime import UTC, datetime

    import sklearn

    return {
        "file": "model.joblib",
        "format": "scikit-learn Pipeline (joblib): raw features in, classes out",
        "contract": {"name": spec["name"], "version": spec["version"]},
        "features": spec["features"],
        "label": spec["label"],
        "classes": [str(c) for c in pipeline.classes_],
        "estimator": type(pipeline[-1]).__name__,
        "hyperparameters": hyperparameters,
        "seed": seed,
        "snapshot_id": snapshot_id,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "scikit-learn": sklearn.__version__},
    }


@pipeline_component(
    packages=(
        "pandas",
        "pyarrow",
        "scikit-learn",
        "threadpoolctl",
    )
)
def train(
    contract: dict,
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    learning_rate: float = 0.1,
    max_iter: int = 100,
    max_leaf_nodes: int = 15,
    min_samples_leaf: int = 10,
    l2_regularization: float = 0.0,
    seed: int = 42,
):
    """Fit the model on the training split; report accuracy and log loss on train and validation."""
    import os

    import joblib
    import pandas as pd
    import sklearn

    from pipeline_src.components.common import feature_spec, write_json
    from pipeline_src.components.train import build_model, fit_and_score, signature

    spec = feature_spec(contract)
    frame = pd.read_parquet(train_data.path)
    hyperparameters = {
        "learning_rate": learning_rate,
        "max_iter": max_iter,
        "max_leaf_nodes": max_leaf_nodes,
        "min_samples_leaf": min_samples_leaf,
        "l2_regularization": l2_regularization,
    }
    pipeline = build_model(spec, seed=seed, **hyperparameters)
    scores = fit_and_score(pipeline, frame, pd.read_parquet(validation_data.path), spec)

    os.makedirs(model.path, exist_ok=True)
    joblib.dump(pipeline, os.path.join(model.path, "model.joblib"))
    snapshot_id = train_data.metadata.get("snapshot_id", "")
    write_json(
        os.path.join(model.path, "model.json"),
        signature(pipeline, spec, hyperparameters, seed, snapshot_id),
    )
    model.metadata.update(
        {"framework": "scikit-learn", "framework_version": sklearn.__version__,
         "snapshot_id": snapshot_id, **hyperparameters, "seed": seed}
    )  # fmt: skip

    for split_name, values in scores.items():
        for metric, value in values.items():
            metrics.log_metric(f"{split_name}_{metric}", round(value, 6))
    print(f"trained {type(pipeline[-1]).__name__} on {len(frame)} rows: {scores}")
