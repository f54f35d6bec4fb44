"""Monitoring: alerts for the ML engineers and a dashboard for everyone, from logs and metrics.

Ingestion outcomes come from the function's structured logs. The function writes one JSON line per
ingestion attempt to stdout (Cloud Run turns it into `jsonPayload`), mirroring its ingestion_log
row, with at least:

    {"event": "ingestion", "status": "LOADED|REJECTED|DUPLICATE|FAILED", "rows_loaded": 342, ...}

(`INGESTION_LOG_EVENT` and the ingestion_log table's `status` values; an object outside the
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

from resources.access import PROJECT, Grantee, Members, Permission
from resources.base import PlatformComponent
from stacks.config import MonitoringConfig

INGESTION_LOG_EVENT = "ingestion"
"""`jsonPayload.event` of the function's one structured log line per ingestion attempt."""
EVALUATION_LOG_EVENT = "evaluation"
"""`jsonPayload.event` of the evaluation's decision line (pipeline_src/components/trigger.py):
`{"event": "evaluation", "decision": "healthy|degraded|already_triggered", "triggered_run": …}`."""
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

    channel: gcp.monitoring.NotificationChannel | None
    """The email channel alerts go to (None when the config names no email)."""
    evaluations: gcp.logging.Metric | None
    """Continuous evaluations by decision (with the evaluation pipeline)."""
    alerts: dict[str, gcp.monitoring.AlertPolicy]
    """Alert policies by purpose: quarantine, function_errors, pipeline_failures, and with the
    evaluation pipeline evaluation_failures and retraining_triggered."""
    dashboard: gcp.monitoring.Dashboard

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(name, opts)
        function_logs = (
            'resource.type="cloud_run_revision" '
            f'AND resource.labels.service_name="{args.function_name}"'
        )
        self.outcomes = gcp.logging.Metric(
            f"{name}-ingestion-outcomes",
            project=args.project,
            name=f"{args.metric_prefix}/ingestion_outcomes",
            description="Ingestion attempts of uploaded files, by outcome.",
            filter=f'{function_logs} AND jsonPayload.event="{INGESTION_LOG_EVENT}"',
            metric_descriptor={
                "metric_kind": "DELTA",
                "value_type": "INT64",
                "unit": "1",
                "labels": [
                    {"key": "status", "value_type": "STRING", "description": "LOADED, REJECTED…"}
                ],
            },
            label_extractors={"status": "EXTRACT(jsonPayload.status)"},
            opts=self.child(),
        )
        self.pipeline_runs = gcp.logging.Metric(
            f"{name}-pipeline-runs",
            project=args.project,
            name=f"{args.metric_prefix}/pipeline_runs",
            description="Vertex AI pipeline runs that ended, by pipeline and final state.",
            filter=_pipeline_ended(PIPELINE_STATES),
            metric_descriptor={
                "metric_kind": "DELTA",
                "value_type": "INT64",
                "unit": "1",
                "labels": [
                    {"key": "state", "value_type": "STRING", "description": "final state"},
                    {"key": "pipeline", "value_type": "STRING", "description": "pipeline name"},
                ],
            },
            label_extractors={
                "state": "EXTRACT(jsonPayload.state)",
                "pipeline": "EXTRACT(jsonPayload.pipelineName)",
            },
            opts=self.child(),
        )
        # The evaluation's verdicts, counted by decision: the retraining alert and the
        # dashboard read the same structured line of the decide step.
        evaluation_verdicts = (
            f'resource.type="ml_job" AND {structured_field("event", EVALUATION_LOG_EVENT)}'
        )
        self.evaluations = (
            gcp.logging.Metric(
                f"{name}-evaluations",
                project=args.project,
                name=f"{args.metric_prefix}/evaluations",
                description="Continuous evaluations of the served model, by decision.",
                filter=evaluation_verdicts,
                metric_descriptor={
                    "metric_kind": "DELTA",
                    "value_type": "INT64",
                    "unit": "1",
                    "labels": [
                        {
                            "key": "decision",
                            "value_type": "STRING",
                            "description": "healthy, degraded or already_triggered",
                        },
                    ],
                },
                label_extractors={"decision": "EXTRACT(jsonPayload.decision)"},
                opts=self.child(),
            )
            if args.evaluation_pipeline
            else None
        )
        outcomes_type = self.outcomes.name.apply(lambda n: f"logging.googleapis.com/user/{n}")
        metrics = [m for m in (self.outcomes, self.pipeline_runs, self.evaluations) if m]
        self.metrics_visible = time.Sleep(
            f"{name}-metrics-visible",
            create_duration=METRIC_VISIBILITY_WAIT,
            opts=self.child(depends_on=metrics),
        )

        self.channel = None
        channels: list[pulumi.Input[str]] = []
        if args.settings.notification_email:
            self.channel = gcp.monitoring.NotificationChannel(
                f"{name}-email",
                project=args.project,
                display_name=f"{args.display_prefix}: alerts",
                type="email",
                labels={"email_address": args.settings.notification_email},
                user_labels=dict(args.labels),
                opts=self.child(),
            )
            channels = [self.channel.name]

        def policy(key: str, display: str, severity: str, docs: pulumi.Input[str], **spec) -> None:
            # Every policy waits for the new metrics to be visible (those reading them need it;
            # the others lose nothing on a first deploy, and nothing waits on later ones).
            self.alerts[key] = gcp.monitoring.AlertPolicy(
                f"{name}-{key.replace('_', '-')}",
                project=args.project,
                display_name=f"{args.display_prefix}: {display}",
                severity=severity,
                notification_channels=channels,
                documentation={"mime_type": "text/markdown", "content": docs},
                user_labels=dict(args.labels),
                opts=self.child(depends_on=[self.metrics_visible]),
                **spec,
            )

        self.alerts = {}
        threshold = args.settings.quarantine_alert_threshold
        policy(
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
            combiner="OR",
            conditions=[
                {
                    "display_name": f"rejected files in 1 h >= {threshold}",
                    "condition_threshold": {
                        "filter": pulumi.Output.concat(
                            'metric.type="',
                            outcomes_type,
                            '" AND resource.type="cloud_run_revision"'
                            ' AND metric.label.status="REJECTED"',
                        ),
                        "aggregations": [_sum("3600s")],
                        "comparison": "COMPARISON_GT",
                        # Whole files: "more than threshold - 1" is "at least threshold".
                        "threshold_value": threshold - 1,
                        "duration": "0s",
                    },
                }
            ],
        )
        policy(
            "function_errors",
            "ingestion function failing",
            "ERROR",
            "The ingestion function crashed or could not finish a file (status FAILED), or "
            "its data contract cannot be used (every upload FAILED with the contract's problems "
            "as reason, not retried: fix the contract, deploy, upload again). Eventarc retries "
            "other failed deliveries; read the function's logs for the error.",
            combiner="OR",
            conditions=[
                {
                    "display_name": "function returned 5xx",
                    "condition_threshold": {
                        "filter": f'metric.type="run.googleapis.com/request_count" '
                        f'AND resource.type="cloud_run_revision" '
                        f'AND resource.label.service_name="{args.function_name}" '
                        f'AND metric.label.response_code_class="5xx"',
                        "aggregations": [_sum("300s")],
                        "comparison": "COMPARISON_GT",
                        "threshold_value": 0,
                        "duration": "0s",
                    },
                },
                {
                    "display_name": "ingestion attempts FAILED",
                    "condition_threshold": {
                        "filter": pulumi.Output.concat(
                            'metric.type="',
                            outcomes_type,
                            '" AND resource.type="cloud_run_revision"'
                            ' AND metric.label.status="FAILED"',
                        ),
                        "aggregations": [_sum("300s")],
                        "comparison": "COMPARISON_GT",
                        "threshold_value": 0,
                        "duration": "0s",
                    },
                },
            ],
        )
        failed = _pipeline_ended(("PIPELINE_STATE_FAILED",))
        evaluation = args.evaluation_pipeline
        policy(
            "pipeline_failures",
            "pipeline run failed",
            "ERROR",
            "A Vertex AI pipeline run failed. Open it from the log entry (`jsonPayload."
            "pipelineName`, resource `pipeline_job_id`) in Vertex AI > Pipelines to see the step.",
            combiner="OR",
            conditions=[
                {
                    "display_name": "a pipeline job ended in PIPELINE_STATE_FAILED",
                    # A log-match condition: the incident carries the failed job's log entry.
                    "condition_matched_log": {
                        # The evaluation's failures have their own alert (below).
                        "filter": f'{failed} AND NOT jsonPayload.pipelineName="{evaluation}"'
                        if evaluation
                        else failed
                    },
                }
            ],
            # Required for log-match conditions: at most one notification per 5 minutes.
            alert_strategy={"notification_rate_limit": {"period": "300s"}, "auto_close": "86400s"},
        )
        if evaluation:
            policy(
                "evaluation_failures",
                "continuous evaluation failed",
                "ERROR",
                "The scheduled evaluation of the production model failed: until it runs again, "
                "nobody learns whether the model degrades on new data. Open the run from the log "
                "entry in Vertex AI > Pipelines; the failed step's log says why (a step that "
                "cannot work says so, e.g. no endpoint serves a model yet).",
                combiner="OR",
                conditions=[
                    {
                        "display_name": "an evaluation pipeline job ended in PIPELINE_STATE_FAILED",
                        "condition_matched_log": {
                            "filter": f'{failed} AND jsonPayload.pipelineName="{evaluation}"'
                        },
                    }
                ],
                alert_strategy={
                    "notification_rate_limit": {"period": "300s"},
                    "auto_close": "86400s",
                },
            )
            policy(
                "retraining_triggered",
                "model degraded: retraining started",
                "WARNING",
                "Continuous evaluation found the production model degraded on newly ingested "
                "batches and started the training pipeline on data that includes them. The log "
                "entry holds the model, its accuracy on the new rows, the reason and the run "
                "(`jsonPayload.triggered_run`); the `evaluations` table and the evaluation report "
                "hold the drift per feature. If the new model passes the gate it reaches "
                "staging; QA then decides on promoting it.",
                combiner="OR",
                conditions=[
                    {
                        "display_name": "the evaluation decided: degraded",
                        # The decide step's structured stdout line (a Vertex AI custom job log).
                        "condition_matched_log": {
                            "filter": f"{evaluation_verdicts} AND "
                            f"{structured_field('decision', 'degraded')}"
                        },
                    }
                ],
                alert_strategy={
                    "notification_rate_limit": {"period": "300s"},
                    "auto_close": "86400s",
                },
            )
        self.dashboard = gcp.monitoring.Dashboard(
            f"{name}-dashboard",
            project=args.project,
            dashboard_json=pulumi.Output.json_dumps(
                _dashboard(
                    args,
                    outcomes_type,
                    self.pipeline_runs.name,
                    self.evaluations.name if self.evaluations else None,
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
    runs_name: pulumi.Output[str],
    evaluations_name: pulumi.Output[str] | None = None,
) -> dict:
    """The stakeholders' dashboard: ingestion, pipelines, endpoint, one row each."""
    function = (
        f'resource.type="cloud_run_revision" AND resource.label.service_name="{args.function_name}"'
    )
    endpoint = pulumi.Output.concat(
        'resource.type="aiplatform.googleapis.com/Endpoint" AND resource.label.endpoint_id="',
        args.endpoint_id,
        '"',
    )
    outcomes = pulumi.Output.concat('metric.type="', outcomes_type, '"')
    widgets = [
        _chart(
            "Uploaded files by outcome (per hour)", outcomes, "ALIGN_SUM", ["metric.label.status"]
        ),
        _chart(
            "Rejected files (per hour)",
            pulumi.Output.concat(outcomes, ' AND metric.label.status="REJECTED"'),
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
        _chart(
            "Pipeline runs by final state (per day)",
            pulumi.Output.concat('metric.type="logging.googleapis.com/user/', runs_name, '"'),
            "ALIGN_SUM",
            ["metric.label.pipeline", "metric.label.state"],
            period="86400s",
        ),
        *(
            [
                _chart(
                    "Continuous evaluations by decision (per day)",
                    pulumi.Output.concat(
                        'metric.type="logging.googleapis.com/user/', evaluations_name, '"'
                    ),
                    "ALIGN_SUM",
                    ["metric.label.decision"],
                    period="86400s",
                )
            ]
            if evaluations_name is not None
            else []
        ),
        _chart(
            "Endpoint predictions (per minute)",
            pulumi.Output.concat(
                'metric.type="aiplatform.googleapis.com/prediction/online/prediction_count" AND ',
                endpoint,
            ),
            "ALIGN_SUM",
            [],
            period="60s",
            kind="LINE",
        ),
        _chart(
            "Endpoint latency (p95)",
            pulumi.Output.concat(
                'metric.type="aiplatform.googleapis.com/prediction/online/prediction_latencies"'
                " AND ",
                endpoint,
            ),
            "ALIGN_PERCENTILE_95",
            [],
            period="60s",
            kind="LINE",
        ),
        _chart(
            "Endpoint errors (per minute)",
            pulumi.Output.concat(
                'metric.type="aiplatform.googleapis.com/prediction/online/error_count" AND ',
                endpoint,
            ),
            "ALIGN_SUM",
            [],
            period="60s",
        ),
    ]
    text = {
        "title": "About this dashboard",
        "text": {
            "format": "MARKDOWN",
            "content": pulumi.Output.concat(
                "Uploads are checked against the data contract: **LOADED** files are in BigQuery, "
                "**REJECTED** ones in the quarantine bucket with a report "
                "(`ingestion_log` table for details). Pipelines train and evaluate the model; "
                "the endpoint serves it.",
                *(
                    [
                        " Every ingestion, training run and evaluation, newest first, with their "
                        "reports: [the lifecycle page](",
                        args.lifecycle_page,
                        ").",
                    ]
                    if args.lifecycle_page is not None
                    else []
                ),
            ),
        },
    }
    width, height = 24, 16
    tiles = [{"xPos": 0, "yPos": 0, "width": 48, "height": 6, "widget": text}]
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
