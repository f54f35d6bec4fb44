"""The rollout: a model version made to serve all of an endpoint's traffic, with a canary first.

Domain code with no cloud and no infrastructure in it: it drives two ports, `ModelSource` (makes
the version deployable on the endpoint) and `Endpoint` (what is deployed, deploy with a traffic
share, set the split, undeploy). Their adapters are Vertex AI's (`pipeline_src/cloud/rollout.py`,
used by the prod stack's Promotion resource, `resources/promotion.py`) and the local stand-ins'
(`local/promotion.py`, used by `make demo`). It lives in `pipeline_src`, the deployed package,
because that is the one package both the Pulumi program and the local stand-ins import and the
pipeline image carries; `resources/` is the infrastructure layer local code must not depend on.

`roll_out`:

1. the version to serve is made available to the endpoint (`ModelSource.make_available`);
2. it is deployed beside what serves now with `canary_percent` of the traffic (all of it when
   the endpoint serves nothing, or the canary is 0);
3. after `canary_minutes`, it takes all the traffic;
4. only then are the models that served before undeployed: the endpoint never answers with
   nothing, and a failure before step 3 leaves the old model serving most requests.

A rollout of the version already serving all traffic changes nothing, and one that stopped
half-way (a failed `pulumi up`) resumes from the deployed canary: re-running is safe.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

PROMOTED_ALIAS = "prod"
"""The registry alias of the version a promotion rolled out."""

_PROJECT = re.compile(r"^projects/[^/]+/")


@dataclass(frozen=True)
class Deployed:
    """A model deployed to the endpoint: its deployed id, versioned model name and traffic."""

    id: str
    model: str
    traffic: int


class ModelSource(Protocol):
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
    registry: ModelSource,
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
    current = [d for d in before if same_model(d.model, model) and d.traffic == 100]
    if current and len(before) == 1:
        step(f"{model} already serves all traffic (deployed model {current[0].id})")
        return RolloutResult(model=model, deployed_model_id=current[0].id, steps=steps)

    resumed = next((d for d in before if same_model(d.model, model)), None)
    others = [d for d in before if d is not resumed]
    if resumed is None:
        deployed_id, canary = _deploy_canary(endpoint, model, others, canary_percent, step)
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


def replace_all(endpoint: Endpoint, model: str) -> tuple[str, list[str]]:
    """Deploy `model` with all the traffic, then undeploy every model deployed before; the new
    deployed id and the undeployed ones. The training pipeline's deploy step (no canary, and a
    version already deployed is deployed again, unlike `roll_out`). The old models go only once
    the new one serves, so the endpoint never answers with nothing."""
    previous = [d.id for d in endpoint.deployed()]
    deployed_id = endpoint.deploy(model, 100)
    for old in previous:
        endpoint.undeploy(old)
    return deployed_id, previous


def _deploy_canary(
    endpoint: Endpoint,
    model: str,
    others: list[Deployed],
    canary_percent: int,
    step: Callable[[str], None],
) -> tuple[str, int]:
    """Deploy `model` beside what serves with the canary's share (all of it when nothing serves
    or the canary is 0); its deployed id and share."""
    serving = [d for d in others if d.traffic > 0]
    canary = canary_percent if serving and canary_percent else 100
    deployed_id = endpoint.deploy(model, canary)
    if canary < 100:
        step(
            f"canary: {model} deployed as {deployed_id} with {canary}% of the traffic, "
            f"{', '.join(f'{d.model} ({d.id})' for d in serving)} the rest"
        )
    return deployed_id, canary


def same_model(a: str, b: str) -> bool:
    """Whether two versioned names name one version. Vertex AI answers with the project's number
    where a stack file names its id; an endpoint only serves models of its own project, so the
    rest of the name decides."""
    return _PROJECT.sub("", a) == _PROJECT.sub("", b)
