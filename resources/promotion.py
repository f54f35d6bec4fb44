"""Promotion: the model version the prod stack's config names, rolled out to its endpoint.

No native Pulumi resource deploys a model to a Vertex AI endpoint, so this is a small dynamic
resource (google-cloud-aiplatform). Promotion is GitOps: QA's PR changes
`platform.serving.model` in `Pulumi.prod.yaml` (`make promote` writes it), `pulumi preview`
shows this resource's update with the old and new version, and the merge's `pulumi up` rolls it
out. Rolling back is reverting that change: the same rollout brings the earlier version back.

The rollout (`roll_out`, one routine for Vertex AI and for the local endpoints):

1. the version to serve is made available in the target registry (`Registry.make_available`);
2. it is deployed beside what serves now with `canary_percent` of the traffic (all of it when
   the endpoint serves nothing, or the canary is 0);
3. after `canary_minutes`, it takes all the traffic;
4. only then are the models that served before undeployed: the endpoint never answers with
   nothing, and a failure before step 3 leaves the old model serving most requests.

A rollout of the version already serving all traffic changes nothing, and one that stopped
half-way (a failed `pulumi up`) resumes from the deployed canary: re-running is safe.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pulumi
from pulumi import dynamic

PROMOTED_ALIAS = "prod"
DEFAULT_ALIAS = "default"
"""The alias Vertex AI's Model Registry keeps on a model's default version."""
_FULL_NAME = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/models/(?P<model>[^/@]+)"
    r"@(?P<version>[0-9]+)$"
)


_PROJECT = re.compile(r"^projects/[^/]+/")


@dataclass(frozen=True)
class Deployed:
    """A model deployed to the endpoint: its deployed id, versioned model name and traffic."""

    id: str
    model: str
    traffic: int


class Registry(Protocol):
    def make_available(self, source: str) -> str:
        """The versioned name the endpoint can deploy for `source` (a copy made if needed)."""


class Endpoint(Protocol):
    def deployed(self) -> list[Deployed]: ...

    def deploy(self, model: str, traffic: int) -> str:
        """Deploy with `traffic` percent, the others sharing the rest; the deployed id."""

    def set_traffic(self, split: dict[str, int]) -> None: ...

    def undeploy(self, deployed_id: str) -> None: ...


@dataclass(frozen=True)
class RolloutResult:
    model: str
    """The versioned name now serving all traffic (in the target registry)."""
    deployed_model_id: str
    undeployed: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    """What happened, in order (printed by the demo, kept in the resource's outputs)."""


def roll_out(
    registry: Registry,
    endpoint: Endpoint,
    source: str,
    canary_percent: int,
    canary_minutes: float,
    *,
    say: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutResult:
    """Make `source` serve all of the endpoint's traffic: canary, then full, then retire the old."""
    if not 0 <= canary_percent < 100:
        raise ValueError(f"canary_percent must be 0-99, got {canary_percent}")
    steps: list[str] = []

    def step(message: str) -> None:
        steps.append(message)
        say(message)

    model = registry.make_available(source)
    if model != source:
        step(f"{source} is available as {model}")
    before = endpoint.deployed()
    current = [d for d in before if _same_model(d.model, model) and d.traffic == 100]
    if current and len(before) == 1:
        step(f"{model} already serves all traffic (deployed model {current[0].id})")
        return RolloutResult(model=model, deployed_model_id=current[0].id, steps=steps)

    resumed = next((d for d in before if _same_model(d.model, model)), None)
    others = [d for d in before if d is not resumed]
    if resumed is None:
        serving = [d for d in others if d.traffic > 0]
        canary = canary_percent if serving and canary_percent else 100
        deployed_id = endpoint.deploy(model, canary)
        if canary < 100:
            step(
                f"canary: {model} deployed as {deployed_id} with {canary}% of the traffic, "
                f"{', '.join(f'{d.model} ({d.id})' for d in serving)} the rest"
            )
    else:
        # A rollout that stopped half-way (a failed `pulumi up`) left the version deployed: it
        # resumes from there (the canary period starting again) instead of deploying it twice.
        deployed_id, canary = resumed.id, resumed.traffic
        step(f"resuming: {model} is deployed as {deployed_id} with {canary}% of the traffic")
    if canary < 100:
        if canary_minutes > 0:
            step(f"canary period: {canary_minutes:g} min")
            sleep(canary_minutes * 60)
        endpoint.set_traffic({deployed_id: 100, **{d.id: 0 for d in others}})
    step(f"{model} serves all traffic (deployed model {deployed_id})")
    undeployed = []
    for old in others:
        endpoint.undeploy(old.id)
        undeployed.append(old.id)
        step(f"undeployed {old.model} ({old.id})")
    return RolloutResult(model, deployed_id, undeployed, steps)


def _same_model(a: str, b: str) -> bool:
    """Whether two versioned names name one version. Vertex AI answers with the project's number
    where a stack file names its id; an endpoint only serves models of its own project, so the
    rest of the name decides."""
    return _PROJECT.sub("", a) == _PROJECT.sub("", b)


def source_digest(source: str) -> str:
    """A short, label-safe digest of a source model name."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


# --- Vertex AI --------------------------------------------------------------------------------


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
    """The target project's Model Registry; a model of another project is re-registered."""

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
        if parent is not None:
            registry = aiplatform.models.ModelRegistry(parent)
            for version in registry.list_versions():
                # The period ends the source's name: the copy of @1 is not the copy of @12.
                if (version.version_description or "").startswith(f"{description}."):
                    # A rollback reuses the copy: the alias and the default version move back
                    # to it too (an alias names one version; adding it moves it), so `@prod`
                    # and the default name what the endpoint serves.
                    missing = [
                        alias
                        for alias in (PROMOTED_ALIAS, DEFAULT_ALIAS)
                        if alias not in (getattr(version, "version_aliases", None) or [])
                    ]
                    if missing:
                        registry.add_version_aliases(
                            new_aliases=missing, version=version.version_id
                        )
                    return f"{parent.resource_name}@{version.version_id}"
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


class VertexEndpoint:
    def __init__(self, endpoint: str, machine_type: str, min_replicas: int, max_replicas: int):
        from google.cloud import aiplatform

        self._endpoint = aiplatform.Endpoint(endpoint)
        self.machine_type, self.min_replicas, self.max_replicas = (
            machine_type, min_replicas, max_replicas,
        )  # fmt: skip

    def deployed(self) -> list[Deployed]:
        split = self._endpoint.traffic_split  # each read fetches the endpoint afresh
        return [
            Deployed(d.id, f"{d.model}@{d.model_version_id}", int(split.get(d.id, 0)))
            for d in self._endpoint.list_models()
        ]

    def deploy(self, model: str, traffic: int) -> str:
        from google.cloud import aiplatform

        before = {d.id for d in self.deployed()}
        self._endpoint.deploy(
            model=aiplatform.Model(model),
            traffic_percentage=traffic,
            machine_type=self.machine_type,
            min_replica_count=self.min_replicas,
            max_replica_count=self.max_replicas,
            sync=True,  # returns once the new model serves
        )
        new = [d.id for d in self.deployed() if d.id not in before]
        if len(new) != 1:
            raise RuntimeError(f"deploying {model} left {len(new)} new deployed models")
        return new[0]

    def set_traffic(self, split: dict[str, int]) -> None:
        self._endpoint.update(traffic_split=split)

    def undeploy(self, deployed_id: str) -> None:
        self._endpoint.undeploy(deployed_model_id=deployed_id)


# --- the dynamic resource ---------------------------------------------------------------------

ROLLOUT_INPUTS = ("model", "canary_percent", "canary_minutes", "machine_type", "min_replicas",
                  "max_replicas")  # fmt: skip
"""Inputs whose change rolls out again (in place); a change of endpoint or project replaces."""
REPLACING_INPUTS = ("project", "region", "endpoint", "model_id")


# The state of every deployed `serving-promotion` holds this provider pickled BY REFERENCE
# (dill pickles a class of an importable module by its path): update and delete unpickle
# `resources.promotion.PromotionProvider` (pulumi/pulumi#7453). Moving or renaming this module
# or class breaks existing stacks: if it must move, leave a shim here that re-exports it
# (`from <new module> import PromotionProvider`) until every stack has been updated once.
PROVIDER_PATH = "resources.promotion.PromotionProvider"


class PromotionProvider(dynamic.ResourceProvider):
    """Create / diff / update / delete of a model rollout on a Vertex AI endpoint.

    Holds no state and no clients (it is pickled when the resource is declared); the SDK is
    imported inside the calls.
    """

    def _roll_out(self, props: dict[str, Any]) -> dict[str, Any]:
        from google.cloud import aiplatform

        aiplatform.init(project=props["project"], location=props["region"])
        registry = VertexRegistry(
            props["project"], props["region"], props["model_id"], props["display_name"],
            props.get("labels") or {},
        )  # fmt: skip
        endpoint = VertexEndpoint(
            props["endpoint"], props["machine_type"], int(props["min_replicas"]),
            int(props["max_replicas"]),
        )  # fmt: skip
        result = roll_out(
            registry,
            endpoint,
            props["model"],
            int(props["canary_percent"]),
            float(props["canary_minutes"]),
            say=pulumi.log.info,
        )
        return {
            **props,
            "served_model": result.model,
            "deployed_model_id": result.deployed_model_id,
            "undeployed": result.undeployed,
            "steps": result.steps,
        }

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        outs = self._roll_out(props)
        return dynamic.CreateResult(id_=f"{props['endpoint']}/promotion", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [k for k in (*ROLLOUT_INPUTS, *REPLACING_INPUTS) if olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k in REPLACING_INPUTS]
        return dynamic.DiffResult(
            changes=bool(changed), replaces=replaces, delete_before_replace=bool(replaces)
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=self._roll_out(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Undeploy what the rollout deployed; registered versions stay (the registry's history)."""
        from google.api_core.exceptions import NotFound
        from google.cloud import aiplatform

        aiplatform.init(project=props["project"], location=props["region"])
        try:
            endpoint = aiplatform.Endpoint(props["endpoint"])
            deployed = {d.id for d in endpoint.list_models()}
        except NotFound:
            return  # the endpoint went first: nothing is deployed any more
        if props.get("deployed_model_id") in deployed:
            endpoint.undeploy(deployed_model_id=props["deployed_model_id"])


@dataclass(frozen=True)
class PromotionArgs:
    project: str
    region: str
    endpoint: pulumi.Input[str]
    """The endpoint's resource name, projects/P/locations/R/endpoints/ID."""
    model: str
    """The version to serve: projects/P/locations/R/models/ID@VERSION (another project's too)."""
    model_id: str
    """The target project's model id a version of another project is re-registered under."""
    display_name: str
    labels: dict[str, str]
    canary_percent: int
    canary_minutes: float
    machine_type: str
    min_replicas: int
    max_replicas: int


class Promotion(dynamic.Resource, module="vertex", name="Promotion"):
    """The model version a stack's endpoint serves, rolled out with a canary."""

    served_model: pulumi.Output[str]
    """The versioned name serving all traffic (the re-registered copy across projects)."""
    deployed_model_id: pulumi.Output[str]

    def __init__(self, name: str, args: PromotionArgs, opts: pulumi.ResourceOptions | None = None):
        props = {
            "project": args.project,
            "region": args.region,
            "endpoint": args.endpoint,
            "model": args.model,
            "model_id": args.model_id,
            "display_name": args.display_name,
            "labels": dict(args.labels),
            "canary_percent": args.canary_percent,
            "canary_minutes": args.canary_minutes,
            "machine_type": args.machine_type,
            "min_replicas": args.min_replicas,
            "max_replicas": args.max_replicas,
            "served_model": None,
            "deployed_model_id": None,
            "undeployed": None,
            "steps": None,
        }
        super().__init__(PromotionProvider(), name, props, opts)
