"""`make evaluate`: the continuous evaluation pipeline, run locally by kfp.local, then retraining.

    python -m local.run_evaluation [--root DIR] [--param NAME=VALUE ...]

The same components as on Vertex AI judge the model the local prod endpoint serves (staging's
while prod serves nothing) on the batches ingested since its training snapshot. When it has
degraded, the pipeline claims a retraining request (`<root>/retraining/<run>.json`), which this
runner then carries out as Vertex AI would the submitted job: the training pipeline on a snapshot
at the evaluation's time, so the new batches are in it. Its gate decides whether the new model
reaches the staging endpoint.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.environment import LocalEnvironment
from local.lifecycle import lifecycle_parameters
from local.run_training import (
    STAGING_ENDPOINT,
    LocalRun,
    PipelineFailed,
    command_line,
    execute,
    local_base_parameters,
)
from local.run_training import run as run_training
from pipeline_src.compile import typed_arguments
from pipeline_src.evaluation import evaluation_pipeline
from stacks.config import EvaluationConfig

PROD_ENDPOINT = "prod"


@dataclass(frozen=True)
class LocalEvaluation:
    """What one local evaluation did (its row of the evaluations table, and what followed)."""

    record: dict[str, Any]
    """The run's row of the evaluations table (decision, reason, metric, drift, …)."""
    report: Path | None
    """The evaluation report (HTML), when the run got that far."""
    retraining: LocalRun | None
    """The training run the evaluation started, if any."""
    seconds: float
    log: Path

    @property
    def decision(self) -> str:
        return self.record["decision"]

    @property
    def drift(self) -> dict[str, float]:
        return json.loads(self.record["drift"]) if self.record.get("drift") else {}


def evaluation_parameters(env: LocalEnvironment, **overrides: Any) -> dict[str, Any]:
    """The evaluation pipeline's arguments for a local run; `overrides` replace any of them."""
    config = EvaluationConfig()  # the platform's defaults
    parameters = {
        **local_base_parameters(env),
        "endpoint": PROD_ENDPOINT,
        "fallback_endpoint": STAGING_ENDPOINT,
        **lifecycle_parameters(env),
        "min_new_rows": config.min_new_rows,
        "min_accuracy": config.min_accuracy,
        "max_degradation": config.max_degradation,
    }
    return typed_arguments({**parameters, **overrides}, evaluation_pipeline)


def run(
    env: LocalEnvironment, *, say: Callable[[str], None] = print, **overrides: Any
) -> LocalEvaluation:
    """Run the evaluation pipeline locally, then any retraining it requested."""
    env.ensure()
    parameters = evaluation_parameters(env, **overrides)
    started = time.perf_counter()
    result, log_path = execute(env, evaluation_pipeline, parameters, log_name="evaluation", say=say)
    record = latest_evaluation(env)
    # Where the run kept its report beside the lifecycle page ("": not enough data to judge).
    report = Path(result.output) if result.output else None
    retraining = None
    if record.get("triggered_run"):
        # The verdict first: the retraining it causes follows.
        say(f"verdict: {record['decision']}: {record['reason']}")
        say(f"retraining {record['triggered_run']} requested: running the training pipeline")
        retraining = carry_out(env, record["triggered_run"], say)
    return LocalEvaluation(
        record=record,
        report=report,
        retraining=retraining,
        seconds=time.perf_counter() - started,
        log=log_path,
    )


def latest_evaluation(env: LocalEnvironment) -> dict[str, Any]:
    """The newest row of the local evaluations table."""
    from local.warehouse import connect

    with connect(env.warehouse_path, read_only=True) as con:
        rows = con.sql(
            f'SELECT * FROM "{env.dataset}".evaluations ORDER BY evaluated_at DESC LIMIT 1'
        ).to_arrow_table()
    if not rows.num_rows:
        raise PipelineFailed("the evaluation pipeline finished without recording an evaluation")
    return rows.to_pylist()[0]


def carry_out(env: LocalEnvironment, run_id: str, say: Callable[[str], None]) -> LocalRun:
    """Run the training pipeline for a retraining request and mark the request done."""
    path = env.root / "retraining" / f"{run_id}.json"
    request = json.loads(path.read_text(encoding="utf-8"))
    if request.get("status") != "requested":
        raise PipelineFailed(f"retraining {run_id} is {request.get('status')}, not requested")
    outcome = run_training(env, say=say, snapshot_time=request["snapshot_time"])
    request.update(
        {
            "status": "done",
            "decision": outcome.decision,
            "reason": outcome.reason,
            "accuracy": outcome.evaluation["model"]["accuracy"],
            "staging_serves": outcome.serving,
        }
    )
    path.write_text(json.dumps(request, indent=2, sort_keys=True), encoding="utf-8")
    return outcome


def holdout_accuracy(env: LocalEnvironment, model: str, drift: str | None, seed: int) -> float:
    """Accuracy of a registered model (`id@version`) on freshly generated rows it never saw."""
    import joblib
    import pandas as pd

    from contracts.generate import Drift, generate_records, sample_profile
    from local.registry import LocalModelRegistry
    from pipeline_src.components.common import feature_spec, model_inputs

    model_id, _, version = model.partition("@")
    bundle = LocalModelRegistry(env.registry_dir).get(model_id, version).artifact_path
    contract = env.contract
    spec = feature_spec(contract.model_dump(mode="json", exclude_none=True))
    rows = generate_records(sample_profile(contract), 1000, seed=seed, drift=Drift.parse(drift))
    frame = pd.DataFrame(rows)
    predicted = joblib.load(bundle / "model.joblib").predict(model_inputs(frame, spec))
    return float((predicted.astype(str) == frame[spec["label"]].astype(str)).mean())


def summary(outcome: LocalEvaluation) -> list[str]:
    """The run's outcome in a few lines."""
    record = outcome.record
    lines = [f"judged {record['model_version']} on {record['rows']} new rows: {record['decision']}"]
    if not outcome.retraining:  # with a retraining, the reason was said before it ran
        lines.append(f"why: {record['reason']}")
    if record.get("value") is not None:
        drift = ", ".join(f"{k} {v:.2f}" for k, v in sorted(outcome.drift.items()))
        lines.append(f"drift (PSI / Jensen-Shannon): {drift}")
    if outcome.report:
        lines.append(f"report: {outcome.report}")
        lines.append(f"every run so far: {outcome.report.parent.parent / 'index.html'}")
    if outcome.retraining:
        run = outcome.retraining
        lines.append(
            f"retraining: test accuracy {run.evaluation['model']['accuracy']:.3f}; "
            f"gate {run.decision}; staging serves {run.serving or 'nothing'}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    return command_line(
        argv, prog="python -m local.run_evaluation", doc=__doc__,
        title="evaluation pipeline", run=run, summary=summary,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
