"""evaluate: the model's metrics on the test split, beside a trivial baseline, and a report.

Metrics: accuracy, balanced accuracy, macro F1, log loss, one-vs-rest ROC AUC, per-class
precision and recall, the confusion matrix and permutation feature importance (on the raw
features, so it reads in the contract's terms). The baseline always predicts the training split's
class distribution: a model has to beat it to have learnt anything.

Outputs: `evaluation` (all of it as JSON, kept with the model in the registry), `metrics` and
`confusion` (shown by the Vertex AI console), `report` (one self-contained HTML page a stakeholder
can open) and `plots` (the PNGs).
"""

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from pipeline_src.components.common import (
    html_figures,
    html_page,
    model_inputs,
    pipeline_component,
    pyplot,
    save_figure,
)


def classification_metrics(labels, probabilities, classes) -> dict:
    """Headline metrics from true labels and class probabilities (columns in `classes` order)."""
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        f1_score,
        log_loss,
        roc_auc_score,
    )

    classes = np.asarray(classes)
    predicted = classes[np.asarray(probabilities).argmax(axis=1)]
    metrics = {
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "f1_macro": float(f1_score(labels, predicted, average="macro", zero_division=0)),
        "log_loss": float(log_loss(labels, probabilities, labels=classes)),
        "roc_auc_ovr": None,  # undefined unless every class occurs in the test split
    }
    if set(classes) <= set(labels):
        if len(classes) == 2:
            metrics["roc_auc_ovr"] = float(roc_auc_score(labels == classes[1], probabilities[:, 1]))
        else:
            metrics["roc_auc_ovr"] = float(
                roc_auc_score(labels, probabilities, multi_class="ovr", labels=classes)
            )
    return metrics


def evaluate_classifier(model, test_frame, train_frame, spec: dict, seed: int):
    """(evaluation dict, the model's test probabilities) for a fitted classifier."""
    import numpy as np
    from sklearn.metrics import confusion_matrix

    classes = [str(c) for c in model.classes_]
    features = model_inputs(test_frame, spec)
    labels = test_frame[spec["label"]].astype(str).to_numpy()
    probabilities = model.predict_proba(features)
    baseline = prior_probabilities(train_frame, features, spec, classes)
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    evaluation = {
        "primary_metric": "accuracy",
        "classes": classes,
        "rows": {"train": len(train_frame), "test": len(test_frame)},
        "model": classification_metrics(labels, probabilities, classes),
        "baseline": {
            "strategy": "predicts the training split's class distribution",
            **classification_metrics(labels, baseline, classes),
        },
        "per_class": per_class_metrics(labels, predicted, classes),
        "confusion_matrix": {
            "labels": classes,
            "matrix": confusion_matrix(labels, predicted, labels=classes).tolist(),
        },
        "feature_importance": feature_importance(model, features, labels, seed),
    }
    return evaluation, probabilities


def prior_probabilities(train_frame, features, spec: dict, classes: list):
    """The baseline's probabilities for the rows of `features`: the training split's class
    distribution, in the columns of `classes` (a class the training split lacks gets 0)."""
    import numpy as np
    from sklearn.dummy import DummyClassifier

    baseline = DummyClassifier(strategy="prior").fit(
        model_inputs(train_frame, spec), train_frame[spec["label"]].astype(str)
    )
    probabilities = np.zeros((len(features), len(classes)))
    for i, name in enumerate(baseline.classes_):
        probabilities[:, classes.index(str(name))] = baseline.predict_proba(features)[:, i]
    return probabilities


def per_class_metrics(labels, predicted, classes: list) -> dict:
    """Precision, recall, F1 and test rows of each class."""
    from sklearn.metrics import classification_report

    report = classification_report(
        labels, predicted, labels=classes, output_dict=True, zero_division=0
    )
    return {
        c: {
            "precision": float(report[c]["precision"]),
            "recall": float(report[c]["recall"]),
            "f1": float(report[c]["f1-score"]),
            "support": int(report[c]["support"]),
        }
        for c in classes
    }


def feature_importance(model, features, labels, seed: int) -> list:
    """Permutation importance of each raw feature (the drop in accuracy when it is shuffled)."""
    from sklearn.inspection import permutation_importance

    importance = permutation_importance(
        model, features, labels, scoring="accuracy", n_repeats=5, random_state=seed
    )
    # A list, most important first (JSON objects have no order worth relying on).
    return [
        {"feature": name, "mean": float(mean), "std": float(std)}
        for name, mean, std in sorted(
            zip(
                features.columns,
                importance.importances_mean,
                importance.importances_std,
                strict=True,
            ),
            key=lambda item: -item[1],
        )
    ]


def render_plots(evaluation: dict, labels, probabilities, out_dir: str) -> dict:
    """Confusion matrix, ROC and precision-recall curves, feature importance, as PNG files."""
    import os

    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    os.makedirs(out_dir, exist_ok=True)
    classes = evaluation["classes"]
    paths = {}
    plt = pyplot()

    def save(figure, name: str) -> None:
        paths[name] = save_figure(figure, out_dir, name)

    figure, axes = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay(
        np.asarray(evaluation["confusion_matrix"]["matrix"]), display_labels=classes
    ).plot(ax=axes, colorbar=False)
    axes.set_title("Confusion matrix (test split)")
    save(figure, "confusion_matrix")

    for name, display, title, axis_names in (
        ("roc_curves", RocCurveDisplay, "ROC curves, one class vs rest",
         ("false positive rate", "true positive rate")),
        ("precision_recall_curves", PrecisionRecallDisplay, "Precision-recall, one class vs rest",
         ("recall", "precision")),
    ):  # fmt: skip
        figure, axes = plt.subplots(figsize=(5, 4.5))
        for i, label in enumerate(classes):
            truth = np.asarray(labels) == label
            if truth.any() and not truth.all():
                display.from_predictions(truth, probabilities[:, i], name=label, ax=axes)
        axes.set_xlabel(axis_names[0])
        axes.set_ylabel(axis_names[1])
        axes.set_title(title)
        save(figure, name)

    importance = evaluation["feature_importance"][::-1]  # most important at the top
    figure, axes = plt.subplots(figsize=(5, 0.4 * len(importance) + 1.2))
    axes.barh(
        [entry["feature"] for entry in importance],
        [entry["mean"] for entry in importance],
        xerr=[entry["std"] for entry in importance],
        color="#4c72b0",
    )
    axes.set_xlabel("drop in test accuracy when the feature is shuffled")
    axes.set_title("Permutation feature importance")
    save(figure, "feature_importance")
    return paths


