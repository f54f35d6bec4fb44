"""The generated configuration reference: current, and complete."""

from __future__ import annotations

from stacks.config import PROJECT_ROOT, StackConfig
from tooling.config_reference import configuration_reference


def test_configuration_reference_is_current():
    """docs/configuration.md is generated from the model; regenerate with `make docs`."""
    committed = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    assert committed == configuration_reference(), "docs/configuration.md is stale: make docs"


def test_reference_lists_every_leaf_key():
    reference = configuration_reference()
    for key in ("tabular-mlops:project", "tabular-mlops:platform.serving.min_replicas"):
        assert f"`{key}`" in reference
    assert StackConfig.model_fields.keys() == {"project", "region", "platform"}
