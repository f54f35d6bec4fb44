"""The lifecycle page: one HTML page a stakeholder opens to see everything the platform did.

Every ingestion (loaded or rejected, and why), every training run (the gate's decision, the
versions compared, the metrics, a link to its report), every evaluation (verdict, drift) and what
each endpoint serves — newest first, read from the warehouse's own tables (contracts/tables.py).

The page is built from plain rows, so it does not care where they come from. The publish step
at the end of every training and evaluation run (pipeline_src/publication.py) renders it through
the run's ports — BigQuery and Vertex AI in the cloud, writing `gs://<artifacts>/lifecycle/
index.html`, which the stakeholders' dashboard links (resources/monitoring.py); the DuckDB
warehouse and the local endpoints locally, writing `.local/index.html` (`make index` too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from pipeline_src.components.common import decision_badge, html_page

LIFECYCLE_FOLDER = "lifecycle"
"""The artifacts bucket's folder the pipelines publish to (their `lifecycle_uri`)."""
PAGE_OBJECT = f"{LIFECYCLE_FOLDER}/index.html"
"""Where the page lives in the artifacts bucket (the dashboard links here)."""
REPORTS_PREFIX = f"{LIFECYCLE_FOLDER}/reports/"
"""Where each run's report is kept beside it, `<run or evaluation id>.html` (the pipeline root
expires; these do not)."""
# The page's sections, in order (rows_shown reads them back).
ENDPOINTS = "What each endpoint serves"
TRAININGS = "Training runs"
EVALUATIONS = "Evaluations of the served model"
INGESTIONS = "Ingested files"


@dataclass(frozen=True)
class EndpointView:
    """What one endpoint serves: `<model>@<version>` -> share of the traffic (percent)."""

    name: str
    traffic: dict[str, int]


@dataclass
class Lifecycle:
    """The rows the page shows, each list newest first."""

    ingestions: list[dict[str, Any]] = field(default_factory=list)
    trainings: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    endpoints: list[EndpointView] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    """Run or evaluation id -> link (relative path or URL) to its report."""


def read_lifecycle(
    read: Callable[[str, str], list[dict[str, Any]]],
    dataset: str,
    endpoints: list[EndpointView],
    reports: dict[str, str],
) -> Lifecycle:
    """The page's rows through `read` (BigQuery SQL, the platform table it reads -> rows), from
    the three platform tables."""
    # One row per attempt: its outcome, or its STARTED row alone when it has none (cut short,
    # or still running). A redelivered duplicate is not an ingestion.
    ingestions = read(
        "SELECT source_uri, status, rows_loaded, rows_in_file, reason, quarantine_uri, "
        f"started_at FROM `{dataset}`.`ingestion_log` AS attempt "
        "WHERE status NOT IN ('DUPLICATE', 'STARTED') OR (status = 'STARTED' AND NOT EXISTS "
        f"(SELECT 1 FROM `{dataset}`.`ingestion_log` AS outcome WHERE outcome.attempt_id = "
        "attempt.attempt_id AND outcome.status != 'STARTED')) ORDER BY started_at DESC",
        "ingestion_log",
    )
    metrics = read(
        "SELECT run_id, model_version, data_snapshot, metric, value, split, decision, reason, "
        f"recorded_at FROM `{dataset}`.`model_metrics` ORDER BY recorded_at DESC",
        "model_metrics",
    )
    evaluations = read(
        "SELECT evaluation_id, model_version, rows, value, baseline_value, drift, decision, "
        f"reason, triggered_run, evaluated_at FROM `{dataset}`.`evaluations` "
        "ORDER BY evaluated_at DESC",
        "evaluations",
    )
    return Lifecycle(
        ingestions=ingestions,
        trainings=training_runs(metrics),
        evaluations=evaluations,
        endpoints=endpoints,
        reports=reports,
    )


