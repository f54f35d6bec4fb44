"""The model server: Vertex AI's custom-container contract on FastAPI and uvicorn.

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
otherwise — also when a bundle fails to load or to verify, which is reported once and remembered,
not retried per request. Errors are JSON (`{"error": {"code", "status", "message", "details"}}`),
400 naming each bad field of each instance (the first `MAX_REPORTED_PROBLEMS`, then a count), and
every request gets an answer: a malformed one a 400, a slow one a 408, an unexpected failure a 500.

The HTTP side (`http_server.py`) is uvicorn's, with a deadline per request and JSON refusals.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import orjson

from pipeline_src.serving.contract import InvalidRequest, LoadedModel

MAX_BODY_BYTES = 1_500_000
"""Vertex AI's request size limit (1.5 MB)."""
MAX_REPORTED_PROBLEMS = 20
"""Problems listed in a 400; the rest are counted, so a bad request never gets a huge answer."""

log = logging.getLogger("pipeline_src.serving")


class Unavailable(RuntimeError):
    """Nothing to serve (yet), or a bundle that cannot be loaded: answered 503."""


class TooLarge(ValueError):
    """A body above MAX_BODY_BYTES: answered 413."""


@dataclass(frozen=True)
class Routes:
    """Where the server answers; Vertex AI passes them as AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE."""

    health: str = "/health"
    predict: str = "/predict"


DEFAULT_ROUTES = Routes()


class ModelCache:
    """Model directories loaded once each, after their digest is checked against the one
    recorded at registration. A bundle that fails either (truncated, tampered) is logged once and
    remembered: its requests get 503 at once, not a new load attempt each."""

    def __init__(self, load: Callable[[str, str | None], LoadedModel] = LoadedModel.load):
        self._load = load
        self._entries: dict[tuple, LoadedModel | Unavailable] = {}
        self._lock = threading.Lock()

    def get(self, directory: str, expected_sha256: str | None) -> LoadedModel:
        key = (directory, expected_sha256)
        entry = self._entries.get(key)
        if entry is None:
            with self._lock:  # one load per version, however many requests arrive at once
                entry = self._entries.get(key)
                if entry is None:
                    entry = self._entries[key] = self._try_load(directory, expected_sha256)
        if isinstance(entry, Unavailable):
            raise entry
        return entry

    def _try_load(self, directory: str, expected_sha256: str | None) -> LoadedModel | Unavailable:
        try:
            return self._load(directory, expected_sha256)
        except Exception as error:  # any failure to unpickle is the same 503
            problem = Unavailable(
                f"model {directory} cannot be served: {type(error).__name__}: {error}"
            )
            log.error("%s", problem)
            return problem


class ModelSource:
    """One model directory (the container on Vertex AI), loaded at start-up. `expected_sha256`:
    the version's MODEL_SHA256 (None: an unverified directory the caller trusts)."""

    def __init__(
        self,
        directory: str | Path,
        expected_sha256: str | None = None,
        cache: ModelCache | None = None,
    ):
        self.directory = str(directory)
        self.expected_sha256 = expected_sha256
        self._cache = cache or ModelCache()
        with contextlib.suppress(Unavailable):  # reported once by the cache; health says 503
            self.model  # noqa: B018 — load now, not on the first request

    @property
    def model(self) -> LoadedModel:
        return self._cache.get(self.directory, self.expected_sha256)

    def describe(self) -> str:
        return f"model {self.directory}"

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "classes": self.model.signature.get("classes", [])}

    def predict(self, payload: Any) -> dict[str, Any]:
        return {"predictions": self.model.predict(payload)}


class EndpointSource:
    """A local endpoint: each request goes to one deployed model, chosen by the traffic split."""

    def __init__(
        self,
        endpoint,
        choose: Callable[[list, list], Any] | None = None,
        cache: ModelCache | None = None,
    ):
        self.endpoint = endpoint
        self._cache = cache or ModelCache()
        self._choose = choose or (lambda items, weights: random.choices(items, weights)[0])

    def describe(self) -> str:
        return f"local endpoint {self.endpoint.name} ({self.endpoint.path})"

    def _deployed(self) -> list:
        deployed = [m for m in self.endpoint.deployed_models() if m.traffic_percentage > 0]
        if not deployed:
            raise Unavailable(f"endpoint {self.endpoint.name} has no deployed model with traffic")
        return deployed

    def health(self) -> dict[str, Any]:
        deployed = self._deployed()
        for model in deployed:
            self._cache.get(model.artifact_uri, model.bundle_sha256)
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
            "predictions": self._cache.get(chosen.artifact_uri, chosen.bundle_sha256).predict(
                payload
            ),
            "deployedModelId": chosen.id,
            "model": chosen.model_id,
            "modelVersionId": chosen.version_id,
        }


def error_document(status: int, message: str, details: list[str] | None = None) -> bytes:
    """The JSON error body: `{"error": {"code", "status", "message", "details"}}`."""
    phrase = HTTPStatus(status).phrase
    error = {"code": status, "status": phrase, "message": message, "details": details or [message]}
    return json.dumps({"error": error}).encode()


