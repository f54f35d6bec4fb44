"""The model server and its client: routes, errors, traffic split, the two transports.

The acceptance suite (tests/acceptance) checks the contract end to end against a server process;
these tests cover what it cannot reach: Vertex AI's routes and model download, the split between
deployed models, the server's own refusals, and the Vertex transport (the SDK patched).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from local.environment import LocalEnvironment
from local.registry import LocalEndpoint, LocalModelRegistry
from pipeline_src.serving import client as client_module
from pipeline_src.serving.__main__ import default_workers, download
from pipeline_src.serving.client import (
    HttpEndpointClient,
    VertexEndpointClient,
    endpoint_client,
    predict,
)
from pipeline_src.serving.contract import InvalidRequest, LoadedModel
from pipeline_src.serving.server import (
    DEFAULT_ROUTES,
    MAX_BODY_BYTES,
    EndpointSource,
    ModelSource,
    Routes,
    make_server,
)

PENGUIN = {
    "island": "Dream",
    "bill_length_mm": 46.5,
    "bill_depth_mm": 17.9,
    "flipper_length_mm": 192,
    "body_mass_g": 3500,
    "sex": "female",
}


@contextmanager
def running(source, routes: Routes = DEFAULT_ROUTES) -> Iterator[HttpEndpointClient]:
    server = make_server(source, "127.0.0.1", 0, routes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = HttpEndpointClient(f"http://127.0.0.1:{server.server_address[1]}", routes)
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()


@pytest.fixture
def env(tmp_path) -> LocalEnvironment:
    return LocalEnvironment(root=tmp_path / "state").ensure()


def test_the_container_answers_on_the_routes_vertex_gives_it(sample_model_dir):
    routes = Routes(health="/v1/health", predict="/v1/endpoints/1/deployedModels/2:predict")
    with running(ModelSource(sample_model_dir), routes) as client:
        assert client.health().status == 200
        reply = predict(client, [PENGUIN])
        assert reply.status == 200
        assert reply.body["predictions"][0]["class"] == "Chinstrap"
        # Vertex AI adds the deployed model's names to the response, not the container.
        assert set(reply.body) == {"predictions"}
        other = HttpEndpointClient(client.target)  # the default routes are not served
        assert other.health().status == 404 and predict(other, [PENGUIN]).status == 404
        other.close()


def test_oversized_and_malformed_requests_are_refused(sample_model_dir):
    with running(ModelSource(sample_model_dir)) as client:
        too_big = client.post(b" " * (MAX_BODY_BYTES + 1))
        assert too_big.status == 413 and "exceeds" in too_big.body["error"]["message"]
        many = predict(client, [PENGUIN] * 1001)
        assert many.status == 400 and "at most 1000" in many.body["error"]["message"]
        assert predict(client, [PENGUIN]).status == 200  # the connection is usable again


@pytest.mark.parametrize("length", ["-5", "twelve"])
def test_a_content_length_that_is_no_byte_count_is_refused_and_the_connection_closed(
    sample_model_dir, length
):
    with running(ModelSource(sample_model_dir)) as client:
        port = int(client.target.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            request = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
            raw.sendall(request.encode() + b"{}")
            answer = b""
            while chunk := raw.recv(65536):  # the server closes: the reply ends there
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"Connection: close" in head
        assert f"Content-Length: not a byte count ('{length}')" in body.decode()


def test_a_post_to_an_unknown_route_leaves_the_connection_usable(sample_model_dir):
    with running(ModelSource(sample_model_dir)) as client:
        other = HttpEndpointClient(client.target, Routes(predict="/elsewhere"))
        assert predict(other, [PENGUIN]).status == 404
        # its body was read away: the next request on the same connection is not garbled
        assert predict(other, [PENGUIN]).status == 404
        other.close()
        assert predict(client, [PENGUIN]).status == 200


def test_every_problem_of_every_instance_is_reported(sample_model_dir):
    model = LoadedModel.load(sample_model_dir)
    bad = [
        {**PENGUIN, "island": 3, "body_mass_g": float("nan")},
        PENGUIN,
        {**PENGUIN, "sex": "unknown", "year": 2008},
        "Dream",
    ]
    with pytest.raises(InvalidRequest) as caught:
        model.predict({"instances": bad})
    assert caught.value.problems == [
        "instances[0].body_mass_g: expected a finite number, got nan",
        "instances[0].island: expected a string, got 3",
        'instances[2].sex: "unknown" is not one of female, male',
        "instances[2].year: unknown field (features: island, bill_length_mm, bill_depth_mm, "
        "flipper_length_mm, body_mass_g, sex)",
        "instances[3]: expected an object of named features (island, bill_length_mm, "
        'bill_depth_mm, flipper_length_mm, body_mass_g, sex), got "Dream"',
    ]
    # Nulls are missing values, which the model imputes as in training.
    nulls = model.predict({"instances": [dict.fromkeys(PENGUIN)]})
    assert sum(nulls[0]["probabilities"].values()) == pytest.approx(1, abs=1e-3)


def test_a_local_endpoint_routes_by_traffic_and_names_the_model_that_answered(
    env, sample_model_dir
):
    registry = LocalModelRegistry(env.registry_dir)
    first = registry.upload(env.model_id, sample_model_dir, display_name="m")
    second = registry.upload(env.model_id, sample_model_dir, display_name="m")
    endpoint = LocalEndpoint(env.endpoints_dir, "prod")
    endpoint.deploy(first)
    endpoint.deploy(second, traffic_percentage=10)  # a canary
    seen = []

    def choose(models, weights):
        seen.append({m.version_id: w for m, w in zip(models, weights, strict=True)})
        return models[len(seen) % len(models)]

    with running(EndpointSource(endpoint, choose)) as client:
        health = client.health().body
        assert [
            (m["modelVersionId"], m["trafficPercentage"]) for m in health["deployedModels"]
        ] == [
            ("1", 90),
            ("2", 10),
        ]
        answers = [predict(client, [PENGUIN]).body for _ in range(2)]
        assert seen == [{"1": 90, "2": 10}] * 2
        assert [(a["model"], a["modelVersionId"], a["deployedModelId"]) for a in answers] == [
            (env.model_id, "2", "2"),
            (env.model_id, "1", "1"),
        ]
        # The state is read per request: a change of traffic shows without a restart.
        endpoint.deploy(second, traffic_percentage=100)
        endpoint.undeploy("1")
        endpoint.undeploy("2")
        assert predict(client, [PENGUIN]).body["deployedModelId"] == "3"


def test_an_empty_endpoint_is_unhealthy_not_broken(env):
    with running(EndpointSource(LocalEndpoint(env.endpoints_dir, "prod"))) as client:
        assert client.health().status == 503
        reply = predict(client, [PENGUIN])
        assert reply.status == 503 and "no deployed model" in reply.body["error"]["message"]


def test_the_container_downloads_its_model_from_cloud_storage(
    monkeypatch, tmp_path, sample_model_dir
):
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    emulator = create_server("127.0.0.1", port, in_memory=True)
    emulator.start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        client = storage.Client(project="p", credentials=AnonymousCredentials())
        bucket = client.create_bucket("models")
        for path in sample_model_dir.iterdir():
            bucket.blob(f"penguins/run-1/{path.name}").upload_from_filename(str(path))
        bucket.blob("penguins/run-10/model.json").upload_from_string("{}")  # a sibling prefix
        monkeypatch.setattr(storage, "Client", lambda: client)
        local = download("gs://models/penguins/run-1", tmp_path / "model")
        assert sorted(p.name for p in local.iterdir()) == sorted(
            p.name for p in sample_model_dir.iterdir()
        )
        assert ModelSource(local).model.predict({"instances": [PENGUIN]})[0]["class"] == "Chinstrap"
        with pytest.raises(FileNotFoundError, match="holds no files"):
            download("gs://models/nothing-here", tmp_path / "empty")
    finally:
        emulator.stop()


def test_the_vertex_transport_sends_the_same_bytes_and_reads_the_served_model(monkeypatch):
    calls = []

    class FakeEndpoint:
        def __init__(self, name, location):
            calls.append(("init", name, location))
            self.traffic_split = {"7": 100}

        def list_models(self):
            calls.append(("list_models",))
            return [SimpleNamespace(id="7", model="projects/p/locations/l/models/m",
                                    model_version_id="3")]  # fmt: skip

        def raw_predict(self, body, headers):
            calls.append(("raw_predict", body, headers))
            return SimpleNamespace(
                status_code=200,
                content=b'{"predictions": [{"class": "Adelie", "probabilities": {}}]}',
                headers={
                    "X-Vertex-AI-Deployed-Model-Id": "7",
                    "X-Vertex-AI-Model": "projects/p/locations/l/models/m",
                    "X-Vertex-AI-Model-Version-Id": "3",
                },
            )

    from google.cloud import aiplatform

    monkeypatch.setattr(aiplatform, "Endpoint", FakeEndpoint)
    name = "projects/p/locations/europe-west4/endpoints/123"
    client = endpoint_client(name)
    assert isinstance(client, VertexEndpointClient)
    health = client.health()
    assert health.status == 200
    assert health.body["deployedModels"][0]["trafficPercentage"] == 100
    reply = predict(client, [PENGUIN])
    assert reply.served_model == "projects/p/locations/l/models/m@3"
    assert calls[0] == ("init", name, "europe-west4")
    assert calls[-1][1] == b'{"instances": [' + client_module.json.dumps(PENGUIN).encode() + b"]}"


def test_a_private_endpoint_is_called_on_its_private_route(monkeypatch):
    """An endpoint on a peered network has no public predict route: the SDK's PrivateEndpoint
    sends its predictions to the private address."""
    opened = []

    class FakeEndpoint:
        def __init__(self, name, location):
            opened.append(("public", name))
            self.network = "projects/123/global/networks/serving"

    class FakePrivateEndpoint(FakeEndpoint):
        def __init__(self, name, location):
            opened.append(("private", name))

    from google.cloud import aiplatform

    monkeypatch.setattr(aiplatform, "Endpoint", FakeEndpoint)
    monkeypatch.setattr(aiplatform, "PrivateEndpoint", FakePrivateEndpoint)
    name = "projects/p/locations/europe-west4/endpoints/123"
    client = endpoint_client(name)
    assert opened == [("public", name), ("private", name)]
    assert isinstance(client._endpoint, FakePrivateEndpoint)


@pytest.mark.parametrize(
    "target, message",
    [
        ("127.0.0.1:8080", "give a URL"),
        ("projects/p/endpoints/1", "not a Vertex AI endpoint name"),
        ("ftp://host/x", "give a URL"),
    ],
)
def test_an_unusable_endpoint_is_named(target, message):
    with pytest.raises(ValueError, match=message):
        endpoint_client(target)


def test_checks_follow_the_signature_of_any_contract():
    """Another dataset's types: BOOL, INT64 with allowed values, free STRING and FLOAT64."""
    signature = {
        "features": [
            {"name": "member", "type": "BOOL", "categorical": False, "categories": None},
            {"name": "grade", "type": "INT64", "categorical": True, "categories": [1.0, 2.0]},
            {"name": "city", "type": "STRING", "categorical": True, "categories": None},
            {"name": "score", "type": "FLOAT64", "categorical": False, "categories": None},
        ]
    }
    model = LoadedModel(pipeline=None, signature=signature)
    good = {"member": True, "grade": 2, "city": "anywhere", "score": 0.5}
    assert model.check(0, good) == []
    assert model.check(0, dict.fromkeys(good)) == []
    assert model.check(1, {"member": 1, "grade": 3, "city": 7, "score": True}) == [
        "instances[1].city: expected a string, got 7",
        "instances[1].grade: 3 is not one of 1, 2",
        "instances[1].member: expected true or false, got 1",
        "instances[1].score: expected a number, got true",
    ]


