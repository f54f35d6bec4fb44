"""Promotion: the dynamic resource's provider (Vertex AI SDK patched), the plan and the config.

`FakeVertex` stands in for google-cloud-aiplatform with the behaviour the provider relies on:
models by versioned name across projects, uploads as new versions, and an endpoint whose traffic
split follows Vertex's rules (a deploy takes its share, the others keep theirs in proportion; a
model with traffic cannot be undeployed while others serve).
"""

from __future__ import annotations

import base64
import pickle
from types import SimpleNamespace

import dill
import pytest
from google.api_core.exceptions import NotFound
from pulumi.dynamic.dynamic import serialize_provider

from pipeline_src.cloud.rollout import source_digest
from resources.promotion import PromotionProvider
from stacks.config import ConfigError, parse_stack_config, stack_config_values

STAGING_V1 = "projects/acme-staging/locations/europe-west4/models/penguins-staging@1"
STAGING_V2 = "projects/acme-staging/locations/europe-west4/models/penguins-staging@2"
ENDPOINT = "projects/acme-prod/locations/europe-west4/endpoints/42"


class FakeVertex:
    """The parts of `google.cloud.aiplatform` the provider calls, over an in-memory world."""

    def __init__(self):
        self.models: dict[str, SimpleNamespace] = {}  # versioned name -> version
        self.deployed: list[dict] = []  # {"id", "model", "version", "traffic"}
        self.uploads: list[dict] = []
        self.log: list[tuple] = []
        self.next_id = 100
        self.endpoint_exists = True
        self.tampered: dict[str, str] = {}  # bundle uri -> its digest now
        self.verified: list[str] = []
        self.aliases: dict[str, str] = {}  # alias -> versioned name (an alias names one version)
        for name in (STAGING_V1, STAGING_V2):
            self.add(name, uri=f"gs://staging-artifacts/models/{name[-1]}")

    def add(self, versioned: str, uri: str, description: str = "") -> None:
        spec = SimpleNamespace(
            image_uri="europe-west4-docker.pkg.dev/acme-staging/pipelines/pipeline:deps-1",
            command=["python", "-m", "pipeline_src.serving"], args=[],
            predict_route="/predict", health_route="/health",
            ports=[SimpleNamespace(container_port=8080)],
            env=[SimpleNamespace(name="MODEL_SHA256", value=f"digest-of-{uri}")],
        )  # fmt: skip
        name, version = versioned.split("@")
        self.models[versioned] = SimpleNamespace(
            resource_name=name, version_id=version, versioned_resource_name=versioned, uri=uri,
            labels={"data_snapshot": "s1"}, version_description=description,
            gca_resource=SimpleNamespace(container_spec=spec),
        )  # fmt: skip

    def verify(self, uri: str, expected: str) -> None:
        """The bundle check, over the world's bundles (each holds what it was registered with,
        unless a test tampers with it)."""
        self.verified.append(uri)
        if self.tampered.get(uri, expected) != expected:
            raise ValueError(f"model bundle {uri}: sha256 differs from {expected}")

    def module(self) -> SimpleNamespace:
        world = self

        def model(name, project=None, location=None):
            if "/" not in name:
                name = f"projects/{project}/locations/{location}/models/{name}"
            if "@" in name:
                if name not in world.models:
                    raise NotFound(name)
                return world.models[name]
            versions = [m for v, m in world.models.items() if v.split("@")[0] == name]
            if not versions:
                raise NotFound(name)
            return versions[-1]

        def upload(project, location, model_id=None, parent_model=None, **fields):
            world.uploads.append({"model_id": model_id, "parent_model": parent_model, **fields})
            name = parent_model or f"projects/{project}/locations/{location}/models/{model_id}"
            version = 1 + sum(1 for v in world.models if v.split("@")[0] == name)
            world.add(f"{name}@{version}", fields["artifact_uri"], fields["version_description"])
            for alias in fields.get("version_aliases") or []:
                world.aliases[alias] = f"{name}@{version}"
            if fields.get("is_default_version"):
                world.aliases["default"] = f"{name}@{version}"
            return world.models[f"{name}@{version}"]

        model.upload = upload

        class ModelRegistry:
            def __init__(self, parent):
                self.parent = parent

            def add_version_aliases(self, new_aliases, version):
                world.log.append(("aliases", version, tuple(new_aliases)))
                for alias in new_aliases:
                    world.aliases[alias] = f"{self.parent.resource_name}@{version}"

            def list_versions(self):
                versions = [
                    m for v, m in world.models.items()
                    if v.split("@")[0] == self.parent.resource_name
                ]  # fmt: skip
                for m in versions:
                    m.version_aliases = [
                        a for a, v in world.aliases.items() if v == m.versioned_resource_name
                    ]
                return versions

        return SimpleNamespace(
            init=lambda **kw: world.log.append(("init", kw)),
            Model=model,
            Endpoint=lambda name: FakeEndpoint(world, name),
            models=SimpleNamespace(ModelRegistry=ModelRegistry),
        )

    def split(self) -> dict[str, int]:
        return {d["model"] + "@" + d["version"]: d["traffic"] for d in self.deployed}


