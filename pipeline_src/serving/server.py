"""The model server: Vertex AI's custom-container contract over a real HTTP server (stdlib).

Two sources of models, one request path:

- `ModelSource` — one model directory: what Vertex AI runs in the container. Vertex copies the
  model's `artifact_uri` to `AIP_STORAGE_URI` and routes the endpoint's requests for this
  deployed model to `AIP_PREDICT_ROUTE`; it adds `deployedModelId`, `model` and `modelVersionId`
  to the response itself.
- `EndpointSource` — a local endpoint (`local/registry.py`): every request is routed to one of
  the endpoint's deployed models by its traffic split, as Vertex AI routes an endpoint's traffic,
  and the response names the deployed model and version like Vertex's does. The endpoint's state
  file is re-read on each request, so a deployment (a canary, a promotion) shows at once.

Health answers 200 once a model is loaded (Vertex AI waits for it before routing traffic), 503
otherwise. Errors are JSON (`{"error": {"code", "message", "details"}}`), 400 naming each bad
field of each instance.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline_src.serving.contract import InvalidRequest, LoadedModel

MAX_BODY_BYTES = 1_500_000
"""Vertex AI's request size limit (1.5 MB)."""


class Unavailable(RuntimeError):
    """Nothing to serve (yet): answered 503."""


@dataclass(frozen=True)
class Routes:
    """Where the server answers; Vertex AI passes them as AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE."""

    health: str = "/health"
    predict: str = "/predict"


DEFAULT_ROUTES = Routes()


class ModelSource:
    """One loaded model directory (the container on Vertex AI)."""

    def __init__(self, directory: str | Path):
        self.model = LoadedModel.load(directory)
        self.directory = str(directory)

    def describe(self) -> str:
        return f"model {self.directory}"

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "classes": self.model.signature.get("classes", [])}

    def predict(self, payload: Any) -> dict[str, Any]:
        return {"predictions": self.model.predict(payload)}


class EndpointSource:
    """A local endpoint: each request goes to one deployed model, chosen by the traffic split."""

    def __init__(self, endpoint, choose: Callable[[list, list], Any] | None = None):
        self.endpoint = endpoint
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._choose = choose or (lambda items, weights: random.choices(items, weights)[0])

    def describe(self) -> str:
        return f"local endpoint {self.endpoint.name} ({self.endpoint.path})"

    def _model(self, artifact_uri: str) -> LoadedModel:
        with self._lock:  # one load per version, however many requests arrive at once
            if artifact_uri not in self._models:
                self._models[artifact_uri] = LoadedModel.load(artifact_uri)
            return self._models[artifact_uri]

    def _deployed(self) -> list:
        deployed = [m for m in self.endpoint.deployed_models() if m.traffic_percentage > 0]
        if not deployed:
            raise Unavailable(f"endpoint {self.endpoint.name} has no deployed model with traffic")
        return deployed

    def health(self) -> dict[str, Any]:
        deployed = self._deployed()
        for model in deployed:
            self._model(model.artifact_uri)
        return {
            "status": "ok",
            "endpoint": self.endpoint.name,
            "deployedModels": [
                {"id": m.id, "model": m.model_id, "modelVersionId": m.version_id,
                 "trafficPercentage": m.traffic_percentage}
                for m in deployed
            ],
        }  # fmt: skip

    def predict(self, payload: Any) -> dict[str, Any]:
        deployed = self._deployed()
        chosen = self._choose(deployed, [m.traffic_percentage for m in deployed])
        return {
            "predictions": self._model(chosen.artifact_uri).predict(payload),
            "deployedModelId": chosen.id,
            "model": chosen.model_id,
            "modelVersionId": chosen.version_id,
        }


def make_server(
    source, host: str, port: int, routes: Routes = DEFAULT_ROUTES
) -> ThreadingHTTPServer:
    """An HTTP server answering `routes` from `source`; port 0 picks a free port."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "tabular-mlops-serving"
        protocol_version = "HTTP/1.1"  # keep-alive: the latency budget measures the model

        def do_GET(self) -> None:
            if self.path != routes.health:
                return self._error(HTTPStatus.NOT_FOUND, f"no route GET {self.path}")
            try:
                self._send(HTTPStatus.OK, source.health())
            except (Unavailable, FileNotFoundError) as error:
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(error))

        def do_POST(self) -> None:
            length = self._content_length()
            if length is None:
                return
            if self.path != routes.predict:
                self._discard(length)  # unread, the body would be taken for the next request
                return self._error(HTTPStatus.NOT_FOUND, f"no route POST {self.path}")
            if length > MAX_BODY_BYTES:
                self._discard(length)
                return self._error(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"request body of {length} bytes exceeds {MAX_BODY_BYTES}",
                )
            body = self.rfile.read(length)
            try:
                payload = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                return self._error(HTTPStatus.BAD_REQUEST, f"body: not valid JSON ({error})")
            try:
                self._send(HTTPStatus.OK, source.predict(payload))
            except InvalidRequest as error:
                self._error(HTTPStatus.BAD_REQUEST, str(error), error.problems)
            except (Unavailable, FileNotFoundError) as error:
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(error))

        def _content_length(self) -> int | None:
            """The body's length; None, with a 400 sent, when the header is not a byte count
            (the connection is closed then: where the body ends is unknown)."""
            header = self.headers.get("Content-Length") or "0"
            try:
                length = int(header)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                message = f"Content-Length: not a byte count ({header!r})"
                self._error(HTTPStatus.BAD_REQUEST, message)
                return None
            return length

        def _discard(self, length: int) -> None:
            """Read an oversized body away unkept, so the client (still sending) gets the 413;
            past a bound, close the connection instead of reading on."""
            if length > 10 * MAX_BODY_BYTES:
                self.close_connection = True  # the unread body must not be taken for a request
                return
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)

        def _error(self, status: HTTPStatus, message: str, details: list[str] | None = None):
            error = {"code": int(status), "status": status.phrase, "message": message}
            self._send(status, {"error": {**error, "details": details or [message]}})

        def _send(self, status: HTTPStatus, document: dict) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:  # tell the client, so it reconnects for its next request
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
