"""Vertex AI's side of deploying models: the one deploy routine, and the rollout's adapters.

`deploy_to_vertex_endpoint` and `undeploy_from_vertex_endpoint` are the only code that deploys to
or undeploys from a Vertex AI endpoint: the prod stack's rollout (`VertexEndpoint` below, driven
by `pipeline_src/rollout.py` from the Promotion resource, and by `replace_all` from the training
pipeline's deploy step through the endpoint port's adapter, pipeline_src/cloud/endpoints.py) and
the Promotion resource's delete call them.

`VertexRegistry` and `VertexEndpoint` are the rollout's `ModelSource` and `Endpoint` ports on
Vertex AI. The SDK is imported inside the calls: the Pulumi program imports this module to
declare the Promotion resource, and an offline plan never needs google-cloud-aiplatform.

**Staging and prod in separate projects.** A Vertex AI endpoint serves models of its own
project, and copying a model between projects does not work for models served from a custom
container (ours), so the version is *re-registered*: uploaded as a version of the prod project's
model from the same artifact directory (the staging artifacts bucket's `models/`, which never
expires) and the same serving image, with its labels, its MODEL_SHA256 (the bundle's digest,
checked against the bundle's files first) and a description naming the source. A re-run finds
that copy by its description rather than uploading again. The staging stack grants
what this needs to `platform.serving.model_readers` (the prod deployer and the prod project's
Vertex AI service agent): reading the model in the registry, its bundle and its image
(docs/serving.md). Within one project the version itself is deployed.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pipeline_src.rollout import PROMOTED_ALIAS, Deployed

DEFAULT_ALIAS = "default"
"""The alias Vertex AI's Model Registry keeps on a model's default version."""
_FULL_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/models/(?P<model>[^/@]+)"
    r"@(?P<version>[0-9]+)$"
)


# --- the deploy routine -------------------------------------------------------------------------


def deploy_to_vertex_endpoint(
    endpoint,
    model: str,
    traffic_percentage: int,
    machine_type: str,
    min_replicas: int,
    max_replicas: int,
    service_account: str = "",
) -> str:
    """Deploy model version `model` (projects/P/locations/R/models/ID@VERSION) to `endpoint` (an
    `aiplatform.Endpoint`, after `aiplatform.init`) with `traffic_percentage` of its traffic, the
    models deployed before sharing the rest in proportion; returns the new deployed model's id
    once it serves. `service_account`: the identity the model's container runs as (empty: Vertex
    AI's default)."""
    from google.cloud import aiplatform

    before = {d.id for d in endpoint.list_models()}
    endpoint.deploy(
        model=aiplatform.Model(model),
        traffic_percentage=traffic_percentage,
        machine_type=machine_type,
        min_replica_count=min_replicas,
        max_replica_count=max_replicas,
        **({"service_account": service_account} if service_account else {}),
        sync=True,  # returns once the new model serves
    )
    new = [d.id for d in endpoint.list_models() if d.id not in before]
    if len(new) != 1:
        raise RuntimeError(f"deploying {model} left {len(new)} new deployed models, not 1")
    return new[0]


def undeploy_from_vertex_endpoint(endpoint, deployed_model_id: str) -> None:
    """Undeploy one deployed model from `endpoint` (an `aiplatform.Endpoint`). Vertex AI refuses
    a model that still has traffic while others are deployed: move the traffic first."""
    endpoint.undeploy(deployed_model_id=deployed_model_id)


# --- the rollout's ports on Vertex AI ---------------------------------------------------------


class VertexEndpoint:
    """The rollout's `Endpoint` on a Vertex AI endpoint (resource name projects/P/.../ID)."""

    def __init__(
        self, endpoint: str, machine_type: str, min_replicas: int, max_replicas: int,
        service_account: str = "",
    ):  # fmt: skip
        from google.cloud import aiplatform

        self._endpoint = aiplatform.Endpoint(endpoint)
        self.machine_type, self.min_replicas, self.max_replicas = (
            machine_type, min_replicas, max_replicas,
        )  # fmt: skip
        self.service_account = service_account

    def deployed(self) -> list[Deployed]:
        split = self._endpoint.traffic_split  # each read fetches the endpoint afresh
        return [
            Deployed(d.id, f"{d.model}@{d.model_version_id}", int(split.get(d.id, 0)))
            for d in self._endpoint.list_models()
        ]

    def deploy(self, model: str, traffic: int) -> str:
        return deploy_to_vertex_endpoint(
            self._endpoint, model, traffic, self.machine_type, self.min_replicas,
            self.max_replicas, self.service_account,
        )  # fmt: skip

    def set_traffic(self, split: dict[str, int]) -> None:
        self._endpoint.update(traffic_split=split)

    def undeploy(self, deployed_id: str) -> None:
        undeploy_from_vertex_endpoint(self._endpoint, deployed_id)


