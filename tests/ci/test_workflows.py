"""The GitHub workflows: every step runs something that exists, every action is pinned, and the
security settings hold. (actionlint and zizmor lint them in `make lint`.)"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, spec in document["jobs"].items() for step in spec["steps"]]


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", text, flags=re.MULTILINE))


def commands(script: str) -> list[list[str]]:
    """The simple commands of a `run:` script, split into words (pipes, && and ; split too)."""
    result = []
    for line in script.replace("\\\n", " ").splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part, comments=True)
            if words:
                result.append(words)
    return result


def test_there_are_workflows():
    assert {p.name for p in WORKFLOWS} >= {"pull-request.yml", "deploy.yml", "pipeline.yml"}


def run_problems(script: str, targets: set[str]) -> list[str]:
    """What a `run:` script calls that does not exist: make targets, scripts, Python modules."""
    problems = []
    for words in commands(script):
        if words[0] == "make":
            named = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            if not named:
                problems.append("bare `make` runs the default goal (help)")
            problems += [f"no make target {t!r}" for t in named if t not in targets]
        elif "/" in words[0]:
            if not (ROOT / words[0]).is_file():
                problems.append(f"no script {words[0]}")
        elif words[:2] in (["python", "-m"], ["python3", "-m"]):
            if importlib.util.find_spec(words[2]) is None:
                problems.append(f"no module {words[2]}")
        else:
            problems.append(f"runs {words[0]!r}: CI steps call make targets or scripts")
    return problems


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_run_step_calls_what_exists(path):
    targets = make_targets()
    runs = [(job, step) for job, step in steps(load(path)) if "run" in step]
    assert runs, f"{path.name} runs nothing"
    for job, step in runs:
        problems = run_problems(step["run"], targets)
        assert not problems, f"{path.name}: job {job}, step {step.get('name')}: {problems}"


def test_a_missing_target_script_or_module_is_reported():
    script = """
        make test && make no-such-target STACK=prod
        .ci/no-such-script --flag
        python -m pipeline_src.no_such_module
        make
        curl https://example.com | sh
    """
    assert run_problems(script, make_targets()) == [
        "no make target 'no-such-target'",
        "no script .ci/no-such-script",
        "no module pipeline_src.no_such_module",
        "bare `make` runs the default goal (help)",
        "runs 'curl': CI steps call make targets or scripts",
        "runs 'sh': CI steps call make targets or scripts",
    ]
    assert run_problems("make compile STACK=prod\n.ci/publish-image x", make_targets()) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_a_full_commit(path):
    text = path.read_text(encoding="utf-8")
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", text, flags=re.MULTILINE)
    assert uses, f"{path.name} uses no action"
    for ref, comment in uses:
        action, _, version = ref.partition("@")
        assert FULL_SHA.match(version), f"{path.name}: {ref} is not pinned to a 40-hex commit"
        # The tag the commit is, for the reader and for update tools.
        assert re.match(r"^\s*#\s*v\d", comment), f"{path.name}: {action} lacks a `# vX` comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_and_no_stored_credentials(path):
    document = load(path)
    assert document["permissions"] == {}, "nothing by default; each job asks for what it uses"
    assert "pull_request_target" not in document["on"]
    for job, spec in document["jobs"].items():
        permissions = spec.get("permissions")
        assert isinstance(permissions, dict), f"{path.name}: job {job} has no permissions block"
        assert "write-all" not in str(permissions)
        assert permissions.get("contents") == "read", f"{path.name}: {job} may write the repo"
        for _, step in steps({"jobs": {job: spec}}):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, f"{path.name}: {job}"
    text = path.read_text(encoding="utf-8")
    assert "credentials_json" not in text, "keyless: Workload Identity Federation only"


def _deploy_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    """Jobs that change a stack or run in a deploy environment."""
    found = []
    for path in WORKFLOWS:
        for job, spec in load(path)["jobs"].items():
            if spec.get("environment"):
                found.append((path.name, job, spec))
    return found


def test_deploys_never_overlap_nor_get_cancelled():
    jobs = _deploy_jobs()
    assert jobs
    for workflow, job, spec in jobs:
        concurrency = spec.get("concurrency") or load(ROOT / ".github/workflows" / workflow).get(
            "concurrency"
        )
        assert concurrency, f"{workflow}: {job} has no concurrency group"
        assert concurrency["cancel-in-progress"] is False, f"{workflow}: {job} may be cancelled"
        assert spec["permissions"].get("id-token") == "write", f"{workflow}: {job} cannot auth"


def test_prod_waits_for_staging_and_the_production_environment():
    jobs = load(ROOT / ".github/workflows/deploy.yml")["jobs"]
    ups = {
        job: step["with"]["stack-name"]
        for job, spec in jobs.items()
        for step in spec["steps"]
        if step.get("uses", "").startswith("pulumi/actions@") and step.get("with")
    }
    assert ups == {"staging": "staging", "prod": "prod"}
    assert jobs["prod"]["needs"] == "staging"
    assert jobs["prod"]["environment"] == "production"
    assert jobs["staging"]["concurrency"]["group"] != jobs["prod"]["concurrency"]["group"]
    # The acceptance suite runs last, against the endpoint prod's `pulumi up` reports, and
    # expects the model version that deploy rolled out.
    last = jobs["prod"]["steps"][-1]
    assert last["run"].startswith("make acceptance ENDPOINT=")
    assert 'MODEL="$SERVED_MODEL"' in last["run"]
    assert set(last["env"].values()) == {
        "${{ steps.up.outputs.project }}",
        "${{ steps.up.outputs.region }}",
        "${{ steps.up.outputs.endpoint }}",
        "${{ steps.up.outputs.served_model }}",
    }


def test_previews_cover_both_stacks_and_comment_on_the_pr():
    preview = load(ROOT / ".github/workflows/pull-request.yml")["jobs"]["preview"]
    stacks = {entry["stack"] for entry in preview["strategy"]["matrix"]["include"]}
    assert stacks == {"staging", "prod"}
    pulumi = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-pr"] is True
    # Previews never run with a deploy environment's (deployer) identity.
    assert "environment" not in preview


def test_each_stack_trusts_the_environment_its_deploy_job_runs_in():
    """The deployer accepts jobs of `ci.deploy_environment` only: the workflows must use it."""
    from stacks.config import load_stack_file

    deploying = {}
    for path in WORKFLOWS:
        for spec in load(path)["jobs"].values():
            for step in spec["steps"]:
                action = step.get("uses", "")
                if (
                    action.startswith("pulumi/actions@")
                    and step.get("with", {}).get("command") == "up"
                ):
                    deploying[step["with"]["stack-name"]] = spec["environment"]
    assert set(deploying) == {"staging", "prod"}
    for stack, environment in deploying.items():
        ci = load_stack_file(ROOT / f"Pulumi.{stack}.yaml").platform.ci
        assert ci.deploy_environment == environment, stack


def test_the_ci_docs_list_every_variable_the_workflows_read():
    readme = (ROOT / "docs" / "ci-cd.md").read_text(encoding="utf-8")
    used = set()
    for path in WORKFLOWS:
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"\bvars\.([A-Z0-9_]+)", text))
        # Keyless: the only token is the job's own GITHUB_TOKEN.
        assert not re.search(r"\$\{\{\s*secrets\.", text), f"{path.name} reads a secret"
    # actionlint rejects names not declared (a typo); none is declared but unused.
    declared = yaml.safe_load((ROOT / ".github/actionlint.yaml").read_text(encoding="utf-8"))
    assert used == set(declared["config-variables"])
    for variable in used:
        assert f"`{variable}`" in readme, f"docs/ci-cd.md does not say how to set {variable}"


# The inputs of the actions the workflows pin, from each pinned release's action.yml. actionlint
# cannot fetch them offline, so a misspelt input (silently ignored by GitHub) is caught here.
ACTION_INPUTS = {
    "actions/checkout": {
        "repository", "ref", "token", "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user",
        "persist-credentials", "path", "clean", "filter", "sparse-checkout",
        "sparse-checkout-cone-mode", "fetch-depth", "fetch-tags", "show-progress", "lfs",
        "submodules", "set-safe-directory", "github-server-url",
    },
    "actions/setup-python": {
        "python-version", "python-version-file", "cache", "architecture", "check-latest",
        "token", "cache-dependency-path", "update-environment", "allow-prereleases",
        "freethreaded",
    },
    "google-github-actions/auth": {
        "project_id", "workload_identity_provider", "service_account", "audience",
        "credentials_json", "create_credentials_file", "export_environment_variables",
        "token_format", "delegates", "universe", "request_reason", "cleanup_credentials",
        "access_token_lifetime", "access_token_scopes", "access_token_subject", "retries",
        "backoff", "backoff_limit", "id_token_audience", "id_token_include_email",
    },
    "actions/upload-artifact": {
        "name", "path", "if-no-files-found", "retention-days", "compression-level", "overwrite",
        "include-hidden-files",
    },
    "pulumi/actions": {
        "command", "stack-name", "work-dir", "cloud-url", "comment-on-pr", "comment-on-pr-number",
        "comment-on-summary", "github-token", "refresh", "secrets-provider", "color",
        "log-verbosity", "log-flow", "debug", "config-map", "diff", "edit-pr-comment",
        "expect-no-changes", "message", "parallel", "policyPacks", "policyPackConfigs",
        "pulumi-version", "pulumi-version-file", "remove", "replace", "target",
        "target-dependents", "upsert", "exclude-protected", "suppress-outputs",
        "suppress-progress", "omit-stdout", "plan", "always-include-summary", "continue-on-error",
    },
}  # fmt: skip


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_input_exists(path):
    for job, step in steps(load(path)):
        if "uses" not in step:
            continue
        action = step["uses"].split("@")[0]
        assert action in ACTION_INPUTS, f"{path.name}: add {action}'s inputs to ACTION_INPUTS"
        unknown = set(step.get("with", {})) - ACTION_INPUTS[action]
        assert not unknown, f"{path.name}: job {job}: {action} has no input {sorted(unknown)}"


def test_one_publisher_per_image_at_a_time():
    """Every job that publishes a stack's pipeline image is in one concurrency group per stack:
    the tag is immutable, so two jobs building it at once would see the second push refused."""
    groups: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for job, spec in load(path)["jobs"].items():
            for step in spec["steps"]:
                if "publish-image" not in step.get("run", ""):
                    continue
                for words in commands(step["run"]):
                    if words[:2] == ["make", "publish-image"]:
                        stack = next(w.split("=", 1)[1] for w in words if w.startswith("STACK="))
                        group = (spec.get("concurrency") or {}).get("group", f"{path.name}:{job}")
                        groups.setdefault(stack, set()).add(group)
    assert groups, "no job publishes an image"
    for stack, found in groups.items():
        assert len(found) == 1, f"{stack}'s image is published from several groups: {found}"


def test_the_prod_job_outlives_its_rollout():
    """The rollout runs inside `pulumi up`: two deployments (up to 30 min each on Vertex AI)
    around the canary period, plus the build, the up itself and the acceptance suite (30 min)."""
    from stacks.config import load_stack_file

    canary = load_stack_file(ROOT / "Pulumi.prod.yaml").platform.serving.canary_minutes
    jobs = load(ROOT / ".github/workflows/deploy.yml")["jobs"]
    needed = canary + 2 * 30 + 30
    assert jobs["prod"]["timeout-minutes"] >= needed, f"prod job needs >= {needed} min"