def test_the_container_runs_one_server_process_per_core_unless_told():
    cores = len(os.sched_getaffinity(0))
    assert default_workers({"AIP_HTTP_PORT": "8080"}, in_container=True) == cores
    assert default_workers({}, in_container=False) == 1  # make serve, tests: a shared machine
    assert default_workers({"SERVING_WORKERS": "3"}, in_container=True) == 3


def test_the_quick_path_for_good_instances_lets_nothing_through_the_checks_refuse():
    """`inputs` skips `check` for instances whose values pass a quick per-feature test; every
    value of every type, in every kind of feature, is refused by one exactly when by the other."""
    signature = {
        "features": [
            {"name": "member", "type": "BOOL", "categorical": False, "categories": None},
            {"name": "grade", "type": "INT64", "categorical": True, "categories": [1.0, 2.0]},
            {"name": "city", "type": "STRING", "categorical": True, "categories": None},
            {"name": "island", "type": "STRING", "categorical": True, "categories": ["Dream"]},
            {"name": "score", "type": "FLOAT64", "categorical": False, "categories": None},
        ]
    }
    model = LoadedModel(pipeline=None, signature=signature)
    good = {"member": True, "grade": 2, "city": "anywhere", "island": "Dream", "score": 0.5}
    values = [None, True, False, 0, 1, 2, 2.0, -3.5, 1e308, 10**400, float("nan"), float("inf"),
              "", "Dream", "dream", "1", [], {}, ["Dream"]]  # fmt: skip
    for name in good:
        for value in values:
            instance = {**good, name: value}
            problems = model.check(0, instance)
            if problems:
                with pytest.raises(InvalidRequest) as refused:
                    model.inputs([good, instance])
                assert refused.value.problems == [p.replace("[0]", "[1]") for p in problems]
            else:
                assert len(model.inputs([good, instance])) == 2
    for instance in ({k: v for k, v in good.items() if k != "city"}, {**good, "extra": 1}, [1]):
        with pytest.raises(InvalidRequest):
            model.inputs([instance])


