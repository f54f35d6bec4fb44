"""The compliance gate's judgement: findings against the reviewed skip list, counts per stack."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from stacks.config import PROJECT_ROOT
from tooling.compliance import Finding, judge, render, run_checkov, stale_skips
from tooling.security_page import security_reference
from tooling.skips import SKIPS_FILE, Skip, SkipListError, load_skips
from tooling.tfplan import PlanExport

BUCKET = "google_storage_bucket.data-lake-landing"
SUBNET = "google_compute_subnetwork.workbench-subnet"


def _export(stack: str) -> PlanExport:
    return PlanExport(
        stack=stack,
        plan={},
        addresses={
            BUCKET: "gcp:storage/bucket:Bucket",
            SUBNET: "gcp:compute/subnetwork:Subnetwork",
        },
        no_twin=Counter({"pulumi:providers:gcp": 1}),
        planned=3,
    )


def _result(failed: list[Finding]) -> dict:
    passed = [Finding("CKV_GCP_29", "uniform access", BUCKET)]
    return {"passed": passed, "failed": failed, "resources": {BUCKET, SUBNET}}


LOGS = Finding("CKV_GCP_62", "access logs", BUCKET)
FLOW = Finding("CKV_GCP_26", "flow logs", SUBNET)


def test_a_finding_in_the_skip_list_is_skipped_others_fail():
    skip = Skip("CKV_GCP_62", BUCKET, "the log bucket itself cannot log into itself")
    verdict = judge(_export("staging"), _result([LOGS, FLOW]), [skip])
    assert verdict.skipped == [(LOGS, skip)]
    assert verdict.unjustified == [FLOW]
    assert len(verdict.passed) == 1
    text = render([verdict], [])
    assert "stack staging: 3 resources in the plan, 2 exported" in text
    assert "passed 1  failed 1  skipped 1" in text
    assert f"FAILED CKV_GCP_26 {SUBNET}: flow logs" in text


def test_a_skip_limited_to_one_stack_excuses_nothing_in_another():
    skip = Skip("CKV_GCP_62", BUCKET, "staging data is recreated from uploads", ("staging",))
    prod = judge(_export("prod"), _result([LOGS]), [skip])
    staging = judge(_export("staging"), _result([LOGS]), [skip])
    assert prod.unjustified == [LOGS] and staging.skipped == [(LOGS, skip)]
    assert stale_skips([prod, staging], [skip]) == []


def test_an_entry_that_matches_nothing_is_stale():
    fixed = Skip("CKV_GCP_26", SUBNET, "flow logs were turned on since, so this is stale")
    verdict = judge(_export("staging"), _result([]), [fixed])
    assert stale_skips([verdict], [fixed]) == [fixed]
    assert f"STALE skip CKV_GCP_26 {SUBNET}" in render([verdict], [fixed])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"check": "CKV_GCP_1", "resource": BUCKET}, "'reason' is missing"),
        ({"check": "GCP-1", "resource": BUCKET, "reason": "x" * 30}, "not a check id"),
        ({"check": "CKV_GCP_1", "resource": "bucket", "reason": "x" * 30}, "Terraform address"),
        ({"check": "CKV_GCP_1", "resource": BUCKET, "reason": "by design"}, "must say why"),
        ({"check": "CKV_GCP_1", "resource": BUCKET, "reason": "x" * 30, "why": 1}, "unknown key"),
        ({"check": "CKV_GCP_1", "resource": BUCKET, "reason": "x" * 30, "stacks": "prod"}, "list"),
    ],
)
def test_a_malformed_entry_is_refused_naming_entry_and_key(tmp_path, entry, message):
    path = tmp_path / "skips.yaml"
    path.write_text(json.dumps([entry]))
    with pytest.raises(SkipListError, match=rf"skips.yaml: entry 1: .*{message}"):
        load_skips(path)


def test_the_same_entry_twice_is_refused(tmp_path):
    entry = {"check": "CKV_GCP_62", "resource": BUCKET, "reason": "x" * 30}
    path = tmp_path / "skips.yaml"
    path.write_text(json.dumps([entry, entry]))
    with pytest.raises(SkipListError, match=r"entry 2: CKV_GCP_62 .* twice"):
        load_skips(path)


def test_the_committed_skip_list_is_well_formed():
    skips = load_skips(SKIPS_FILE)
    assert all(skip.applies_to(["staging", "prod"]) for skip in skips)


def test_security_page_is_current():
    """docs/security.md renders the skip list; regenerate with `make docs`."""
    committed = (PROJECT_ROOT / "docs" / "security.md").read_text()
    assert committed == security_reference(), "docs/security.md is stale: make docs"


def test_security_page_gives_every_skip_its_reason():
    page = security_reference()
    for skip in load_skips(SKIPS_FILE):
        assert f"| {skip.check} | `{skip.resource}` |" in page
        assert f"**Why:** {skip.reason}" in page


def test_checkovs_report_is_read_per_stack(tmp_path):
    """A stand-in executable prints checkov's JSON report shape for two plan files."""
    plans = {"staging": tmp_path / "tfplan-staging.json", "prod": tmp_path / "tfplan-prod.json"}

    def check(id_, plan, resource):
        return {"check_id": id_, "check_name": id_.lower(), "resource": resource,
                "file_path": f"/{plan.name}"}  # fmt: skip

    report = {
        "check_type": "terraform_plan",
        "results": {
            "passed_checks": [check("CKV_GCP_29", plans["staging"], BUCKET)],
            "failed_checks": [check("CKV_GCP_62", plans["prod"], BUCKET)],
        },
        "summary": {"passed": 1, "failed": 1, "resource_count": 4},
    }
    fake = tmp_path / "checkov"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(report)}\nEOF\nexit 1\n")
    fake.chmod(0o755)
    result = run_checkov(Path(fake), plans)
    assert result.resource_count == 4
    assert result.by_stack["staging"]["passed"] == [Finding("CKV_GCP_29", "ckv_gcp_29", BUCKET)]
    assert result.by_stack["prod"]["failed"] == [Finding("CKV_GCP_62", "ckv_gcp_62", BUCKET)]


def test_checkov_that_cannot_run_is_an_error_not_a_pass(tmp_path):
    fake = tmp_path / "checkov"
    fake.write_text("#!/bin/sh\necho 'no such framework' >&2\nexit 2\n")
    fake.chmod(0o755)
    with pytest.raises(RuntimeError, match="checkov failed \\(2\\): no such framework"):
        run_checkov(fake, {"staging": tmp_path / "tfplan-staging.json"})
