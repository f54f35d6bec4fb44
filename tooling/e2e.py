"""`make e2e PROJECT=…`: a throwaway stack on a real project, the lifecycle on it, nothing left.

    python -m tooling.e2e --project my-sandbox [--region europe-west4]   # the real run
    python -m tooling.e2e --local                                         # the rehearsal
    python -m tooling.e2e --sweep --project my-sandbox [--older-than-hours 6]

The stack `e2e-<id>` is written from Pulumi.staging.yaml with a cheap profile (no Workbench, the
smallest serving machine, schedules paused, buckets force-destroyed, no retention, no CI identity,
no grants to the example groups), then the steps run in order: `pulumi up`, publish the pipeline
image, upload the sample and a broken file and wait for the function's outcome, one training run,
the acceptance suite on the staging endpoint, one evaluation run. `pulumi destroy` and
`pulumi stack rm` follow ALWAYS, whichever step failed. Each step is timed into a JUnit XML file
and an HTML page (build/e2e/), with the run's cost prorated from the offline plan's estimate.

Every external action goes through one seam, `Cloud` (tooling/e2e_cloud.py): `GcpCloud` calls
pulumi, Cloud Storage, BigQuery and Vertex AI; `LocalCloud` runs the same steps on the local
stand-ins (`make e2e LOCAL=1`); the tests replace it to check the order, the cleanup and the report.
"""

from __future__ import annotations

import argparse
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stacks.config import PROJECT_ROOT

E2E_LABEL = "e2e"
"""Every resource of an e2e stack carries `e2e: <run id>` (and `e2e-created: <epoch s>`): the
sweeper finds leftovers by it."""
CREATED_LABEL = "e2e-created"
OUT_DIR = PROJECT_ROOT / "build" / "e2e"

# The steps' expected minutes on a fresh sandbox project (docs/e2e.md says where each comes from):
# the time limit of each wait, and the basis of the expected cost.
EXPECTED_MINUTES = {
    "up": 25,  # APIs, the function's build, the endpoint (about 10 min by itself)
    "publish-image": 10,  # Cloud Build of the pipeline image; 0 when the tag exists
    "ingest": 5,  # function cold start and a BigQuery load job per file
    "train": 35,  # 10 tasks; the deploy to the endpoint takes 10-15 min of it
    "accept": 3,
    "evaluate": 20,  # batch prediction starts its own machines
    "lifecycle-page": 1,  # one object read
    "destroy": 15,  # undeploying and deleting the endpoint is the long part
    "stack-rm": 1,
}


class Cloud(Protocol):
    """Every action of an e2e run outside this process: the one seam the tests replace."""

    def create_stack(self, stack: str, stack_file: Path) -> None: ...
    def up(self, stack: str) -> dict[str, Any]: ...
    def publish_image(self, image: str) -> str: ...
    def upload(self, bucket: str, name: str, path: Path) -> None: ...
    def table_rows(self, outputs: dict[str, Any]) -> int: ...
    def object_names(self, bucket: str) -> list[str]: ...
    def train(self, stack: str, outputs: dict[str, Any]) -> str: ...
    def accept(self, outputs: dict[str, Any]) -> str: ...
    def evaluate(self, outputs: dict[str, Any]) -> str: ...
    def lifecycle_page(self, outputs: dict[str, Any]) -> str: ...
    def destroy(self, stack: str) -> None: ...
    def remove_stack(self, stack: str) -> None: ...


class StepFailed(Exception):
    """A step did not reach its outcome; the message says what was seen."""


# --- known failures: a message a person can act on ---------------------------------------------

