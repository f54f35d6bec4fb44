"""The plans a stack's plan deploys first are reused only while nothing they read changed."""

from __future__ import annotations

import shutil

from stacks.config import PROJECT_ROOT
from tooling.plan import cache as plan_cache
from tooling.plan.offline import Organisation, run_program


def test_the_key_follows_every_file_the_program_reads(tmp_path):
    for name in (*plan_cache.PLAN_INPUTS, "Pulumi.prod.yaml"):
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    key = plan_cache.source_key.__wrapped__(tmp_path)
    (tmp_path / "docs.md").write_text("not read by the program\n")
    assert plan_cache.source_key.__wrapped__(tmp_path) == key
    prod = tmp_path / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text().replace("max_replicas: 5", "max_replicas: 4"))
    assert plan_cache.source_key.__wrapped__(tmp_path) != key


def test_a_referenced_stack_comes_from_the_cache_when_it_has_it(stack_records, monkeypatch):
    """Staging's plan deploys prod first: from an earlier plan of the same code when kept."""
    prod = stack_records["prod"]
    loaded = []
    monkeypatch.setattr(plan_cache, "load", lambda stack: loaded.append(stack) or prod)
    monkeypatch.setattr(plan_cache, "save", lambda record: None)
    organisation = Organisation()
    staging = run_program("staging", organisation=organisation)
    assert loaded == ["prod"] and organisation.deployed["prod"] is prod
    readers = {r.inputs["member"] for r in staging.resources if "-model-readers-" in r.name}
    assert readers == set(prod.outputs["model_readers"].values())
