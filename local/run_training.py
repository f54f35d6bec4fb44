"""`make pipeline`: the training pipeline, run locally by kfp.local on the local warehouse.

    python -m local.run_training [--root DIR] [--param NAME=VALUE ...]

The same components run as on Vertex AI, each in a subprocess of this environment (which holds
the pipeline image's packages at the same pins). The run names the local backend once, for all
its tasks (`run_environment`; pipeline_src/ports.py): the DuckDB warehouse, the file-based
registry and the local staging endpoint stand in for BigQuery and Vertex AI. When the
warehouse has no curated table yet, the palmerpenguins sample is ingested first (uploaded as a
CSV to the emulated landing bucket and loaded by the ingestion function).

Progress is one line per task; the tasks' full logs go to `<root>/logs/`. The run's last step
keeps its report, headed by the gate's decision, as `<root>/reports/<run>.html` and refreshes the
lifecycle page `<root>/index.html` (pipeline_src/components/publish.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.adapters import backend_variables
from local.console import fit
from local.environment import (
    DEFAULT_ROOT,
    LocalEnvironment,
    add_contract_argument,
    contract_path_of,
)
from local.lifecycle import lifecycle_parameters
from pipeline_src.compile import code_version, parse_params, typed_arguments
from pipeline_src.image import PROJECT_ROOT
from stacks.config import TrainingConfig

STAGING_ENDPOINT = "staging"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '([^']+)'")
_TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_COPY = re.compile(r"-\d+$")
"""kfp names a component's second task in a pipeline `<name>-2`: each branch has its own."""
_EXCEPTION = re.compile(r"^\s*[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*")


class PipelineFailed(RuntimeError):
    """A task failed; the message is the task's own error, the log has everything."""


@dataclass(frozen=True)
class LocalRun:
    """What one local run did."""

    decision: str
    reason: str
    evaluation: dict[str, Any]
    """The evaluate task's evaluation.json: test metrics beside the baseline's."""
    report: Path
    """The stakeholder report (HTML), headed by the decision, where the run kept it."""
    seconds: float
    log: Path
    serving: str | None
    """The registry version the staging endpoint serves after the run."""
    candidate: str | None = None
    """The version registered for promotion (`deploy_by="promotion"`), if the gate chose one."""


def local_base_parameters(env: LocalEnvironment) -> dict[str, Any]:
    """What the pipelines take to run on the local stand-ins: the data and the model."""
    contract = env.contract
    return {
        "contract": contract.model_dump(mode="json", exclude_none=True),
        "project": env.project,
        "location": "local",
        "bq_location": "",
        "dataset": env.dataset,
        "table": contract.name,
        "model_id": env.model_id,
    }


def local_parameters(env: LocalEnvironment, **overrides: Any) -> dict[str, Any]:
    """The pipeline's arguments for a local run; `overrides` replace any of them."""
    contract = env.contract
    training = TrainingConfig()  # the platform's defaults for the gate
    parameters = {
        **local_base_parameters(env),
        "endpoint": STAGING_ENDPOINT,
        "model_display_name": env.naming.display_name(f"{contract.name} model"),
        "models_uri": str(env.registry_dir.resolve()),
        "serving_image": "local",
        **lifecycle_parameters(env),
        "git_commit": code_version(),
        "min_accuracy": training.min_accuracy,
        "min_improvement": training.min_improvement,
    }
    return typed_arguments({**parameters, **overrides})


def ensure_data(env: LocalEnvironment, say: Callable[[str], None]) -> None:
    """Ingest the contract's shipped sample when the warehouse has no curated table yet."""
    from contracts.sample import has_sample
    from local.warehouse import connect, ingest_sample, table_exists

    if env.warehouse_path.is_file():
        with connect(env.warehouse_path, read_only=True) as con:
            if table_exists(con, env.dataset, env.contract.name):
                return
    if not has_sample(env.contract):
        raise ValueError(
            f"the local warehouse has no {env.contract.name} table and the contract ships no "
            f"sample: ingest a file first (make ingest FILE=your.csv CONTRACT={env.contract_path})"
        )
    rows = ingest_sample(env)
    say(f"the local warehouse had no {env.contract.name} table: ingested the sample ({rows} rows)")


def execute(
    env: LocalEnvironment,
    pipeline: Callable[..., Any],
    parameters: dict[str, Any],
    *,
    log_name: str,
    say: Callable[[str], None],
) -> tuple[Any, Path]:
    """Run a pipeline with kfp.local on the local stand-ins: (kfp's result, the run's log).

    One progress line per task goes to `say`, everything else to `<root>/logs/<log_name>-….log`;
    a failed task raises PipelineFailed with the task's own error.
    """
    from kfp import local

    log_dir = env.root / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{log_name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(env.pipeline_root),
        raise_on_error=True,
    )
    with (
        log_path.open("w", encoding="utf-8") as log,
        run_environment(env),
        warnings.catch_warnings(),
    ):
        # Display names are for the Vertex AI console; kfp.local says it ignores them.
        warnings.filterwarnings("ignore", message=".*no effect in the current local runner")
        progress = _Progress(log, say)
        try:
            with contextlib.redirect_stdout(progress):
                return pipeline(**parameters), log_path
        except RuntimeError as error:
            raise PipelineFailed(progress.failure(str(error), log_path)) from None


