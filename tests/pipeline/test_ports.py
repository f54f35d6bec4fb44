"""The pipelines choose their backend once, behind ports (pipeline_src/ports.py).

Checked on the mechanism, not on names: no component body and no pipeline signature can choose a
backend, whatever it is called — no parameter feeds a choice, no body reads the environment or
imports by a computed name, the package never imports `local`, and the only place the run's
backend is resolved is `pipeline_src.ports.backend`, which knows nothing of `local`.
"""

from __future__ import annotations

import ast
import inspect
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from local.adapters import LocalBackend, backend_variables
from pipeline_src import ports
from pipeline_src.cloud import CloudBackend
from pipeline_src.evaluation import COMPONENTS as EVALUATION_COMPONENTS
from pipeline_src.evaluation import evaluation_pipeline
from pipeline_src.image import HERE as PACKAGE
from pipeline_src.scoring import COMPONENTS as SCORING_COMPONENTS
from pipeline_src.scoring import scoring_pipeline
from pipeline_src.training import COMPONENTS as TRAINING_COMPONENTS
from pipeline_src.training import training_pipeline

COMPONENTS = {
    c.name: c for c in (*TRAINING_COMPONENTS, *EVALUATION_COMPONENTS, *SCORING_COMPONENTS)
}
PIPELINES = (training_pipeline, evaluation_pipeline, scoring_pipeline)
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
OUTSIDE_THE_IMAGE = ("local", "contracts", "stacks", "tooling", "resources")
# What would let code pick a backend at run time other than by asking the port.
CHOOSERS = {"environ", "getenv", "putenv", "import_module", "__import__", "find_spec", "modules"}


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module or "")
    return found


def _names(tree: ast.AST) -> set[str]:
    """Every name and attribute a piece of code mentions."""
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }


def test_no_local_root_anywhere_in_the_package():
    files = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert files and len(files) > len(SOURCES)  # READMEs, the Dockerfile, … are read too
    offenders = [p for p in files if "local_root" in p.read_text(encoding="utf-8", errors="ignore")]
    assert offenders == []


def test_the_package_never_imports_the_project_packages_the_image_lacks():
    for path in SOURCES:
        imported = _imports(ast.parse(path.read_text(encoding="utf-8")))
        outside = {m for m in imported if m.split(".")[0] in OUTSIDE_THE_IMAGE}
        assert not outside, f"{path.relative_to(PACKAGE.parent)} imports {sorted(outside)}"


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_no_component_body_chooses_a_backend(name):
    function = COMPONENTS[name].python_func
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    choosers = _names(tree) & CHOOSERS
    assert not choosers, f"{name} reaches for {sorted(choosers)}: ask pipeline_src.ports instead"
    assert not {m for m in _imports(tree) if m.split(".")[0] in OUTSIDE_THE_IMAGE}
    # Its inputs are data and places (project, dataset, endpoint …); none names a backend.
    parameters = set(inspect.signature(function).parameters)
    assert not {p for p in parameters if "local" in p or "backend" in p}, parameters


def test_components_reach_the_outside_through_the_ports_alone():
    """Nothing a component runs can pick an adapter or a client itself: the component modules
    and the pipelines import no cloud client, no adapter module and no local engine."""
    adapters = ("google", "pipeline_src.cloud", "duckdb", "local")
    modules = [*sorted((PACKAGE / "components").glob("*.py"))]
    modules += [PACKAGE / f"{name}.py" for name in ("training", "evaluation", "scoring")]
    for path in modules:
        imported = _imports(ast.parse(path.read_text(encoding="utf-8")))
        direct = {m for m in imported if m == "google" or m.startswith(adapters)}
        assert not direct, f"{path.name} imports {sorted(direct)}: ask pipeline_src.ports"
    asking = {
        c.python_func.__name__
        for c in COMPONENTS.values()
        if "backend()" in inspect.getsource(c.python_func)
    }
    assert asking == {
        "extract", "gate", "register", "record_metrics", "deploy",  # training
        "new_data", "record_skip", "batch_predict", "decide_and_trigger", "evaluation_report",
        "publish",  # training and evaluation
        "select_rows", "score_rows",  # scoring
    }  # fmt: skip


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: p.name)
def test_no_pipeline_signature_chooses_a_backend(pipeline):
    parameters = set(pipeline.component_spec.inputs or {})
    assert parameters and not {p for p in parameters if "local" in p or "backend" in p}
    tree = ast.parse(textwrap.dedent(inspect.getsource(pipeline.pipeline_func)))
    assert not _names(tree) & CHOOSERS


