"""The one container image every pipeline component runs on, and how it is named.

The image holds Python and the pinned packages of `requirements.txt` (beside this file), so a run
on Vertex AI never installs anything, and this whole package: the components' bodies import it
like any module (pipeline_src/components/common.py says why), and the model server
(`pipeline_src/serving`) serves the model it trained. Its tag is a digest of what goes into it —
the Dockerfile, the image's requirements, the project's lock (the build's constraints) and every
file of the package — so the same inputs always name the same image, and changing a pin or any
of the code names a new one.
Components are declared with a placeholder image; `pipeline_src.compile` puts the stack's image
into the compiled spec.

    python -m pipeline_src.image --registry europe-west4-docker.pkg.dev/PROJECT/REPOSITORY

prints the full image reference (what Cloud Build pushes and what the spec names).
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent
DOCKERFILE = HERE / "Dockerfile"
REQUIREMENTS = HERE / "requirements.txt"
LOCK = PROJECT_ROOT / "requirements.txt"
CACHES = ("__pycache__", ".pyc", ".pyo")
"""What the image leaves out of the package (.dockerignore): Python's caches."""

IMAGE_NAME = "pipeline"
PLACEHOLDER_IMAGE = "tabular-mlops-pipeline-python:set-by-compile"
"""The image components are declared with. Compiling replaces it; a spec that still names it
would fail on Vertex AI at once (no such image) rather than run on an image without the packages.
'python' in the name keeps kfp.local's subprocess runner from warning about a non-Python image."""


def image_sources() -> list[Path]:
    """Every file the image carries from this package (the Dockerfile copies it whole, caches
    left out), in a stable order."""
    return sorted(
        path
        for path in HERE.rglob("*")
        if path.is_file() and CACHES[0] not in path.parts and path.suffix not in CACHES[1:]
    )


def image_tag() -> str:
    """`deps-<12 hex>`: a digest of the Dockerfile, the image's requirements, the lock and every
    file of the package."""
    digest = hashlib.sha256()
    named = [(path.name, path) for path in (DOCKERFILE, REQUIREMENTS, LOCK)]
    named += [(path.relative_to(PROJECT_ROOT).as_posix(), path) for path in image_sources()]
    for name, path in named:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"deps-{digest.hexdigest()[:12]}"


def registry_path(region: str, project: str, repository: str) -> str:
    """The Docker path of an Artifact Registry repository."""
    return f"{region}-docker.pkg.dev/{project}/{repository}"


def image_uri(registry: str) -> str:
    """The pipeline image's full reference in a registry path (never `:latest`)."""
    return f"{registry.rstrip('/')}/{IMAGE_NAME}:{image_tag()}"


def pinned_packages() -> dict[str, str]:
    """The image's packages: normalised name -> exact version."""
    return _pins(REQUIREMENTS)


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[normalise(name)] = version.strip()
    return pins


def normalise(name: str) -> str:
    """Package names compare case-insensitively with '-', '_' and '.' equivalent (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline_src.image", description=__doc__)
    parser.add_argument(
        "--registry", required=True, help="REGION-docker.pkg.dev/PROJECT/REPOSITORY"
    )
    args = parser.parse_args(argv)
    print(image_uri(args.registry))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