def readable_snapshot(snapshot_id: str) -> str:
    """'20261207t002409z' as '2026-12-07 00:24:09 UTC (20261207t002409z)'; others as they are."""
    import re

    stamp = re.match(r"^(\d{4})(\d\d)(\d\d)t(\d\d)(\d\d)(\d\d)z$", snapshot_id or "")
    if not stamp:
        return snapshot_id
    year, month, day, hour, minute, second = stamp.groups()
    return f"{year}-{month}-{day} {hour}:{minute}:{second} UTC ({snapshot_id})"


def render_report(evaluation: dict, plots: dict, context: dict) -> str:
    """One self-contained HTML page: metrics against the baseline, per class, and the plots."""
    from html import escape

    def number(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{number(evaluation['model'][key])}</td>"
        f"<td>{number(evaluation['baseline'][key])}</td></tr>"
        for key, name in (
            ("accuracy", "accuracy"),
            ("balanced_accuracy", "balanced accuracy"),
            ("f1_macro", "macro F1"),
            ("roc_auc_ovr", "ROC AUC (one vs rest)"),
            ("log_loss", "log loss (lower is better)"),
        )
    )
    per_class = "".join(
        f"<tr><td>{escape(c)}</td><td>{number(v['precision'])}</td><td>{number(v['recall'])}</td>"
        f"<td>{number(v['f1'])}</td><td>{v['support']}</td></tr>"
        for c, v in evaluation["per_class"].items()
    )
    facts = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in context.items()
    )
    title = f"{context.get('dataset', 'model')} model report"
    return html_page(
        title,
        f"""<table>{facts}</table>
<h2>Test metrics against the baseline</h2>
<p>The baseline predicts the training split's class distribution for every row.</p>
<table><tr><th>metric</th><th>model</th><th>baseline</th></tr>{rows}</table>
<h2>Per class</h2>
<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>test rows</th></tr>
{per_class}</table>
<h2>Plots</h2>
{html_figures(plots)}""",
    )


def report_context(results: dict, spec: dict, signature: dict, snapshot_id: str) -> dict:
    """The report's facts: the data, its snapshot and split, the model and its settings."""
    return {
        "dataset": f"{spec['name']} (contract v{spec['version']})",
        "data snapshot": readable_snapshot(snapshot_id),
        "rows": f"train {results['rows']['train']}, test {results['rows']['test']}",
        "estimator": signature["estimator"],
        "hyperparameters": ", ".join(f"{k}={v}" for k, v in signature["hyperparameters"].items()),
        "classes": ", ".join(results["classes"]),
    }


@pipeline_component(
    packages=(
        "pandas",
        "pyarrow",
        "scikit-learn",
        "threadpoolctl",
        "matplotlib",
    )
)
def evaluate(
    contract: dict,
    model: Input[Model],
    train_data: Input[Dataset],
    test_data: Input[Dataset],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
    plots: Output[Artifact],
    seed: int = 42,
):
    """Score the model on the test split against the baseline; write the report and plots."""
    import os

    import joblib
    import pandas as pd

    from pipeline_src.components.common import compute_threads, feature_spec, read_json, write_json
    from pipeline_src.components.evaluate import (
        evaluate_classifier,
        render_plots,
        render_report,
        report_context,
    )

    spec = feature_spec(contract)
    fitted = joblib.load(os.path.join(model.path, "model.joblib"))
    test_frame = pd.read_parquet(test_data.path)
    if test_frame.empty:
        raise ValueError("the test split is empty: nothing to evaluate the model on")
    with compute_threads(len(test_frame)):
        results, probabilities = evaluate_classifier(
            fitted, test_frame, pd.read_parquet(train_data.path), spec, seed
        )
    snapshot_id = test_data.metadata.get("snapshot_id", "")
    results["snapshot_id"] = snapshot_id
    write_json(evaluation.path, results)

    for key, value in results["model"].items():
        if value is not None:
            metrics.log_metric(key, round(value, 6))
    for key in ("accuracy", "log_loss"):
        metrics.log_metric(f"baseline_{key}", round(results["baseline"][key], 6))
    confusion.log_confusion_matrix(results["classes"], results["confusion_matrix"]["matrix"])

    labels = test_frame[spec["label"]].astype(str).to_numpy()
    paths = render_plots(results, labels, probabilities, plots.path)
    signature = read_json(os.path.join(model.path, "model.json"))
    context = report_context(results, spec, signature, snapshot_id)
    with open(report.path, "w", encoding="utf-8") as page:
        page.write(render_report(results, paths, context))
    model_scores, base = results["model"], results["baseline"]
    print(
        f"test accuracy {model_scores['accuracy']:.3f} (baseline {base['accuracy']:.3f}), "
        f"log loss {model_scores['log_loss']:.3f} (baseline {base['log_loss']:.3f})"
    )
