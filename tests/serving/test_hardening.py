"""The model server under hostile or broken input: every probe gets an HTTP answer in the JSON
error format, and the connection stays usable where HTTP allows (docs/serving.md).

The probes are those of the reliability review: huge integers, deep nesting, a flood of unknown
fields, slow clients, chunked bodies, other methods, a truncated bundle, 128 clients at once.
Requests go over plain `http.client` connections, which never retry: a dropped connection fails.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_src.serving.contract import LoadedModel
from pipeline_src.serving.http_server import listening_socket
from pipeline_src.serving.server import (
    MAX_BODY_BYTES,
    MAX_REPORTED_PROBLEMS,
    ModelCache,
    ModelSource,
    make_server,
)

PENGUIN = {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
           "flipper_length_mm": 192, "body_mass_g": 3500, "sex": "female"}  # fmt: skip
REQUEST_TIMEOUT = 2.0


class Broken:
    """A source whose predictions fail unexpectedly (a bug, not a bad request)."""

    def health(self):
        return {"status": "ok"}

    def predict(self, payload):
        raise KeyError("something the server did not expect")


class BrokenHealth(Broken):
    """A source whose health check fails unexpectedly (say, an endpoint's state file garbled)."""

    def health(self):
        raise ValueError("something the server did not expect")


def serve(source) -> Iterator[int]:
    server = make_server(source, "127.0.0.1", 0, request_timeout=REQUEST_TIMEOUT)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def port(sample_model_dir) -> Iterator[int]:
    yield from serve(ModelSource(sample_model_dir))


@pytest.fixture
def connection(port) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    yield connection
    connection.close()


def call(connection, body: bytes, method: str = "POST", path: str = "/predict", headers=None):
    connection.request(method, path, body, {"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    raw = response.read()
    assert response.getheader("Content-Type") == "application/json", raw[:200]
    return response.status, json.loads(raw), len(raw)


def still_serves(connection) -> bool:
    """The same kept-alive connection answers a good request."""
    return call(connection, json.dumps({"instances": [PENGUIN]}).encode())[0] == 200


def test_a_400_digit_integer_is_a_400_naming_the_field(connection):
    body = b'{"instances": [%s]}' % json.dumps({**PENGUIN, "body_mass_g": 0}).encode().replace(
        b'"body_mass_g": 0', b'"body_mass_g": ' + b"9" * 400
    )
    status, answer, _ = call(connection, body)
    assert status == 400
    assert answer["error"]["message"] == (
        "instances[0].body_mass_g: expected a finite number, got an integer of 400 digits"
    )
    assert still_serves(connection)


@pytest.mark.parametrize(
    "body, expected",
    [
        (b'{"instances": [{"body_mass_g": ' + b"9" * 5000 + b"}]}", "Exceeds the limit"),
        (b"[" * 100_000 + b"]" * 100_000, "recursion"),
        (b'{"instances": [1], "parameters": ' + b"[" * 2000 + b"]" * 2000 + b"}", "recursion"),
    ],
    ids=["5000-digit integer", "nesting 100k deep", "nesting 2k deep in parameters"],
)
def test_what_json_cannot_read_is_a_400(connection, body, expected):
    status, answer, _ = call(connection, body)
    assert status == 400
    assert answer["error"]["message"].startswith("body: not valid JSON")
    assert expected in answer["error"]["message"]
    assert still_serves(connection)


def test_nesting_a_json_reader_takes_is_read(connection):
    """Parameters nested 1,000 deep are valid JSON, and orjson reads up to 1,024 levels: the
    request is answered (parameters are unused). Deeper, both readers refuse: a 400 (above)."""
    nested = b"[" * 1000 + b"]" * 1000
    body = b'{"instances": [%s], "parameters": %s}' % (json.dumps(PENGUIN).encode(), nested)
    status, answer, _ = call(connection, body)
    assert status == 200
    assert len(answer["predictions"]) == 1


def test_a_flood_of_unknown_fields_gets_a_bounded_answer(connection):
    instance = {**PENGUIN, **{f"x{i}": 0 for i in range(120_000)}}
    body = json.dumps({"instances": [instance]}, separators=(",", ":")).encode()
    assert len(body) < MAX_BODY_BYTES
    status, answer, size = call(connection, body)
    assert status == 400
    details = answer["error"]["details"]
    assert len(details) == MAX_REPORTED_PROBLEMS + 1
    assert details[-1] == f"… and {120_000 - MAX_REPORTED_PROBLEMS} more problems"
    assert details[0].startswith("instances[0].x0: unknown field")
    assert size < 20_000  # was 29.8 MB: every problem twice, each with the feature list
    assert still_serves(connection)


def test_other_methods_and_routes_get_json_errors_on_a_kept_alive_connection(connection):
    for method in ("PUT", "DELETE"):
        status, answer, _ = call(connection, b"{}", method=method)
        assert status == 405
        assert answer["error"]["message"] == f"method {method} not allowed on /predict"
    status, answer, _ = call(connection, b"", method="GET", path="/nowhere")
    assert (status, answer["error"]["message"]) == (404, "no route GET /nowhere")
    assert still_serves(connection)


def test_chunked_bodies_are_read_and_bounded(port):
    def chunked(body: bytes) -> bytes:
        chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
        return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"

    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        reader = raw.makefile("rb")
        good = json.dumps({"instances": [PENGUIN] * 50}).encode()
        raw.sendall(head + chunked(good))
        assert read_response(reader)[0] == 200
        raw.sendall(head + chunked(b" " * (MAX_BODY_BYTES + 1)))
        status, answer = read_response(reader)
        assert status == 413 and "exceeds" in answer["error"]["message"]
        raw.sendall(head + chunked(good))  # the rest of the refused body was not taken as a request
        assert read_response(reader)[0] == 200


def read_response(reader) -> tuple[int, dict]:
    """One response from a raw connection's reader (status line, headers, Content-Length body)."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, json.loads(reader.read(length))


@pytest.mark.parametrize(
    "sent",
    [
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le",  # headers that never end
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",  # a body short
    ],
    ids=["slow headers", "slow body"],
)
def test_a_request_that_does_not_arrive_in_time_gets_a_408_and_is_closed(port, sent):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        started = time.monotonic()
        raw.sendall(sent)
        answer = b""
        while chunk := raw.recv(65536):  # the server closes: the answer ends there
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout") and b"Connection: close" in answer
    assert b"did not arrive within 2 s" in answer
    assert REQUEST_TIMEOUT * 0.9 <= waited < REQUEST_TIMEOUT + 5


def test_an_idle_connection_is_closed(port):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        assert raw.recv(1024) == b""  # closed by the server, nothing sent on a silent connection


def test_128_clients_at_once_all_get_an_answer(port):
    """The listen backlog holds them (the stdlib's 5 left clients unanswered at 32 and up)."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(128)]
    try:
        for raw in sockets:
            raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answers = [raw.recv(64) for raw in sockets]
    finally:
        for raw in sockets:
            raw.close()
    assert all(a.startswith(b"HTTP/1.1 200") for a in answers)


def test_an_unexpected_failure_is_a_500_and_the_connection_serves_on():
    for port in serve(Broken()):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        body = json.dumps({"instances": [PENGUIN]}).encode()
        for _ in range(2):
            status, answer, _ = call(connection, body)
            assert (status, answer["error"]["message"]) == (500, "internal error: KeyError")
        connection.close()
    for port in serve(BrokenHealth()):  # health too: a JSON 500, not the server's plain text
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(2):
            status, answer, _ = call(connection, b"", method="GET", path="/health")
            assert (status, answer["error"]["message"]) == (500, "internal error: ValueError")
        connection.close()


def test_a_bundle_that_cannot_be_loaded_is_reported_once_and_health_says_503(
    sample_model_dir, tmp_path, caplog
):
    broken = tmp_path / "broken"
    shutil.copytree(sample_model_dir, broken)
    with (broken / "model.joblib").open("r+b") as bundle:
        bundle.truncate(1024)
    loads = []

    def counted(directory, expected_sha256):
        loads.append(directory)
        return LoadedModel.load(directory, expected_sha256)

    with caplog.at_level(logging.ERROR, logger="pipeline_src.serving"):
        source = ModelSource(broken, None, ModelCache(counted))
        for port in serve(source):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            status, answer, _ = call(connection, b"", method="GET", path="/health")
            assert status == 503 and "cannot be served" in answer["error"]["message"]
            for _ in range(3):
                status, answer, _ = call(connection, json.dumps({"instances": [PENGUIN]}).encode())
                assert status == 503 and "cannot be served" in answer["error"]["message"]
            connection.close()
    assert len(loads) == 1, "a broken bundle is loaded once, not per request"
    assert [r.getMessage() for r in caplog.records].count(answer["error"]["message"]) == 1


def test_every_accepted_connection_has_nagle_off():
    """uvicorn writes a response's head and body in two sends; with Nagle's algorithm on, the body
    waited for the client's delayed ACK (~40 ms per kept-alive request). asyncio turns it off
    only on connections of a listener created with IPPROTO_TCP, which the server's is."""
    server = make_server(Broken(), "127.0.0.1", 0)
    assert server.socket.proto == socket.IPPROTO_TCP
    server.server_close()

    async def accepted_nodelay() -> int:
        accepted = asyncio.get_running_loop().create_future()

        def protocol() -> asyncio.Protocol:
            class Probe(asyncio.Protocol):
                def connection_made(self, transport):
                    sock = transport.get_extra_info("socket")
                    accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                    transport.close()

            return Probe()

        listener = await asyncio.get_running_loop().create_server(
            protocol, sock=listening_socket("127.0.0.1", 0)
        )
        with socket.create_connection(listener.sockets[0].getsockname()[:2], timeout=10):
            result = await asyncio.wait_for(accepted, 10)
        listener.close()
        return result

    assert asyncio.run(accepted_nodelay()) != 0


def test_server_processes_share_the_port_and_stop_together(sample_model_dir):
    """--workers 2: two processes answer on the one port; SIGTERM to the first (what a container
    gets) stops them all, exit 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline_src.serving", "--model-dir", str(sample_model_dir),
         "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        port = int(re.search(r":(\d+) ", process.stdout.readline()).group(1))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        assert call(connection, b"", method="GET", path="/health")[0] == 200
        assert still_serves(connection)
        connection.close()
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