def source_digest(source: str) -> str:
    """A short, label-safe digest of a source model name."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def verify_remote_bundle(artifact_uri: str, expected: str) -> None:
    """Check a gs:// bundle against the digest recorded at its registration, reading its files
    (nothing is unpickled): a bundle changed since QA accepted it is not promoted."""
    import tempfile
    from pathlib import Path

    from google.cloud import storage

    from pipeline_src.serving.integrity import verify_bundle

    bucket, _, prefix = artifact_uri.removeprefix("gs://").partition("/")
    client = storage.Client()
    with tempfile.TemporaryDirectory(prefix="promoted-bundle-") as scratch:
        for name in ("model.joblib", "model.json"):
            blob = client.bucket(bucket).blob(f"{prefix.rstrip('/')}/{name}")
            blob.download_to_filename(str(Path(scratch) / name))
        verify_bundle(scratch, expected)


class VertexRegistry:
    """The rollout's `ModelSource`: the target project's Model Registry, where a model of
    another project is re-registered."""

    def __init__(self, project: str, region: str, model_id: str, display_name: str, labels: dict):
        self.project, self.region = project, region
        self.model_id, self.display_name, self.labels = model_id, display_name, dict(labels)

    def make_available(self, source: str) -> str:
        from google.api_core.exceptions import NotFound
        from google.cloud import aiplatform

        match = _FULL_NAME.match(source)
        if not match:
            raise ValueError(f"{source!r} is not projects/P/locations/R/models/ID@VERSION")
        if match["region"] != self.region:
            raise ValueError(
                f"{source} is in {match['region']}; the endpoint serves models of {self.region}"
            )
        if match["project"] == self.project:
            return source
        description = f"Promoted from {source}"
        try:
            parent = aiplatform.Model(self.model_id, project=self.project, location=self.region)
        except NotFound:
            parent = None
        copy = _registered_copy(parent, description) if parent is not None else None
        return copy or self._upload_copy(source, parent, description)

    def _upload_copy(self, source: str, parent: Any, description: str) -> str:
        """Register `source` again in the target project: same bundle, image and digest."""
        from google.cloud import aiplatform

        original = aiplatform.Model(source)
        spec = original.gca_resource.container_spec
        # The copy carries the source's MODEL_SHA256 (prod's container checks it at start-up),
        # once the bundle is checked against it here: what serves is what QA accepted.
        environment = {variable.name: variable.value for variable in spec.env}
        verify_remote_bundle(original.uri, environment.get("MODEL_SHA256", ""))
        copy = aiplatform.Model.upload(
            project=self.project,
            location=self.region,
            artifact_uri=original.uri,
            serving_container_image_uri=spec.image_uri,
            serving_container_command=list(spec.command) or None,
            serving_container_args=list(spec.args) or None,
            serving_container_predict_route=spec.predict_route or None,
            serving_container_health_route=spec.health_route or None,
            serving_container_ports=[p.container_port for p in spec.ports] or None,
            serving_container_environment_variables=environment or None,
            display_name=self.display_name,
            labels={
                **dict(original.labels or {}),
                **self.labels,
                "promoted_from": source_digest(source),
            },
            version_aliases=[PROMOTED_ALIAS],
            version_description=f"{description}. {original.version_description or ''}".strip(),
            is_default_version=True,
            **({"parent_model": parent.resource_name} if parent else {"model_id": self.model_id}),
        )
        return copy.versioned_resource_name


def _registered_copy(parent: Any, description: str) -> str | None:
    """The versioned name of the copy a previous rollout registered under `parent`, if any."""
    from google.cloud import aiplatform

    registry = aiplatform.models.ModelRegistry(parent)
    for version in registry.list_versions():
        # The period ends the source's name: the copy of @1 is not the copy of @12.
        if (version.version_description or "").startswith(f"{description}."):
            # A rollback reuses the copy: the alias and the default version move back to it
            # too (an alias names one version; adding it moves it), so `@prod` and the default
            # name what the endpoint serves.
            missing = [
                alias
                for alias in (PROMOTED_ALIAS, DEFAULT_ALIAS)
                if alias not in (getattr(version, "version_aliases", None) or [])
            ]
            if missing:
                registry.add_version_aliases(new_aliases=missing, version=version.version_id)
            return f"{parent.resource_name}@{version.version_id}"
    return None
