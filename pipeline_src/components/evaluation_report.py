"""evaluation_report: one HTML page on the production model over time, for stakeholders.

From the evaluations table (every run so far, this one included): the accuracy on new data at
each evaluation against the bar and the model's test-time accuracy, and each feature's drift
statistic over time. From this run: the decision and its reason, metrics per class and per batch,
and each numeric feature's new distribution over its training baseline.
"""

from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from pipeline_src.components.common import (
    decision_badge,
    html_figures,
    html_page,
    pipeline_component,
    pyplot,
    save_figure,
)


def history_plots(history, min_accuracy: float, categorical: list, out_dir: str) -> dict:
    """Accuracy and drift over time (one point per evaluation that measured them), as PNGs;
    `categorical` names the features whose drift is a Jensen-Shannon distance."""
    import os

    os.makedirs(out_dir, exist_ok=True)
    measured = history[history["value"].notna()].sort_values("evaluated_at")
    if measured.empty:
        return {}
    paths = {"accuracy_over_time": accuracy_plot(measured, min_accuracy, out_dir)}
    drift = drift_plot(measured, categorical, out_dir)
    if drift:
        paths["drift_over_time"] = drift
    return paths


def label_evaluations(axes, measured) -> None:
    """One step per evaluation on the x axis (evenly spaced, labelled with its time and model):
    a daily schedule and a burst of manual runs read alike."""
    import pandas as pd

    ticks = [
        f"{pd.Timestamp(t):%m-%d %H:%M}\n{m}"
        for t, m in zip(measured["evaluated_at"], measured["model_version"], strict=True)
    ]
    axes.set_xticks(list(range(len(ticks))), ticks, fontsize=9)
    axes.set_xlim(-0.5, len(ticks) - 0.5)
    axes.set_xlabel("evaluation (time, model version)", fontsize=10)


def accuracy_plot(measured, min_accuracy: float, out_dir: str) -> str:
    """The served model's accuracy per evaluation against the bar and its test-time accuracy,
    degraded evaluations shaded red; the PNG's path."""
    figure, axes = pyplot().subplots(figsize=(8, 4))
    steps = list(range(len(measured)))
    axes.plot(steps, measured["value"], marker="o", label="accuracy on new data")
    axes.plot(steps, measured["baseline_value"], marker="x", ls="--", label="test-time accuracy")
    axes.axhline(min_accuracy, color="#c44e52", ls=":", label=f"bar ({min_accuracy:.2f})")
    for step, decision in zip(steps, measured["decision"], strict=True):
        if decision in ("degraded", "already_triggered"):
            axes.axvspan(step - 0.3, step + 0.3, color="#c44e52", alpha=0.15)
    axes.set_ylim(0, 1.02)
    axes.set_ylabel("accuracy", fontsize=10)
    axes.set_title("Served model's accuracy per evaluation (red: degraded)", fontsize=11)
    axes.legend(loc="lower left", fontsize=9)
    label_evaluations(axes, measured)
    return save_figure(figure, out_dir, "accuracy_over_time")


def drift_plot(measured, categorical: list, out_dir: str) -> str:
    """Each feature's drift statistic per evaluation against its significance limit; the PNG's
    path, or "" when no evaluation measured drift."""
    import json

    import pandas as pd

    steps = list(range(len(measured)))
    drift = pd.DataFrame([json.loads(d) if d else {} for d in measured["drift"]], index=steps)
    # PSI (numeric features) and Jensen-Shannon (categorical) are different scales: one panel
    # each, so neither hides the other.
    panels = [
        (title, [c for c in drift.columns if (c in categorical) == is_categorical], limit)
        for title, is_categorical, limit in (
            ("numeric features: PSI", False, 0.2),
            ("categorical features: Jensen-Shannon distance", True, 0.1),
        )
    ]
    panels = [panel for panel in panels if panel[1]]
    if not panels:
        return ""
    figure, grid = pyplot().subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    for axes, (title, columns, limit) in zip(grid[:, 0], panels, strict=True):
        for name in columns:
            axes.plot(drift.index, drift[name], marker="o", label=name)
        axes.axhline(limit, color="#c44e52", ls=":", label=f"significant ({limit})")
        axes.set_title(f"Drift per evaluation, {title}", fontsize=11)
        axes.set_ylabel(title.split(": ")[1], fontsize=10)
        axes.legend(loc="best", fontsize=9, ncol=2)  # not over the points
        label_evaluations(axes, measured)
    return save_figure(figure, out_dir, "drift_over_time")


