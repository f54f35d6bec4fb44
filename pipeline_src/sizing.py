"""Each pipeline task's CPU, memory and accelerator from the stack's config, set with KFP's own
task setters (set_cpu_limit, set_memory_limit, set_accelerator_type/limit) as a pipeline is built.

A pipeline's graph is built when its function runs, so `sized_pipeline` runs it again with the
stack's limits in a context variable that `sized`, wrapped around every task, reads. The limits
become part of the compiled spec (each executor's `resources`), which stays deterministic: the same
code and the same config give the same bytes. No limits: the pipeline as it is, every task on
Vertex AI's default machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

Limits = Mapping[str, Mapping[str, Any]]
"""Per task (the component's function name): cpu ("4"), memory ("16G"), accelerator and
accelerator_count; stacks/config.py TaskResources.limits() gives them."""

_LIMITS: ContextVar[Limits | None] = ContextVar("task_limits", default=None)


def sized(task: Any) -> Any:
    """The task with its limits set, when the pipeline is being built with some."""
    limits = (_LIMITS.get() or {}).get(task.component_spec.name.replace("-", "_"), {})
    if "cpu" in limits:
        task.set_cpu_limit(limits["cpu"])
    if "memory" in limits:
        task.set_memory_limit(limits["memory"])
    if "accelerator" in limits:
        task.set_accelerator_type(limits["accelerator"])
        task.set_accelerator_limit(int(limits.get("accelerator_count", 1)))
    return task


def sized_pipeline(pipeline: Any, limits: Limits) -> Any:
    """The pipeline rebuilt with every task's limits (unknown task names are an error)."""
    if not limits:
        return pipeline
    from kfp import dsl

    tasks = task_names(pipeline)
    unknown = sorted(set(limits) - tasks)
    if unknown:
        raise ValueError(
            f"no task {', '.join(unknown)} in the {pipeline.name} pipeline "
            f"(its tasks: {', '.join(sorted(tasks))})"
        )
    token = _LIMITS.set(limits)
    try:
        return dsl.pipeline(name=pipeline.name, description=pipeline.description)(
            pipeline.pipeline_func
        )
    finally:
        _LIMITS.reset(token)


def task_names(pipeline: Any) -> set[str]:
    """The component names of the pipeline's tasks (nested branches' included), as config
    names them: `record-metrics` is `record_metrics`."""
    return {
        re.sub(r"-\d+$", "", name.removeprefix("comp-")).replace("-", "_")
        for name in pipeline.pipeline_spec.components
        if not name.startswith(("comp-condition-", "comp-for-loop-", "comp-exit-handler-"))
    }
