"""Naming rules: unique, valid and deterministic names; labels that carry the stack."""

from __future__ import annotations

import re

import pytest

from stacks.naming import Naming


@pytest.fixture
def naming() -> Naming:
    return Naming("acme-mlops-prod", "prod", {"team": "ml-platform"})


def test_bucket_names_are_unique_per_project_and_stack(naming):
    other_stack = Naming("acme-mlops-prod", "staging")
    other_project = Naming("acme-mlops-dev", "prod")
    names = {n.bucket("landing") for n in (naming, other_stack, other_project)}
    assert len(names) == 3
    assert naming.bucket("landing") == "acme-mlops-prod-prod-landing"


def test_bucket_names_are_valid_even_when_long():
    long = Naming("a" * 30, "feature-branch-with-a-long-name")
    name = long.bucket("quarantine")
    assert len(name) <= 63
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", name)
    # Truncation keeps names distinct.
    assert long.bucket("quarantine") != long.bucket("quarantine2")
    # Deterministic: the same inputs give the same name (no timestamps, no randomness).
    assert name == Naming("a" * 30, "feature-branch-with-a-long-name").bucket("quarantine")


def test_bigquery_ids_use_underscores(naming):
    assert naming.dataset_id("tabular_mlops") == "tabular_mlops_prod"
    assert Naming("p-roject1", "dev-1").dataset_id("tabular_mlops") == "tabular_mlops_dev_1"
    assert naming.bq_id("1st-table") == "_1st_table"


def test_service_account_ids_fit_gcp_rules(naming):
    for workload in ("fn", "ingest-function-runtime-identity", "pipelines"):
        account = naming.account_id(workload)
        assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account), account


def test_labels_are_lowercase_and_carry_the_stack():
    labels = Naming("acme-mlops-prod", "Prod", {"team": "ml-platform"}).labels
    assert labels == {
        "team": "ml-platform",
        "app": "tabular-mlops",
        "stack": "prod",
        "managed-by": "pulumi",
    }
    assert all(k == k.lower() and v == v.lower() for k, v in labels.items())


def test_platform_labels_win_over_config_labels():
    labels = Naming("acme-mlops-prod", "prod", {"stack": "something-else"}).labels
    assert labels["stack"] == "prod"


def test_resource_names_respect_limits(naming):
    assert naming.resource("ingest") == "tabular-mlops-prod-ingest"
    assert len(naming.resource("x" * 80, limit=49)) <= 49
