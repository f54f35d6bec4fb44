"""Monitoring: alerts for the ML engineers and a dashboard for everyone, from logs and metrics.

Ingestion outcomes come from the function's structured logs. The function writes one JSON line per
ingestion attempt to stdout (Cloud Run turns it into `jsonPayload`), mirroring its ingestion_log
row, with at least:

    {"event": "ingestion", "status": "LOADED|REJECTED|DUPLICATE|FAILED", "rows_loaded": 342, ...}

(its names in contracts/wire.py, which the function imports too; an object outside the
landing prefix, or not a CSV, gets a line with status IGNORED and no log row; a generation gone
before it was read, an IGNORED line and row). Pipeline runs
come from the state changes Vertex AI Pipelines logs for every job; function errors and endpoint
traffic from the built-in Cloud Run and Vertex AI metrics.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumiverse_time as time

from contracts import wire
from pipeline_src.components.trigger import (
    ALREADY_TRIGGERED,
    DEGRADED,
    EVALUATION_LOG_EVENT,
    HEALTHY,
)
from resources.access import PROJECT, Grantee, Members, Permission
from resources.base import PlatformComponent
from stacks.config import MonitoringConfig

METRIC_VISIBILITY_WAIT = "10m"
"""How long a new log-based metric is waited for before the alert policies on it are created.
Monitoring only finds a new `logging.googleapis.com/user/…` metric minutes later: an alert
created right after it fails with 404 "Cannot find metric(s)… it could take up to 10 minutes to
become available" (hashicorp/terraform-provider-google#11102, open). Only creation waits."""
PIPELINE_STATES = ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED")


@dataclass(frozen=True)
class MonitoringArgs:
    project: str
    display_prefix: str
    """Prefix of every console name, e.g. 'tabular-mlops staging'."""
    metric_prefix: str
    """Prefix of the log-based metrics' names (unique per stack within the project)."""
    function_name: str
    endpoint_id: pulumi.Input[str]
    quarantine_bucket: pulumi.Input[str]
    labels: Mapping[str, str]
    settings: MonitoringConfig = dataclasses.field(default_factory=MonitoringConfig)
    """Where alerts go and when quarantines alert: the stack's `monitoring:` section."""
    evaluation_pipeline: str | None = None
    """The continuous evaluation pipeline's name, when the stack schedules it: its failures and
    the retraining it starts get alerts of their own."""
    members: Members = dataclasses.field(default_factory=dict)
    """Who plays each grantee of PERMISSIONS in this stack (resources/access.py)."""
    lifecycle_page: pulumi.Input[str] | None = None
    """URL of the lifecycle page (every ingestion, training run and evaluation), linked from the
    dashboard."""