def test_a_canary_swap_under_load_answers_every_request(env, sample_model_dir):
    """Requests keep flowing while a new version is deployed beside the old one at 10%, then
    takes all traffic, then the old one is undeployed: each is answered 200, by either version."""
    registry = LocalModelRegistry(env.registry_dir)
    first = registry.upload(env.model_id, sample_model_dir, display_name="m")
    second = registry.upload(env.model_id, sample_model_dir, display_name="m")
    endpoint = LocalEndpoint(env.endpoints_dir, "prod")
    endpoint.deploy(first)
    answers: list[tuple[int, str]] = []
    after: list[str] = []  # one request per client once the old version is gone
    swapped = threading.Event()

    def load(client: HttpEndpointClient) -> None:
        while not swapped.is_set() or len(answers) < 20:
            reply = predict(client, [PENGUIN])
            answers.append((reply.status, reply.body.get("modelVersionId", "")))
        after.append(predict(client, [PENGUIN]).body.get("modelVersionId", ""))

    with running(EndpointSource(endpoint)) as client:
        clients = [HttpEndpointClient(client.target) for _ in range(4)]
        threads = [threading.Thread(target=load, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        canary = endpoint.deploy(second, traffic_percentage=10)
        endpoint.set_traffic({"1": 0, canary.id: 100})
        endpoint.undeploy("1")
        swapped.set()
        for thread in threads:
            thread.join(timeout=120)
        for c in clients:
            c.close()
    assert answers and all(status == 200 for status, _ in answers)
    assert after == ["2"] * 4  # once the old version is undeployed, only the new one answers


def test_a_lone_connection_is_served_on_the_event_loop_and_company_on_worker_threads():
    """With one connection open nobody waits behind a prediction: it runs on the event loop (no
    hop to a thread and back). With others open it runs on a worker thread, so the loop keeps
    reading their requests and predictions overlap."""
    where: list[str] = []

    class Recording:  # a source that notes the thread each prediction runs on
        def predict(self, payload):
            where.append(threading.current_thread().name)
            return {"predictions": []}

        def health(self):
            return {"status": "ok"}

    with running(Recording()) as lone:
        assert predict(lone, [PENGUIN]).status == 200
        assert not where[-1].startswith("predict")  # serve_forever's thread, the loop's
        company = HttpEndpointClient(lone.target)
        try:
            assert company.health().status == 200  # a second connection, open and known
            assert predict(lone, [PENGUIN]).status == 200
            assert where[-1].startswith("predict_")  # a worker thread of the app's pool
        finally:
            company.close()
