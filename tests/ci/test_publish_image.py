"""`.ci/publish-image`, run for real with `gcloud` and `docker` replaced by recorders on PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "publish-image"
IMAGE = "europe-west4-docker.pkg.dev/acme-mlops-staging/pipelines/pipeline:deps-0123456789ab"

RECORDER = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$CALLS"
if [ "$1 $2" = "manifest inspect" ]; then
  # After a refused push, the manifest is looked up again: what RACE_EXIT says it finds then.
  if grep -q "^docker push" "$CALLS"; then exit "${RACE_EXIT:-1}"; fi
  exit "$PUBLISHED_EXIT"
fi
if [ "$1" = "push" ]; then exit "${PUSH_EXIT:-0}"; fi
"""


def publish(tmp_path: Path, image: str, published: bool, **race: str) -> tuple[int, list[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("gcloud", "docker"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    calls = tmp_path / "calls"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(calls),
        "PUBLISHED_EXIT": "0" if published else "1",
        **race,
    }
    result = subprocess.run(
        [str(SCRIPT), image], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return result.returncode, lines, result.stdout + result.stderr


def test_an_unpublished_image_is_built_from_the_pipeline_dockerfile_and_pushed(tmp_path):
    code, calls, _ = publish(tmp_path, IMAGE, published=False)
    assert code == 0
    assert calls == [
        "gcloud auth configure-docker europe-west4-docker.pkg.dev --quiet",
        f"docker manifest inspect {IMAGE}",
        f"docker build --file pipeline_src/Dockerfile --tag {IMAGE} .",
        f"docker push {IMAGE}",
    ]


def test_a_published_tag_is_never_rebuilt(tmp_path):
    code, calls, output = publish(tmp_path, IMAGE, published=True)
    assert code == 0
    assert calls[-1] == f"docker manifest inspect {IMAGE}"
    assert "already published" in output


@pytest.mark.parametrize(
    "image",
    [
        "europe-west4-docker.pkg.dev/acme/pipelines/pipeline",  # no tag
        "docker.io/library/python:3.11",  # not Artifact Registry
        "",
    ],
)
def test_anything_but_a_tagged_artifact_registry_image_is_refused(tmp_path, image):
    code, calls, output = publish(tmp_path, image, published=False)
    assert code != 0 and calls == []
    assert image in output or "usage" in output


@pytest.mark.parametrize(("race_exit", "code"), [("0", 0), ("1", 1)])
def test_a_push_refused_because_another_run_published_the_tag_succeeds(tmp_path, race_exit, code):
    """Two publishers of one tag: the second push is refused (immutable tags); that is success
    only when the registry now has the tag."""
    result, calls, _ = publish(tmp_path, IMAGE, published=False, PUSH_EXIT="1", RACE_EXIT=race_exit)
    assert result == code
    assert calls[-2:] == [f"docker push {IMAGE}", f"docker manifest inspect {IMAGE}"]