class Monitoring(PlatformComponent):
    """Log-based metrics, the notification channel, alert policies and the dashboard."""

    TYPE = "tabular-mlops:observability:Monitoring"
    APIS = (
        "monitoring.googleapis.com",
        "logging.googleapis.com",
        "cloudresourcemanager.googleapis.com",
    )
    PERMISSIONS = (
        Permission(
            Grantee.STAKEHOLDERS,
            "roles/monitoring.viewer",
            PROJECT,
            "read the dashboard and alert history (dashboards have no narrower IAM)",
        ),
        Permission(
            Grantee.QA,
            "roles/monitoring.viewer",
            PROJECT,
            "watch the endpoint's traffic, latency and errors during acceptance",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/monitoring.editor",
            PROJECT,
            "tune alert policies and dashboards, silence incidents",
        ),
        Permission(
            Grantee.ML_ENGINEERS,
            "roles/logging.viewer",
            PROJECT,
            "read the function's and pipelines' logs when an alert fires",
        ),
    )

    outcomes: gcp.logging.Metric
    """Ingestion attempts by outcome (the function's structured log line)."""
    pipeline_runs: gcp.logging.Metric
    """Pipeline runs that ended, by pipeline and final state."""
    evaluations: gcp.logging.Metric | None
    """Continuous evaluations by decision (with the evaluation pipeline)."""
    metrics_visible: time.Sleep
    """Waited for by the alert policies: Monitoring sees a new log-based metric minutes late."""
    channel: gcp.monitoring.NotificationChannel | None
    """The email channel alerts go to (None when the config names no email)."""
    alerts: dict[str, gcp.monitoring.AlertPolicy]
    """Alert policies by purpose: quarantine, function_errors, pipeline_failures, and with the
    evaluation pipeline evaluation_failures and retraining_triggered."""
    dashboard: gcp.monitoring.Dashboard

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        self._metrics(args)
        self.channel = self._channel(args)
        self.alerts = {}
        outcomes_type = _user_metric_type(self.outcomes)
        for alert in (
            *_ingestion_alerts(args, outcomes_type),
            *_pipeline_alerts(args.evaluation_pipeline),
        ):
            self._alert(args, alert)
        self.dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            project=args.project,
            dashboard_json=pulumi.Output.json_dumps(
                _dashboard(
                    args,
                    outcomes_type,
                    _user_metric_type(self.pipeline_runs),
                    _user_metric_type(self.evaluations) if self.evaluations else None,
                )
            ),
            opts=self.child(),
        )
        self.bindings = self.grant(args.project, args.members, {})
        self.register_outputs(
            {
                "alerts": {key: alert.display_name for key, alert in self.alerts.items()},
                "channel": self.channel.name if self.channel else None,
            }
        )

    def _metrics(self, args: MonitoringArgs) -> None:
        """The log-based metrics (ingestion outcomes, pipeline runs, evaluation verdicts), and
        the wait until Monitoring sees them."""
        self.outcomes = self._log_metric(
            args,
            "ingestion_outcomes",
            "Ingestion attempts of uploaded files, by outcome.",
            f"{_function_logs(args.function_name)} "
            f'AND jsonPayload.{wire.LOG_EVENT_FIELD}="{wire.LOG_EVENT}"',
            {"status": ("LOADED, REJECTED…", wire.LOG_STATUS_FIELD)},
        )
        self.pipeline_runs = self._log_metric(
            args,
            "pipeline_runs",
            "Vertex AI pipeline runs that ended, by pipeline and final state.",
            _pipeline_ended(PIPELINE_STATES),
            {"state": ("final state", "state"), "pipeline": ("pipeline name", "pipelineName")},
        )
        # The evaluation's verdicts, counted by decision: the retraining alert and the
        # dashboard read the same structured line of the decide step.
        self.evaluations = (
            self._log_metric(
                args,
                "evaluations",
                "Continuous evaluations of the served model, by decision.",
                EVALUATION_VERDICTS,
                {"decision": (f"{HEALTHY}, {DEGRADED} or {ALREADY_TRIGGERED}", "decision")},
            )
            if args.evaluation_pipeline
            else None
        )
        self.metrics_visible = time.Sleep(
            f"{self._name}-metrics-visible",
            create_duration=METRIC_VISIBILITY_WAIT,
            opts=self.child(
                depends_on=[m for m in (self.outcomes, self.pipeline_runs, self.evaluations) if m]
            ),
        )

    def _log_metric(
        self,
        args: MonitoringArgs,
        key: str,
        description: str,
        filter_: str,
        labels: Mapping[str, tuple[str, str]],
    ) -> gcp.logging.Metric:
        """A count of the log entries `filter_` matches, by `labels`: label -> (what it holds,
        the `jsonPayload` field it is read from)."""
        return gcp.logging.Metric(
            f"{self._name}-{key.replace('_', '-')}",
            project=args.project,
            name=f"{args.metric_prefix}/{key}",
            description=description,
            filter=filter_,
            metric_descriptor={
                "metric_kind": "DELTA",
                "value_type": "INT64",
                "unit": "1",
                "labels": [
                    {"key": label, "value_type": "STRING", "description": meaning}
                    for label, (meaning, _) in labels.items()
                ],
            },
            label_extractors={
                label: f"EXTRACT(jsonPayload.{field})" for label, (_, field) in labels.items()
            },
            opts=self.child(),
        )

    def _channel(self, args: MonitoringArgs) -> gcp.monitoring.NotificationChannel | None:
        email = args.settings.notification_email
        if not email:
            return None
        return gcp.monitoring.NotificationChannel(
            f"{self._name}-email",
            project=args.project,
            display_name=f"{args.display_prefix}: alerts",
            type="email",
            labels={"email_address": email},
            user_labels=dict(args.labels),
            opts=self.child(),
        )

    def _alert(self, args: MonitoringArgs, alert: _Alert) -> None:
        # Every policy waits for the new metrics to be visible (those reading them need it;
        # the others lose nothing on a first deploy, and nothing waits on later ones).
        log_match = any("condition_matched_log" in c for c in alert.conditions)
        self.alerts[alert.key] = gcp.monitoring.AlertPolicy(
            f"{self._name}-{alert.key.replace('_', '-')}",
            project=args.project,
            display_name=f"{args.display_prefix}: {alert.display}",
            severity=alert.severity,
            notification_channels=[self.channel.name] if self.channel else [],
            documentation={"mime_type": "text/markdown", "content": alert.docs},
            user_labels=dict(args.labels),
            opts=self.child(depends_on=[self.metrics_visible]),
            combiner="OR",
            conditions=list(alert.conditions),
            **({"alert_strategy": LOG_MATCH_STRATEGY} if log_match else {}),
        )


