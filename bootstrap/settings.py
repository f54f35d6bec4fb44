"""What the bootstrap creates, read from the platform's two stack files and its workflows.

The stack files already name everything the bootstrap needs: the state bucket and the secrets
key (`ci.state_bucket`, `ci.secrets_key`), the repository, each stack's GitHub environment and
its reviewers (`ci.deploy_environment`, `ci.reviewers`), and who deploys by hand
(`access.deployers`). Reading them here, once, keeps one source: `make init` writes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from stacks.config import ConfigError, StackConfig, stack_file_name

DEPLOY_BRANCH = "main"


@dataclass(frozen=True)
class Environment:
    """One GitHub environment: the deploy jobs of one stack."""

    stack: str
    name: str
    reviewers: tuple[str, ...]
    """GitHub logins or org/team slugs; one of them approves each deploy (none: no approval)."""


@dataclass(frozen=True)
class BootstrapSettings:
    state_project: str
    """The project holding the state bucket and the secrets key (the key's project)."""
    location: str
    state_bucket: str
    key_ring: str
    key: str
    owner: str
    repository: str
    """The repository's name, without its owner."""
    environments: tuple[Environment, ...]
    deployers: tuple[str, ...]
    """IAM members who run `pulumi up` by hand: they read and write the state, use the key (the
    CI identities get the same on both from the stacks themselves, resources/ci.py)."""
    required_checks: tuple[str, ...]

    @property
    def secrets_provider(self) -> str:
        return (
            f"gcpkms://projects/{self.state_project}/locations/{self.location}"
            f"/keyRings/{self.key_ring}/cryptoKeys/{self.key}"
        )


def _one(configs: Mapping[str, StackConfig], what: str, get) -> str:
    """A setting both stacks must share, or a one-line error naming the files."""
    values = {stack: get(config) for stack, config in configs.items()}
    distinct = set(values.values())
    if None in distinct or len(distinct) != 1:
        shown = ", ".join(f"{stack_file_name(s)}: {v}" for s, v in values.items())
        raise ConfigError(f"the stacks must share one {what} ({shown})")
    return distinct.pop()


def from_stacks(configs: Mapping[str, StackConfig], workflows: Path) -> BootstrapSettings:
    state_bucket = _one(configs, "ci.state_bucket", lambda c: c.platform.ci.state_bucket)
    secrets_key = _one(configs, "ci.secrets_key", lambda c: c.platform.ci.secrets_key)
    repository = _one(configs, "ci.github_repository", lambda c: c.platform.ci.github_repository)
    _, project, _, location, _, ring, _, key = secrets_key.split("/")
    owner, name = repository.split("/")
    environments = tuple(
        Environment(stack, c.platform.ci.deploy_environment, tuple(c.platform.ci.reviewers))
        for stack, c in configs.items()
    )
    deployers = {m for c in configs.values() for m in c.platform.access.deployers}
    return BootstrapSettings(
        state_project=project,
        location=location,
        state_bucket=state_bucket,
        key_ring=ring,
        key=key,
        owner=owner,
        repository=name,
        environments=environments,
        deployers=tuple(sorted(deployers)),
        required_checks=tuple(required_checks(workflows)),
    )


def required_checks(workflows: Path) -> list[str]:
    """The check names the pull-request workflows report: what branch protection must require.

    A job reports its `name` (or its id), once per matrix entry with `${{ matrix.X }}` filled in.
    """
    checks = []
    for path in sorted(workflows.glob("*.y*ml")):
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        triggers = workflow.get(True, workflow.get("on"))  # YAML 1.1 reads `on:` as True
        if "pull_request" not in (triggers if not isinstance(triggers, str) else [triggers]):
            continue
        for job_id, job in workflow.get("jobs", {}).items():
            name = job.get("name", job_id)
            entries = ((job.get("strategy") or {}).get("matrix") or {}).get("include") or [{}]
            checks += [_fill_matrix(name, entry) for entry in entries]
    return checks


def _fill_matrix(name: str, entry: dict) -> str:
    return re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: str(entry.get(m.group(1))), name)