class FakeEndpoint:
    def __init__(self, world: FakeVertex, name: str):
        if not world.endpoint_exists:
            raise NotFound(name)
        assert name == ENDPOINT
        self.world = world

    def list_models(self):
        return [
            SimpleNamespace(id=d["id"], model=d["model"], model_version_id=d["version"])
            for d in self.world.deployed
        ]

    @property
    def traffic_split(self):
        return {d["id"]: d["traffic"] for d in self.world.deployed}

    def deploy(self, model, traffic_percentage, machine_type, min_replica_count,
               max_replica_count, sync):  # fmt: skip
        world = self.world
        others = sum(d["traffic"] for d in world.deployed)
        for d in world.deployed:
            d["traffic"] = round(d["traffic"] * (100 - traffic_percentage) / others)
        world.next_id += 1
        replicas = (min_replica_count, max_replica_count)
        world.deployed.append({"id": str(world.next_id), "model": model.resource_name,
                               "version": model.version_id, "traffic": traffic_percentage,
                               "machine_type": machine_type, "replicas": replicas})  # fmt: skip
        world.log.append(("deploy", model.versioned_resource_name, dict(world.split())))

    def update(self, traffic_split):
        assert sum(traffic_split.values()) == 100
        for d in self.world.deployed:
            d["traffic"] = traffic_split.get(d["id"], 0)
        self.world.log.append(("traffic", dict(self.world.split())))

    def undeploy(self, deployed_model_id):
        world = self.world
        gone = next(d for d in world.deployed if d["id"] == deployed_model_id)
        if gone["traffic"] and len(world.deployed) > 1:
            raise AssertionError("Vertex refuses to undeploy a model that still has traffic")
        world.deployed.remove(gone)
        world.log.append(("undeploy", f"{gone['model']}@{gone['version']}"))


@pytest.fixture
def vertex(monkeypatch) -> FakeVertex:
    from google import cloud

    world = FakeVertex()
    monkeypatch.setattr(cloud, "aiplatform", world.module(), raising=False)
    monkeypatch.setitem(__import__("sys").modules, "google.cloud.aiplatform", world.module())
    monkeypatch.setattr("resources.promotion.pulumi.log.info", lambda message: None)
    monkeypatch.setattr("pipeline_src.cloud.rollout.verify_remote_bundle", world.verify)
    return world


def props(model: str = STAGING_V1, **changes) -> dict:
    return {
        "project": "acme-prod", "region": "europe-west4", "endpoint": ENDPOINT,
        "model": model, "model_id": "penguins-prod", "display_name": "prod: penguins model",
        "labels": {"stack": "prod"}, "canary_percent": 10.0, "canary_minutes": 0.0,
        "machine_type": "n1-standard-4", "min_replicas": 2.0, "max_replicas": 5.0, **changes,
    }  # fmt: skip


PROD = "projects/acme-prod/locations/europe-west4/models/penguins-prod"


