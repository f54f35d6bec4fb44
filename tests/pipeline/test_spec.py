"""The compiled spec (deterministic, on the pinned image), the image's pins, and what each
component carries to Vertex AI (its body, which imports only the pipeline package the image
holds)."""

from __future__ import annotations

import builtins
import dis
import os
import re
import subprocess
import sys
import types

import pytest

import pipeline_src.image as image
from pipeline_src.compile import compile_spec, parameter_names
from pipeline_src.components.common import PACKAGES
from pipeline_src.training import COMPONENTS, training_pipeline
from stacks.config import PROJECT_ROOT

IMAGE = "europe-west4-docker.pkg.dev/acme-mlops-staging/pipelines/pipeline:deps-0123456789ab"
OUTSIDE_THE_IMAGE = {"local", "contracts", "stacks", "tooling", "resources"}
"""The project's packages the pipeline image does not carry (it carries pipeline_src)."""


def embedded_source(component) -> str:
    """The program a lightweight component runs: `sh -ec <script> <source>`."""
    return component.component_spec.implementation.container.command[-1]


def operands(function: types.FunctionType, opname: str) -> set[str]:
    """The arguments of one kind of bytecode instruction in a function and those nested in it:
    LOAD_GLOBAL gives the module-level names it reads, IMPORT_NAME the modules it imports."""
    found, codes = set(), [function.__code__]
    while codes:
        code = codes.pop()
        found |= {i.argval for i in dis.get_instructions(code) if i.opname == opname}
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return found


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.name)
def test_component_source_is_self_contained(component):
    """Every name the body uses is defined in the embedded source, built in or imported inside
    it; it imports nothing of the project the image lacks."""
    namespace: dict = {}
    exec(compile(embedded_source(component), "ephemeral_component.py", "exec"), namespace)
    own = [
        value
        for value in namespace.values()
        if isinstance(value, types.FunctionType) and value.__globals__ is namespace
    ]
    assert component.component_spec.name.replace("-", "_") in {f.__name__ for f in own}
    for function in own:
        missing = {
            name
            for name in operands(function, "LOAD_GLOBAL")
            if name not in namespace and not hasattr(builtins, name)
        }
        assert not missing, f"{function.__name__} uses {missing}, not embedded in {component.name}"
        # The image carries pipeline_src only; the backend comes from pipeline_src.ports.
        outside = {
            m for m in operands(function, "IMPORT_NAME") if m.split(".")[0] in OUTSIDE_THE_IMAGE
        }
        assert not outside, (function.__name__, outside)


def test_components_install_nothing_and_declare_packages_the_image_pins():
    pins = image.pinned_packages()
    for component in COMPONENTS:
        container = component.component_spec.implementation.container
        assert "pip install" not in " ".join(container.command)
        assert container.image == image.PLACEHOLDER_IMAGE
        declared = PACKAGES[component.python_func.__name__]
        assert declared and all(pins[image.normalise(p)] == v for p, v in declared.items())


def test_image_pins_are_the_lock_pins():
    lock = image._pins(image.LOCK)
    for name, version in image.pinned_packages().items():
        assert lock.get(name) == version, f"{name}: image {version}, lock {lock.get(name)}"


def test_dockerfile_builds_from_a_pinned_base_with_the_lock_as_constraints():
    dockerfile = image.DOCKERFILE.read_text()
    base = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM"))
    assert ":" in base and not base.endswith(":latest")
    assert "-c /tmp/lock.txt" in dockerfile and "COPY requirements.txt /tmp/lock.txt" in dockerfile
    assert "pip check" in dockerfile


def test_image_tag_follows_what_goes_into_the_image(monkeypatch, tmp_path):
    tag = image.image_tag()
    assert tag == image.image_tag() and tag.startswith("deps-")
    changed = tmp_path / "requirements.txt"
    changed.write_text(image.REQUIREMENTS.read_text() + "duckdb==2.0.0\n")
    monkeypatch.setattr(image, "REQUIREMENTS", changed)
    assert image.image_tag() != tag
    assert image.image_uri("europe-west4-docker.pkg.dev/p/r/").endswith(
        f"/r/pipeline:{image.image_tag()}"
    )