def invalid_request_document(error: InvalidRequest) -> bytes:
    """A 400 listing the first MAX_REPORTED_PROBLEMS problems, then how many more there are."""
    shown = error.problems[:MAX_REPORTED_PROBLEMS]
    hidden = len(error.problems) - len(shown)
    if hidden:
        shown = [*shown, f"… and {hidden} more problems"]
    return error_document(400, "; ".join(shown), shown)


def parse_body(body: bytes) -> Any:
    """The request's JSON; InvalidRequest for anything json cannot read (bad bytes, an integer
    past Python's digit limit, nesting past the recursion limit).

    orjson reads a request in a fraction of the standard library's time (0.03 ms for 100
    instances, against 0.12). What it refuses (NaN, integers past a double's range, a byte-order
    mark, lone surrogates) the standard library reads as it always has, so those requests get the
    answers they got before: e.g. "an integer of 400 digits", not a parse error."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError too
        raise InvalidRequest([f"body: not valid JSON ({error})"]) from None


def answer_predict(source, body: bytes) -> tuple[int, bytes]:
    """Status and JSON body for a predict request's bytes: every outcome is an answer. The
    answer is written by orjson (100 predictions in 0.02 ms, against 0.19 with the standard
    library): at 100 instances per request JSON was a tenth of the server's own work."""
    try:
        return 200, orjson.dumps(source.predict(parse_body(body)))
    except InvalidRequest as error:
        return 400, invalid_request_document(error)
    except (Unavailable, FileNotFoundError) as error:
        return 503, error_document(503, str(error))
    except Exception as error:  # logged with its traceback, answered 500
        log.exception("predict failed")
        return 500, error_document(500, f"internal error: {type(error).__name__}")


def answer_health(source) -> tuple[int, bytes]:
    try:
        return 200, json.dumps(source.health()).encode()
    except (Unavailable, FileNotFoundError) as error:
        return 503, error_document(503, str(error))


def make_app(source, routes: Routes = DEFAULT_ROUTES):
    """The ASGI app: health, predict, and JSON errors for every other route and method."""
    import anyio
    from fastapi import FastAPI, Request
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
    from starlette.responses import Response

    # While other connections are open, predictions run on anyio's worker threads (40, as
    # FastAPI's sync routes): the event loop keeps reading their requests (and timing out slow
    # ones), and predictions overlap where the model's compiled code releases the GIL. Measured
    # at 8 clients on 2 shared cores (load 7): 62 single-instance requests/s, 29 with one
    # prediction thread. More cores take more processes (--workers). A lone connection has
    # nobody waiting behind it: its prediction runs on the loop, which saves the hop to a thread
    # and back (about 1 ms of an 11 ms 100-instance request, measured at one client).
    # `state.open_connections` is the HTTP server's count (http_server.ModelServer sets it).
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.open_connections = lambda: 2  # served by another server: assume company

    def json_response(status: int, body: bytes) -> Response:
        return Response(body, status_code=status, media_type="application/json")

    async def answered(answer: Callable[..., tuple[int, bytes]], *args) -> Response:
        if app.state.open_connections() <= 1:
            return json_response(*answer(*args))
        return json_response(*await anyio.to_thread.run_sync(answer, *args))

    async def health(request: Request) -> Response:
        return await answered(answer_health, source)

    async def predict(request: Request) -> Response:
        try:
            body = await read_body(request)
        except TooLarge as error:
            return json_response(413, error_document(413, str(error)))
        except ClientDisconnect:
            return json_response(400, error_document(400, "the client went away"))
        return await answered(answer_predict, source, body)

    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        else:
            message = str(error.detail)
        response = json_response(error.status_code, error_document(error.status_code, message))
        response.headers.update(error.headers or {})  # 405's Allow
        return response

    # Plain (Starlette) routes: the contract checks the body itself, with its own messages.
    app.add_route(routes.health, health, methods=["GET"])
    app.add_route(routes.predict, predict, methods=["POST"])
    app.add_exception_handler(HTTPException, http_error)
    return app


async def read_body(request) -> bytes:
    """The body, refused (TooLarge) past MAX_BODY_BYTES — by its Content-Length before reading
    it, or while reading a chunked one. The protocol discards what is left unread, so the
    connection stays usable."""
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > MAX_BODY_BYTES:
        raise TooLarge(f"request body of {declared} bytes exceeds {MAX_BODY_BYTES}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge(f"request body of more than {size} bytes exceeds {MAX_BODY_BYTES}")
        chunks.append(chunk)
    return b"".join(chunks)


def make_server(source, host: str, port: int, routes: Routes = DEFAULT_ROUTES, **options):
    """An HTTP server answering `routes` from `source`; port 0 picks a free port.
    `options` go to `http_server.ModelServer` (request_timeout, log_config)."""
    from pipeline_src.serving.http_server import ModelServer

    return ModelServer(make_app(source, routes), host, port, **options)