def test_only_the_resolver_reads_the_backend_variable_and_it_knows_nothing_of_local():
    readers = [
        p.relative_to(PACKAGE).as_posix()
        for p in SOURCES
        if "BACKEND_VARIABLE" in p.read_text(encoding="utf-8")
        or "PIPELINE_BACKEND" in p.read_text()
    ]
    assert readers == ["ports.py"]
    resolver = inspect.getsource(ports.backend)
    assert "local" not in resolver.lower().replace("pipeline_backend", "")


def test_the_deployed_backend_is_the_default_and_a_launcher_names_another(monkeypatch, tmp_path):
    monkeypatch.delenv(ports.BACKEND_VARIABLE, raising=False)
    assert isinstance(ports.backend(), CloudBackend)
    for name, value in backend_variables(tmp_path).items():
        monkeypatch.setenv(name, value)
    chosen = ports.backend()
    assert isinstance(chosen, LocalBackend) and chosen.env.root == tmp_path.resolve()
    monkeypatch.setenv(ports.BACKEND_VARIABLE, "local.adapters:LocalBackend")
    with pytest.raises(ValueError, match="must be a JSON object naming an importable"):
        ports.backend()


def test_every_adapter_implements_its_port(tmp_path):
    """Each backend offers every port, each adapter every method of its port."""
    places = ("p", "l")
    made = {
        backend: {
            ports.Warehouse: backend.warehouse(*places, "ds", "test"),
            ports.ModelRegistry: backend.registry(*places),
            ports.Endpoints: backend.endpoints(*places),
            ports.BatchPrediction: backend.batch_prediction(*places),
            ports.PipelineRuns: backend.pipeline_runs(*places),
            ports.ArtifactStorage: backend.artifacts(),
        }
        for backend in (CloudBackend(), LocalBackend(str(tmp_path)))
    }
    for backend, adapters in made.items():
        for port, adapter in adapters.items():
            wanted = {n for n in vars(port) if not n.startswith("_")}
            assert wanted and wanted <= set(dir(adapter)), (type(backend).__name__, port)


def test_component_modules_import_from_the_package_alone(tmp_path):
    """What the image holds (this package, the pinned libraries) is enough to load every module a
    component body imports, in a task's kfp runtime (`_KFP_RUNTIME=true`: no compile-time kfp),
    and loading them never reaches the project's other packages."""
    shutil.copytree(
        PACKAGE, tmp_path / "pipeline_src", ignore=shutil.ignore_patterns("__pycache__")
    )
    modules = sorted(
        {"pipeline_src.ports", "pipeline_src.cloud"}
        | {f"pipeline_src.cloud.{p.stem}" for p in (PACKAGE / "cloud").glob("[!_]*.py")}
        | {c.python_func.__module__ for c in COMPONENTS.values()}
    )
    program = (
        "import importlib, sys\n"
        "from kfp import dsl\n"
        "assert not hasattr(dsl, 'component')\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"leaked = sorted(m for m in sys.modules if m.split('.')[0] in {OUTSIDE_THE_IMAGE!r})\n"
        "assert not leaked, leaked\n"
        "assert all(m.__file__.startswith(sys.argv[1]) for n, m in sys.modules.items()"
        " if n.startswith('pipeline_src'))\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment["_KFP_RUNTIME"] = "true"  # as the component's command runs the executor
    done = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(tmp_path / "pipeline_src" / "ports.py").is_file()