def test_spec_runs_every_component_on_the_given_image():
    spec = compile_spec(IMAGE)
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE}
    # One task per branch: register in two, record and publish in all three.
    assert len(spec["deploymentSpec"]["executors"]) == len(COMPONENTS) + 5


@pytest.mark.parametrize(
    "bad", ["", image.PLACEHOLDER_IMAGE, "registry/pipeline:latest", "registry/pipeline"]
)
def test_compile_refuses_an_unpinned_or_missing_image(bad):
    with pytest.raises(ValueError):
        compile_spec(bad)


def test_spec_gates_registration_and_deployment_on_the_decision():
    spec = compile_spec(IMAGE)
    branches = spec["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    tasks = {
        task["triggerPolicy"]["condition"]: {
            re.sub(r"-\d+$", "", name)
            for name in spec["components"][f"comp-{branch}"]["dag"]["tasks"]
        }
        for branch, task in branches.items()
    }
    decided = "inputs.parameter_values['pipelinechannel--gate-decision'] == "
    deploy, register, keep = tasks
    # Deployment only on "deploy": a model registered for promotion never reaches the endpoint.
    assert deploy == f"{decided}'deploy'"
    assert tasks[deploy] == {"register", "deploy", "record-metrics", "publish"}
    assert register.endswith(f"&& {decided}'register'") and f"!({decided}'deploy')" in register
    assert tasks[register] == {"register", "record-metrics", "publish"}
    assert tasks[keep] == {"record-metrics", "publish"}
    # The run's report is the one its branch published, headed by the decision.
    report = spec["root"]["dag"]["outputs"]["parameters"]["report"]["valueFromParameter"]
    assert report["producerSubtask"] == "condition-branches-1"


def test_spec_parameters_are_the_pipeline_signature():
    spec = compile_spec(IMAGE)
    declared = spec["root"]["inputDefinitions"]["parameters"]
    assert set(declared) == parameter_names()
    assert declared["contract"]["parameterType"] == "STRUCT"
    required = {n for n, p in declared.items() if not p.get("isOptional")}
    assert required == {
        "contract", "project", "location", "bq_location", "dataset", "table", "endpoint",
        "model_id", "model_display_name", "models_uri", "serving_image", "lifecycle_uri",
    }  # fmt: skip
    assert training_pipeline.name == "tabular-mlops-training"


def test_compiling_is_deterministic_across_processes(tmp_path):
    """The same code gives the same bytes, whatever the interpreter's hash seed."""
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / f"spec-{seed}.yaml"
        subprocess.run(
            [sys.executable, "-m", "pipeline_src.compile", "--image", IMAGE, "--out", str(out)],
            cwd=PROJECT_ROOT, env={**os.environ, "PYTHONHASHSEED": seed}, check=True,
            capture_output=True,
        )  # fmt: skip
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert IMAGE.encode() in outputs[0] and b"set-by-compile" not in outputs[0]


@pytest.mark.parametrize(
    ("pipeline", "name"),
    [
        ("training", "tabular-mlops-training"),
        ("evaluation", "tabular-mlops-evaluation"),
        ("scoring", "tabular-mlops-scoring"),
    ],
)
def test_the_compile_command_writes_each_pipeline_for_an_image(tmp_path, pipeline, name):
    """What `make compile` (and CI) runs for each stack's image."""
    import yaml

    from pipeline_src.compile import main

    out = tmp_path / f"{pipeline}.yaml"
    assert main(["--image", IMAGE, "--pipeline", pipeline, "--out", str(out)]) == 0
    spec = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert spec["pipelineInfo"]["name"] == name
    executors = spec["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {IMAGE}
