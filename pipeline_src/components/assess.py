"""assess: how well the served model does on the new rows, and how far they drift from training.

- Metrics on the new labelled rows: accuracy (the metric the decision uses), balanced accuracy,
  macro F1 and per-class recall, beside the model's own test-time accuracy from its bundle.
- Drift of each feature against the baseline the training pipeline saved with the model
  (`baseline.json`): the population stability index (PSI) for numeric features, on the baseline's
  decile bins (open-ended at both ends, so new values beyond the training range count), and the
  Jensen-Shannon distance for categorical ones. Rules of thumb flag PSI above 0.2 and
  Jensen-Shannon above 0.1 as significant drift; drift explains a drop, the metric decides.
"""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from pipeline_src.components.common import pipeline_component


def psi(baseline_histogram: dict, values) -> float:
    """Population stability index of `values` against a baseline histogram (edges, counts)."""
    import numpy as np

    edges = np.asarray(baseline_histogram["edges"], dtype=float)
    expected = np.asarray(baseline_histogram["counts"], dtype=float)
    if len(edges) < 2 or expected.sum() == 0:
        return 0.0
    open_edges = edges.copy()
    open_edges[0], open_edges[-1] = -np.inf, np.inf
    actual = np.histogram(np.asarray(values, dtype=float), bins=open_edges)[0].astype(float)
    if actual.sum() == 0:
        return 0.0
    # A small floor keeps empty bins from making the index infinite.
    p = np.maximum(expected / expected.sum(), 1e-4)
    q = np.maximum(actual / actual.sum(), 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(baseline_frequencies: dict, values) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between baseline and observed value shares."""
    import numpy as np

    observed = values.astype(str).value_counts(normalize=True).to_dict()
    categories = sorted(set(baseline_frequencies) | set(observed))
    p = np.array([baseline_frequencies.get(c, 0.0) for c in categories], dtype=float)
    q = np.array([observed.get(c, 0.0) for c in categories], dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return float(np.sqrt(max(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0)))


def feature_drift(baseline: dict, frame, psi_drift: float = 0.2, js_drift: float = 0.1) -> dict:
    """{feature: {statistic, value, drifted, baseline_mean?, mean?}} for every baseline feature.

    `drifted` flags a statistic above the usual bars: PSI 0.2, Jensen-Shannon distance 0.1.
    """
    drift = {}
    for name, stats in baseline["features"].items():
        if name not in frame.columns:
            continue
        values = frame[name].dropna()
        if stats["kind"] == "numeric":
            if "histogram" not in stats:
                continue
            value = psi(stats["histogram"], values.astype(float))
            mean = float(values.astype(float).mean()) if len(values) else None
            drift[name] = {
                "statistic": "psi",
                "value": round(value, 6),
                "drifted": value > psi_drift,
                "baseline_mean": stats.get("mean"),
                "mean": mean,
            }
        else:
            value = jensen_shannon(stats["frequencies"], values)
            drift[name] = {
                "statistic": "jensen_shannon",
                "value": round(value, 6),
                "drifted": value > js_drift,
            }
    return drift


def prediction_metrics(frame, label: str) -> dict:
    """Accuracy, balanced accuracy, macro F1 and per-class recall of `predicted` vs `label`."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

    truth, predicted = frame[label].astype(str), frame["predicted"].astype(str)
    classes = sorted(set(truth))
    recalls = recall_score(truth, predicted, labels=classes, average=None, zero_division=0)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
        "f1_macro": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "recall": {c: float(r) for c, r in zip(classes, recalls, strict=True)},
        "rows": len(frame),
    }


@pipeline_component(
    packages=(
        "pandas",
        "pyarrow",
        "scikit-learn",
    )
)
def assess(
    contract: dict,
    new_rows: Input[Dataset],
    predictions: Input[Dataset],
    served: Input[Artifact],
    assessment: Output[Artifact],
    metrics: Output[Metrics],
) -> float:
    """Score the predictions and measure drift; return the accuracy on the new rows."""
    import pandas as pd

    from pipeline_src.components.assess import feature_drift, prediction_metrics
    from pipeline_src.components.common import read_json, write_json

    label = next(c["name"] for c in contract["columns"] if c.get("role") == "label")
    scored = pd.read_parquet(predictions.path)
    if scored.empty:
        raise ValueError("no predictions to assess")
    model = read_json(served.path)
    results = prediction_metrics(scored, label)
    drift = feature_drift(model["baseline"], pd.read_parquet(new_rows.path))
    per_batch = {
        str(batch): float((group[label].astype(str) == group["predicted"]).mean())
        for batch, group in scored.groupby("_batch_id")
    }
    document = {
        "model": model["model"],
        "where": model["where"],
        "metric": "accuracy",
        "value": results["accuracy"],
        "test_value": float(model["test_metrics"]["accuracy"]),
        "metrics": results,
        "per_batch_accuracy": per_batch,
        "drift": drift,
    }
    write_json(assessment.path, document)
    metrics.log_metric("accuracy", round(results["accuracy"], 6))
    metrics.log_metric("test_accuracy", round(document["test_value"], 6))
    for name, entry in drift.items():
        metrics.log_metric(f"drift_{name}", entry["value"])
    drifted = [n for n, e in drift.items() if e["drifted"]]
    print(
        f"accuracy {results['accuracy']:.3f} on {len(scored)} new rows (model's test accuracy "
        f"{document['test_value']:.3f}); drifted features: {', '.join(drifted) or 'none'}"
    )
    return results["accuracy"]