def structured_field(field: str, value: str) -> str:
    """A log filter matching `"field": "value"` of a component's JSON stdout line, however
    Cloud Logging stored it.

    Cloud Run parses a JSON stdout line into `jsonPayload` (documented for Cloud Run). For Vertex
    AI custom jobs (`ml_job`, where pipeline components run) no page read here confirms it; the
    line may arrive as `jsonPayload.message` or `textPayload` instead. The filter matches all
    three; what `json.dumps` prints (`"field": "value"`) is the text matched.
    """
    text = json.dumps({field: value})[1:-1].replace('"', '\\"')
    return (
        f'(jsonPayload.{field}="{value}" OR jsonPayload.message:"{text}" OR textPayload:"{text}")'
    )


def _pipeline_ended(states: tuple[str, ...]) -> str:
    """Log filter of Vertex AI pipeline jobs reaching one of `states` (in any stack's project)."""
    wanted = " OR ".join(f'"{s}"' for s in states)
    return f'resource.type="aiplatform.googleapis.com/PipelineJob" AND jsonPayload.state=({wanted})'


@dataclass(frozen=True)
class _Alert:
    """One alert policy: any of its conditions opens an incident."""

    key: str
    display: str
    severity: str
    docs: pulumi.Input[str]
    conditions: tuple[dict, ...]


LOG_MATCH_STRATEGY = {"notification_rate_limit": {"period": "300s"}, "auto_close": "86400s"}
"""Required of log-match conditions: at most one notification per 5 minutes."""
EVALUATION_VERDICTS = (
    f'resource.type="ml_job" AND {structured_field("event", EVALUATION_LOG_EVENT)}'
)
"""The decide step's structured stdout line (a Vertex AI custom job log)."""


def _ingestion_alerts(args: MonitoringArgs, outcomes_type: pulumi.Output[str]) -> list[_Alert]:
    """Files quarantined, and the function failing (crashes, FAILED attempts)."""
    threshold = args.settings.quarantine_alert_threshold
    quarantine = _Alert(
        "quarantine",
        "files quarantined",
        "WARNING",
        pulumi.Output.concat(
            f"At least {threshold} uploaded file(s) were rejected within an hour. Each "
            "rejected file is in gs://",
            args.quarantine_bucket,
            " with a JSON report beside it saying why; the `ingestion_log` table lists them "
            "with `status = 'REJECTED'`.",
        ),
        # Whole files: "more than threshold - 1" is "at least threshold".
        (
            _above(
                f"rejected files in 1 h >= {threshold}",
                _outcomes(outcomes_type, wire.REJECTED),
                "3600s",
                threshold - 1,
            ),
        ),
    )
    function_errors = _Alert(
        "function_errors",
        "ingestion function failing",
        "ERROR",
        "The ingestion function crashed or could not finish a file (status FAILED), or "
        "its data contract cannot be used (every upload FAILED with the contract's problems "
        "as reason, not retried: fix the contract, deploy, upload again). Eventarc retries "
        "other failed deliveries; read the function's logs for the error.",
        (
            _above(
                "function returned 5xx",
                f'metric.type="run.googleapis.com/request_count" '
                f"AND {_function_metrics(args.function_name)} "
                f'AND metric.label.response_code_class="5xx"',
                "300s",
            ),
            _above("ingestion attempts FAILED", _outcomes(outcomes_type, wire.FAILED), "300s"),
        ),
    )
    return [quarantine, function_errors]


def _pipeline_alerts(evaluation: str | None) -> list[_Alert]:
    """A pipeline run failed; with the evaluation pipeline, its own failures and its verdict
    that the model degraded (a retraining started)."""
    failed = _pipeline_ended(("PIPELINE_STATE_FAILED",))
    # The evaluation's failures have their own alert.
    others = f' AND NOT jsonPayload.pipelineName="{evaluation}"' if evaluation else ""
    alerts = [
        _Alert(
            "pipeline_failures",
            "pipeline run failed",
            "ERROR",
            "A Vertex AI pipeline run failed. Open it from the log entry (`jsonPayload."
            "pipelineName`, resource `pipeline_job_id`) in Vertex AI > Pipelines to see the step.",
            # A log-match condition: the incident carries the failed job's log entry.
            (_matched("a pipeline job ended in PIPELINE_STATE_FAILED", failed + others),),
        )
    ]
    if not evaluation:
        return alerts
    return [*alerts, *_evaluation_alerts(failed, evaluation)]