def distribution_plots(baseline: dict, frame, out_dir: str) -> dict:
    """Each feature's new distribution beside its training baseline, as one PNG: numeric ones
    over the training deciles, categorical ones per category."""
    import numpy as np

    plt = pyplot()
    features = [
        (name, stats)
        for name, stats in baseline["features"].items()
        if name in frame.columns and ("histogram" in stats or "frequencies" in stats)
    ]
    if not features:
        return {}
    columns = min(2, len(features))  # two across: still legible when a narrow window scales it
    rows = -(-len(features) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for axes, (name, stats) in zip(grid.flat, features, strict=False):
        if "histogram" in stats:
            edges = np.asarray(stats["histogram"]["edges"], dtype=float)
            expected = np.asarray(stats["histogram"]["counts"], dtype=float)
            open_edges = edges.copy()
            open_edges[0], open_edges[-1] = -np.inf, np.inf
            values = frame[name].dropna().astype(float)
            actual = np.histogram(values, bins=open_edges)[0].astype(float)
            labels = [str(i + 1) for i in range(len(expected))]
            axes.set_xlabel("training decile (1 = lowest values)", fontsize=10)
        else:
            labels = sorted(stats["frequencies"])
            expected = np.asarray([stats["frequencies"][c] for c in labels], dtype=float)
            counts = frame[name].dropna().astype(str).value_counts()
            actual = np.asarray([counts.get(c, 0) for c in labels], dtype=float)
            axes.set_xlabel("category", fontsize=10)
        positions = np.arange(len(labels))
        axes.bar(positions - 0.2, expected / max(expected.sum(), 1), 0.4, label="training")
        axes.bar(positions + 0.2, actual / max(actual.sum(), 1), 0.4, label="new")
        axes.set_xticks(positions, labels, fontsize=9)
        axes.tick_params(axis="y", labelsize=9)
        axes.set_title(name, fontsize=11)
        axes.set_ylabel("share of rows", fontsize=10)
    for axes in list(grid.flat)[len(features) :]:
        axes.set_visible(False)
    grid[0][0].legend(fontsize=9)
    return {"distributions": save_figure(figure, out_dir, "distributions")}


def render_evaluation_report(
    result: dict, decision: str, reason: str, plots: dict, context: dict, batch_files: dict
) -> str:
    """The page: decision, facts, metrics, drift table and the plots (embedded); batches are
    named by the file that brought them (`batch_files`: batch id -> file name)."""
    from html import escape

    facts = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in context.items()
    )
    drift = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(entry['statistic'])}</td>"
        f"<td>{entry['value']:.3f}</td><td>{'yes' if entry['drifted'] else 'no'}</td></tr>"
        for name, entry in result["drift"].items()
    )
    recall = "".join(
        f"<tr><td>{escape(c)}</td><td>{v:.3f}</td></tr>"
        for c, v in result["metrics"]["recall"].items()
    )
    batches = "".join(
        f"<tr><td>{escape(batch_files.get(b, b))}</td><td>{v:.3f}</td></tr>"
        for b, v in result["per_batch_accuracy"].items()
    )
    title = f"Continuous evaluation of {result['model']}"
    return html_page(
        title,
        f"""<p class="headline">{decision_badge(decision)} {escape(reason)}</p>
<table>{facts}</table>
<h2>On the new data</h2>
<table><tr><th>metric</th><th>value</th></tr>
<tr><td>accuracy</td><td>{result["value"]:.3f}</td></tr>
<tr><td>test-time accuracy</td><td>{result["test_value"]:.3f}</td></tr>
<tr><td>balanced accuracy</td><td>{result["metrics"]["balanced_accuracy"]:.3f}</td></tr>
<tr><td>macro F1</td><td>{result["metrics"]["f1_macro"]:.3f}</td></tr></table>
<h3>Recall per class</h3><table><tr><th>class</th><th>recall</th></tr>{recall}</table>
<h3>Accuracy per ingested file</h3>
<table><tr><th>file</th><th>accuracy</th></tr>{batches}</table>
<h2>Drift against the training baseline</h2>
<table><tr><th>feature</th><th>statistic</th><th>value</th><th>significant</th></tr>{drift}</table>
<h2>Over time, and the new data's distributions</h2>
{html_figures(plots)}""",
        image_width=1000,
    )


