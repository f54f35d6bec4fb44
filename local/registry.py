"""Local stand-ins for the Vertex AI Model Registry and endpoints: plain files under one folder.

The training pipeline registers and deploys through this module when it runs locally; the local
serving and evaluation work read it. It mirrors the parts of Vertex AI the platform relies on:

Model Registry (`LocalModelRegistry`, under `LocalEnvironment.registry_dir`)::

    <model_id>/model.json                  model-level record: display name, aliases -> version
    <model_id>/versions/<n>/version.json   one version: the fields of a Vertex `Model.upload`
    <model_id>/versions/<n>/artifacts/     a copy of the uploaded artifact directory

- Version ids are "1", "2", … in upload order, as in Vertex.
- An alias names one version at a time: applying it to a version moves it off any other. The
  `default` alias always names exactly one version (the first upload, then each upload made with
  `is_default_version=True`); `get(model_id)` without a version returns it, as Vertex does.
- Artifacts are copied in, so a version outlives the pipeline run that produced it.

Endpoints (`LocalEndpoint`, one JSON file each under `LocalEnvironment.endpoints_dir`)::

    {"endpoint": "staging",
     "deployed_models": [{"id": "1", "model_id": "…", "version_id": "2", "artifact_uri": "…",
                          "traffic_percentage": 100, "deployed_at": "…"}],
     "history": [{"at": "…", "action": "deploy" | "traffic" | "undeploy", …}]}

- `deploy(version, traffic_percentage)` adds a deployed model; the others share what is left in
  proportion to their traffic, as `Endpoint.deploy` does. `undeploy(id)` refuses a model that still
  receives traffic (Vertex does too), so a serving model is only removed once another serves.
- The model serving a request is chosen by traffic; `serving()` is the one with the most traffic
  (the champion), which is what the training pipeline's gate compares a challenger with.

Every write replaces its file atomically, so a reader (the local prediction server) never sees a
half-written state. Writers of one model or endpoint take a lock on it (POSIX `flock`), so two
concurrent uploads or deployments never lose each other's changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_ALIAS = "default"
DIGEST_VARIABLE = "MODEL_SHA256"
"""The serving variable holding the bundle's sha256 (`serving.integrity.bundle_digest`)."""
# Vertex rules: model ids are short lowercase names; aliases are not numeric (they would read as
# version ids) and start with a letter.
_MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ALIAS = re.compile(r"^[a-z][a-z0-9-]{0,127}$")
_ENDPOINT = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class RegistryError(ValueError):
    """A registry or endpoint request that cannot be served; the message says what and where."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """Replace `path` atomically: readers see the old or the new document, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(temporary, path)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (a lock file) for a read-modify-write of a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _checked_aliases(aliases: tuple[str, ...] | list[str]) -> list[str]:
    """The aliases a version is uploaded with, once each; RegistryError for one Vertex AI would
    refuse, or for `default` (set through is_default_version)."""
    unique = list(dict.fromkeys(aliases))
    for alias in unique:
        if alias == DEFAULT_ALIAS or not _ALIAS.match(alias):
            raise RegistryError(
                f"alias {alias!r}: aliases start with a letter, hold lowercase letters, digits "
                f"and '-', and '{DEFAULT_ALIAS}' is set through is_default_version"
            )
    return unique


@dataclass(frozen=True)
class ModelVersion:
    """One registered version, with the fields of a Vertex AI `Model.upload`."""

    model_id: str
    version_id: str
    display_name: str
    artifact_uri: str
    """Absolute path of the version's artifact directory (inside the registry)."""
    serving_container_image_uri: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    version_aliases: tuple[str, ...] = ()
    version_description: str = ""
    description: str = ""
    created_at: str = ""
    source_artifact_uri: str = ""
    """Where the artifacts were uploaded from (the pipeline run's model artifact)."""
    serving_container_environment_variables: dict[str, str] = field(default_factory=dict)
    """As on Vertex AI; holds MODEL_SHA256, the bundle's digest, recorded at upload."""

    @property
    def bundle_sha256(self) -> str:
        """The digest of the bundle recorded at registration ("" for a version without one)."""
        return self.serving_container_environment_variables.get(DIGEST_VARIABLE, "")

    @property
    def resource_name(self) -> str:
        """`<model_id>@<version>`: the versioned name, like Vertex's `models/<id>@<version>`."""
        return f"{self.model_id}@{self.version_id}"

    @property
    def artifact_path(self) -> Path:
        return Path(self.artifact_uri)


