"""The pipeline image also serves the model: it carries the server's code (the whole pipeline
package), named by its tag."""

from __future__ import annotations

import fnmatch
import shutil

import pipeline_src.image as image
from pipeline_src.cloud.registry import serving_container
from pipeline_src.serving.server import DEFAULT_ROUTES


def copied_paths() -> list[str]:
    """Sources of the Dockerfile's COPY lines that bring project code into /workspace."""
    paths = []
    for line in image.DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "/tmp/" not in line:
            paths += line.split()[1:-1]
    return paths


def test_the_image_copies_every_serving_source_and_the_build_context_lets_it_in():
    copied = copied_paths()
    rules = [
        line
        for line in (image.PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    def in_context(relative: str) -> bool:
        """Docker's rule: the last matching pattern wins; `dir/` lets in what is under it."""
        kept = True
        for rule in rules:
            pattern = rule.lstrip("!").rstrip("/")
            parts = relative.split("/")
            prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
            if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or fnmatch.fnmatch(
                relative, pattern.replace("**/", "*")
            ):
                kept = rule.startswith("!")
        return kept

    sources = [p.relative_to(image.PROJECT_ROOT).as_posix() for p in image.image_sources()]
    for relative in sources:
        assert any(relative == c or relative.startswith(c) for c in copied), relative
        assert in_context(relative), relative
    assert not in_context("pipeline_src/serving/__pycache__/server.cpython-311.pyc")
    assert not in_context("local/adapters.py") and not in_context("contracts/tables.py")
    # What the server imports at start-up is in the image (the container runs nothing else).
    assert "pipeline_src/serving/contract.py" in sources


def test_a_change_to_the_server_names_a_new_image(monkeypatch, tmp_path):
    tag = image.image_tag()
    root = tmp_path / "project"
    shutil.copytree(image.PROJECT_ROOT / "pipeline_src", root / "pipeline_src",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(image.LOCK, root / "requirements.txt")
    here = root / "pipeline_src"
    monkeypatch.setattr(image, "PROJECT_ROOT", root)
    monkeypatch.setattr(image, "DOCKERFILE", here / "Dockerfile")
    monkeypatch.setattr(image, "REQUIREMENTS", here / "requirements.txt")
    monkeypatch.setattr(image, "LOCK", root / "requirements.txt")
    monkeypatch.setattr(image, "HERE", here)
    assert image.image_tag() == tag
    server = here / "serving" / "server.py"
    server.write_text(server.read_text() + "\n# a change\n")
    assert image.image_tag() != tag
    changed = image.image_tag()
    # Components import the package in the image: a change to any of its code names a new image.
    ports = here / "ports.py"
    ports.write_text(ports.read_text() + "\n# a change\n")
    assert image.image_tag() != changed


def test_vertex_runs_the_image_on_the_routes_the_server_answers():
    container = serving_container()
    assert container["serving_container_predict_route"] == DEFAULT_ROUTES.predict
    assert container["serving_container_health_route"] == DEFAULT_ROUTES.health
    assert 'CMD ["python", "-m", "pipeline_src.serving"]' in image.DOCKERFILE.read_text()
    assert container["serving_container_command"] == ["python", "-m", "pipeline_src.serving"]


def test_the_image_installs_every_package_the_server_imports():
    """No image is built here, so a module the server imports that no package of the image
    provides would first fail on Vertex AI, at the container's start. Every third-party module
    imported anywhere in pipeline_src/serving must come from a distribution the image's
    requirements install, named there or pulled in as a dependency (from installed metadata)."""
    import ast
    import sys
    from importlib import metadata

    from packaging.requirements import Requirement

    imported = set()
    for path in (image.HERE / "serving").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"pipeline_src", "__future__"}

    installed, todo = set(), list(image.pinned_packages())
    while todo:
        name = image.normalise(todo.pop())
        if name in installed:
            continue
        installed.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)

    providers = metadata.packages_distributions()
    missing = {
        module: providers.get(module)
        for module in third_party
        if not {image.normalise(d) for d in providers.get(module, [])} & installed
    }
    assert {"orjson", "uvicorn", "numpy"} <= third_party  # the scan sees the server's imports
    assert missing == {}, f"imported by the server, not installed by the image: {missing}"