def _evaluation_alerts(failed: str, evaluation: str) -> list[_Alert]:
    return [
        _Alert(
            "evaluation_failures",
            "continuous evaluation failed",
            "ERROR",
            "The scheduled evaluation of the production model failed: until it runs again, "
            "nobody learns whether the model degrades on new data. Open the run from the log "
            "entry in Vertex AI > Pipelines; the failed step's log says why (a step that "
            "cannot work says so, e.g. no endpoint serves a model yet).",
            (
                _matched(
                    "an evaluation pipeline job ended in PIPELINE_STATE_FAILED",
                    f'{failed} AND jsonPayload.pipelineName="{evaluation}"',
                ),
            ),
        ),
        _Alert(
            "retraining_triggered",
            "model degraded: retraining started",
            "WARNING",
            "Continuous evaluation found the production model degraded on newly ingested "
            "batches and started the training pipeline on data that includes them. The log "
            "entry holds the model, its accuracy on the new rows, the reason and the run "
            "(`jsonPayload.triggered_run`); the `evaluations` table and the evaluation report "
            "hold the drift per feature. If the new model passes the gate it reaches "
            "staging; QA then decides on promoting it.",
            (
                _matched(
                    "the evaluation decided: degraded",
                    f"{EVALUATION_VERDICTS} AND {structured_field('decision', DEGRADED)}",
                ),
            ),
        ),
    ]


def _above(display: str, filter_: pulumi.Input[str], period: str, threshold: float = 0) -> dict:
    """A condition: the series `filter_` selects, summed over `period`, exceeds `threshold`."""
    return {
        "display_name": display,
        "condition_threshold": {
            "filter": filter_,
            "aggregations": [_sum(period)],
            "comparison": "COMPARISON_GT",
            "threshold_value": threshold,
            "duration": "0s",
        },
    }


def _matched(display: str, filter_: str) -> dict:
    """A log-match condition: the incident carries the matching log entry."""
    return {"display_name": display, "condition_matched_log": {"filter": filter_}}


def _function_logs(function_name: str) -> str:
    """The function's log entries (Logging's query language: `resource.labels`)."""
    return f'resource.type="cloud_run_revision" AND resource.labels.service_name="{function_name}"'


def _function_metrics(function_name: str) -> str:
    """The function's Cloud Run metrics (Monitoring's filter language: `resource.label`)."""
    return f'resource.type="cloud_run_revision" AND resource.label.service_name="{function_name}"'


def _user_metric_type(metric: gcp.logging.Metric) -> pulumi.Output[str]:
    return metric.name.apply(lambda name: f"logging.googleapis.com/user/{name}")


def _outcomes(outcomes_type: pulumi.Output[str], status: str) -> pulumi.Output[str]:
    """The function's ingestion attempts that ended `status`."""
    return pulumi.Output.concat(
        'metric.type="',
        outcomes_type,
        f'" AND resource.type="cloud_run_revision" AND metric.label.status="{status}"',
    )


def _sum(period: str) -> dict:
    return {
        "alignment_period": period,
        "per_series_aligner": "ALIGN_SUM",
        "cross_series_reducer": "REDUCE_SUM",
    }


def _chart(
    title: str,
    filter_: pulumi.Input[str],
    aligner: str,
    group_by: list[str],
    *,
    period="3600s",
    kind="STACKED_BAR",
) -> dict:
    aggregation: dict = {"alignmentPeriod": period, "perSeriesAligner": aligner}
    if not aligner.startswith("ALIGN_PERCENTILE"):
        aggregation |= {"crossSeriesReducer": "REDUCE_SUM", "groupByFields": group_by}
    return {
        "title": title,
        "xyChart": {
            "dataSets": [
                {
                    "plotType": kind,
                    "timeSeriesQuery": {
                        "timeSeriesFilter": {"filter": filter_, "aggregation": aggregation}
                    },
                }
            ]
        },
    }


