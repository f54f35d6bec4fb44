"""The GitHub Actions variables the workflows read, from the deployed stacks (docs/ci-cd.md).

    python -m tooling.github_variables            # from `pulumi stack output` of staging and prod
    python -m tooling.github_variables --offline  # the same from the offline plan, to review

Prints the `gh variable set` commands that configure the repository and its deploy environments:
the state backend, and for each stack its workload identity provider, previewer (repository
variables, read by the pull-request previews) and deployer (variables of the stack's GitHub
environment, read by the deploy jobs). None of them is a secret; no key exists.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stacks.config import PROJECT_ROOT, ConfigError, StackConfig, load_stack_file, stack_file_name

STACKS = ("staging", "prod")
# The outputs of each stack the variables are made of (the bootstrap reads the same ones).
REQUIRED_OUTPUTS = (
    "ci_workload_identity_provider",
    "ci_previewer_service_account",
    "ci_deployer_service_account",
)


@dataclass(frozen=True)
class Variable:
    name: str
    value: str
    environment: str | None = None
    """The GitHub environment the variable belongs to; None for a repository variable."""

    def command(self) -> str:
        scope = f" --env {shlex.quote(self.environment)}" if self.environment else ""
        return f"gh variable set {self.name}{scope} --body {shlex.quote(self.value)}"


def variables(
    configs: Mapping[str, StackConfig], outputs: Mapping[str, Mapping[str, Any]]
) -> list[Variable]:
    """What the workflows need, for stacks with a CI identity (`ci:` in their stack file)."""
    found: list[Variable] = []
    backends = set()
    for stack, config in configs.items():
        ci = config.platform.ci
        if not ci.github_repository:
            raise ConfigError(f"{stack_file_name(stack)}: no ci: block, so no CI identity")
        if not ci.state_bucket:
            raise ConfigError(f"{stack_file_name(stack)}: ci.state_bucket is not set")
        backends.add(f"gs://{ci.state_bucket}")
        missing = [k for k in REQUIRED_OUTPUTS if k not in outputs[stack]]
        if missing:
            raise ConfigError(f"stack {stack} exports no {', '.join(missing)}: deploy it first")
        out = outputs[stack]
        provider = out["ci_workload_identity_provider"]
        prefix = stack.upper()
        found += [
            Variable(f"{prefix}_WORKLOAD_IDENTITY_PROVIDER", provider),
            Variable(f"{prefix}_PREVIEWER_SERVICE_ACCOUNT", out["ci_previewer_service_account"]),
            Variable("GCP_WORKLOAD_IDENTITY_PROVIDER", provider, ci.deploy_environment),
            Variable(
                "GCP_DEPLOYER_SERVICE_ACCOUNT",
                out["ci_deployer_service_account"],
                ci.deploy_environment,
            ),
        ]
    if len(backends) != 1:
        # The workflows log every stack in to one backend (PULUMI_BACKEND_URL).
        raise ConfigError(f"the stacks name different state buckets: {sorted(backends)}")
    return [Variable("PULUMI_BACKEND_URL", backends.pop()), *found]


def deployed_outputs(stack: str) -> dict[str, Any]:
    """`pulumi stack output --json` of a deployed stack (needs the CLI, logged in)."""
    try:
        result = subprocess.run(
            ["pulumi", "stack", "output", "--json", "--stack", stack],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
    except FileNotFoundError:
        raise RuntimeError(
            "the Pulumi CLI is not installed (see docs/deploy.md); to read the offline plan's "
            "outputs instead: python -m tooling.github_variables --offline"
        ) from None
    if result.returncode != 0:
        raise RuntimeError(f"pulumi stack output -s {stack} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def offline_outputs(stack: str) -> dict[str, Any]:
    from tooling.plan.offline import run_program

    return run_program(stack).outputs


def main(argv: list[str] | None = None, read: Callable[[str], dict] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tooling.github_variables", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--offline", action="store_true", help="read the offline plan's outputs")
    args = parser.parse_args(argv)
    read = read or (offline_outputs if args.offline else deployed_outputs)
    try:
        configs = {s: load_stack_file(PROJECT_ROOT / stack_file_name(s)) for s in STACKS}
        found = variables(configs, {s: read(s) for s in STACKS})
    except (ConfigError, RuntimeError) as error:
        print(f"cannot list the variables: {error}", file=sys.stderr)
        return 2
    for variable in found:
        print(variable.command())
    return 0


if __name__ == "__main__":
    sys.exit(main())
