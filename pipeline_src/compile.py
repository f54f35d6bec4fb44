"""Compile the training pipeline to the spec Vertex AI runs, with the stack's pipeline image.

    python -m pipeline_src.compile --image REGION-docker.pkg.dev/PROJECT/REPO/pipeline:TAG \
        [--out build/training-pipeline.yaml]

The spec is deterministic: the same code and image give byte-identical output (keys sorted, no
timestamps), so the schedule Pulumi creates changes exactly when the pipeline's code does. The
schedule compiles it at preview time (resources/pipelines.py); CI compiles and submits it
(submit.py).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler

from pipeline_src.image import PLACEHOLDER_IMAGE, PROJECT_ROOT
from pipeline_src.training import training_pipeline

DEFAULT_OUT = PROJECT_ROOT / "build" / "training-pipeline.yaml"


def compile_spec(image: str) -> dict[str, Any]:
    """The pipeline spec (a dict) with every component running on `image`."""
    if not image or image == PLACEHOLDER_IMAGE:
        raise ValueError("compile needs the pipeline image the components run on (--image)")
    if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
        raise ValueError(f"image {image!r} must carry a pinned tag or digest, not latest")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "spec.yaml"
        compiler.Compiler().compile(training_pipeline, str(path))
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    for executor in spec["deploymentSpec"]["executors"].values():
        executor["container"]["image"] = image
    return spec


def spec_text(spec: dict[str, Any]) -> str:
    """The spec as YAML with sorted keys: stable bytes for the same spec."""
    return yaml.safe_dump(spec, sort_keys=True, width=100, allow_unicode=True)


def write_spec(image: str, out: Path = DEFAULT_OUT) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(spec_text(compile_spec(image)), encoding="utf-8")
    return out


def parameter_names() -> set[str]:
    """The pipeline's parameters (what a schedule, CI or a local run may pass)."""
    inputs = training_pipeline.component_spec.inputs or {}
    return set(inputs)


def code_version(root: Path = PROJECT_ROOT) -> str:
    """The checkout's commit (12 hex digits, "-dirty" when it has uncommitted changes)."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12", "--exclude=*"],
            cwd=root, capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline_src.compile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--image", required=True, help="the pipeline image, with a pinned tag")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the spec goes")
    args = parser.parse_args(argv)
    print(write_spec(args.image, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