def run(env: LocalEnvironment, *, say: Callable[[str], None] = print, **overrides: Any) -> LocalRun:
    """Run the training pipeline on the local stand-ins; raise PipelineFailed if a task fails."""
    from local.registry import LocalEndpoint, LocalModelRegistry
    from pipeline_src.components.common import read_json
    from pipeline_src.training import training_pipeline

    env.ensure()
    parameters = local_parameters(env, **overrides)
    ensure_data(env, say)
    started = time.perf_counter()
    result, log_path = execute(env, training_pipeline, parameters, log_name="training", say=say)
    evaluation = read_json(result.outputs["evaluation"].path)
    serving = LocalEndpoint(env.endpoints_dir, STAGING_ENDPOINT).serving()
    candidate = None
    if result.outputs["decision"] == "register":  # registered as the model's default version
        candidate = LocalModelRegistry(env.registry_dir).get(parameters["model_id"]).resource_name
    return LocalRun(
        decision=result.outputs["decision"],
        reason=result.outputs["reason"],
        evaluation=evaluation,
        report=Path(result.outputs["report"]),
        seconds=time.perf_counter() - started,
        log=log_path,
        serving=serving.resource_name if serving else None,
        candidate=candidate,
    )


@contextlib.contextmanager
def run_environment(env: LocalEnvironment) -> Iterator[None]:
    """The environment kfp.local's task processes inherit: this project importable (the image
    carries pipeline_src; here the checkout does, with local/ and contracts/ for the adapters),
    and the local backend named for the run (the one place a local run chooses it)."""
    previous = {name: os.environ.get(name) for name in ("PYTHONPATH", *backend_variables(env.root))}
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), previous["PYTHONPATH"]]))
    os.environ.update({"PYTHONPATH": path, **backend_variables(env.root)})
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Progress:
    """A stdout stand-in: everything goes to the log; task starts and ends become progress lines."""

    def __init__(self, log, say: Callable[[str], None]):
        self.log, self._say = log, say
        self.console = sys.stdout  # the real one: progress must not land in the log
        self.started: dict[str, float] = {}
        self.lines: dict[str, list[str]] = {}
        self.current = ""
        self.buffer = ""

    def write(self, text: str) -> int:
        self.log.write(text)
        self.buffer += text
        *complete, self.buffer = self.buffer.split("\n")
        for line in complete:
            self._line(_ANSI.sub("", line))
        return len(text)

    def say(self, message: str) -> None:
        with contextlib.redirect_stdout(self.console):
            self._say(message)

    def flush(self) -> None:
        self.log.flush()

    def _line(self, line: str) -> None:
        if start := _TASK_START.search(line):
            self.current = start.group(1)
            self.started[self.current] = time.perf_counter()
            self.lines[self.current] = []
        elif end := _TASK_END.search(line):
            task, status = end.groups()
            seconds = time.perf_counter() - self.started.get(task, time.perf_counter())
            mark = "done" if status == "SUCCESS" else status
            self.say(f"{_COPY.sub('', task):<16} {mark} in {seconds:.1f} s")
        elif self.current:
            self.lines[self.current].append(line)

    def failure(self, message: str, log_path: Path) -> str:
        """The failed task's own error (its last exception and what follows it)."""
        task = self.current
        lines = self.lines.get(task, [])
        starts = [i for i, line in enumerate(lines) if _EXCEPTION.match(line)]
        detail = (
            [line.strip() for line in lines[starts[-1] :] if line.strip().strip("-")]
            if starts
            else []
        )
        return "\n".join(
            [f"task {task} failed: " + (detail[0] if detail else message)]
            + [f"  {line}" for line in detail[1:]]
            + [f"full log: {log_path}"]
        )


def summary(outcome: LocalRun) -> list[str]:
    """The run's outcome in a few lines: metrics against the baseline, the decision, serving."""
    model, baseline = outcome.evaluation["model"], outcome.evaluation["baseline"]
    rows = outcome.evaluation["rows"]
    auc = model.get("roc_auc_ovr")
    return [
        f"data: snapshot {outcome.evaluation.get('snapshot_id', '?')}, "
        f"{rows['train']} training rows, {rows['test']} test rows",
        f"test accuracy {model['accuracy']:.3f} vs baseline {baseline['accuracy']:.3f}; "
        f"log loss {model['log_loss']:.3f} vs {baseline['log_loss']:.3f}"
        + (f"; ROC AUC {auc:.3f}" if auc is not None else ""),
        f"gate: {outcome.decision} — {outcome.reason}",
        f"staging endpoint serves: {outcome.serving or 'nothing'}",
        *(
            [f"awaiting promotion: make promote MODEL={outcome.candidate}"]
            if outcome.candidate
            else []
        ),
        f"report: {outcome.report}",
        f"every run so far: {outcome.report.parent.parent / 'index.html'}",
    ]


def command_line(
    argv: list[str] | None,
    *,
    prog: str,
    doc: str,
    title: str,
    run: Callable[..., Any],
    summary: Callable[[Any], list[str]],
) -> int:
    """A local runner's command line: `--root DIR`, `--param NAME=VALUE`, progress, summary."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="local state folder")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter"
    )
    add_contract_argument(parser)
    args = parser.parse_args(argv)
    env = LocalEnvironment(root=args.root, contract_path=contract_path_of(args))
    print(f"{title}, locally (kfp.local) — state in {args.root}", flush=True)

    def say(message: str) -> None:
        print(fit(message, "  "), flush=True)

    try:
        outcome = run(env, say=say, **parse_params(args.param))
    except (PipelineFailed, ValueError) as error:
        print(f"\n{error}", file=sys.stderr)
        return 1
    print(f"\nfinished in {outcome.seconds:.1f} s")
    for line in summary(outcome):
        say(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    return command_line(
        argv, prog="python -m local.run_training", doc=__doc__, title="training pipeline",
        run=run, summary=summary,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
