"""The bootstrap program's plan under the mocks: state backend, GitHub environments and their
protection, main's protection, and the Actions variables matching what the workflows read."""

from __future__ import annotations

import pytest
import yaml

from bootstrap import plan as bootstrap_plan
from bootstrap.settings import from_stacks, required_checks
from stacks.config import PROJECT_ROOT, ConfigError, load_stack_file, stack_file_name
from tooling import github_variables
from tooling.plan.offline import Organisation, run_program

WORKFLOWS = PROJECT_ROOT / ".github" / "workflows"
ENVIRONMENT = "github:index/repositoryEnvironment:RepositoryEnvironment"
DEPLOYMENT_POLICY = (
    "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy"
)
REPO_VARIABLE = "github:index/actionsVariable:ActionsVariable"
ENV_VARIABLE = "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable"


def _configs():
    return {s: load_stack_file(PROJECT_ROOT / stack_file_name(s)) for s in github_variables.STACKS}


def test_the_state_bucket_is_private_versioned_and_protected(first_run):
    [bucket] = first_run.of_type("gcp:storage/bucket:Bucket")
    ci = _configs()["prod"].platform.ci
    assert bucket.inputs["name"] == ci.state_bucket
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    assert bucket.inputs["versioning"] == {"enabled": True}
    assert bucket.protect and not bucket.inputs["forceDestroy"]
    [key] = first_run.of_type("gcp:kms/cryptoKey:CryptoKey")
    [ring] = first_run.of_type("gcp:kms/keyRing:KeyRing")
    assert f"{ring.inputs['location']}/keyRings/{ring.inputs['name']}/cryptoKeys/" in ci.secrets_key
    assert ci.secrets_key.endswith(f"/cryptoKeys/{key.inputs['name']}")
    assert key.protect and key.inputs["rotationPeriod"]
    assert first_run.outputs["secrets_provider"] == f"gcpkms://{ci.secrets_key}"
    assert first_run.outputs["backend_url"] == f"gs://{ci.state_bucket}"


def test_each_stacks_environment_admits_main_only_and_prod_waits_for_qa(first_run):
    configs = _configs()
    environments = {r.inputs["environment"]: r for r in first_run.of_type(ENVIRONMENT)}
    assert set(environments) == {c.platform.ci.deploy_environment for c in configs.values()}
    policies = {(p.inputs["environment"], p.inputs["branchPattern"])
                for p in first_run.of_type(DEPLOYMENT_POLICY)}  # fmt: skip
    assert policies == {(env, "main") for env in environments}
    for stack, config in configs.items():
        env = environments[config.platform.ci.deploy_environment].inputs
        assert env["deploymentBranchPolicy"] == {
            "customBranchPolicies": True, "protectedBranches": False
        }  # fmt: skip
        assert env["canAdminsBypass"] is False
        reviewers = config.platform.ci.reviewers
        if stack == "prod":
            assert reviewers, "prod must name the QA reviewers"
        # Numeric ids, looked up by login or team slug (the mocks answer as GitHub would).
        expected = sorted(int(bootstrap_plan._github_id(r.split("/")[-1])) for r in reviewers)
        found = sorted(i for r in env.get("reviewers") or [] for i in r["users"] + r["teams"])
        assert found == expected, stack
        assert env["preventSelfReview"] is bool(reviewers)


def test_main_requires_the_pull_request_checks_and_a_review(first_run):
    [protection] = first_run.of_type("github:index/branchProtection:BranchProtection")
    inputs = protection.inputs
    assert inputs["pattern"] == "main" and inputs["enforceAdmins"] is True
    [checks] = inputs["requiredStatusChecks"]
    assert checks["contexts"] == required_checks(WORKFLOWS)
    assert {"pulumi preview (staging)", "pulumi preview (prod)"} <= set(checks["contexts"])
    assert inputs["requiredPullRequestReviews"][0]["requiredApprovingReviewCount"] >= 1
    assert not inputs["allowsForcePushes"] and not inputs["allowsDeletions"]


def test_the_first_run_sets_no_variable_before_the_stacks_exist(first_run):
    assert not first_run.of_type(REPO_VARIABLE) and not first_run.of_type(ENV_VARIABLE)


def test_once_wired_it_sets_exactly_the_variables_the_workflows_read(wired, stack_records):
    found = {
        (r.inputs["variableName"], None, r.inputs["value"]) for r in wired.of_type(REPO_VARIABLE)
    }
    found |= {
        (r.inputs["variableName"], r.inputs["environment"], r.inputs["value"])
        for r in wired.of_type(ENV_VARIABLE)
    }
    outputs = {stack: record.outputs for stack, record in stack_records.items()}
    expected = github_variables.variables(_configs(), outputs)
    assert found == {(v.name, v.environment, v.value) for v in expected}
    assert len(found) == 9  # the nine `gh variable set` lines of `make ci-variables`
    actionlint = yaml.safe_load((PROJECT_ROOT / ".github/actionlint.yaml").read_text())
    assert {name for name, _, _ in found} == set(actionlint["config-variables"])
    environments = {r.inputs["environment"] for r in wired.of_type(ENVIRONMENT)}
    assert {env for _, env, _ in found if env} <= environments


def test_the_stacks_must_share_one_state_backend_and_repository():
    configs = _configs()
    ci = configs["staging"].platform.ci.model_copy(update={"state_bucket": "other-state"})
    platform = configs["staging"].platform.model_copy(update={"ci": ci})
    configs["staging"] = configs["staging"].model_copy(update={"platform": platform})
    with pytest.raises(
        ConfigError, match=r"one ci.state_bucket \(Pulumi.staging.yaml: other-state"
    ):
        from_stacks(configs, WORKFLOWS)


def test_required_checks_follow_the_pull_request_workflow_and_its_matrix(tmp_path):
    (tmp_path / "pr.yml").write_text(
        "on: [pull_request]\njobs:\n  a: {runs-on: x}\n  b:\n    name: check ${{ matrix.n }}\n"
        "    strategy: {matrix: {include: [{n: 1}, {n: 2}]}}\n"
    )
    (tmp_path / "push.yml").write_text("on: push\njobs:\n  c: {name: deploy}\n")
    assert required_checks(tmp_path) == ["a", "check 1", "check 2"]


def test_a_fresh_organisation_bootstraps_deploys_then_wires_the_variables():
    """The documented order: the bootstrap (state, key, environments), prod's identities, staging,
    then the bootstrap again reading both; wiring before the stacks exist fails the plan."""
    with pytest.raises(Exception, match="not deployed"):
        bootstrap_plan.plan(wired=True, organisation=Organisation(resolve=False))
    organisation = Organisation(resolve=False)
    first = bootstrap_plan.plan(wired=False, organisation=organisation)
    assert first.of_type(ENVIRONMENT) and not first.of_type(REPO_VARIABLE)
    values = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text(encoding="utf-8"))
    values["config"]["tabular-mlops:platform"]["serving"]["model"] = None
    prod = run_program("prod", config=values["config"], organisation=organisation)
    run_program("staging", organisation=organisation)
    wired = bootstrap_plan.plan(wired=True, organisation=organisation)
    values = {r.inputs["variableName"]: r.inputs["value"] for r in wired.of_type(REPO_VARIABLE)}
    assert values["PROD_PREVIEWER_SERVICE_ACCOUNT"] == prod.outputs["ci_previewer_service_account"]