def training_runs(metric_rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per training run from its model_metrics rows (one row per metric)."""
    runs: dict[str, dict[str, Any]] = {}
    for row in metric_rows:
        run = runs.setdefault(
            row["run_id"],
            {key: row[key] for key in ("run_id", "decision", "reason", "data_snapshot")}
            | {"model_version": "", "recorded_at": row["recorded_at"], "metrics": {}},
        )
        run["model_version"] = run["model_version"] or row.get("model_version") or ""
        run["recorded_at"] = max(run["recorded_at"], row["recorded_at"])
        if row.get("split") == "test":
            run["metrics"][row["metric"]] = row["value"]
    return sorted(runs.values(), key=lambda r: r["recorded_at"], reverse=True)


def _when(value: Any) -> str:
    """A timestamp to the minute, UTC, as a person reads it."""
    if not hasattr(value, "strftime"):
        return escape(str(value))
    return f'<span class="when">{value:%Y-%m-%d}<br>{value:%H:%M} UTC</span>'


def _name(resource: str | None) -> str:
    """A resource by its last part (`penguins-staging@3`, the endpoint's id), the full name on
    hover: Vertex AI's `projects/…/locations/…/models/…` would not fit a narrow window."""
    if not resource:
        return "-"
    short = resource.rsplit("/", 1)[-1]
    if short == resource:
        return f"<code>{escape(resource)}</code>"
    return f'<code title="{escape(resource)}">{escape(short)}</code>'


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.3f}"


def _link(lifecycle: Lifecycle, run_id: str | None) -> str:
    target = lifecycle.reports.get(run_id or "")
    return f'<a href="{escape(target)}">report</a>' if target else ""


def _table(headers: Iterable[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _endpoints_section(lifecycle: Lifecycle) -> str:
    rows = [
        f"<tr><td>{_name(view.name)}</td><td>"
        + (
            "<br>".join(
                f"{_name(model)} {share}%"
                for model, share in sorted(view.traffic.items(), key=lambda i: -i[1])
            )
            or '<span class="empty">nothing deployed</span>'
        )
        + "</td></tr>"
        for view in lifecycle.endpoints
    ]
    return _table(("endpoint", "serves (share of traffic)"), rows, "no endpoints yet")


def _trainings_section(lifecycle: Lifecycle) -> str:
    rows = []
    for run in lifecycle.trainings:
        scores = run["metrics"]
        champion = scores.get("champion/accuracy")
        rows.append(
            f"<tr><td>{_when(run['recorded_at'])}</td><td>{decision_badge(run['decision'])}"
            f"<br>{_link(lifecycle, run['run_id'])}</td>"
            f"<td>{_name(run['model_version'])}</td>"
            f"<td><strong>{_number(scores.get('accuracy'))}</strong><br><small>"
            + (f"champion {_number(champion)}<br>" if champion is not None else "")
            + f"baseline {_number(scores.get('baseline/accuracy'))}</small></td>"
            f'<td class="why">{escape(run["reason"] or "")}</td></tr>'
        )
    headers = ("when", "decision", "version", "test accuracy", "why")
    return _table(headers, rows, "no training run yet: make pipeline")


def _evaluations_section(lifecycle: Lifecycle) -> str:
    rows = []
    for evaluation in lifecycle.evaluations:
        drift = json.loads(evaluation["drift"]) if evaluation.get("drift") else {}
        worst = max(drift.items(), key=lambda item: item[1], default=None)
        # Long feature names may break after an underscore: the table fits a narrow window.
        top_drift = f"{escape(worst[0]).replace('_', '_<wbr>')}<br>{worst[1]:.2f}" if worst else "-"
        retraining = evaluation.get("triggered_run") or ""
        rows.append(
            f"<tr><td>{_when(evaluation['evaluated_at'])}</td>"
            f"<td>{decision_badge(evaluation['decision'])}"
            f"<br>{_link(lifecycle, evaluation['evaluation_id'])}</td>"
            f"<td>{_name(evaluation.get('model_version'))}</td>"
            f"<td><strong>{_number(evaluation.get('value'))}</strong><br><small>"
            f"on {evaluation.get('rows') or 0} rows<br>at test "
            f"{_number(evaluation.get('baseline_value'))}</small></td><td>{top_drift}</td>"
            f'<td class="why">{escape(evaluation.get("reason") or "")}'
            + (f" (run {escape(retraining)})" if retraining else "")
            + "</td></tr>"
        )
    headers = ("when", "verdict", "model", "accuracy", "top drift", "why")
    return _table(headers, rows, "no evaluation yet: make evaluate")


def _ingestions_section(lifecycle: Lifecycle) -> str:
    rows = []
    for batch in lifecycle.ingestions:
        rows_text = (
            f"{batch['rows_loaded']} of {batch['rows_in_file']}"
            if batch.get("rows_in_file") is not None
            else str(batch.get("rows_loaded") or 0)
        )
        why = batch.get("reason") or ""
        if batch.get("quarantine_uri"):
            why += f" (quarantined: {batch['quarantine_uri']})"
        rows.append(
            f"<tr><td>{_when(batch['started_at'])}</td><td>{decision_badge(batch['status'])}</td>"
            f"<td><code>{escape(batch['source_uri'].rsplit('/', 1)[-1])}</code></td>"
            f'<td>{rows_text}</td><td class="why">{escape(why)}</td></tr>'
        )
    return _table(("when", "outcome", "file", "rows", "why"), rows, "no file ingested yet")


def render_page(lifecycle: Lifecycle, title: str, generated_at: str) -> str:
    """The whole page: endpoints first (what is live), then each history, newest first."""
    body = (
        f'<p class="meta">Generated {escape(generated_at)} from the warehouse tables '
        "ingestion_log, model_metrics and evaluations. Newest first.</p>"
        f"<h2>{ENDPOINTS}</h2>{_endpoints_section(lifecycle)}"
        f"<h2>{TRAININGS}</h2>{_trainings_section(lifecycle)}"
        f"<h2>{EVALUATIONS}</h2>{_evaluations_section(lifecycle)}"
        f"<h2>{INGESTIONS}</h2>{_ingestions_section(lifecycle)}"
    )
    return html_page(title, body)


def rows_shown(page: str) -> dict[str, int]:
    """How many rows each section of a rendered page shows, by its heading (what an end-to-end
    run checks of the page it finds in the bucket)."""
    import re

    sections = re.split(r"<h2>([^<]+)</h2>", page)[1:]
    return {
        heading: body.split("</table>", 1)[0].count("<tr><td>") if "<table>" in body else 0
        for heading, body in zip(sections[::2], sections[1::2], strict=True)
    }


def headed_by_decision(page: str, decision: str, reason: str, facts: dict[str, str]) -> str:
    """A report with what happened at its top: the decision as a badge, why, and provenance
    (version, run, commit, date), so a kept champion's report never reads like a deployed one."""
    rows = "".join(
        f"<tr><th>{escape(key)}</th><td>{escape(value)}</td></tr>" for key, value in facts.items()
    )
    header = (
        f'<p class="headline">{decision_badge(decision)} {escape(reason)}</p><table>{rows}</table>'
    )
    return page.replace("</h1>", f"</h1>\n{header}", 1)
