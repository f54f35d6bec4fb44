"""evaluation_report: one HTML page on the production model over time, for stakeholders.

From the evaluations table (every run so far, this one included): the accuracy on new data at
each evaluation against the bar and the model's test-time accuracy, and each feature's drift
statistic over time. From this run: the decision and its reason, metrics per class and per batch,
and each numeric feature's new distribution over its training baseline.
"""

from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from pipeline_src.components.common import (
    html_figures,
    html_page,
    local_environment,
    pipeline_component,
    read_json,
)
from pipeline_src.components.new_data import query_local_warehouse, warehouse_rows


def history_plots(history, min_accuracy: float, out_dir: str) -> dict:
    """Accuracy and drift over time (one point per evaluation that measured them), as PNGs."""
    import json
    import os

    import matplotlib

    matplotlib.use("Agg")  # no display in a pipeline task
    import matplotlib.pyplot as plt
    import pandas as pd

    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    measured = history[history["value"].notna()].sort_values("evaluated_at")
    if measured.empty:
        return paths
    # One step per evaluation (evenly spaced, labelled with its time and model): a daily
    # schedule and a burst of manual runs read alike.
    steps = list(range(len(measured)))
    ticks = [
        f"{pd.Timestamp(t):%m-%d %H:%M}\n{m}"
        for t, m in zip(measured["evaluated_at"], measured["model_version"], strict=True)
    ]

    def label_steps(axes) -> None:
        axes.set_xticks(steps, ticks, fontsize="x-small")
        axes.set_xlim(-0.5, len(steps) - 0.5)

    figure, axes = plt.subplots(figsize=(7, 3.8))
    axes.plot(steps, measured["value"], marker="o", label="accuracy on new data")
    axes.plot(steps, measured["baseline_value"], marker="x", ls="--", label="test-time accuracy")
    axes.axhline(min_accuracy, color="#c44e52", ls=":", label=f"bar ({min_accuracy:.2f})")
    for step, decision in zip(steps, measured["decision"], strict=True):
        if decision in ("degraded", "already_triggered"):
            axes.axvspan(step - 0.3, step + 0.3, color="#c44e52", alpha=0.15)
    axes.set_ylim(0, 1.02)
    axes.set_title("Served model's accuracy per evaluation (red: degraded)")
    axes.legend(loc="lower left", fontsize="small")
    label_steps(axes)
    figure.tight_layout()
    paths["accuracy_over_time"] = os.path.join(out_dir, "accuracy_over_time.png")
    figure.savefig(paths["accuracy_over_time"], dpi=100)
    plt.close(figure)

    drift = pd.DataFrame([json.loads(d) if d else {} for d in measured["drift"]], index=steps)
    if not drift.empty and len(drift.columns):
        figure, axes = plt.subplots(figsize=(7, 3.8))
        for name in drift.columns:
            axes.plot(drift.index, drift[name], marker="o", label=name)
        axes.axhline(0.2, color="#c44e52", ls=":", label="PSI 0.2 (significant)")
        axes.set_title("Feature drift per evaluation (PSI numeric, Jensen-Shannon categorical)")
        axes.legend(loc="upper left", fontsize="x-small", ncol=2)
        label_steps(axes)
        figure.tight_layout()
        paths["drift_over_time"] = os.path.join(out_dir, "drift_over_time.png")
        figure.savefig(paths["drift_over_time"], dpi=100)
        plt.close(figure)
    return paths


