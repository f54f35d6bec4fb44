"""Compile the training pipeline to the spec Vertex AI runs, with the stack's pipeline image.

    python -m pipeline_src.compile --image REGION-docker.pkg.dev/PROJECT/REPO/pipeline:TAG \
        [--pipeline training|evaluation|scoring] [--out build/training-pipeline.yaml]

The spec is deterministic: the same code and image give byte-identical output (keys sorted, no
timestamps), so the schedule Pulumi creates changes exactly when the pipeline's code does. The
platform compiles it at preview time with the stack's typed parameters (contract, gate,
hyperparameters) as the spec's defaults (resources/pipelines.py); CI compiles and submits it
(submit.py).
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kfp
import yaml
from kfp import compiler

from pipeline_src.image import PLACEHOLDER_IMAGE, PROJECT_ROOT
from pipeline_src.sizing import Limits, sized_pipeline
from pipeline_src.training import training_pipeline

DEFAULT_OUT = PROJECT_ROOT / "build" / "training-pipeline.yaml"


def compile_spec(
    image: str,
    defaults: Mapping[str, Any] | None = None,
    pipeline: Any = training_pipeline,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """The pipeline spec (a dict) with every component running on `image`.

    `defaults` become the defaults of those pipeline parameters in the spec (checked and typed by
    `typed_arguments`), so a run that does not pass them uses them. `pipeline` is the training
    pipeline unless another is named (the evaluation pipeline, pipeline_src/evaluation.py).
    `limits` are CPU, memory and accelerator per task (pipeline_src/sizing.py), from the stack.
    """
    if not image or image == PLACEHOLDER_IMAGE:
        raise ValueError("compile needs the pipeline image the components run on (--image)")
    if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
        raise ValueError(f"image {image!r} must carry a pinned tag or digest, not latest")
    spec = copy.deepcopy(_compiled(pipeline, _frozen(limits or {})))
    for executor in spec["deploymentSpec"]["executors"].values():
        executor["container"]["image"] = image
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    for name, value in typed_arguments(defaults or {}, pipeline).items():
        parameters[name]["defaultValue"] = value
        parameters[name]["isOptional"] = True
    return spec


SPEC_CACHE = PROJECT_ROOT / "build" / "compiled-specs"
"""Compiled specs kept between runs, keyed by the code version (a digest of the pipeline's code),
kfp's version, the pipeline and its limits: the offline plan compiles only what changed."""


@functools.cache
def _compiled(pipeline: Any, limits: tuple) -> dict[str, Any]:
    """kfp's compilation, once per process and set of limits (a stack plan compiles for each
    stack's image; stacks sized alike share one compilation), and once per code version on disk.
    Always called with both arguments positionally: the cache keys on how it is called."""
    key = json.dumps([_code_key(), kfp.__version__, pipeline.name, limits])
    path = SPEC_CACHE / f"{pipeline.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    sized = sized_pipeline(pipeline, {task: dict(values) for task, values in limits})
    with tempfile.TemporaryDirectory() as scratch:
        compiled = Path(scratch) / "spec.yaml"
        compiler.Compiler().compile(sized, str(compiled))
        spec = yaml.load(compiled.read_text(encoding="utf-8"), Loader=_LOADER)
    try:  # best effort: a read-only checkout only compiles every time
        SPEC_CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(spec), encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        pass
    return spec


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when the wheel has it


@functools.cache
def _code_key() -> str:
    return code_version()


def _frozen(limits: Limits) -> tuple:
    """Limits as a cache key: the same limits, whatever their order, are the same key."""
    return tuple(sorted((task, tuple(sorted(values.items()))) for task, values in limits.items()))


# Each parameter type of a compiled spec: the Python values it takes, and how to say so.
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "STRING": ((str,), "a string"),
    "NUMBER_INTEGER": ((int,), "an integer"),
    "NUMBER_DOUBLE": ((float, int), "a number"),
    "BOOLEAN": ((bool,), "true or false"),
    "STRUCT": ((dict,), "a mapping"),
    "LIST": ((list,), "a list"),
}


