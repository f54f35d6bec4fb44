"""`python -m tooling.github_variables`: the variables the workflows read, from the stacks."""

from __future__ import annotations

import shlex

import yaml

from stacks.config import PROJECT_ROOT, load_stack_file
from tooling import github_variables


def commands(stack_records, capsys) -> list[list[str]]:
    assert github_variables.main([], read=lambda stack: stack_records[stack].outputs) == 0
    return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]


def test_it_sets_exactly_the_variables_the_workflows_read(stack_records, capsys):
    lines = commands(stack_records, capsys)
    assert all(line[:3] == ["gh", "variable", "set"] for line in lines)
    names = {line[3] for line in lines}
    actionlint = yaml.safe_load((PROJECT_ROOT / ".github/actionlint.yaml").read_text())
    assert names == set(actionlint["config-variables"])


def test_each_stack_gets_its_identities_in_the_right_place(stack_records, capsys):
    lines = commands(stack_records, capsys)
    by_scope = {}
    for line in lines:
        scope = line[line.index("--env") + 1] if "--env" in line else "repository"
        by_scope[(line[3], scope)] = line[-1]
    staging, prod = stack_records["staging"].outputs, stack_records["prod"].outputs
    config = load_stack_file(PROJECT_ROOT / "Pulumi.prod.yaml").platform.ci
    assert by_scope[("PULUMI_BACKEND_URL", "repository")] == f"gs://{config.state_bucket}"
    assert (
        by_scope[("PROD_PREVIEWER_SERVICE_ACCOUNT", "repository")]
        == (prod["ci_previewer_service_account"])
    )
    assert (
        by_scope[("STAGING_WORKLOAD_IDENTITY_PROVIDER", "repository")]
        == (staging["ci_workload_identity_provider"])
    )
    # The deployer only where the deploy jobs run: the stack's GitHub environment.
    assert (
        by_scope[("GCP_DEPLOYER_SERVICE_ACCOUNT", "production")]
        == (prod["ci_deployer_service_account"])
    )
    assert (
        by_scope[("GCP_DEPLOYER_SERVICE_ACCOUNT", "staging")]
        == (staging["ci_deployer_service_account"])
    )
    assert not any(
        name == "GCP_DEPLOYER_SERVICE_ACCOUNT" for name, scope in by_scope if scope == "repository"
    )


def test_an_undeployed_stack_is_reported(stack_records, capsys):
    def read(stack):
        return {} if stack == "prod" else stack_records[stack].outputs

    assert github_variables.main([], read=read) == 2
    assert "stack prod exports no ci_workload_identity_provider" in capsys.readouterr().err


def test_without_the_pulumi_cli_one_line_says_install_it_or_go_offline(
    monkeypatch, tmp_path, capsys
):
    from tooling import github_variables

    monkeypatch.setenv("PATH", str(tmp_path))  # no `pulumi` on it
    assert github_variables.main([]) == 2
    error = capsys.readouterr().err
    assert (
        error.count("\n") == 1 and "Pulumi CLI is not installed" in error and "--offline" in error
    )
