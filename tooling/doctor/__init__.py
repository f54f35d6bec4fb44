"""`make doctor STACK=…`: can `pulumi up` go ahead in this project, with these credentials?

A read-only preflight against the real project, in seconds: who you are and whether you hold
every permission the deployer's roles carry; which APIs are on; the organisation policies that
would refuse something the stack's plan declares; quotas for its endpoint, function and
Workbench; billing; the state bucket and secrets key; the GitHub repository's plan against the
environment the bootstrap creates. Each finding says what to do. Exit status 0: go ahead;
1: something would fail; 2: the doctor itself could not run (config, credentials).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable

from stacks.config import ConfigError, parse_stack_config, stack_config_values, stack_file_name
from tooling.doctor import access, github, platform, quotas
from tooling.doctor.api import Api
from tooling.doctor.core import FAIL, OK, WARN, Context, Finding
from tooling.plan.offline import StackRecord, run_program

Check = Callable[[Context], list[Finding]]
# In order: later checks read what earlier ones learnt (the caller, the permissions held).
CHECKS: tuple[Check, ...] = (
    access.identity,
    access.project,
    access.permissions,
    access.members,
    platform.services,
    *platform.POLICY_CHECKS,
    quotas.quotas,
    access.billing,
    access.state,
    github.repository,
)


def examine(
    stack: str, api: Api, config_values: dict | None = None, plan: StackRecord | None = None
) -> list[Finding]:
    """Every check's findings for one stack (its committed file unless `config_values`)."""
    values = stack_config_values(stack) if config_values is None else config_values
    config = parse_stack_config(values, source=stack_file_name(stack))
    plan = plan or run_program(stack, config=values)
    ctx = Context(stack=stack, config=config, plan=plan, api=api)
    findings = []
    for check in CHECKS:
        findings += check(ctx)
    return findings


WIDTH = 100


def _wrapped(first: str, text: str, indent: int) -> list[str]:
    """Lines of at most WIDTH columns; a shell command continues with a backslash, so it can
    still be pasted whole."""
    command = text.startswith(("gcloud ", "gh "))
    lines = textwrap.wrap(
        text,
        WIDTH - (2 if command else 0),
        initial_indent=first,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return [line + " \\" for line in lines[:-1]] + lines[-1:] if command else lines


def report(findings: list[Finding], verbose: bool = False) -> str:
    lines = []
    for finding in findings:
        if finding.status == OK and not verbose:
            continue
        lines += _wrapped(f"{finding.status:>4}  {finding.check}: ", finding.message, 6)
        if finding.fix and finding.status != OK:
            lines += _wrapped("      fix: ", finding.fix, 11)
    failed = sum(f.status == FAIL for f in findings)
    warned = sum(f.status == WARN for f in findings)
    passed = sum(f.status == OK for f in findings)
    verdict = "pulumi up would fail: fix the FAIL lines first" if failed else "pulumi up can go"
    lines.append(f"{passed} ok, {warned} to look at, {failed} failed: {verdict}")
    return "\n".join(lines)


def main(
    argv: list[str] | None = None, api: Api | None = None, plan: StackRecord | None = None
) -> int:
    parser = argparse.ArgumentParser(prog="make doctor", description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default="staging")
    parser.add_argument("--verbose", "-v", action="store_true", help="show the passed checks too")
    args = parser.parse_args(argv)
    if api is None:
        from tooling.doctor.api import LiveApi

        try:
            api = LiveApi()
        except Exception as error:  # google-auth raises several kinds: say which, in one line
            print(
                f"make doctor: no usable Google credentials ({type(error).__name__}: {error}); "
                "run `gcloud auth application-default login`",
                file=sys.stderr,
            )
            return 2
    try:
        findings = examine(args.stack, api, plan=plan)
    except ConfigError as error:
        print(f"make doctor: {error}", file=sys.stderr)
        return 2
    print(report(findings, args.verbose))
    return 1 if any(f.status == FAIL for f in findings) else 0
