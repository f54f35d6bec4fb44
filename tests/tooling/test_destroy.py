"""`make destroy`: the order between stacks, and what the plan says stays behind."""

from __future__ import annotations

import json
import subprocess

import pytest

from bootstrap import plan as bootstrap_plan
from tooling import destroy


def test_prod_stops_at_its_protected_data_and_staging_at_nothing(stack_records):
    prod = "\n".join(destroy.report(stack_records["prod"]))
    protected = [r.name for r in stack_records["prod"].resources if r.protect]
    assert protected and all(f" {name}" in prod for name in protected)
    assert "data-lake-landing" in prod and "warehouse-dataset" in prod
    staging = "\n".join(destroy.report(stack_records["staging"]))
    assert "stops at" not in staging
    for text in (staging, prod):
        assert "storage-agent-pubsub-publisher" in text  # left on purpose, shared
        assert "workload identity pool is soft-deleted for 30 days" in text
        assert "custom roles" in text and "Model Registry" in text


def test_the_bootstrap_keeps_the_state_and_the_key():
    text = "\n".join(destroy.report(bootstrap_plan.plan(wired=False)))
    assert "Bucket state-bucket" in text and "CryptoKey state-key" in text
    assert "never deleted" in text


def test_a_retention_policy_is_called_out(stack_records):
    record = stack_records["staging"]
    bucket = record.of_type("gcp:storage/bucket:Bucket")[0]
    locked = type(bucket)(**{**bucket.__dict__, "inputs": {**bucket.inputs,
                          "retentionPolicy": {"retentionPeriod": 86400}}})  # fmt: skip
    plan = type(record)(stack=record.stack, resources=[locked])
    assert any("retention policy (86400 s)" in line for line in destroy.report(plan))


@pytest.mark.parametrize(
    ("stack", "counts", "expected"),
    [
        ("staging", {"staging": 180, "prod": 150}, None),
        ("prod", {"staging": 0, "prod": 150}, None),
        ("prod", {"staging": 180, "prod": 150}, "destroy staging first"),
        ("bootstrap", {"staging": 0, "prod": 3}, "destroy prod first"),
        ("bootstrap", {"staging": 1, "prod": 3}, "destroy staging, then prod first"),
    ],
)
def test_stacks_go_in_the_reverse_of_the_deploy_order(stack, counts, expected):
    problem = destroy.order_problem(stack, counts)
    assert problem == expected if expected is None else expected in problem


class FakePulumi:
    """Answers `pulumi stack ls --json` as the CLI does; records every command."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts
        self.commands: list[list[str]] = []

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        listed = [{"name": f"organization/tabular-mlops/{s}", "current": False,
                   "resourceCount": n} for s, n in self.counts.items()]  # fmt: skip
        out = json.dumps(listed) if command[:3] == ["pulumi", "stack", "ls"] else ""
        return subprocess.CompletedProcess(command, 0, out, "")


def test_destroy_refuses_prod_while_staging_stands_and_runs_pulumi_otherwise(stack_records, capsys):
    fake = FakePulumi({"staging": 180, "prod": 150})
    plan = stack_records.__getitem__
    assert destroy.main(["--stack", "prod"], run=fake, plan=plan) == 1
    assert "destroy staging first" in capsys.readouterr().err
    assert ["pulumi", "destroy", "--stack", "prod"] not in fake.commands
    assert destroy.main(["--stack", "staging"], run=fake, plan=plan) == 0
    assert fake.commands[-1] == ["pulumi", "destroy", "--stack", "staging"]
    dry = FakePulumi({})
    assert destroy.main(["--stack", "staging", "--dry-run"], run=dry, plan=plan) == 0
    assert dry.commands == []
    out = capsys.readouterr().out
    assert "what Google Cloud keeps afterwards" in out
    assert max(len(line) for line in out.splitlines()) <= 100
