"""Training sized by the stack: CPU, memory and accelerator per task, typed in the stack's config,
applied with KFP's task setters, and in the compiled spec the schedule and CI run."""

from __future__ import annotations

import copy
import typing

import pytest

from pipeline_src.compile import compile_spec, spec_text
from pipeline_src.evaluation import evaluation_pipeline
from pipeline_src.sizing import task_names
from pipeline_src.training import training_pipeline
from stacks.config import (
    ConfigError,
    EvaluationTask,
    TaskResources,
    TrainingTask,
    parse_stack_config,
    stack_config_values,
)

IMAGE = "europe-west4-docker.pkg.dev/p/r/pipeline:abc123"


def executors(spec) -> dict[str, dict]:
    return {name: e["container"].get("resources") for name, e in
            spec["deploymentSpec"]["executors"].items()}  # fmt: skip


def test_config_names_exactly_the_tasks_of_each_pipeline():
    assert set(typing.get_args(TrainingTask)) == task_names(training_pipeline)
    assert set(typing.get_args(EvaluationTask)) == task_names(evaluation_pipeline)


def test_a_sized_task_gets_its_limits_in_the_spec_and_the_others_none():
    limits = {
        "train": TaskResources(cpu=8, memory_gb=32).limits(),
        "evaluate": TaskResources(
            memory_gb=20.5, accelerator="NVIDIA_L4", accelerator_count=2
        ).limits(),
    }
    resources = executors(compile_spec(IMAGE, limits=limits))
    assert resources.pop("exec-train") == {
        "cpuLimit": 8.0, "memoryLimit": 32.0, "resourceCpuLimit": "8",
        "resourceMemoryLimit": "32G",
    }  # fmt: skip
    assert resources.pop("exec-evaluate") == {
        "memoryLimit": 20.5, "resourceMemoryLimit": "20500M",
        "accelerator": {"type": "NVIDIA_L4", "count": "2", "resourceType": "NVIDIA_L4",
                        "resourceCount": "2"},
    }  # fmt: skip
    assert set(resources.values()) == {None}  # the default machine for every other task
    assert executors(compile_spec(IMAGE))["exec-train"] is None  # unsized: as before


def test_both_record_tasks_are_sized_and_the_spec_is_deterministic():
    limits = {"record_metrics": {"cpu": "1"}, "train": {"memory": "64G", "cpu": "16"}}
    reordered = dict(reversed(limits.items()))
    first, again = compile_spec(IMAGE, limits=limits), compile_spec(IMAGE, limits=reordered)
    assert spec_text(first) == spec_text(again)
    resources = executors(first)
    assert resources["exec-record-metrics"] == resources["exec-record-metrics-2"]
    assert resources["exec-record-metrics"]["resourceCpuLimit"] == "1"


def test_a_task_the_pipeline_lacks_is_refused_by_name():
    with pytest.raises(ValueError, match=r"no task trian in the tabular-mlops-training pipeline"):
        compile_spec(IMAGE, limits={"trian": {"cpu": "4"}})
    sized = compile_spec(IMAGE, limits={"new_data": {"cpu": "2"}}, pipeline=evaluation_pipeline)
    assert executors(sized)["exec-new-data"]["resourceCpuLimit"] == "2"


def test_the_stack_config_types_and_bounds_each_setting():
    values = copy.deepcopy(stack_config_values("prod"))
    training = values["tabular-mlops:platform"].setdefault("pipelines", {}).setdefault(
        "training", {})  # fmt: skip
    training["resources"] = {"train": {"cpu": 8, "memory_gb": 32}}
    config = parse_stack_config(values, source="Pulumi.prod.yaml")
    assert config.platform.pipelines.training.resources["train"].limits() == {
        "cpu": "8", "memory": "32G"}  # fmt: skip
    for bad, expected in [
        ({"trian": {"cpu": 8}}, "resources.trian"),
        ({"train": {"cpu": 0}}, "resources.train.cpu: must be > 0"),
        ({"train": {"memory_gb": 1000}}, "resources.train.memory_gb: must be <= 624"),
        ({"train": {"accelerator": "GTX_1080"}}, "resources.train.accelerator"),
        ({"train": {"gpus": 1}}, "resources.train.gpus: unknown key"),
    ]:
        training["resources"] = bad
        with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
            parse_stack_config(values, source="Pulumi.prod.yaml")


def test_the_growth_benchmark_extrapolates_along_fixed_plus_per_row_cost(capsys):
    from benchmarks.training_growth import report, rows_fitting

    small = {"rows": 100_000, "pipeline_s": 30.0, "peak_task_mb": 400, "tasks": {"train": 9.0},
             "ingest_s": 1.0}  # fmt: skip
    large = {**small, "rows": 1_000_000, "pipeline_s": 180.0, "peak_task_mb": 2_200}
    # 2 MB per 1,000 rows on top of 200 MB: 16 GB is reached at (16,384 - 200) / 0.002 rows.
    assert rows_fitting(small, large, 16) == 8_092_000
    report([small, large])
    out = capsys.readouterr().out
    assert "extrapolated to 10,000,000 rows: pipeline 28 min, largest task 19.7 GB" in out
    assert "a task outgrows e2-standard-4 (default) at about 8,092,000 rows" in out
    flat = {**large, "peak_task_mb": 400}
    assert rows_fitting(small, flat, 16) is None  # no growth measured: no claim
