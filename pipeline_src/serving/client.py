"""One client for any endpoint that speaks the predict contract: a URL, or a Vertex AI endpoint.

    client = endpoint_client("http://127.0.0.1:8080")                       # the local server
    client = endpoint_client("projects/P/locations/L/endpoints/1234567890")  # Vertex AI

Both send the same bytes and return a `Reply` (HTTP status, parsed JSON body, wall time), so the
acceptance suite checks the contract, not a transport. The Vertex transport uses the endpoint's
`rawPredict` (google-cloud-aiplatform), which passes the body through unchanged: malformed
requests reach the model server and its 400 comes back as it is.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from pipeline_src.serving.server import DEFAULT_ROUTES, Routes

VERTEX_ENDPOINT = re.compile(r"^projects/[^/]+/locations/([a-z0-9-]+)/endpoints/[^/]+$")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    """The JSON body, or {"text": …} when the body is not JSON."""
    seconds: float

    @property
    def served_model(self) -> str:
        """`<model>@<version>` the response names (Vertex AI and the local endpoint add these)."""
        if not isinstance(self.body, dict) or not self.body.get("modelVersionId"):
            return ""
        return f"{self.body.get('model', '')}@{self.body['modelVersionId']}"


class EndpointClient(Protocol):
    target: str

    def health(self) -> Reply: ...

    def post(self, body: bytes) -> Reply: ...


def predict(client: EndpointClient, instances: Any, **extra: Any) -> Reply:
    """POST `{"instances": instances, **extra}` to the client's endpoint."""
    return client.post(json.dumps({"instances": instances, **extra}).encode())


def _parse(status: int, raw: bytes, started: float) -> Reply:
    seconds = time.perf_counter() - started
    try:
        body = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = {"text": raw.decode(errors="replace")}
    return Reply(status=status, body=body, seconds=seconds)


class HttpEndpointClient:
    """A server speaking the contract at a URL (the local server, or a container under test)."""

    def __init__(self, url: str, routes: Routes = DEFAULT_ROUTES, timeout: float = 30.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s):// URL")
        self.target = url
        self._parts = parts
        self._prefix = parts.path.rstrip("/")
        self._routes = routes
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def _request(self, method: str, route: str, body: bytes | None = None) -> Reply:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):  # a kept-alive connection the server closed is reopened once
            if self._connection is None:
                kind = (
                    http.client.HTTPSConnection
                    if self._parts.scheme == "https"
                    else http.client.HTTPConnection
                )
                self._connection = kind(
                    self._parts.hostname, self._parts.port, timeout=self._timeout
                )
            started = time.perf_counter()
            try:
                self._connection.request(method, self._prefix + route, body, headers)
                response = self._connection.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.close()
            return _parse(response.status, raw, started)
        raise AssertionError("unreachable")

    def health(self) -> Reply:
        return self._request("GET", self._routes.health)

    def post(self, body: bytes) -> Reply:
        return self._request("POST", self._routes.predict, body)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class VertexEndpointClient:
    """A Vertex AI endpoint, called with the caller's credentials (QA's predict-only role)."""

    def __init__(self, endpoint: str):
        match = VERTEX_ENDPOINT.match(endpoint)
        if not match:
            raise ValueError(
                f"{endpoint!r} is not a Vertex AI endpoint name "
                "(projects/PROJECT/locations/REGION/endpoints/ID)"
            )
        from google.cloud import aiplatform

        self.target = endpoint
        self._endpoint = aiplatform.Endpoint(endpoint, location=match.group(1))
        if getattr(self._endpoint, "network", None):
            # A private endpoint (a stack with `serving.private_network`) has no public predict
            # route: its predictions go to its private address, reachable from the peered network
            # only (docs/security.md says where QA's run must then come from).
            self._endpoint = aiplatform.PrivateEndpoint(endpoint, location=match.group(1))

    def health(self) -> Reply:
        """200 when the endpoint has a deployed model taking traffic, 503 otherwise."""
        started = time.perf_counter()
        split = self._endpoint.traffic_split  # each read fetches the endpoint afresh
        deployed = [
            {"id": m.id, "model": m.model, "modelVersionId": m.model_version_id,
             "trafficPercentage": split.get(m.id, 0)}
            for m in self._endpoint.list_models()
        ]  # fmt: skip
        serving = any(m["trafficPercentage"] for m in deployed)
        body = {"status": "ok" if serving else "no model", "deployedModels": deployed}
        return Reply(
            status=200 if serving else 503, body=body, seconds=time.perf_counter() - started
        )

    def post(self, body: bytes) -> Reply:
        started = time.perf_counter()
        response = self._endpoint.raw_predict(
            body=body, headers={"Content-Type": "application/json"}
        )
        reply = _parse(response.status_code, response.content, started)
        # rawPredict returns the container's body; the served model is in response headers.
        if reply.status == 200 and isinstance(reply.body, dict):
            headers = response.headers
            reply.body.setdefault("deployedModelId", headers.get("X-Vertex-AI-Deployed-Model-Id"))
            reply.body.setdefault("model", headers.get("X-Vertex-AI-Model"))
            reply.body.setdefault("modelVersionId", headers.get("X-Vertex-AI-Model-Version-Id"))
        return reply

    def close(self) -> None:
        pass


def endpoint_client(target: str) -> HttpEndpointClient | VertexEndpointClient:
    """The client for `target`: an http(s):// URL or a Vertex AI endpoint resource name."""
    if target.startswith(("http://", "https://")):
        return HttpEndpointClient(target)
    if target.startswith("projects/"):
        return VertexEndpointClient(target)
    raise ValueError(
        f"endpoint {target!r}: give a URL (http://127.0.0.1:8080) or a Vertex AI endpoint "
        "(projects/PROJECT/locations/REGION/endpoints/ID)"
    )