class LocalModelRegistry:
    """A file-based model registry with the Vertex AI Model Registry's fields and alias rules."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _model_dir(self, model_id: str) -> Path:
        if not _MODEL_ID.match(model_id):
            raise RegistryError(
                f"model id {model_id!r} must be 1-63 lowercase letters, digits, '-' or '_'"
            )
        return self.root / model_id

    def upload(
        self,
        model_id: str,
        artifact_dir: str | Path,
        *,
        display_name: str,
        serving_container_image_uri: str = "",
        labels: dict[str, str] | None = None,
        version_aliases: tuple[str, ...] | list[str] = (),
        version_description: str = "",
        description: str = "",
        is_default_version: bool = True,
        serving_container_environment_variables: dict[str, str] | None = None,
    ) -> ModelVersion:
        """Add a version of `model_id` (creating the model on first upload) and return it."""
        source = Path(artifact_dir)
        if not source.is_dir():
            raise RegistryError(f"artifact directory {source} does not exist")
        aliases = _checked_aliases(version_aliases)
        model_dir = self._model_dir(model_id)
        versions_dir = model_dir / "versions"
        with _locked(model_dir / ".lock"):
            version_dir = self._next_version_dir(versions_dir)
        version_id = version_dir.name
        shutil.copytree(source, version_dir / "artifacts")
        environment = _with_digest(
            version_dir / "artifacts", dict(serving_container_environment_variables or {})
        )
        _write_json(
            version_dir / "version.json",
            {
                "model_id": model_id,
                "version_id": version_id,
                "display_name": display_name,
                "artifact_uri": str((version_dir / "artifacts").resolve()),
                "source_artifact_uri": str(source.resolve()),
                "serving_container_image_uri": serving_container_image_uri,
                "labels": dict(labels or {}),
                "serving_container_environment_variables": environment,
                "version_description": version_description,
                "description": description,
                "created_at": _now(),
            },
        )
        # The model record (aliases) is written last: a version becomes visible by alias only
        # once its files are complete.
        self._name_version(model_id, version_id, display_name, aliases, is_default_version)
        return self.get(model_id, version_id)

    def _name_version(
        self, model_id: str, version_id: str, display_name: str, aliases: list[str], default: bool
    ) -> None:
        """Point `aliases` (and `default`, when asked or when no version holds it yet) at the
        version, moving each off any other, in the model record (created on first upload)."""
        model_dir = self._model_dir(model_id)
        with _locked(model_dir / ".lock"):
            record = self._model_record(model_id) or {
                "model_id": model_id,
                "created_at": _now(),
                "aliases": {},
            }
            record["display_name"] = display_name
            if default or DEFAULT_ALIAS not in record["aliases"]:
                aliases = [*aliases, DEFAULT_ALIAS]
            for alias in aliases:
                record["aliases"][alias] = version_id  # moves the alias off any other version
            _write_json(model_dir / "model.json", record)

    @staticmethod
    def _next_version_dir(versions_dir: Path) -> Path:
        """Create the next version's directory (under the model's lock)."""
        versions_dir.mkdir(parents=True, exist_ok=True)
        number = max((int(p.name) for p in versions_dir.iterdir() if p.name.isdigit()), default=0)
        (versions_dir / str(number + 1)).mkdir()
        return versions_dir / str(number + 1)

    def _model_record(self, model_id: str) -> dict[str, Any] | None:
        path = self._model_dir(model_id) / "model.json"
        return _read_json(path) if path.is_file() else None

    def exists(self, model_id: str) -> bool:
        return self._model_record(model_id) is not None

    def get(self, model_id: str, version: str = DEFAULT_ALIAS) -> ModelVersion:
        """A version by id ("3") or alias ("default", "staging"); also accepts `<id>@<version>`."""
        if "@" in model_id:
            model_id, version = model_id.split("@", 1)
        record = self._model_record(model_id)
        if record is None:
            raise RegistryError(f"model {model_id!r} is not in the registry at {self.root}")
        version_id = version if version.isdigit() else record["aliases"].get(version)
        path = self._model_dir(model_id) / "versions" / str(version_id) / "version.json"
        if version_id is None or not path.is_file():
            known = ", ".join(sorted(record["aliases"])) or "none"
            raise RegistryError(
                f"model {model_id!r} has no version or alias {version!r} (aliases: {known})"
            )
        document = _read_json(path)
        aliases = tuple(sorted(a for a, v in record["aliases"].items() if v == version_id))
        return ModelVersion(**document, version_aliases=aliases)

    def versions(self, model_id: str) -> list[ModelVersion]:
        """Every version of the model, oldest first."""
        if not self.exists(model_id):
            return []
        versions_dir = self._model_dir(model_id) / "versions"
        numbers = sorted(
            int(p.name) for p in versions_dir.iterdir() if (p / "version.json").is_file()
        )
        return [self.get(model_id, str(n)) for n in numbers]

    def add_version_aliases(self, model_id: str, version: str, aliases: list[str]) -> ModelVersion:
        """Point `aliases` at a version, moving each off the version that held it."""
        target = self.get(model_id, version)
        for alias in aliases:
            if not _ALIAS.match(alias):  # "default" may move too: it still names one version
                raise RegistryError(f"alias {alias!r} must start with a letter, not be numeric")
        model_dir = self._model_dir(model_id)
        with _locked(model_dir / ".lock"):
            record = self._model_record(model_id) or {}
            for alias in aliases:
                record["aliases"][alias] = target.version_id
            _write_json(model_dir / "model.json", record)
        return self.get(model_id, target.version_id)


def _with_digest(artifacts: Path, environment: dict[str, str]) -> dict[str, str]:
    """The version's serving variables with the digest of the bundle as copied in; a digest the
    uploader gave must match it (the copy is what will be served)."""
    if not all((artifacts / name).is_file() for name in ("model.joblib", "model.json")):
        return environment  # not a model bundle (nothing could serve it)
    from pipeline_src.serving.integrity import bundle_digest

    digest = bundle_digest(str(artifacts))
    given = environment.get(DIGEST_VARIABLE)
    if given and given != digest:
        raise RegistryError(
            f"{artifacts}: the bundle's sha256 {digest} is not the {given} it was uploaded with"
        )
    return {**environment, DIGEST_VARIABLE: digest}


@dataclass(frozen=True)
class DeployedModel:
    """A model version deployed to a local endpoint."""

    id: str
    model_id: str
    version_id: str
    artifact_uri: str
    traffic_percentage: int
    deployed_at: str
    bundle_sha256: str = ""
    """The version's MODEL_SHA256: what the server checks the bundle against before loading it."""

    @property
    def resource_name(self) -> str:
        return f"{self.model_id}@{self.version_id}"


