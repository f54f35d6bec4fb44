"""The pipeline image also serves the model: it carries the server's code, named by its tag."""

from __future__ import annotations

import fnmatch
import shutil

import pipeline_src.image as image
from pipeline_src.components.register import serving_container
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
    allowed = [
        line[1:]
        for line in (image.PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for path in image.SERVING_SOURCES:
        relative = path.relative_to(image.PROJECT_ROOT).as_posix()
        assert any(relative == c or relative.startswith(c) for c in copied), relative
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in allowed), relative
    # What the server imports at start-up is in the image (the container runs nothing else).
    assert "pipeline_src/serving/contract.py" in {
        p.relative_to(image.PROJECT_ROOT).as_posix() for p in image.SERVING_SOURCES
    }


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
    sources = tuple(here / p.relative_to(image.HERE) for p in image.SERVING_SOURCES)
    monkeypatch.setattr(image, "SERVING_SOURCES", sources)
    assert image.image_tag() == tag
    server = here / "serving" / "server.py"
    server.write_text(server.read_text() + "\n# a change\n")
    assert image.image_tag() != tag


def test_vertex_runs_the_image_on_the_routes_the_server_answers():
    container = serving_container()
    assert container["serving_container_predict_route"] == DEFAULT_ROUTES.predict
    assert container["serving_container_health_route"] == DEFAULT_ROUTES.health
    assert 'CMD ["python", "-m", "pipeline_src.serving"]' in image.DOCKERFILE.read_text()
    assert container["serving_container_command"] == ["python", "-m", "pipeline_src.serving"]
