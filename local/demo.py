"""`make demo`: the lifecycle locally, stage by stage, with progress and a closing report.

    python -m local.demo [--root DIR] [--fast]

Each stage prints what it does as it happens and returns a one-line summary for the report. Stages
run in lifecycle order; `--fast` keeps every stage but uses small data (what the tests run).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from local.console import fit
from local.environment import (
    DEFAULT_ROOT,
    LocalEnvironment,
    add_contract_argument,
    contract_path_of,
)


class DemoStopped(Exception):
    """A stage cannot go on for this dataset; the message says why and what to run instead."""


@dataclass(frozen=True)
class DemoContext:
    env: LocalEnvironment
    fast: bool
    training: dict = field(default_factory=dict)
    """Training pipeline arguments of the train stage (`--param`, e.g. a dataset's own bar)."""


def say(message: str) -> None:
    print(fit(message, "  "), flush=True)


def stage_plan(ctx: DemoContext) -> str:
    """The offline plan of both stacks: what `pulumi up` would create in each environment."""
    from tooling.plan.offline import run_program

    counts = []
    for stack in ("staging", "prod"):
        record = run_program(stack)
        resources = sum(1 for r in record.resources if r.custom)
        components = sum(1 for r in record.resources if r.is_component)
        # One line per stack: the per-component table is `make plan`'s, not the demo's.
        detail = f"make plan STACK={stack}"
        say(f"stack {stack}: {resources} resources in {components} components ({detail})")
        counts.append(f"{stack} {resources}")
    return "resources per stack: " + ", ".join(counts)


def stage_ingest(ctx: DemoContext) -> str:
    """An analyst uploads the sample and a broken file; the function loads one, quarantines one."""
    import tempfile

    from local.ingestion import LocalLanding
    from local.warehouse import sample_object, write_sample

    with tempfile.TemporaryDirectory() as scratch, LocalLanding(ctx.env) as landing:
        name = sample_object(ctx.env)
        sample = Path(scratch) / Path(name).name
        rows = write_sample(ctx.env, sample)
        say(f"upload {name} ({rows} rows) to gs://{ctx.env.landing_bucket}")
        loaded = landing.ingest(landing.upload_file(name, sample))
        say(f"  {loaded['status']}: {loaded['rows_loaded']} rows into "
            f"{ctx.env.dataset}.{ctx.env.contract.name}")  # fmt: skip
        if ctx.env.contract.name != "penguins":
            say("  (the broken-upload example is the penguins sample's: skipped)")
            return f"{loaded['rows_loaded']} rows loaded"
        # A typical slip: a spreadsheet export with a species the contract does not know.
        broken = sample.read_text().replace(",Adelie,", ",Emperor,", 2)
        say("upload incoming/field-notes.csv (a species the contract does not know)")
        rejected = landing.ingest(landing.upload("incoming/field-notes.csv", broken))
        say(f"  {rejected['status']}: {rejected['reason']}")
        copy = ctx.env.quarantine_dir / rejected["quarantine_uri"].removeprefix("gs://")
        say(f"  quarantined with its report: {rejected['quarantine_uri']}(.report.json)")
        say(f"  (kept on disk: {copy}.report.json)")
    return (
        f"{loaded['rows_loaded']} rows loaded; 1 file quarantined "
        f"({rejected['reason'].split(' (e.g.')[0]})"
    )


def stage_train(ctx: DemoContext) -> str:
    """Training pipeline on kfp.local: train, report, gate, register, deploy to local staging."""
    from local.run_training import run, summary

    outcome = run(ctx.env, say=say, **ctx.training)
    for line in summary(outcome):
        say(line)
    if outcome.serving is None:
        raise DemoStopped(
            f"the gate deployed nothing ({outcome.reason}), and the later stages need a model on "
            "staging; for a dataset with a bar of its own: make demo "
            f"CONTRACT={ctx.env.contract_path} PARAMS=min_accuracy=0.85"
        )
    model, baseline = outcome.evaluation["model"], outcome.evaluation["baseline"]
    return (
        f"test accuracy {model['accuracy']:.3f} vs baseline {baseline['accuracy']:.3f}; "
        f"{outcome.decision}; staging serves {outcome.serving or 'nothing'}"
    )


DEMO_LOAD_SECONDS = 2
"""The demo's load test is short (the demo's budget); the stack's SLO holds all the same, and
either the acceptance suite or the load test failing stops the demo before the promotion."""


def stage_accept(ctx: DemoContext) -> str:
    """QA: serve staging (a real server process), run the acceptance suite, then a load test."""
    import subprocess

    from local.registry import LocalEndpoint
    from local.serving import serve_endpoint
    from stacks.config import PROJECT_ROOT

    serving = LocalEndpoint(ctx.env.endpoints_dir, "staging").serving()
    if serving is None:
        raise RuntimeError("the staging endpoint serves nothing: the train stage deploys to it")
    with serve_endpoint(ctx.env, "staging") as server:
        say(f"staging endpoint serves {serving.resource_name} at {server.url} (make serve)")
        say("acceptance suite: contract, golden examples, invalid inputs, p95 latency, version")
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/acceptance", "-q", "-s",
             "-p", "no:cacheprovider", "--endpoint", server.url,
             "--expect-model", serving.resource_name,
             "--contract", str(ctx.env.contract_path)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = result.stdout.strip().splitlines()
        for line in lines:
            if "latency over" in line:
                say("  " + line.strip(". "))
        say(f"  {lines[-1] if lines else result.stderr.strip()}")
        if result.returncode != 0:
            raise RuntimeError(
                f"the acceptance suite failed against staging:\n{result.stdout[-3000:]}"
            )
        load = demo_load_test(server.url, ctx)
    return f"staging ({serving.resource_name}) accepted: {lines[-1].strip('= ')}; {load}"


def demo_load_test(url: str, ctx: DemoContext) -> str:
    """A few seconds of locust against staging's SLO (Pulumi.staging.yaml); a breach raises."""
    from loadtest.run import load_test

    if ctx.env.contract.name != "penguins":
        say(f"load test: its requests are the penguins' golden examples; {ctx.env.contract.name}: "
            "skipped")  # fmt: skip
        return "load test skipped (penguins' instances)"
    from stacks.config import PROJECT_ROOT, load_stack_file

    slo = load_stack_file(PROJECT_ROOT / "Pulumi.staging.yaml").platform.serving.load_test
    slo = slo.model_copy(update={"seconds": DEMO_LOAD_SECONDS})
    say(f"load test: locust, {slo.users} users for {DEMO_LOAD_SECONDS} s, staging's SLO")
    result = load_test(url, slo)
    figures = (
        f"p95 {result.p95_ms:.0f} ms, {result.rps:.1f} req/s, "
        f"{result.failures}/{result.requests} failed"
    )
    say(f"  {figures}")
    breaches = result.breaches(slo)
    if breaches:
        raise RuntimeError(f"the load test missed staging's SLO: {'; '.join(breaches)}")
    return f"load test passed ({figures})"


def stage_promote(ctx: DemoContext) -> str:
    """QA promotes: staging's version into the prod config, rolled out (canary, then all)."""
    from local.promotion import promote_locally
    from local.registry import LocalEndpoint
    from local.serving import serve_endpoint
    from pipeline_src.serving.client import endpoint_client, predict
    from stacks.config import load_stack_file
    from tooling.promote import local_stack_file, promote, served_by_local

    # The repository's Pulumi.prod.yaml stays as it is: the demo edits a copy, as QA's PR would,
    # and keeps it from one promotion to the next.
    stack_file = local_stack_file(ctx.env.root)
    model = served_by_local(ctx.env.root, "staging")
    old = promote(stack_file, model, local_copy=True)
    say(f"make promote LOCAL=1: {stack_file.name} platform.serving.model: {old} -> {model}")
    settings = load_stack_file(stack_file).platform.serving
    say(f"pulumi up -s prod, locally: canary {settings.canary_percent}% for "
        f"{settings.canary_minutes:g} min (not waited here), then all traffic")  # fmt: skip
    prod = LocalEndpoint(ctx.env.endpoints_dir, "prod")
    instances = _examples(ctx, 3)

    def during_canary(_seconds: float) -> None:
        # Instead of waiting, watch the split: requests go to both versions by their traffic.
        with serve_endpoint(ctx.env, "prod") as server:
            client = endpoint_client(server.url)
            answered = [predict(client, instances[:1]).served_model for _ in range(50)]
            client.close()
        say("  50 requests during the canary: " + ", ".join(
            f"{name} {answered.count(name)}" for name in sorted(set(answered))))  # fmt: skip

    before = prod.serving()
    if before is None:
        say("prod serves nothing yet: the first version takes all traffic at once")
    result = promote_locally(
        ctx.env, "prod", model, settings.canary_percent, settings.canary_minutes,
        say=lambda step: say("  " + step), sleep=during_canary,
    )  # fmt: skip
    if before is None:
        return f"prod serves {result.model} (before: nothing)"
    return f"prod serves {result.model} (before: {before.resource_name}, now undeployed)"


def stage_serve_prod(ctx: DemoContext) -> str:
    """The prod endpoint answers: a few sample rows predicted by the promoted version."""
    from local.serving import serve_endpoint
    from pipeline_src.serving.client import endpoint_client, predict

    instances = _examples(ctx, 3)
    with serve_endpoint(ctx.env, "prod") as server:
        client = endpoint_client(server.url)
        reply = predict(client, instances)
        client.close()
    if reply.status != 200:
        raise RuntimeError(f"the prod endpoint answered {reply.status}: {reply.body}")
    say(f"prod endpoint at {server.url}: POST /predict with {len(instances)} instances")
    for instance, prediction in zip(instances, reply.body["predictions"], strict=True):
        top = prediction["probabilities"][prediction["class"]]
        shown = ", ".join(f"{k} {v}" for k, v in list(instance.items())[:2])
        say(f"  {shown} -> {prediction['class']} ({top:.2f})")
    return f"prod answers with {reply.served_model} in {reply.seconds * 1000:.0f} ms"


def stage_score(ctx: DemoContext) -> str:
    """An analyst's batch: prod's model scores unlabelled rows into the predictions table."""
    from local.run_scoring import run, summary

    outcome = run(ctx.env, say=say, generate=200 if ctx.fast else 1000, seed=31)
    for line in summary(outcome):
        say(line)
    return f"{outcome.scored} rows scored by {outcome.model} into {outcome.table}"


def _examples(ctx: DemoContext, count: int) -> list[dict]:
    """A few sample rows, one per class in turn, as predict instances (raw features)."""
    from contracts.sample import load_sample

    contract = ctx.env.contract
    frame = load_sample(contract)
    rows = frame.groupby(contract.label_column).head(1).head(count)
    features = rows[contract.feature_columns].astype(object)
    return [
        {k: (None if v != v else v) for k, v in row.items()}  # NaN -> null
        for row in features.to_dict(orient="records")
    ]


def stage_evaluate(ctx: DemoContext) -> str:
    """A drifted batch arrives: evaluation sees the drop, retrains; staging gets the new model."""
    from local.batches import ingest_generated
    from local.run_evaluation import holdout_accuracy, run, summary

    drift = "shift=1.5"  # every measurement 1.5 standard deviations larger: a new instrument
    batch = ingest_generated(ctx.env, 400, seed=22, drift=drift)
    say(f"ingested a drifted batch ({drift}): {batch['rows_loaded']} rows, {batch['batch_id']}")
    outcome = run(ctx.env, say=say)
    for line in summary(outcome):
        say(line)
    record = outcome.record
    if outcome.retraining is None:
        return f"{record['decision']}: {record['reason']}"
    # Before/after on a fresh drifted sample neither model has seen.
    before = holdout_accuracy(ctx.env, record["model_version"], drift, seed=23)
    after = holdout_accuracy(ctx.env, outcome.retraining.serving, drift, seed=23)
    say(f"accuracy on unseen drifted data: {record['model_version']} {before:.3f} -> "
        f"{outcome.retraining.serving} {after:.3f}")  # fmt: skip
    return (
        f"{record['decision']} (accuracy {record['value']:.3f} vs {record['baseline_value']:.3f} "
        f"at test time); retrained: {outcome.retraining.decision}, staging serves "
        f"{outcome.retraining.serving}; drifted data {before:.3f} -> {after:.3f}"
    )


def stage_release(ctx: DemoContext) -> str:
    """The retrained model's way to prod: QA accepts it on staging, promotes it with a canary."""
    from local.registry import LocalEndpoint

    staging, prod = (
        LocalEndpoint(ctx.env.endpoints_dir, name).serving() for name in ("staging", "prod")
    )
    if staging is None or (prod is not None and staging.resource_name == prod.resource_name):
        say("staging serves what prod serves: nothing new to release")
        return "nothing new to release"
    accepted = stage_accept(ctx)
    return f"{accepted}; {stage_promote(ctx)}"


STAGES: list[tuple[str, Callable[[DemoContext], str]]] = [
    ("plan", stage_plan),
    ("ingest", stage_ingest),
    ("train", stage_train),
    ("accept", stage_accept),
    ("promote", stage_promote),
    ("serve-prod", stage_serve_prod),
    ("score", stage_score),
    ("evaluate", stage_evaluate),
    ("release", stage_release),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="local state folder")
    parser.add_argument("--fast", action="store_true", help="small data, short output")
    parser.add_argument("--keep", action="store_true", help="keep state from an earlier run")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a training pipeline argument of the train stage (min_accuracy=0.85)",
    )  # fmt: skip
    add_contract_argument(parser)
    args = parser.parse_args(argv)

    if args.root.exists() and not args.keep and any(args.root.iterdir()):
        # Each demo tells the whole story from an empty platform; say so, and how to keep it.
        print(
            fit(
                f"resetting {_shown(args.root)}/ (earlier runs' state): make demo KEEP=1 keeps it",
                "",
            )
        )
        shutil.rmtree(args.root)
    env = LocalEnvironment(root=args.root, contract_path=contract_path_of(args)).ensure()
    from pipeline_src.compile import parse_params

    ctx = DemoContext(env=env, fast=args.fast, training=parse_params(args.param))
    title = (
        f"tabular-mlops local lifecycle — state in {args.root}, contract {env.contract_path.name}"
    )
    print(fit(title, ""))
    report = []
    started = time.perf_counter()
    stopped = None
    for number, (name, stage) in enumerate(STAGES, start=1):
        heading = f"[{number}/{len(STAGES)}] {name}: {(stage.__doc__ or '').strip()}"
        print("\n" + fit(heading, ""), flush=True)
        stage_started = time.perf_counter()
        try:
            summary = stage(ctx)
        except DemoStopped as stop:
            stopped = f"stopped at {name}: {stop}"
            break
        report.append((name, summary, time.perf_counter() - stage_started))
    print("\n=== report")
    for name, summary, seconds in report:
        print(fit(f"{name:<10} {summary}  ({seconds:.1f} s)", "  "))
    elapsed = time.perf_counter() - started
    print(fit(f"{stopped} ({elapsed:.1f} s)" if stopped else f"total {elapsed:.1f} s", "  "))
    print(where_to_look(env))
    return 1 if stopped else 0