class LocalEndpoint:
    """One local endpoint's state: which registry versions it serves, with what traffic."""

    def __init__(self, endpoints_dir: str | Path, name: str):
        if not _ENDPOINT.match(name):
            raise RegistryError(
                f"endpoint name {name!r} must be lowercase letters, digits, '-' or '_'"
            )
        self.name = name
        self.path = Path(endpoints_dir) / f"{name}.json"

    def _state(self) -> dict[str, Any]:
        if self.path.is_file():
            return _read_json(self.path)
        return {"endpoint": self.name, "deployed_models": [], "history": []}

    @contextlib.contextmanager
    def _change(self) -> Iterator[dict[str, Any]]:
        """The state to modify in place; written back atomically, under the endpoint's lock."""
        with _locked(self.path.with_suffix(".lock")):
            state = self._state()
            yield state
            _write_json(self.path, state)

    def deployed_models(self) -> list[DeployedModel]:
        return [DeployedModel(**m) for m in self._state()["deployed_models"]]

    @property
    def traffic_split(self) -> dict[str, int]:
        """Deployed model id -> share of requests in percent (sums to 100 when any is deployed)."""
        return {m.id: m.traffic_percentage for m in self.deployed_models()}

    def serving(self) -> DeployedModel | None:
        """The deployed model receiving the most traffic (the newest on a tie), if any."""
        models = self.deployed_models()
        if not models:
            return None
        return max(models, key=lambda m: (m.traffic_percentage, int(m.id)))

    def deploy(self, version: ModelVersion, traffic_percentage: int = 100) -> DeployedModel:
        """Deploy a registry version; the others share the rest of the traffic pro rata."""
        if not 0 <= traffic_percentage <= 100:
            raise RegistryError(f"traffic_percentage must be 0-100, got {traffic_percentage}")
        with self._change() as state:
            current = state["deployed_models"]
            if not current:
                traffic_percentage = 100  # the first model takes all traffic, as on Vertex
            deployed = DeployedModel(
                id=str(1 + max((int(m["id"]) for m in current), default=0)),
                model_id=version.model_id,
                version_id=version.version_id,
                artifact_uri=version.artifact_uri,
                traffic_percentage=traffic_percentage,
                deployed_at=_now(),
                bundle_sha256=version.bundle_sha256,
            )
            others = _rescale([m["traffic_percentage"] for m in current], 100 - traffic_percentage)
            for model, share in zip(current, others, strict=True):
                model["traffic_percentage"] = share
            current.append(asdict(deployed))
            state["history"].append(
                {
                    "at": deployed.deployed_at,
                    "action": "deploy",
                    "deployed_model_id": deployed.id,
                    "model": deployed.resource_name,
                    "traffic_split": {m["id"]: m["traffic_percentage"] for m in current},
                }
            )
        return deployed

    def set_traffic(self, split: dict[str, int]) -> None:
        """Set every deployed model's share at once (as `Endpoint.update(traffic_split=…)`)."""
        with self._change() as state:
            # In the endpoint's order, as `deploy` records a split (a set's order varies per run).
            shares = {m["id"]: split.get(m["id"], 0) for m in state["deployed_models"]}
            unknown = sorted(set(split) - shares.keys())
            if unknown:
                raise RegistryError(f"endpoint {self.name} has no deployed models {unknown}")
            if any(not 0 <= v <= 100 for v in shares.values()) or sum(shares.values()) != 100:
                raise RegistryError(
                    f"a traffic split is 0-100 per deployed model and sums to 100, got {split}"
                )
            for model in state["deployed_models"]:
                model["traffic_percentage"] = shares[model["id"]]
            state["history"].append({"at": _now(), "action": "traffic", "traffic_split": shares})

    def undeploy(self, deployed_model_id: str) -> None:
        """Remove a deployed model that no longer receives traffic."""
        with self._change() as state:
            remaining = [m for m in state["deployed_models"] if m["id"] != deployed_model_id]
            gone = [m for m in state["deployed_models"] if m["id"] == deployed_model_id]
            if not gone:
                raise RegistryError(
                    f"endpoint {self.name} has no deployed model {deployed_model_id}"
                )
            if gone[0]["traffic_percentage"] and remaining:
                raise RegistryError(
                    f"deployed model {deployed_model_id} on endpoint {self.name} still receives "
                    f"{gone[0]['traffic_percentage']}% of the traffic; shift it to another "
                    "model first"
                )
            state["deployed_models"] = remaining
            state["history"].append(
                {
                    "at": _now(),
                    "action": "undeploy",
                    "deployed_model_id": deployed_model_id,
                    "model": f"{gone[0]['model_id']}@{gone[0]['version_id']}",
                }
            )

    def history(self) -> list[dict[str, Any]]:
        return list(self._state()["history"])


def _rescale(shares: list[int], total: int) -> list[int]:
    """Integer percentages scaled to sum to `total`, in proportion (largest remainder method)."""
    if not shares:
        return []
    weights = shares if sum(shares) else [1] * len(shares)
    exact = [w * total / sum(weights) for w in weights]
    scaled = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - scaled[i], reverse=True)
    for i in by_remainder[: total - sum(scaled)]:
        scaled[i] += 1
    return scaled
