"""The typed stack config: committed stacks validate, bad ones fail with a clear message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from stacks.config import (
    PROJECT_ROOT,
    ConfigError,
    load_stack_file,
    parse_stack_config,
    stack_config_values,
)


def _values(stack: str = "prod") -> dict:
    return copy.deepcopy(stack_config_values(stack))


def _error(values: dict, source: str = "Pulumi.prod.yaml") -> str:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(values, source=source)
    return str(caught.value)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_committed_stacks_validate(stack):
    config = load_stack_file(PROJECT_ROOT / f"Pulumi.{stack}.yaml")
    assert config.project.endswith(stack)
    assert config.platform.serving.min_replicas >= 1


def test_stacks_differ_only_in_values_not_in_keys():
    """The same keys in both stack files: an environment is data, not a different program."""

    def keys(node, prefix=""):
        if isinstance(node, dict):
            return {k for key, v in node.items() for k in keys(v, f"{prefix}.{key}")} | {prefix}
        return {prefix}

    staging, prod = _values("staging"), _values("prod")
    only_staging = keys(staging) - keys(prod)
    only_prod = keys(prod) - keys(staging)
    # Workbench is off in prod; its other keys are meaningless there.
    assert {k for k in only_staging if ".workbench." not in k} == set()
    assert only_prod == set()


def test_error_names_file_key_and_expectation():
    values = _values()
    values["tabular-mlops:platform"]["serving"]["min_replicas"] = 0
    assert _error(values) == (
        "Pulumi.prod.yaml: tabular-mlops:platform.serving.min_replicas: must be >= 1, got 0"
    )


def test_unknown_key_is_rejected_with_its_path():
    values = _values()
    values["tabular-mlops:platform"]["serving"]["min_replica"] = 2
    message = _error(values)
    assert "Pulumi.prod.yaml: tabular-mlops:platform.serving.min_replica: unknown key" in message


def test_unknown_top_level_key_in_namespace_is_rejected():
    values = _values()
    values["tabular-mlops:regoin"] = "europe-west1"
    assert "tabular-mlops:regoin: unknown key" in _error(values)


def test_other_namespaces_are_left_to_their_owners():
    values = _values()
    values["gcp:project"] = "somewhere-else"
    assert parse_stack_config(values, source="x").project == "acme-mlops-prod"


def test_missing_project_is_reported():
    values = _values()
    del values["tabular-mlops:project"]
    assert "Pulumi.prod.yaml: tabular-mlops:project: required, not set" in _error(values)


def test_wrong_type_is_reported():
    values = _values()
    values["tabular-mlops:platform"]["ingestion"]["max_instances"] = "many"
    assert (
        "tabular-mlops:platform.ingestion.max_instances: must be an integer, got 'many'"
        in _error(values)
    )


def test_every_problem_is_reported_at_once():
    values = _values()
    values["tabular-mlops:platform"]["serving"]["min_replicas"] = 0
    values["tabular-mlops:region"] = "Europe West"
    lines = _error(values).splitlines()
    assert len(lines) == 2
    assert all(line.startswith("Pulumi.prod.yaml: tabular-mlops:") for line in lines)


def test_cross_field_rules():
    values = _values()
    values["tabular-mlops:platform"]["serving"]["min_replicas"] = 6
    assert "min_replicas (6) exceeds max_replicas (5)" in _error(values)

    values = _values("staging")
    values["tabular-mlops:platform"]["workbench"]["owner"] = None
    assert "tabular-mlops:platform.workbench: owner is required when the workbench is enabled" in (
        _error(values, "Pulumi.staging.yaml")
    )


def test_public_members_are_refused():
    values = _values()
    values["tabular-mlops:platform"]["access"] = {"stakeholders": ["allUsers"]}
    assert (
        "tabular-mlops:platform.access.stakeholders[0]: allUsers would make the resource public"
        in _error(values)
    )


def test_labels_follow_gcp_rules():
    values = _values()
    values["tabular-mlops:platform"]["labels"] = {"Team": "ML"}
    assert "label key 'Team' must be lowercase" in _error(values)


def test_misspelt_namespace_is_an_error_with_a_suggestion():
    """`tabular-mlop:platform:` must not leave the whole platform silently on its defaults."""
    values = _values("staging")
    values["tabular-mlop:platform"] = values.pop("tabular-mlops:platform")
    assert _error(values, source="Pulumi.staging.yaml") == (
        "Pulumi.staging.yaml: tabular-mlop:platform: unknown namespace 'tabular-mlop'; "
        "did you mean 'tabular-mlops'? (known: tabular-mlops, gcp, pulumi)"
    )


def test_keys_without_namespace_and_unknown_provider_keys_are_errors():
    values = _values()
    values["region"] = "europe-west1"
    values["gcp:projcet"] = "acme-mlops-prod"
    message = _error(values)
    assert "Pulumi.prod.yaml: region: has no namespace; did you mean 'tabular-mlops:region'?" in (
        message
    )
    assert "gcp:projcet: not a setting of the Google provider; did you mean 'gcp:project'?" in (
        message
    )


def test_unknown_keys_suggest_the_nearest_known_key_at_any_depth():
    values = _values()
    platform = values["tabular-mlops:platform"]
    platform["serving"]["max_replica"] = 3
    platform["pipelines"]["training"]["schedule"]["crn"] = "0 3 * * 1"
    message = _error(values)
    assert "platform.serving.max_replica: unknown key; did you mean 'max_replicas'?" in message
    assert "training.schedule.crn: unknown key; did you mean 'cron'?" in message


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path):
    bad = tmp_path / "Pulumi.dev.yaml"
    bad.write_text("config:\n  tabular-mlops:project: a\n tabular-mlops:region: b\n")
    with pytest.raises(ConfigError) as caught:
        load_stack_file(bad)
    assert str(caught.value).startswith("Pulumi.dev.yaml:3:2: not valid YAML: ")
    assert "\n" not in str(caught.value)


def test_values_as_pulumi_passes_them():
    """Pulumi hands structured config to the program as JSON text; both forms validate alike."""
    import json

    values = _values()
    as_text = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()}
    assert parse_stack_config(as_text, "x") == parse_stack_config(values, "x")


def test_missing_contract_file_is_reported():
    values = _values()
    values["tabular-mlops:platform"]["warehouse"]["contract"] = "contracts/nope.yaml"
    assert "contract file 'contracts/nope.yaml' does not exist" in _error(values)


def test_bad_stack_file(tmp_path: Path):
    bad = tmp_path / "Pulumi.dev.yaml"
    bad.write_text("config: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"Pulumi.dev.yaml: has no `config:` mapping"):
        load_stack_file(bad)
    with pytest.raises(ConfigError, match=r"Pulumi.none.yaml: no such stack file \(stacks: dev\)"):
        load_stack_file(tmp_path / "Pulumi.none.yaml")


@pytest.mark.parametrize(
    ("hyperparameters", "problem"),
    [
        ({"lerning_rate": 0.1}, "not tunable: lerning_rate (tunable: l2_regularization"),
        ({"endpoint": "elsewhere"}, "not tunable: endpoint"),
        ({"max_iter": "many"}, "max_iter must be an integer, got 'many'"),
    ],
)
def test_bad_hyperparameters_name_the_stack_file_and_key(hyperparameters, problem):
    """Checked at the edge with the rest of the config, against the training pipeline's own
    parameters and their types."""
    values = _values("staging")
    values["tabular-mlops:platform"]["pipelines"]["training"]["hyperparameters"] = hyperparameters
    message = _error(values, source="Pulumi.staging.yaml")
    assert (
        "Pulumi.staging.yaml: tabular-mlops:platform.pipelines.training.hyperparameters:" in message
    )
    assert problem in message


def test_hyperparameters_take_the_pipeline_parameters_types_at_the_edge():
    values = _values("staging")
    training = values["tabular-mlops:platform"]["pipelines"]["training"]
    training["hyperparameters"] = {"max_iter": 300.0, "learning_rate": 1}
    tuned = parse_stack_config(values, "Pulumi.staging.yaml").platform.pipelines.training
    assert tuned.hyperparameters == {"max_iter": 300, "learning_rate": 1.0}
    assert isinstance(tuned.hyperparameters["max_iter"], int)
    assert isinstance(tuned.hyperparameters["learning_rate"], float)
