"""`make init`: flags in, two stack files out that validate, plan, and hold no example value."""

from __future__ import annotations

import shutil

import pytest
import yaml

from stacks.config import PROJECT_ROOT, stack_file_name
from tooling import init, stack_files
from tooling.plan.offline import run_program

FLAGS = {
    "staging-project": "corp-ml-staging",
    "prod-project": "corp-ml-prod",
    "region": "europe-west1",
    "data-analysts": "group:analysts@corp.io",
    "data-scientists": "group:data-science@corp.io",
    "qa": "group:qa@corp.io",
    "ml-engineers": "group:ml-eng@corp.io",
    "stakeholders": "",
    "deployers": "group:deployers@corp.io,user:lead@corp.io",
    "github-repository": "corp/tabular-mlops",
    "qa-reviewers": "corp/qa, alice",
    "contract": "contracts/penguins.yaml",
    "notification-email": "ml-alerts@corp.io",
    "workbench-owner": "scientist@corp.io",
}


def _argv(flags: dict[str, str], root) -> list[str]:
    return [f"--{k}={v}" for k, v in flags.items()] + ["--no-input", "--dir", str(root)]


@pytest.fixture
def stack_dir(tmp_path):
    """A copy of the committed stack files, as a fresh clone has them."""
    for stack in init.STACKS:
        shutil.copy(PROJECT_ROOT / stack_file_name(stack), tmp_path)
    return tmp_path


def _config(root, stack: str) -> dict:
    return yaml.safe_load((root / stack_file_name(stack)).read_text())["config"]


def test_flags_replace_every_example_value_and_both_stacks_plan(stack_dir, capsys):
    assert init.main(_argv(FLAGS, stack_dir)) == 0
    for stack in init.STACKS:
        text = (stack_dir / stack_file_name(stack)).read_text()
        assert not [m for m in stack_files.EXAMPLE_MARKERS if m in text], stack
        record = run_program(stack, config=_config(stack_dir, stack))
        buckets = [r.inputs["name"] for r in record.of_type("gcp:storage/bucket:Bucket")]
        assert buckets and all(b.startswith(f"corp-ml-{stack}-") for b in buckets)
    prod = _config(stack_dir, "prod")["tabular-mlops:platform"]
    assert prod["ci"]["reviewers"] == ["corp/qa", "alice"]
    assert prod["ci"]["state_bucket"] == "corp-ml-prod-pulumi-state"
    assert prod["serving"]["model"] is None  # nothing promoted yet
    serving = _config(stack_dir, "staging")["tabular-mlops:platform"]["serving"]
    # Prod's identities come from prod's outputs (a stack reference), never typed.
    assert serving["model_readers"] == []
    assert serving["model_readers_from"] == "organization/tabular-mlops/prod"
    out = capsys.readouterr().out
    assert "Pulumi.prod.yaml: project: acme-mlops-prod -> corp-ml-prod" in out
    assert "make doctor" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_a_rerun_edits_what_it_is_given_and_keeps_comments_and_other_keys(stack_dir, capsys):
    assert init.main(_argv(FLAGS, stack_dir)) == 0
    prod = stack_dir / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text().replace("max_replicas: 5", "max_replicas: 3  # measured"))
    before = prod.read_text()
    capsys.readouterr()
    # A CMEK key protects only its own location: it moves with the region.
    key = "projects/corp-ml-prod/locations/{}/keyRings/tabular-mlops/cryptoKeys/prod"
    moved = {"region": "europe-west4", "prod-kms-key": key.format("europe-west4")}
    assert init.main(_argv(moved, stack_dir)) == 0
    after = prod.read_text()
    assert after == before.replace("region: europe-west1", "region: europe-west4").replace(
        key.format("europe-west1"), key.format("europe-west4")
    )
    assert "max_replicas: 3  # measured" in after
    assert "# QA approves every prod deploy" in after
    assert init.main(_argv({}, stack_dir)) == 0
    assert "already hold" in capsys.readouterr().out
    assert prod.read_text() == after


def test_missing_answers_are_named_by_their_flag(stack_dir, capsys):
    assert init.main(_argv({"region": "europe-west1"}, stack_dir)) == 2
    err = capsys.readouterr().err
    assert "--staging-project" in err and "--qa-reviewers" in err
    assert "--region" not in err


def test_an_invalid_answer_names_file_and_key_and_writes_nothing(stack_dir, capsys):
    committed = (stack_dir / "Pulumi.staging.yaml").read_text()
    assert init.main(_argv({**FLAGS, "region": "Europe", "qa": "qa@corp.io"}, stack_dir)) == 2
    err = capsys.readouterr().err
    assert "Pulumi.staging.yaml: tabular-mlops:region: must match" in err
    assert "tabular-mlops:platform.access.qa[0]: 'qa@corp.io' is not an IAM member" in err
    assert (stack_dir / "Pulumi.staging.yaml").read_text() == committed


def test_asking_offers_what_the_files_hold(stack_dir):
    """Interactive: Enter keeps the shown value; example values are never offered."""
    asked = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        name = next(q.name for q in init.QUESTIONS if prompt.startswith(q.prompt))
        return FLAGS.get(name, "")

    init.run({}, stack_dir, ask)
    assert any(p.endswith("[europe-west4]: ") for p in asked if p.startswith("region"))
    assert not [p for p in asked if "acme" in p or "example.com" in p]
    assert _config(stack_dir, "staging")["tabular-mlops:project"] == "corp-ml-staging"


def test_the_secrets_provider_follows_the_key_until_secrets_exist(stack_dir, capsys):
    staging = stack_dir / "Pulumi.staging.yaml"
    example = "gcpkms://projects/acme-ops/locations/europe-west4/keyRings/pulumi/cryptoKeys/stacks"
    assert f"secretsprovider: {example}\n" in staging.read_text()  # the committed example
    assert init.main(_argv(FLAGS, stack_dir)) == 0
    key = "projects/corp-ml-prod/locations/europe-west1/keyRings/pulumi/cryptoKeys/stacks"
    assert yaml.safe_load(staging.read_text())["secretsprovider"] == f"gcpkms://{key}"
    # Once `pulumi stack init` has encrypted a data key with it, only Pulumi may change it.
    staging.write_text("encryptedkey: CiQAbc=\n" + staging.read_text())
    capsys.readouterr()
    assert init.main(_argv({"secrets-key": key.replace("stacks", "other")}, stack_dir)) == 2
    assert "pulumi stack change-secrets-provider -s staging" in capsys.readouterr().err


def test_optional_answers_set_a_value_or_none_and_no_example_survives(stack_dir):
    flags = {**FLAGS, "billing-account": "01AB23-45CD67-89EF01", "prod-kms-key": ""}
    assert init.main(_argv(flags, stack_dir)) == 0
    prod = _config(stack_dir, "prod")["tabular-mlops:platform"]
    assert prod["cost"]["budget"]["billing_account"] == "01AB23-45CD67-89EF01"
    assert prod["kms_key"] is None  # Google-managed keys, as answered
    assert init.main(_argv({"billing-account": ""}, stack_dir)) == 0
    assert (
        _config(stack_dir, "prod")["tabular-mlops:platform"]["cost"]["budget"]["billing_account"]
        is None
    )