def test_create_reregisters_another_projects_version_and_serves_it_alone(vertex):
    result = PromotionProvider().create(props())
    assert result.id == f"{ENDPOINT}/promotion"
    (upload,) = vertex.uploads
    assert upload["model_id"] == "penguins-prod" and upload["parent_model"] is None
    assert upload["artifact_uri"] == "gs://staging-artifacts/models/1"
    assert upload["serving_container_image_uri"].endswith("/pipeline:deps-1")
    assert upload["serving_container_predict_route"] == "/predict"
    assert upload["serving_container_ports"] == [8080]
    assert upload["labels"] == {"data_snapshot": "s1", "stack": "prod",
                                "promoted_from": source_digest(STAGING_V1)}  # fmt: skip
    assert upload["version_description"].startswith(f"Promoted from {STAGING_V1}")
    assert upload["version_aliases"] == ["prod"]
    # Nothing served before: no canary, all traffic at once.
    assert vertex.split() == {f"{PROD}@1": 100}
    assert vertex.deployed[0]["machine_type"] == "n1-standard-4"
    assert vertex.deployed[0]["replicas"] == (2, 5)
    assert result.outs["served_model"] == f"{PROD}@1"
    assert result.outs["deployed_model_id"] == "101" and result.outs["undeployed"] == []


def test_the_copy_carries_the_bundle_digest_and_a_changed_bundle_is_not_promoted(vertex):
    PromotionProvider().create(props())
    (upload,) = vertex.uploads
    digest = "digest-of-gs://staging-artifacts/models/1"
    assert upload["serving_container_environment_variables"] == {"MODEL_SHA256": digest}
    assert vertex.verified == ["gs://staging-artifacts/models/1"]
    vertex.tampered["gs://staging-artifacts/models/2"] = "another digest"
    with pytest.raises(ValueError, match="sha256 differs"):
        PromotionProvider().update("id", props(), props(STAGING_V2))
    assert len(vertex.uploads) == 1 and vertex.split() == {f"{PROD}@1": 100}


def test_update_rolls_out_a_canary_then_full_traffic_then_retires_the_old(vertex):
    provider = PromotionProvider()
    created = provider.create(props())
    diff = provider.diff(created.id, created.outs, props(STAGING_V2))
    assert diff.changes and not diff.replaces
    vertex.log.clear()
    updated = provider.update(created.id, created.outs, props(STAGING_V2))
    assert [entry for entry in vertex.log if entry[0] != "init"] == [
        ("deploy", f"{PROD}@2", {f"{PROD}@1": 90, f"{PROD}@2": 10}),
        ("traffic", {f"{PROD}@1": 0, f"{PROD}@2": 100}),
        ("undeploy", f"{PROD}@1"),
    ]
    assert updated.outs["served_model"] == f"{PROD}@2"
    assert updated.outs["undeployed"] == ["101"]
    assert updated.outs["deployed_model_id"] == "102"
    assert any("canary" in step for step in updated.outs["steps"])


def test_rollback_is_the_reverted_config_and_reuses_the_registered_copy(vertex):
    provider = PromotionProvider()
    created = provider.create(props())
    updated = provider.update(created.id, created.outs, props(STAGING_V2))
    vertex.log.clear()
    rolled_back = provider.update(created.id, updated.outs, props(STAGING_V1))
    assert len(vertex.uploads) == 2, "the copy of @1 made at create is found, not uploaded again"
    assert [entry[0] for entry in vertex.log if entry[0] != "init"] == [
        "aliases", "deploy", "traffic", "undeploy",
    ]  # fmt: skip
    assert vertex.split() == {f"{PROD}@1": 100}
    assert rolled_back.outs["served_model"] == f"{PROD}@1"
    # `@prod` and the default version name what serves, not the version rolled back from.
    assert vertex.aliases == {"prod": f"{PROD}@1", "default": f"{PROD}@1"}