def distribution_plots(baseline: dict, frame, out_dir: str) -> dict:
    """Each numeric feature's new distribution over the baseline's decile bins, as one PNG."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    numeric = [
        (name, stats)
        for name, stats in baseline["features"].items()
        if stats["kind"] == "numeric" and "histogram" in stats and name in frame.columns
    ]
    if not numeric:
        return {}
    figure, grid = plt.subplots(1, len(numeric), figsize=(3.2 * len(numeric), 3), squeeze=False)
    for axes, (name, stats) in zip(grid[0], numeric, strict=True):
        edges = np.asarray(stats["histogram"]["edges"], dtype=float)
        expected = np.asarray(stats["histogram"]["counts"], dtype=float)
        open_edges = edges.copy()
        open_edges[0], open_edges[-1] = -np.inf, np.inf
        values = frame[name].dropna().astype(float)
        actual = np.histogram(values, bins=open_edges)[0].astype(float)
        positions = np.arange(len(expected))
        axes.bar(positions - 0.2, expected / max(expected.sum(), 1), 0.4, label="training")
        axes.bar(positions + 0.2, actual / max(actual.sum(), 1), 0.4, label="new")
        axes.set_title(name, fontsize="small")
        axes.set_xlabel("training decile bin", fontsize="x-small")
    grid[0][0].legend(fontsize="x-small")
    figure.tight_layout()
    path = os.path.join(out_dir, "distributions.png")
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return {"distributions": path}


def render_evaluation_report(
    result: dict, decision: str, reason: str, plots: dict, context: dict
) -> str:
    """The page: facts, decision, metrics, drift table and the plots (embedded)."""
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
        f"<tr><td>{escape(b)}</td><td>{v:.3f}</td></tr>"
        for b, v in result["per_batch_accuracy"].items()
    )
    title = f"Continuous evaluation of {result['model']}"
    return html_page(
        title,
        f"""<p class="decision"><strong>{escape(decision)}</strong></p><p>{escape(reason)}</p>
<table>{facts}</table>
<h2>On the new data</h2>
<table><tr><th>metric</th><th>value</th></tr>
<tr><td>accuracy</td><td>{result["value"]:.3f}</td></tr>
<tr><td>test-time accuracy</td><td>{result["test_value"]:.3f}</td></tr>
<tr><td>balanced accuracy</td><td>{result["metrics"]["balanced_accuracy"]:.3f}</td></tr>
<tr><td>macro F1</td><td>{result["metrics"]["f1_macro"]:.3f}</td></tr></table>
<h3>Recall per class</h3><table><tr><th>class</th><th>recall</th></tr>{recall}</table>
<h3>Accuracy per ingestion batch</h3>
<table><tr><th>batch</th><th>accuracy</th></tr>{batches}</table>
<h2>Drift against the training baseline</h2>
<table><tr><th>feature</th><th>statistic</th><th>value</th><th>significant</th></tr>{drift}</table>
<h2>Over time</h2>
{html_figures(plots)}""",
        image_width=1000,
    )


@pipeline_component(
    packages=("pandas", "pyarrow", "matplotlib", "google-cloud-bigquery"),
    helpers=(
        html_figures,
        html_page,
        local_environment,
        read_json,
        query_local_warehouse,
        warehouse_rows,
        history_plots,
        distribution_plots,
        render_evaluation_report,
    ),
)
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
    local_root: str = "",
):
    """Render the evaluation report with the history of every evaluation so far."""
    import pandas as pd

    result = read_json(assessment.path)
    model = read_json(served.path)
    history = warehouse_rows(
        project,
        bq_location,
        local_root,
        dataset,
        "SELECT evaluation_id, model_version, decision, value, baseline_value, drift, "
        f"evaluated_at FROM `{dataset}`.`{evaluations_table}` ORDER BY evaluated_at",
        {},
        [evaluations_table],
    ).to_pandas()
    paths = history_plots(history, min_accuracy, plots.path)
    paths.update(distribution_plots(model["baseline"], pd.read_parquet(new_rows.path), plots.path))
    context = {
        "evaluation": evaluation_id,
        "model": f"{result['model']} ({model['where']})",
        "trained on data up to": model["trained_until"],
        "new rows": result["metrics"]["rows"],
        "batches": ", ".join(result["per_batch_accuracy"]),
        "retraining started": triggered_run or "none",
        "evaluations so far": len(history),
    }
    with open(report.path, "w", encoding="utf-8") as page:
        page.write(render_evaluation_report(result, decision, reason, paths, context))
    report.metadata.update({"decision": decision, "evaluations": len(history)})
    print(f"report with {len(history)} evaluations written")