def evaluation_history(warehouse, dataset: str, evaluations_table: str, uploads_table: str):
    """Every evaluation so far (a frame, oldest first), and each loaded batch's file name by
    batch id: people know a batch by the file they uploaded, not by its id."""
    history = warehouse.read(
        "SELECT evaluation_id, model_version, decision, value, baseline_value, drift, "
        f"evaluated_at FROM `{dataset}`.`{evaluations_table}` ORDER BY evaluated_at",
        tables=[evaluations_table],
    ).to_pandas()
    uploads = warehouse.read(
        f"SELECT batch_id, source_uri FROM `{dataset}`.`{uploads_table}` WHERE status = 'LOADED'",
        tables=[uploads_table],
    ).to_pylist()
    return history, {u["batch_id"]: u["source_uri"].rsplit("/", 1)[-1] for u in uploads}


@pipeline_component(packages=("pandas", "pyarrow", "matplotlib", "google-cloud-bigquery"))
def evaluation_report(
    assessment: Input[Artifact],
    served: Input[Artifact],
    new_rows: Input[Dataset],
    decision: str,
    reason: str,
    triggered_run: str,
    evaluation_id: str,
    min_accuracy: float,
    project: str,
    bq_location: str,
    dataset: str,
    report: Output[HTML],
    plots: Output[Artifact],
    evaluations_table: str = "evaluations",
    ingestion_log_table: str = "ingestion_log",
):
    """Render the evaluation report with the history of every evaluation so far."""
    import pandas as pd

    from pipeline_src.components.common import read_json
    from pipeline_src.components.evaluation_report import (
        distribution_plots,
        evaluation_history,
        history_plots,
        render_evaluation_report,
    )
    from pipeline_src.ports import backend

    result = read_json(assessment.path)
    model = read_json(served.path)
    warehouse = backend().warehouse(project, bq_location, dataset, job_label="evaluation")
    history, batch_files = evaluation_history(
        warehouse, dataset, evaluations_table, ingestion_log_table
    )
    features = model["baseline"]["features"]
    categorical = [name for name, stats in features.items() if stats["kind"] == "categorical"]
    paths = history_plots(history, min_accuracy, categorical, plots.path)
    paths.update(distribution_plots(model["baseline"], pd.read_parquet(new_rows.path), plots.path))
    trained_until = pd.Timestamp(model["trained_until"])
    context = {
        "evaluation": evaluation_id,
        "model": f"{result['model']} ({model['where']})",
        "trained on data up to": f"{trained_until:%Y-%m-%d %H:%M} UTC",
        "new rows": result["metrics"]["rows"],
        "files": ", ".join(batch_files.get(b, b) for b in result["per_batch_accuracy"]),
        "retraining started": triggered_run or "none",
        "evaluations so far": len(history),
    }
    with open(report.path, "w", encoding="utf-8") as page:
        page.write(render_evaluation_report(result, decision, reason, paths, context, batch_files))
    report.metadata.update({"decision": decision, "evaluations": len(history)})
    print(f"report with {len(history)} evaluations written")