def test_the_copy_of_one_version_is_not_taken_for_another_whose_number_it_begins(vertex):
    staging_v12 = STAGING_V1 + "2"
    vertex.add(staging_v12, uri="gs://staging-artifacts/models/12")
    provider = PromotionProvider()
    created = provider.create(props(staging_v12))
    provider.update(created.id, created.outs, props(STAGING_V1))
    assert [u["artifact_uri"] for u in vertex.uploads] == [
        "gs://staging-artifacts/models/12",
        "gs://staging-artifacts/models/1",
    ]
    assert vertex.split() == {f"{PROD}@2": 100}


def test_a_rollout_that_failed_half_way_resumes_without_deploying_again(vertex, monkeypatch):
    provider = PromotionProvider()
    created = provider.create(props())

    def unavailable(self, traffic_split):
        raise RuntimeError("503 the service is unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(FakeEndpoint, "update", unavailable)
        with pytest.raises(RuntimeError, match="unavailable"):
            provider.update(created.id, created.outs, props(STAGING_V2))
    assert vertex.split() == {f"{PROD}@1": 90, f"{PROD}@2": 10}  # the canary stays up
    vertex.log.clear()
    resumed = provider.update(created.id, created.outs, props(STAGING_V2))
    assert [e[0] for e in vertex.log if e[0] != "init"] == ["traffic", "undeploy"]
    assert vertex.split() == {f"{PROD}@2": 100} and len(vertex.uploads) == 2
    assert resumed.outs["steps"][1].startswith(f"resuming: {PROD}@2 is deployed as 102")


def test_rolling_out_what_already_serves_changes_nothing(vertex):
    provider = PromotionProvider()
    created = provider.create(props())
    vertex.log.clear()
    again = provider.update(created.id, created.outs, props(canary_percent=20.0))
    assert [e for e in vertex.log if e[0] != "init"] == []
    assert again.outs["deployed_model_id"] == created.outs["deployed_model_id"]


def test_a_version_of_the_same_project_is_deployed_as_it_is(vertex):
    own = "projects/acme-prod/locations/europe-west4/models/penguins-prod@1"
    vertex.add(own, uri="gs://prod-artifacts/models/1")
    result = PromotionProvider().create(props(own))
    assert vertex.uploads == [] and result.outs["served_model"] == own


def test_vertex_naming_the_project_by_number_is_the_same_version(vertex):
    """Vertex AI answers with the project's number where the stack file names its id."""
    own = "projects/acme-prod/locations/europe-west4/models/penguins-prod@1"
    vertex.add(own, uri="gs://prod-artifacts/models/1")
    provider = PromotionProvider()
    created = provider.create(props(own))
    for deployed in vertex.deployed:
        deployed["model"] = deployed["model"].replace("projects/acme-prod/", "projects/123456/")
    vertex.log.clear()
    again = provider.update(created.id, created.outs, props(own))
    assert [e for e in vertex.log if e[0] != "init"] == []  # nothing deployed twice
    assert again.outs["deployed_model_id"] == created.outs["deployed_model_id"]


def test_a_model_of_another_region_is_refused(vertex):
    with pytest.raises(ValueError, match="endpoint serves models of europe-west4"):
        PromotionProvider().create(props(STAGING_V1.replace("europe-west4", "us-east1")))


def test_delete_undeploys_what_the_rollout_deployed_and_keeps_the_registry(vertex):
    provider = PromotionProvider()
    created = provider.create(props())
    provider.delete(created.id, created.outs)
    assert vertex.deployed == [] and f"{PROD}@1" in vertex.models
    vertex.endpoint_exists = False  # deleted first: nothing left to undeploy
    provider.delete(created.id, created.outs)


def test_a_change_of_endpoint_replaces_and_of_nothing_is_no_change():
    provider = PromotionProvider()
    assert provider.diff("id", props(), props(endpoint=ENDPOINT + "3")).replaces == ["endpoint"]
    assert not provider.diff("id", props(), props()).changes
    assert provider.diff("id", props(), props(canary_minutes=5.0)).changes


def test_the_provider_pickles_as_pulumi_serializes_it():
    provider = PromotionProvider()
    restored = dill.loads(base64.b64decode(serialize_provider(provider)))
    assert type(restored) is PromotionProvider
    assert type(pickle.loads(pickle.dumps(provider))) is PromotionProvider


def test_the_pickled_provider_names_the_module_deployed_states_unpickle():
    """Deployed states hold the provider by reference (pulumi/pulumi#7453): the path in the pickle
    is the one update and delete import, so it must not move without a shim."""
    from resources.promotion import PROVIDER_PATH

    module, _, name = PROVIDER_PATH.rpartition(".")
    pickled = base64.b64decode(serialize_provider(PromotionProvider()))
    assert module.encode() in pickled and name.encode() in pickled
    assert getattr(__import__(module, fromlist=[name]), name) is PromotionProvider


# --- the plan and the config -----------------------------------------------------------------


def test_prod_declares_the_rollout_with_its_settings_and_staging_none(stack_records):
    (promotion,) = stack_records["prod"].of_type("pulumi-python:dynamic/vertex:Promotion")
    assert promotion.inputs["model"] == (
        "projects/acme-mlops-staging/locations/europe-west4/models/tabular-mlops-staging-penguins@1"
    )
    assert promotion.inputs["canary_percent"] == 10 and promotion.inputs["canary_minutes"] == 15
    assert promotion.inputs["endpoint"].startswith(
        "projects/acme-mlops-prod/locations/europe-west4"
    )
    assert promotion.inputs["model_id"] == "tabular-mlops-prod-penguins"
    assert promotion.inputs["min_replicas"] == 2
    parent = stack_records["prod"].by_urn(promotion.parent_urn)
    assert parent.type == "tabular-mlops:vertex:Serving"
    assert stack_records["staging"].of_type("pulumi-python:dynamic/vertex:Promotion") == []
    # What CD's acceptance run expects after the rollout; staging deploys through the pipeline.
    assert "served_model" in stack_records["prod"].outputs
    assert "served_model" not in stack_records["staging"].outputs


def test_staging_lets_prod_read_its_models_and_nothing_else(stack_records):
    record = stack_records["staging"]
    readers = [r for r in record.resources if "model-readers" in r.name]
    roles = sorted((r.type.split(":")[-1], r.inputs["role"]) for r in readers)
    # Three readers: prod's deployer, its Vertex AI agent and its pipeline runner.
    assert [role for _, role in roles].count("roles/storage.objectViewer") == 3
    bucket = [r for r in readers if r.inputs["role"] == "roles/storage.objectViewer"]
    # The whole models bucket, unconditionally: a condition on object names never lets a
    # member list the bundle's directory (IAM checks a listing against the bucket).
    models = record.named("data-lake-models").inputs["name"]
    assert all(r.inputs["bucket"] == models and not r.inputs.get("condition") for r in bucket)
    assert {t for t, _ in roles} == {"BucketIAMMember", "RepositoryIamMember", "IAMMember"}
    project_roles = {r.inputs["role"] for r in readers if r.type.endswith("iAMMember:IAMMember")}
    assert project_roles == {"projects/acme-mlops-staging/roles/tabular_mlops_staging_modelReader"}


def test_config_resolves_and_checks_the_promoted_model():
    def config(**serving):
        values = stack_config_values("prod")
        values["tabular-mlops:platform"]["serving"].update(serving)
        return parse_stack_config(values, source="Pulumi.prod.yaml")

    assert config(model="penguins-prod@3").platform.serving.model == "penguins-prod@3"
    with pytest.raises(ConfigError, match=r"serving.model: 'penguins@latest' is not a model"):
        config(model="penguins@latest")
    with pytest.raises(ConfigError, match=r"serving.model: the model is in 'us-east1'"):
        config(model="projects/acme-mlops-staging/locations/us-east1/models/m@1")
    with pytest.raises(ConfigError, match=r"serving.canary_percent: must be <= 99, got 100"):
        config(canary_percent=100)
    with pytest.raises(ConfigError, match=r"serving.canary_minutes: a canary period needs"):
        config(canary_percent=0, canary_minutes=5)
