"""`make compliance`: both stacks' plans checked by an independent policy engine (checkov).

    python -m tooling.compliance --checkov .venv-checkov/bin/checkov [--stack staging …]

Each stack's offline plan is exported as Terraform plan JSON (tooling/tfplan.py) under
build/compliance/, checkov's Terraform-plan checks run on it, and every failed check must be in
the reviewed skip list (tooling/compliance_skips.yaml: check, resource, reason). The run fails on
a finding outside the list, and on an entry that matches no finding any more (the list stays
the reviewed truth, not a graveyard). Passed, failed and skipped counts are printed per stack.

checkov lives in its own environment (the Makefile's .venv-checkov): its pins clash with
pulumi-gcp's. It runs with `--skip-download`: nothing is fetched from its vendor's platform.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stacks.config import PROJECT_ROOT
from tooling.plan.offline import StackRecord
from tooling.skips import SKIPS_FILE, Skip, SkipListError, load_skips
from tooling.tfplan import ExportError, PlanExport, export

CHECKOV_VERSION = "3.3.30"
STACKS = ("staging", "prod")


@dataclass(frozen=True)
class Finding:
    """One check checkov ran on one resource."""

    check: str
    title: str
    resource: str
    """The resource's Terraform address (type.name)."""


@dataclass
class StackVerdict:
    stack: str
    exported: PlanExport
    passed: list[Finding] = field(default_factory=list)
    skipped: list[tuple[Finding, Skip]] = field(default_factory=list)
    unjustified: list[Finding] = field(default_factory=list)
    checked_resources: int = 0
    """Resources checkov read from the plan (must be every exported one)."""


@dataclass
class EngineReport:
    """What checkov found in each stack's plan."""

    by_stack: dict[str, dict[str, Any]]
    """Per stack: `passed` and `failed` findings, `resources` that at least one check read."""
    resource_count: int
    """Resources checkov read, over all the plans."""


def run_checkov(checkov: Path, plans: dict[str, Path]) -> EngineReport:
    """checkov's findings in each plan."""
    command = [str(checkov), "--framework", "terraform_plan", "--output", "json"]
    command.append("--skip-download")
    for path in plans.values():
        command += ["--file", str(path)]
    # Exit code 1 means "failed checks": judged below against the skip list, not here.
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"checkov failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    results: dict[str, dict[str, Any]] = {
        stack: {"passed": [], "failed": [], "resources": set()} for stack in plans
    }
    by_file = {path.name: stack for stack, path in plans.items()}
    for part in reports:
        for outcome in ("passed", "failed"):
            for check in part["results"][f"{outcome}_checks"]:
                stack = by_file[Path(check["file_path"]).name]
                finding = Finding(check["check_id"], check["check_name"], check["resource"])
                results[stack][outcome].append(finding)
                results[stack]["resources"].add(check["resource"])
    return EngineReport(results, sum(part["summary"]["resource_count"] for part in reports))


def judge(exported: PlanExport, result: dict[str, Any], skips: list[Skip]) -> StackVerdict:
    """Sort one stack's failed checks into skipped (reviewed) and unjustified."""
    verdict = StackVerdict(exported.stack, exported, passed=list(result["passed"]))
    verdict.checked_resources = len(result["resources"] & set(exported.addresses))
    for finding in result["failed"]:
        skip = next((s for s in skips if s.matches(exported.stack, finding)), None)
        if skip is None:
            verdict.unjustified.append(finding)
        else:
            verdict.skipped.append((finding, skip))
    return verdict


def stale_skips(verdicts: list[StackVerdict], skips: list[Skip]) -> list[Skip]:
    """Entries that excuse nothing in any stack they apply to."""
    used = {id(skip) for verdict in verdicts for _, skip in verdict.skipped}
    checked = {verdict.stack for verdict in verdicts}
    return [s for s in skips if id(s) not in used and set(s.applies_to(checked))]


def render(verdicts: list[StackVerdict], stale: list[Skip]) -> str:
    lines = [f"checkov {CHECKOV_VERSION}, Terraform-plan checks, skip list {SKIPS_FILE.name}"]
    for v in verdicts:
        no_twin = ", ".join(f"{n} {t}" for t, n in sorted(v.exported.no_twin.items())) or "none"
        lines += [
            "",
            f"stack {v.stack}: {v.exported.planned} resources in the plan, "
            f"{len(v.exported.addresses)} exported and checked "
            f"({v.checked_resources} with at least one check); no Terraform twin: {no_twin}",
            f"  passed {len(v.passed)}  failed {len(v.unjustified)}  skipped {len(v.skipped)}",
        ]
        lines += [f"  FAILED {f.check} {f.resource}: {f.title}" for f in v.unjustified]
    for skip in stale:
        lines.append(
            f"STALE skip {skip.check} {skip.resource}: no such finding any more; remove the entry"
        )
    return "\n".join(lines)


def export_plans(records: dict[str, StackRecord], out_dir: Path) -> dict[str, PlanExport]:
    out_dir.mkdir(parents=True, exist_ok=True)
    exports = {}
    for stack, record in records.items():
        exports[stack] = export(record)
        path = out_dir / f"tfplan-{stack}.json"
        path.write_text(json.dumps(exports[stack].plan, indent=1) + "\n")
    return exports


def check(stacks: list[str], checkov: Path, out_dir: Path) -> int:
    from tooling.plan.cli import run_programs  # the pulumi program: only when checking

    skips = load_skips()
    records = {stack: record for stack, (record, _) in run_programs(stacks).items()}
    exports = export_plans(records, out_dir)
    report = run_checkov(checkov, {s: out_dir / f"tfplan-{s}.json" for s in stacks})
    verdicts = [judge(exports[s], report.by_stack[s], skips) for s in stacks]
    stale = stale_skips(verdicts, skips)
    print(render(verdicts, stale))
    exported = sum(len(v.exported.addresses) for v in verdicts)
    read = report.resource_count
    if read != exported:
        print(f"checkov read {read} resources of the {exported} exported", file=sys.stderr)
    failed = any(v.unjustified for v in verdicts) or stale or read != exported
    if failed:
        print(
            "\ncompliance: fix each FAILED finding, or add it to tooling/compliance_skips.yaml "
            "with the reason it is accepted (docs/security.md lists them)",
            file=sys.stderr,
        )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooling.compliance", description=__doc__)
    parser.add_argument("--checkov", type=Path, required=True, help="the checkov executable")
    parser.add_argument("--stack", action="append", help="stack to check (default: both)")
    parser.add_argument("--out-dir", type=Path, default=PROJECT_ROOT / "build" / "compliance")
    args = parser.parse_args(argv)
    try:
        return check(args.stack or list(STACKS), args.checkov, args.out_dir)
    except (SkipListError, ExportError) as error:
        print(f"compliance: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