KNOWN_FAILURES: list[tuple[str, re.Pattern[str], str]] = [
    (
        "API not enabled",
        re.compile(
            r"SERVICE_DISABLED|has not been used in project|API .* is not enabled|"
            r"accessNotConfigured",
            re.I,
        ),
        "an API the stack needs is off in the sandbox project: `pulumi up` enables the stack's "
        "own, but the project needs serviceusage, cloudresourcemanager and iam on first "
        "(make doctor STACK=… lists them); enable it, wait a minute, and run make e2e again",
    ),
    (
        "quota",
        re.compile(r"QUOTA_EXCEEDED|RESOURCE_EXHAUSTED|Quota exceeded|quota metric", re.I),
        "a quota of the sandbox project is exhausted (often Vertex AI custom-training or "
        "prediction CPUs in the region): ask for more in the console's Quotas page, or run with "
        "REGION= another region, or let the running e2e stacks finish (make e2e-sweep)",
    ),
    (
        "IAM propagation",
        re.compile(
            r"PERMISSION_DENIED|IAM_PERMISSION_DENIED|does not have .*permission|"
            r"Permission.*denied|iam\.serviceAccounts\.actAs",
            re.I,
        ),
        "a grant the stack just made has not reached every service yet (minutes on a fresh "
        "project): the run retried once after waiting; if it still fails, check the e2e "
        "identity's roles (docs/e2e.md) — the retry of docs/deploy.md, `pulumi up` again, "
        "resumes where it stopped",
    ),
]


def explain(error: BaseException) -> tuple[str, str] | None:
    """(kind, what to do) for a failure GCP is known to give, or None."""
    text = str(error)
    for kind, pattern, advice in KNOWN_FAILURES:
        if pattern.search(text):
            return kind, advice
    return None


def is_propagation(error: BaseException) -> bool:
    found = explain(error)
    return found is not None and found[0] == "IAM propagation"


# --- the ephemeral stack ------------------------------------------------------------------------


