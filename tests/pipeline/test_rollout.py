"""The rollout's algorithm on its ports (test doubles): canary, full traffic, retiring the old;
and the one Vertex AI deploy routine, with the SDK's endpoint replaced.

The Vertex AI adapters are tested through the Promotion resource's provider
(tests/infra/test_promotion.py), the local ones through `make promote`'s local rollout
(tests/local/test_promotion.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline_src.cloud.rollout import deploy_to_vertex_endpoint, undeploy_from_vertex_endpoint
from pipeline_src.rollout import Deployed, roll_out


def test_the_canary_period_waits_before_full_traffic():
    events = []

    class Registry:
        def make_available(self, source):
            return source

    class Endpoint:
        def deployed(self):
            return [Deployed("1", "m@1", 100)]

        def deploy(self, model, traffic):
            events.append(("deploy", model, traffic))
            return "2"

        def set_traffic(self, split):
            events.append(("traffic", split))

        def undeploy(self, deployed_id):
            events.append(("undeploy", deployed_id))

    roll_out(Registry(), Endpoint(), "m@2", 25, 15, sleep=lambda s: events.append(("wait", s)))
    assert events == [
        ("deploy", "m@2", 25), ("wait", 900), ("traffic", {"2": 100, "1": 0}), ("undeploy", "1"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="canary_percent must be 0-99"):
        roll_out(Registry(), Endpoint(), "m@2", 100, 0)


# --- the one Vertex AI deploy routine (the rollout's and the pipeline's deploy step's) ----------


class RecordingEndpoint:
    """An `aiplatform.Endpoint` whose deploy adds `adds` deployed models."""

    def __init__(self, adds: int):
        self.ids, self.adds, self.calls = ["old"], adds, []

    def list_models(self):
        return [SimpleNamespace(id=id_) for id_ in self.ids]

    def deploy(self, **kwargs):
        self.calls.append(("deploy", kwargs))
        self.ids += [f"new-{n}" for n in range(self.adds)]

    def undeploy(self, deployed_model_id):
        self.calls.append(("undeploy", deployed_model_id))


def test_the_deploy_routine_answers_the_new_deployed_model_once_it_serves(monkeypatch):
    from google.cloud import aiplatform

    monkeypatch.setattr(aiplatform, "Model", lambda name: f"Model({name})")
    endpoint = RecordingEndpoint(adds=1)
    assert deploy_to_vertex_endpoint(endpoint, "p/m@2", 10, "n1-standard-2", 1, 3) == "new-0"
    ((_, deployed),) = endpoint.calls
    assert deployed["model"] == "Model(p/m@2)" and deployed["traffic_percentage"] == 10
    assert deployed["sync"] is True and (
        deployed["min_replica_count"],
        deployed["max_replica_count"],
    ) == (1, 3)
    assert "service_account" not in deployed  # Vertex AI's default identity
    undeploy_from_vertex_endpoint(endpoint, "old")
    assert endpoint.calls[-1] == ("undeploy", "old")
    with pytest.raises(RuntimeError, match="deploying p/m@3 left 0 new deployed models, not 1"):
        deploy_to_vertex_endpoint(RecordingEndpoint(adds=0), "p/m@3", 100, "n1-standard-2", 1, 1)
