"""No service-account key, HMAC key or API key anywhere: every plan, the bootstrap's included.

CI authenticates through Workload Identity Federation (resources/ci.py); new organisations forbid
key creation by policy (iam.disableServiceAccountKeyCreation), which `make doctor` checks.
"""

from __future__ import annotations

import pytest

KEY_TYPES = {
    "gcp:serviceaccount/key:Key",
    "gcp:storage/hmacKey:HmacKey",
    "gcp:apikeys/key:Key",
    # A key stored as a repository secret would be the same thing one step removed.
    "github:index/actionsSecret:ActionsSecret",
    "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret",
}


@pytest.fixture
def every_plan(stack_records, first_run, wired):
    return {**stack_records, "bootstrap": first_run, "bootstrap (wired)": wired}


def test_no_plan_creates_a_key(every_plan):
    assert set(every_plan) == {"staging", "prod", "bootstrap", "bootstrap (wired)"}
    for name, record in every_plan.items():
        assert record.resources, name
        keys = [r.name for r in record.resources if r.type in KEY_TYPES]
        assert keys == [], f"{name} creates keys: {keys}"
        outputs = repr(record.outputs)
        assert "privateKey" not in outputs and "BEGIN PRIVATE KEY" not in outputs, name