def new_run_id(now: float | None = None) -> str:
    """`<yymmddhhmm>-<4 hex>`: sortable by age, unique enough, a valid label value and name."""
    stamp = time.strftime("%y%m%d%H%M", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


# The cheap profile: path -> value, applied over the staging stack file.
CHEAP_PROFILE: dict[str, Any] = {
    "platform.workbench.enabled": False,
    "platform.serving.machine_type": "n1-standard-2",  # the smallest Vertex serving machine
    "platform.serving.min_replicas": 1,
    "platform.serving.max_replicas": 1,
    "platform.serving.request_logging": False,
    "platform.serving.model_readers_from": None,  # no prod stack beside an e2e stack
    "platform.serving.model_readers": [],
    "platform.pipelines.training.schedule.paused": True,
    "platform.pipelines.evaluation.schedule.paused": True,
    "platform.data_lake.force_destroy": True,
    "platform.warehouse.deletion_protection": False,
    "platform.ingestion.min_instances": 0,
    "platform.ingestion.max_instances": 2,
    "platform.ci": {},  # no CI identity: the e2e identity deploys it
    "platform.cost.budget": {},
}
NO_RETENTION_KEYS = ("models_retention_days",)
"""A retention rule would keep the bucket (and the stack) until its objects age: e2e sets none."""


def e2e_stack_file(project: str, region: str, run_id: str, created: int, template: Path) -> str:
    """The stack file of one e2e run: the staging file's settings with the cheap profile."""
    from tooling import stack_files

    document = stack_files.load(template)
    document.pop("secretsprovider", None)  # `pulumi stack init` writes the run's own
    document.pop("encryptedkey", None)
    stack_files.put(document, "project", project)
    stack_files.put(document, "region", region)
    for path, value in CHEAP_PROFILE.items():
        stack_files.put(document, path, value)
    for key in NO_RETENTION_KEYS:
        lake = stack_files.get(document, "platform.data_lake") or {}
        lake.pop(key, None)
    labels = dict(stack_files.get(document, "platform.labels") or {})
    labels.update({E2E_LABEL: run_id, CREATED_LABEL: str(created)})
    stack_files.put(document, "platform.labels", labels)
    access = stack_files.get(document, "platform.access") or {}
    for persona in list(access):
        access[persona] = []  # the template's example groups do not exist in a sandbox
    return stack_files.dump(document)


# --- steps and the run ------------------------------------------------------------------------


@dataclass
class StepResult:
    name: str
    seconds: float
    outcome: str = ""
    error: str | None = None
    advice: str | None = None
    skipped: bool = False

    @property
    def passed(self) -> bool:
        return self.error is None and not self.skipped


@dataclass
class RunContext:
    stack: str
    stack_file: Path
    cloud: Cloud
    sample: Path
    broken: Path
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    poll_seconds: float = 15
    propagation_wait_seconds: float = 180
    outputs: dict[str, Any] = field(default_factory=dict)


def wait_for(ctx: RunContext, what: str, check: Callable[[], Any], minutes: float) -> Any:
    """Poll `check` until it returns something truthy, or fail after `minutes`."""
    deadline = ctx.clock() + minutes * 60
    while True:
        found = check()
        if found:
            return found
        if ctx.clock() >= deadline:
            raise StepFailed(f"{what}: not seen after {minutes:g} min")
        ctx.sleep(ctx.poll_seconds)


def step_up(ctx: RunContext) -> str:
    ctx.cloud.create_stack(ctx.stack, ctx.stack_file)
    try:
        ctx.outputs = ctx.cloud.up(ctx.stack)
    except Exception as error:  # classified, then re-raised
        if not is_propagation(error):
            raise
        # A fresh project's grants take minutes to reach every service (docs/deploy.md):
        # `pulumi up` again resumes where it stopped.
        ctx.sleep(ctx.propagation_wait_seconds)
        ctx.outputs = ctx.cloud.up(ctx.stack)
    return f"stack {ctx.stack} up: endpoint {ctx.outputs.get('endpoint')}"


def step_publish_image(ctx: RunContext) -> str:
    return ctx.cloud.publish_image(ctx.outputs["pipeline_image"])


def step_ingest(ctx: RunContext) -> str:
    landing, quarantine = ctx.outputs["landing_bucket"], ctx.outputs["quarantine_bucket"]
    before = ctx.cloud.table_rows(ctx.outputs)
    expected = sum(1 for _ in ctx.sample.open(encoding="utf-8")) - 1
    ctx.cloud.upload(landing, f"incoming/{ctx.sample.name}", ctx.sample)
    ctx.cloud.upload(landing, f"incoming/{ctx.broken.name}", ctx.broken)
    minutes = EXPECTED_MINUTES["ingest"]
    rows = wait_for(
        ctx, f"{expected} rows of {ctx.sample.name} in {ctx.outputs['curated_table']}",
        lambda: (n := ctx.cloud.table_rows(ctx.outputs) - before) >= expected and n, minutes,
    )  # fmt: skip
    report = wait_for(
        ctx, f"{ctx.broken.name} and its report in gs://{quarantine}",
        lambda: _quarantined(ctx.cloud.object_names(quarantine), ctx.broken.name), minutes,
    )  # fmt: skip
    return f"{rows} rows loaded; {ctx.broken.name} quarantined with gs://{quarantine}/{report}"


def _quarantined(names: list[str], file_name: str) -> str | None:
    """The report's object name once both the file and its report are in quarantine (named
    `<landing name>@<generation>`, the report beside it with `.report.json`)."""
    ours = [n for n in names if n.rsplit("/", 1)[-1].split("@")[0] == file_name]
    reports = [n for n in ours if n.endswith(".report.json")]
    files = [n for n in ours if not n.endswith(".report.json")]
    return reports[0] if reports and files else None


def step_train(ctx: RunContext) -> str:
    return ctx.cloud.train(ctx.stack, ctx.outputs)


def step_accept(ctx: RunContext) -> str:
    return ctx.cloud.accept(ctx.outputs)


def step_evaluate(ctx: RunContext) -> str:
    return ctx.cloud.evaluate(ctx.outputs)


def step_lifecycle_page(ctx: RunContext) -> str:
    """The page the runs published where the dashboard links it shows them: the training run
    (linking its report) and the evaluation."""
    from pipeline_src.lifecycle_page import EVALUATIONS, TRAININGS, rows_shown

    page = ctx.cloud.lifecycle_page(ctx.outputs)
    shown = rows_shown(page)
    if shown.get(TRAININGS, 0) < 1 or shown.get(EVALUATIONS, 0) < 1 or ">report</a>" not in page:
        raise StepFailed(f"the lifecycle page shows {shown}: not the training run, its report "
                         "and the evaluation")  # fmt: skip
    return ", ".join(f"{heading.lower()}: {rows}" for heading, rows in shown.items())


STEPS: list[tuple[str, Callable[[RunContext], str]]] = [
    ("up", step_up),
    ("publish-image", step_publish_image),
    ("ingest", step_ingest),
    ("train", step_train),
    ("accept", step_accept),
    ("evaluate", step_evaluate),
    ("lifecycle-page", step_lifecycle_page),
]
CLEANUP: list[tuple[str, Callable[[RunContext], str]]] = [
    ("destroy", lambda ctx: ctx.cloud.destroy(ctx.stack) or f"stack {ctx.stack} destroyed"),
    ("stack-rm", lambda ctx: ctx.cloud.remove_stack(ctx.stack) or f"stack {ctx.stack} removed"),
]


def _timed(name: str, step: Callable[[RunContext], str], ctx: RunContext) -> StepResult:
    started = ctx.clock()
    try:
        outcome = step(ctx)
    except Exception as error:  # every failure is reported, then cleaned up
        known = explain(error)
        message = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
        return StepResult(
            name, ctx.clock() - started, error=f"{type(error).__name__}: {message}",
            advice=f"{known[0]}: {known[1]}" if known else None,
        )  # fmt: skip
    return StepResult(name, ctx.clock() - started, outcome=outcome)


def run(ctx: RunContext, say: Callable[[str], None] = print) -> list[StepResult]:
    """The steps in order until one fails, then the cleanup, always (even on Ctrl-C)."""
    results: list[StepResult] = []
    failed = False
    try:
        for name, step in STEPS:
            if failed:
                results.append(StepResult(name, 0.0, skipped=True))
                continue
            say(f"[{name}] …")
            result = _timed(name, step, ctx)
            results.append(result)
            say(_line(result))
            failed = not result.passed
    finally:
        for name, step in CLEANUP:
            say(f"[{name}] …")
            result = _timed(name, step, ctx)
            results.append(result)
            say(_line(result))
        ctx.stack_file.unlink(missing_ok=True)
    return results


def _line(result: StepResult) -> str:
    if result.skipped:
        return f"  {result.name}: skipped (an earlier step failed)"
    if result.passed:
        return f"  {result.name}: {result.outcome} ({result.seconds:.0f} s)"
    advice = f"\n    {result.advice}" if result.advice else ""
    return f"  {result.name}: FAILED after {result.seconds:.0f} s: {result.error}{advice}"


# --- cost -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunCost:
    standing_usd_per_hour: float
    pipeline_runs_usd: float
    """One training and one evaluation run (the steps run each once)."""

    def of(self, hours: float) -> float:
        return self.standing_usd_per_hour * hours + self.pipeline_runs_usd


def run_cost(stack: str, config: dict[str, Any]) -> RunCost:
    """The e2e stack's cost per hour standing, and its two pipeline runs, from the offline plan's
    estimate (tooling/cost/__init__.py): what a run costs is these prorated to its duration."""
    from stacks.config import parse_stack_config
    from tooling import cost
    from tooling.plan.cli import to_json
    from tooling.plan.offline import run_program

    plan = to_json(run_program(stack, config=config))
    settings = parse_stack_config(config, f"Pulumi.{stack}.yaml").platform.cost
    estimate = cost.estimate(plan, settings)
    hours = cost.load_prices().hours_per_month
    runs = cost.pipeline_run_usd(plan, settings)
    return RunCost(estimate.total(cost.STANDING) / hours, sum(runs.values()))


def expected_hours() -> float:
    return sum(EXPECTED_MINUTES.values()) / 60


# --- the command ------------------------------------------------------------------------------


def write_inputs(contract_path: Path, folder: Path) -> tuple[Path, Path]:
    """The contract's sample as an analyst uploads it, and a broken copy: its first column
    renamed, a slip every contract rejects (the file goes to quarantine with its report)."""
    from contracts.model import load_contract
    from contracts.sample import sample_file_name, write_sample_file

    contract = load_contract(contract_path)
    folder.mkdir(parents=True, exist_ok=True)
    sample = folder / sample_file_name(contract)
    write_sample_file(contract, sample)
    header, _, body = sample.read_text(encoding="utf-8").partition("\n")
    first, _, rest = header.partition(",")
    broken = folder / f"broken-{sample.name}"
    broken.write_text(f"{first}_typo,{rest}\n{body}", encoding="utf-8")
    return sample, broken


def prepare(args: argparse.Namespace, run_id: str) -> tuple[str, Path, dict]:
    """Write the e2e stack file (beside the committed ones, where pulumi reads it; the
    rehearsal's in its output folder, out of other commands' sight); its name and config."""
    from stacks.config import stack_config_values

    stack = f"e2e-{run_id}"
    project = args.project or "local-project"
    region = args.region or "europe-west4"
    template = args.root / "Pulumi.staging.yaml"
    text = e2e_stack_file(project, region, run_id, int(time.time()), template)
    folder = args.out_dir if args.local else args.root
    folder.mkdir(parents=True, exist_ok=True)
    stack_file = folder / f"Pulumi.{stack}.yaml"
    stack_file.write_text(text, encoding="utf-8")
    return stack, stack_file, stack_config_values(stack, folder)


def _interrupt(signum: int, frame: Any) -> None:
    """A cancelled CI job gets SIGTERM: unwind as Ctrl-C does, so the cleanup still runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None, cloud: Cloud | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make e2e", description=__doc__.split("\n")[0])
    parser.add_argument("--project", help="the sandbox GCP project (billing on)")
    parser.add_argument("--region", default=None, help="default: europe-west4")
    parser.add_argument("--local", action="store_true", help="the same steps on the stand-ins")
    parser.add_argument(
        "--secrets-provider", default="passphrase",
        help="of the e2e stack (`pulumi stack init`); passphrase reads PULUMI_CONFIG_PASSPHRASE",
    )  # fmt: skip
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="junit.xml, index.html")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.local and not args.project:
        parser.error("--project is required (make e2e PROJECT=…), or --local (make e2e LOCAL=1)")
    from tooling import e2e_report
    from tooling.e2e_cloud import GcpCloud, LocalCloud

    signal.signal(signal.SIGTERM, _interrupt)
    run_id = new_run_id()
    stack, stack_file, config = prepare(args, run_id)
    try:
        cost = run_cost(stack, config)
    except Exception as error:  # a report without the cost, never no run
        print(f"(no cost estimate: {error})", file=sys.stderr)
        cost = None
    if cloud is None:
        local_root = args.out_dir / "local"
        cloud = LocalCloud(local_root) if args.local else GcpCloud(args.secrets_provider)
    sample, broken = write_inputs(_contract_path(config), args.out_dir / "inputs")
    where = "the local stand-ins" if args.local else f"project {args.project}"
    print(f"e2e run {stack} on {where}: {len(STEPS)} steps, then destroy and stack rm")
    if cost and not args.local:
        print(f"  expected: about {expected_hours() * 60:.0f} min, "
              f"${cost.of(expected_hours()):.2f} (docs/e2e.md)")  # fmt: skip
    ctx = RunContext(stack, stack_file, cloud, sample, broken)
    results = run(ctx)
    page = e2e_report.write(args.out_dir, stack, results, None if args.local else cost)
    total = sum(r.seconds for r in results)
    verdict = "passed" if all(r.passed for r in results) else "FAILED"
    cost_text = f", about ${cost.of(total / 3600):.2f}" if cost and not args.local else ""
    print(f"e2e {stack} {verdict} in {total / 60:.1f} min{cost_text}; report: {page}")
    return 0 if verdict == "passed" else 1


def _contract_path(config: dict[str, Any]) -> Path:
    platform = config.get("tabular-mlops:platform") or {}
    return PROJECT_ROOT / platform.get("warehouse", {}).get("contract", "contracts/penguins.yaml")


if __name__ == "__main__":
    sys.exit(main())