def typed_arguments(values: Mapping[str, Any], pipeline: Any = training_pipeline) -> dict[str, Any]:
    """Pipeline arguments checked against the pipeline's parameters and their types.

    Raises ValueError naming every unknown parameter and every value of the wrong type; numbers
    are converted where that loses nothing (2.0 -> 2 for an integer, 1 -> 1.0 for a double).
    """
    declared = _compiled(pipeline, ())["root"]["inputDefinitions"]["parameters"]
    unknown = sorted(set(values) - set(declared))
    problems = []
    if unknown:
        problems.append(
            f"not parameters of the {pipeline.name.removeprefix('tabular-mlops-')} pipeline: "
            f"{', '.join(unknown)} "
            f"(known: {', '.join(sorted(declared))})"
        )
    typed = {}
    for name, value in values.items():
        if name not in declared:
            continue
        kind = declared[name]["parameterType"]
        if kind == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
            value = int(value)
        accepted, described = _TYPES[kind]
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            problems.append(f"{name} must be {described}, got {value!r}")
            continue
        typed[name] = float(value) if kind == "NUMBER_DOUBLE" else value
    if problems:
        raise ValueError("; ".join(problems))
    return typed


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """`NAME=VALUE` pairs as pipeline arguments (values read as YAML: 0.05, 200, true, text)."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--param expects NAME=VALUE, got {pair!r}")
        params[name] = yaml.safe_load(value)  # 0.05 -> float, 200 -> int, text stays text
    return params


def spec_text(spec: dict[str, Any]) -> str:
    """The spec as YAML with sorted keys: stable bytes for the same spec."""
    return yaml.safe_dump(spec, sort_keys=True, width=100, allow_unicode=True)


def write_spec(
    image: str,
    out: Path = DEFAULT_OUT,
    pipeline: Any = training_pipeline,
    limits: Limits | None = None,
) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = compile_spec(image, pipeline=pipeline, limits=limits)
    out.write_text(spec_text(spec), encoding="utf-8")
    return out


def parameter_names(pipeline: Any = training_pipeline) -> set[str]:
    """The pipeline's parameters (what a schedule, CI or a local run may pass)."""
    return set(_compiled(pipeline, ())["root"]["inputDefinitions"]["parameters"])


# What a trained model depends on: the pipeline's code, the contracts and the pinned packages.
CODE_PATHS = ("pipeline_src", "contracts", "requirements.txt")


def code_version(root: Path = PROJECT_ROOT) -> str:
    """A digest of the pipeline's code (`src-<12 hex>`), for model labels and schedule parameters.

    The content of every file under CODE_PATHS (caches left out), never the git history: CI
    checks out one commit (`fetch-depth: 1`), where `git log -- <paths>` names HEAD whatever
    changed, so every merge would change both schedules. The same code gives the same version
    in any checkout, shallow or not, committed or not.
    """
    digest = hashlib.sha256()
    for path in _code_files(root):
        relative = path.relative_to(root).as_posix()
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"src-{digest.hexdigest()[:12]}"


def _code_files(root: Path) -> list[Path]:
    files = []
    for name in CODE_PATHS:
        path = root / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [
            f
            for f in candidates
            if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".pyo")
        ]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline_src.compile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--image", required=True, help="the pipeline image, with a pinned tag")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the spec goes")
    parser.add_argument(
        "--pipeline",
        choices=("training", "evaluation", "scoring"),
        default="training",
        help="which one",
    )
    args = parser.parse_args(argv)
    if args.pipeline == "evaluation":
        from pipeline_src.evaluation import evaluation_pipeline as pipeline
    elif args.pipeline == "scoring":
        from pipeline_src.scoring import scoring_pipeline as pipeline
    else:
        pipeline = training_pipeline
    print(write_spec(args.image, args.out, pipeline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
