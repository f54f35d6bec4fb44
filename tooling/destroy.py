"""`make destroy STACK=…`: tear one stack down, in the right order, saying what stays behind.

    python -m tooling.destroy --stack staging             # what it removes and keeps, then destroys
    python -m tooling.destroy --stack prod --dry-run      # only the report

Order (the reverse of the deploy order, docs/bootstrap.md): staging, then prod, then the
bootstrap. Staging's grants name prod's identities and it reads prod's outputs; the bootstrap
holds every stack's state and sets the variables from their outputs. A stack is refused while a
stack that must go before it still has resources. Before `pulumi destroy` runs, the report lists,
from the stack's offline plan: what `pulumi destroy` will stop at (protected data), what it
leaves on purpose, and what Google Cloud keeps after a deletion.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from tooling.plan.offline import StackRecord, run_program

ORDER = ("staging", "prod", "bootstrap")
BOOTSTRAP_DIR = Path(__file__).resolve().parent.parent / "bootstrap"
# What Google Cloud keeps after a resource of these types is deleted (its documentation).
KEPT_BY_GCP = {
    "gcp:serviceaccount/account:Account": "deleted service accounts can be undeleted for 30 "
    "days; grants elsewhere that named them read `deleted:serviceAccount:…` until removed",
    "gcp:iam/workloadIdentityPool:WorkloadIdentityPool": "the workload identity pool is "
    "soft-deleted for 30 days and its id stays taken: a redeploy within 30 days must undelete "
    "it (`gcloud iam workload-identity-pools undelete`)",
    "gcp:projects/iAMCustomRole:IAMCustomRole": "custom roles stay deleted-but-undeletable for 7 "
    "days and their ids reserved for 37: a redeploy meanwhile must undelete them "
    "(`gcloud iam roles undelete`)",
    "gcp:storage/bucket:Bucket": "deleted objects are kept (and billed) for the buckets' "
    "soft-delete period, 7 days by default",
    "gcp:bigquery/dataset:Dataset": "deleted datasets and tables are recoverable for the time "
    "travel window (7 days by default)",
    "gcp:kms/cryptoKey:CryptoKey": "KMS key rings and keys are never deleted; destroying a key "
    "schedules its versions' destruction (30 days)",
    "gcp:vertex/aiEndpoint:AiEndpoint": "models in the Model Registry (registered by the "
    "training pipeline, or copied by a promotion) and pipeline runs are not in the stack: "
    "`gcloud ai models list --region …` to delete them by hand",
}
ALWAYS_KEPT = (
    "the projects themselves, their logs (Cloud Logging's retention, 30 days in _Default) and "
    "their service agents (created by Google with the APIs)",
)

Run = Callable[..., subprocess.CompletedProcess]


def report(record: StackRecord) -> list[str]:
    """What `pulumi destroy` of this plan stops at, leaves, and what GCP keeps afterwards."""
    lines = []
    protected = [r for r in record.resources if r.protect]
    if protected:
        lines.append(
            "pulumi destroy stops at these protected resources (the config protects their "
            "data: data_lake.force_destroy false, warehouse.deletion_protection true; change "
            "those, `pulumi up`, then destroy; the bootstrap's: `pulumi state unprotect`):"
        )
        lines += [f"  - {r.type.split(':')[-1]} {r.name}" for r in protected]
    for bucket in record.of_type("gcp:storage/bucket:Bucket"):
        if bucket.inputs.get("retentionPolicy"):
            period = bucket.inputs["retentionPolicy"].get("retentionPeriod")
            lines.append(
                f"bucket {bucket.name} has a retention policy ({period} s): its objects cannot "
                "be deleted before they are that old, so neither can the bucket"
            )
    retained = [r for r in record.resources if r.retain_on_delete]
    if retained:
        lines.append("left in place on purpose (shared with other workloads of the project):")
        lines += [f"  - {r.type.split(':')[-1]} {r.name}" for r in retained]
    types = {r.type for r in record.resources}
    kept = [text for type_, text in KEPT_BY_GCP.items() if type_ in types]
    services = record.of_type("gcp:projects/service:Service")
    switched_off = [r.inputs["service"] for r in services if r.inputs.get("disableOnDestroy")]
    if services and not switched_off:
        kept.append("APIs stay enabled (disable_on_destroy is off: other workloads may use them)")
    elif switched_off:
        lines.append(f"APIs switched off by the destroy: {', '.join(switched_off)}")
    lines.append("what Google Cloud keeps afterwards:")
    lines += [f"  - {text}" for text in (*kept, *ALWAYS_KEPT)]
    return lines


def order_problem(stack: str, resource_counts: dict[str, int]) -> str | None:
    """Why `stack` may not go yet: a stack that must be destroyed first still has resources."""
    first = [s for s in ORDER[: ORDER.index(stack)] if resource_counts.get(s, 0) > 0]
    if not first:
        return None
    return (
        f"destroy {', then '.join(first)} first (make destroy STACK={first[0]}): "
        f"{stack} must go after {' and '.join(first)}, which still "
        f"{'has' if len(first) == 1 else 'have'} resources"
    )


def resource_counts(run: Run) -> dict[str, int]:
    """Resources per platform stack in the current backend (`pulumi stack ls --json`)."""
    result = run(["pulumi", "stack", "ls", "--json"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pulumi stack ls failed: {result.stderr.strip()}")
    return {s["name"].rsplit("/", 1)[-1]: int(s.get("resourceCount") or 0)
            for s in json.loads(result.stdout)}  # fmt: skip


def _plan(stack: str) -> StackRecord:
    if stack == "bootstrap":
        from bootstrap.plan import plan

        return plan(wired=True)
    return run_program(stack)


def main(
    argv: list[str] | None = None,
    run: Run = subprocess.run,
    plan: Callable[[str], StackRecord] = _plan,
) -> int:
    parser = argparse.ArgumentParser(prog="make destroy", description=__doc__.split("\n")[0])
    parser.add_argument("--stack", required=True, choices=ORDER)
    parser.add_argument("--dry-run", action="store_true", help="the report only")
    parser.add_argument(
        "--bootstrap-backend", help="the bootstrap's own state backend (make's BOOTSTRAP_BACKEND)"
    )
    args = parser.parse_args(argv)
    print(f"destroying {args.stack} removes every resource of its plan, except:")
    for line in report(plan(args.stack)):
        indent = " " * (len(line) - len(line.lstrip(" -")))
        print(
            "\n".join(
                textwrap.wrap(line, 100, subsequent_indent=indent or "  ", break_on_hyphens=False)
            )
        )
    if args.dry_run:
        return 0
    try:
        problem = order_problem(args.stack, resource_counts(run))
    except (RuntimeError, json.JSONDecodeError, OSError) as error:
        print(f"make destroy: cannot list the stacks: {error}", file=sys.stderr)
        return 2
    if problem:
        print(f"make destroy: {problem}", file=sys.stderr)
        return 1
    command = ["pulumi", "destroy", "--stack", args.stack]
    if args.stack == "bootstrap":
        env = dict(os.environ)
        if args.bootstrap_backend:
            env["PULUMI_BACKEND_URL"] = args.bootstrap_backend
        return run(command, cwd=BOOTSTRAP_DIR, env=env, check=False).returncode
    return run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
