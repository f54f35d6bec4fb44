"""Promotion locally: the prod rollout on local endpoints, served while it happens; make promote."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from local.environment import LocalEnvironment
from local.promotion import promote_locally
from local.registry import LocalEndpoint, LocalModelRegistry
from local.serving import serve_endpoint
from pipeline_src.serving.client import endpoint_client, predict
from stacks.config import PROJECT_ROOT, load_stack_file
from tooling import promote as promote_module
from tooling.promote import MODEL_KEY, PromoteError, main, promote, set_scalar

PENGUIN = {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
           "flipper_length_mm": 192, "body_mass_g": 3500, "sex": "female"}  # fmt: skip


@pytest.fixture
def env(tmp_path, sample_model_dir) -> LocalEnvironment:
    """Two registered versions; the staging endpoint serves the second."""
    env = LocalEnvironment(root=tmp_path / "state").ensure()
    registry = LocalModelRegistry(env.registry_dir)
    for _ in range(2):
        version = registry.upload(env.model_id, sample_model_dir, display_name="penguins")
    LocalEndpoint(env.endpoints_dir, "staging").deploy(version)
    return env


def test_a_promotion_serves_a_canary_then_all_traffic_then_retires_the_old(env):
    model = env.model_id
    prod = LocalEndpoint(env.endpoints_dir, "prod")
    first = promote_locally(env, "prod", f"{model}@1", canary_percent=50)
    assert first.undeployed == [] and prod.traffic_split == {"1": 100}
    seen = []

    def during_canary(seconds: float) -> None:
        seen.append(seconds)
        assert prod.traffic_split == {"1": 50, "2": 50}
        with serve_endpoint(env, "prod") as server:  # the canary split, served for real
            client = endpoint_client(server.url)
            answered = {predict(client, [PENGUIN]).served_model for _ in range(20)}
            client.close()
        assert answered == {f"{model}@1", f"{model}@2"}

    steps = []
    second = promote_locally(
        env, "prod", f"{model}@2", 50, 5, say=steps.append, sleep=during_canary
    )
    assert seen == [300]
    assert prod.traffic_split == {"2": 100} and second.undeployed == ["1"]
    assert [h["action"] for h in prod.history()] == ["deploy", "deploy", "traffic", "undeploy"]
    assert steps[0].startswith(f"canary: {model}@2 deployed as 2 with 50% of the traffic")
    registry = LocalModelRegistry(env.registry_dir)
    assert "prod" in registry.get(model, "2").version_aliases
    # Rollback is the same rollout of the earlier version.
    promote_locally(env, "prod", f"{model}@1", 20, sleep=lambda _: None)
    assert [m.resource_name for m in prod.deployed_models()] == [f"{model}@1"]
    assert "prod" in registry.get(model, "1").version_aliases


def test_a_promotion_refreshes_the_lifecycle_page(env):
    """The page's endpoint table says what prod serves right after the rollout, without waiting
    for the next pipeline run."""
    model = env.model_id
    promote_locally(env, "prod", f"{model}@2", canary_percent=0)
    page = (env.root / "index.html").read_text()
    assert f"<td><code>prod</code></td><td><code>{model}@2</code> 100%</td>" in page


def test_a_traffic_split_must_cover_the_endpoint_and_sum_to_100(env):
    staging = LocalEndpoint(env.endpoints_dir, "staging")
    with pytest.raises(ValueError, match="sums to 100"):
        staging.set_traffic({"1": 90})
    with pytest.raises(ValueError, match=r"no deployed models \['7'\]"):
        staging.set_traffic({"7": 100})


def test_make_promote_refuses_a_local_model_in_a_committed_stack_file(env, tmp_path, capsys):
    """A local registry's version is no model of the prod project: never written into its file."""
    stack_file = tmp_path / "Pulumi.prod.yaml"
    original = (PROJECT_ROOT / "Pulumi.prod.yaml").read_text()
    stack_file.write_text(original)
    assert main(["--root", str(env.root), "--stack-file", str(stack_file)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"promote: Pulumi.prod.yaml: {env.model_id}@2 is a model of the local")
    assert "LOCAL=1" in error and "MODEL=projects/" in error and error.count("\n") == 1
    assert stack_file.read_text() == original
    with pytest.raises(PromoteError, match="local registry"):
        promote(
            stack_file, f"projects/acme-mlops-prod/locations/europe-west4/models/{env.model_id}@2"
        )


def test_make_promote_local_writes_only_the_local_copy_and_says_what_next(env, capsys):
    original = (PROJECT_ROOT / "Pulumi.prod.yaml").read_text()
    assert main(["--root", str(env.root), "--local-copy"]) == 0
    copy = env.root / "Pulumi.prod.yaml"
    changed = [
        (a, b) for a, b in zip(original.splitlines(), copy.read_text().splitlines(), strict=True)
        if a != b
    ]  # fmt: skip
    assert changed == [(
        "      model: projects/acme-mlops-staging/locations/europe-west4/models/"
        "tabular-mlops-staging-penguins@1",
        f"      model: {env.model_id}@2",
    )]  # fmt: skip
    assert load_stack_file(copy).platform.serving.model == f"{env.model_id}@2"
    assert (PROJECT_ROOT / "Pulumi.prod.yaml").read_text() == original
    assert "next: a rehearsal" in capsys.readouterr().out


def test_make_promote_of_a_registered_version_prints_the_review_steps(tmp_path, capsys):
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    model = "projects/acme-mlops-staging/locations/europe-west4/models/tabular-mlops-staging-p@4"
    assert main(["--model", model, "--stack-file", str(stack_file)]) == 0
    out = capsys.readouterr().out
    assert f"-> {model}" in out
    assert "git diff" in out and "pull request" in out and "pulumi preview -s prod" in out
    # The change names the whole model and the file (here a long temporary path); the rest fits.
    assert all(len(line) <= 100 for line in out.splitlines()[1:] if str(tmp_path) not in line)


def test_the_edit_keeps_comments_and_inserts_a_missing_key():
    text = (
        "config:\n"
        "  tabular-mlops:platform:\n"
        "    serving:   # the endpoint\n"
        "      min_replicas: 2\n"
        "      model: null          # what prod serves\n"
        "    pipelines:\n"
        "      model: untouched\n"
    )
    edited, old = set_scalar(text, MODEL_KEY, "m@3")
    assert old is None
    assert edited.splitlines()[4] == "      model: m@3           # what prod serves"
    assert edited.splitlines()[6] == "      model: untouched"
    without = text.replace("      model: null          # what prod serves\n", "")
    inserted, old = set_scalar(without, MODEL_KEY, "m@3")
    assert yaml.safe_load(inserted)["config"]["tabular-mlops:platform"]["serving"] == {
        "min_replicas": 2, "model": "m@3",
    }  # fmt: skip
    with pytest.raises(PromoteError, match=r"no `config.tabular-mlops:platform.serving` key"):
        set_scalar("config:\n  tabular-mlops:platform:\n    labels: {}\n", MODEL_KEY, "m@3")


def test_a_promotion_keeps_every_comment_of_the_stack_file(tmp_path):
    """The round trip keeps the file's comments: its header, those beside values, and the one on
    the promoted line itself (moved right when the new value is longer)."""
    original = (PROJECT_ROOT / "Pulumi.prod.yaml").read_text()
    served = "models/tabular-mlops-staging-penguins@1"
    commented = original.replace(f"{served}\n", f"{served}   # QA's last promotion\n")
    assert commented != original
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(commented)
    model = f"projects/acme-mlops-staging/locations/europe-west4/{served}2"  # longer by one
    promote(stack_file, model)

    def comments(text: str) -> list[str]:
        return [line[line.index("#") :] for line in text.splitlines() if "#" in line]

    after = stack_file.read_text()
    assert len(comments(commented)) > 10 and comments(after) == comments(commented)
    changed = [
        (a, b) for a, b in zip(commented.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert [b for _, b in changed] == [f"      model: {model}  # QA's last promotion"]


def test_a_stack_file_that_is_not_yaml_is_one_line_naming_where(tmp_path):
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text("config:\n  tabular-mlops:platform:\n    serving: [\n")
    with pytest.raises(PromoteError, match=r"^Pulumi.prod.yaml:4:1: not valid YAML: ") as error:
        promote(stack_file, "projects/p/locations/r/models/m@1")
    assert "\n" not in str(error.value)
    assert stack_file.read_text().endswith("serving: [\n")


def test_a_bad_promotion_writes_nothing_and_says_why(tmp_path, capsys):
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    before = stack_file.read_text()
    assert main(["--model", "penguins@staging", "--stack-file", str(stack_file)]) == 1
    assert "serving.model: 'penguins@staging' is not a model version" in capsys.readouterr().err
    assert main(["--root", str(tmp_path / "empty"), "--stack-file", str(stack_file)]) == 1
    assert "serves no model" in capsys.readouterr().err
    assert stack_file.read_text() == before
    with pytest.raises(PromoteError, match="not found"):
        promote(Path(tmp_path / "missing.yaml"), "m@1")


def test_promote_reads_a_vertex_endpoint_by_its_traffic(monkeypatch, tmp_path):
    from google.cloud import aiplatform

    name = "projects/acme-mlops-staging/locations/europe-west4/endpoints/99"
    endpoint = SimpleNamespace(
        traffic_split={"5": 0, "6": 100},
        list_models=lambda: [
            SimpleNamespace(id="5", model="projects/123/locations/europe-west4/models/m",
                            model_version_id="3"),
            SimpleNamespace(id="6", model="projects/123/locations/europe-west4/models/m",
                            model_version_id="4"),
        ],
    )  # fmt: skip
    monkeypatch.setattr(aiplatform, "Endpoint", lambda n, project, location: endpoint)
    assert promote_module.served_by_vertex(name) == (
        "projects/acme-mlops-staging/locations/europe-west4/models/m@4"
    )
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    monkeypatch.setattr(promote_module, "PROJECT_ROOT", tmp_path)
    assert main(["--from-vertex", name, "--stack-file", str(stack_file)]) == 0
    model = load_stack_file(stack_file).platform.serving.model
    assert model == "projects/acme-mlops-staging/locations/europe-west4/models/m@4"