def _dashboard(
    args: MonitoringArgs,
    outcomes_type: pulumi.Output[str],
    runs_type: pulumi.Output[str],
    evaluations_type: pulumi.Output[str] | None = None,
) -> dict:
    """The stakeholders' dashboard: what it shows, then ingestion, pipelines and the endpoint,
    two charts a row."""
    widgets = [
        *_ingestion_charts(args.function_name, outcomes_type),
        *_pipeline_charts(runs_type, evaluations_type),
        *_endpoint_charts(args.endpoint_id),
    ]
    width, height = 24, 16
    tiles = [{"xPos": 0, "yPos": 0, "width": 48, "height": 6, "widget": _about(args)}]
    for i, widget in enumerate(widgets):
        tiles.append(
            {
                "xPos": (i % 2) * width,
                "yPos": 6 + (i // 2) * height,
                "width": width,
                "height": height,
                "widget": widget,
            }
        )
    return {
        "displayName": f"{args.display_prefix}: ML platform",
        "labels": dict(args.labels),
        "mosaicLayout": {"columns": 48, "tiles": tiles},
    }


def _ingestion_charts(function_name: str, outcomes_type: pulumi.Output[str]) -> list[dict]:
    function = _function_metrics(function_name)
    outcomes = pulumi.Output.concat('metric.type="', outcomes_type, '"')
    return [
        _chart(
            "Uploaded files by outcome (per hour)", outcomes, "ALIGN_SUM", ["metric.label.status"]
        ),
        _chart(
            "Rejected files (per hour)",
            pulumi.Output.concat(outcomes, f' AND metric.label.status="{wire.REJECTED}"'),
            "ALIGN_SUM",
            [],
        ),
        _chart(
            "Function invocations by response class",
            f'metric.type="run.googleapis.com/request_count" AND {function}',
            "ALIGN_SUM",
            ["metric.label.response_code_class"],
            period="300s",
        ),
        _chart(
            "Function latency (p95)",
            f'metric.type="run.googleapis.com/request_latencies" AND {function}',
            "ALIGN_PERCENTILE_95",
            [],
            period="300s",
            kind="LINE",
        ),
    ]


def _pipeline_charts(
    runs_type: pulumi.Output[str], evaluations_type: pulumi.Output[str] | None
) -> list[dict]:
    charts = [
        _chart(
            "Pipeline runs by final state (per day)",
            pulumi.Output.concat('metric.type="', runs_type, '"'),
            "ALIGN_SUM",
            ["metric.label.pipeline", "metric.label.state"],
            period="86400s",
        )
    ]
    if evaluations_type is not None:
        charts.append(
            _chart(
                "Continuous evaluations by decision (per day)",
                pulumi.Output.concat('metric.type="', evaluations_type, '"'),
                "ALIGN_SUM",
                ["metric.label.decision"],
                period="86400s",
            )
        )
    return charts


def _endpoint_charts(endpoint_id: pulumi.Input[str]) -> list[dict]:
    def online(metric: str) -> pulumi.Output[str]:
        return pulumi.Output.concat(
            f'metric.type="aiplatform.googleapis.com/prediction/online/{metric}" AND '
            'resource.type="aiplatform.googleapis.com/Endpoint" AND resource.label.endpoint_id="',
            endpoint_id,
            '"',
        )

    return [
        _chart(
            "Endpoint predictions (per minute)",
            online("prediction_count"),
            "ALIGN_SUM",
            [],
            period="60s",
            kind="LINE",
        ),
        _chart(
            "Endpoint latency (p95)",
            online("prediction_latencies"),
            "ALIGN_PERCENTILE_95",
            [],
            period="60s",
            kind="LINE",
        ),
        _chart(
            "Endpoint errors (per minute)", online("error_count"), "ALIGN_SUM", [], period="60s"
        ),
    ]


def _about(args: MonitoringArgs) -> dict:
    """The dashboard's first tile: what it shows, and where the lifecycle page is."""
    lifecycle = (
        [
            " Every ingestion, training run and evaluation, newest first, with their "
            "reports: [the lifecycle page](",
            args.lifecycle_page,
            ").",
        ]
        if args.lifecycle_page is not None
        else []
    )
    return {
        "title": "About this dashboard",
        "text": {
            "format": "MARKDOWN",
            "content": pulumi.Output.concat(
                "Uploads are checked against the data contract: **LOADED** files are in BigQuery, "
                "**REJECTED** ones in the quarantine bucket with a report "
                "(`ingestion_log` table for details). Pipelines train and evaluate the model; "
                "the endpoint serves it.",
                *lifecycle,
            ),
        },
    }