def _shown(path: Path) -> str:
    """A path as a person types it: relative to the project when inside it."""
    from stacks.config import PROJECT_ROOT

    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def where_to_look(env: LocalEnvironment) -> str:
    """The closing lines: what the demo left behind and the commands to try next."""
    root = _shown(env.root)
    reports = sorted((env.root / "reports").glob("*.html"))
    lines = [
        "\n=== where to look",
        f"  {root}/index.html{'':<10} every ingestion, training run, evaluation and endpoint",
        *(f"  {_shown(path)}" for path in reports),
        f"  {root}/logs/{'':<16} each pipeline run's full log",
        f"  {root}/quarantine/{'':<10} rejected files and their reports",
        f"  {root}/warehouse.duckdb{'':<5} the warehouse (to query it: README, Local state)",
        "\n=== what next",
        "  make serve ENDPOINT=prod        then: curl localhost:8080/health",
        "  make ingest FILE=your.csv       a file through the data contract into the warehouse",
        "  make evaluate / make pipeline   judge the new batches / train again",
        "  make score ROWS=5000            the served model scores new rows into the warehouse",
        "  make plan STACK=prod            the cloud resources, offline",
        "  docs/deploy.md                  deploy to your own GCP projects",
    ]
    return "\n".join(fit(line, "") if line.strip() else line for line in lines)


if __name__ == "__main__":
    sys.exit(main())
