"""The HTTP side of the model server: uvicorn (httptools), with what it leaves to the deployer.

uvicorn parses HTTP/1.1 (keep-alive, pipelining, chunked bodies) and listens with a backlog of
`BACKLOG`. On top of it:

- **TCP_NODELAY on every connection**: uvicorn writes a response's head and body in two sends.
  asyncio disables Nagle's algorithm only on sockets whose `proto` is IPPROTO_TCP, and a socket
  bound by hand (`socket.create_server`, or uvicorn's own `--workers`/gunicorn path) has proto 0
  (Kludex/uvicorn#3149). Nagle then holds the body until the client's delayed ACK of the head:
  ~40 ms on every kept-alive request after the first, even a 404. `listening_socket` binds with
  IPPROTO_TCP, so asyncio sets TCP_NODELAY on each accepted connection;

- **a deadline per request**: from a request's first byte (or from the connection's opening) until
  the request has fully arrived, `request_timeout` seconds; past it the client gets a 408 and the
  connection is closed. uvicorn's own keep-alive timeout is reset by every byte, so without this
  a client dribbling a header (slowloris) or a body holds its connection forever;
- **JSON refusals**: a request the parser rejects (a Content-Length that is no byte count, bad
  framing) is answered in the server's error format, with `Connection: close`, not uvicorn's
  plain-text 400.

`ModelServer` wraps uvicorn's server with a pre-bound socket, so port 0 works and the chosen
address is known before serving (tests and `local/serving.py` rely on that).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import signal
import socket
import sys
import threading
import time

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pipeline_src.serving.server import error_document

BACKLOG = 2048
"""Connections the kernel queues before the server accepts them (the stdlib's default of 5 left
clients unanswered at concurrency 32 and up)."""
REQUEST_TIMEOUT_SECONDS = 30.0
KEEP_ALIVE_SECONDS = 65
"""Idle kept-alive connections are closed after this; above the 60 s idle timeout of common load
balancers, so they close first and never reuse a connection the server has just closed."""

CRASH_LOOP_SECONDS = 5.0
"""A worker process that dies sooner than this after its start is not replaced: the server stops
(a worker that cannot start would otherwise be forked again and again)."""

log = logging.getLogger("pipeline_src.serving")
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*([^\r\n]*)")


def raw_error(status: int, phrase: str, message: str) -> bytes:
    """A complete HTTP error response that closes the connection."""
    body = error_document(status, message)
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def malformed_message(received: bytes) -> str:
    """What was wrong with a request the parser refused, from the bytes that made it fail."""
    match = _CONTENT_LENGTH.search(received)
    if match and not match.group(1).strip().isdigit():
        value = match.group(1).strip().decode("latin-1")
        return f"Content-Length: not a byte count ({value!r})"
    return "malformed HTTP request"


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request and JSON refusals."""

    request_timeout = REQUEST_TIMEOUT_SECONDS

    def connection_made(self, transport) -> None:
        self._received = b""
        self._receiving = False
        self._deadline = None
        super().connection_made(transport)
        self._arm_deadline()  # a connection that never sends a request is closed too

    def connection_lost(self, exc) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._received = data  # the bytes a parser error is about
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        self._disarm_deadline()
        self.transport.write(raw_error(400, "Bad Request", malformed_message(self._received)))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving = True
        self._arm_deadline()

    def on_message_complete(self) -> None:
        self._receiving = False
        self._disarm_deadline()  # the request is in; the app takes the time it needs
        super().on_message_complete()

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        self._deadline = self.loop.call_later(self.request_timeout, self._deadline_passed)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._receiving:  # a request started and did not finish arriving: say so
            cycle = (
                self.cycle if self.cycle is not None and self.cycle.scope is self.scope else None
            )
            if cycle is None or not cycle.response_started:
                message = f"the request did not arrive within {self.request_timeout:g} s"
                self.transport.write(raw_error(408, "Request Timeout", message))
        self.transport.close()


def stderr_log_config() -> dict:
    """uvicorn's logging, all of it on stderr: stdout carries only the 'serving … on URL' line."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    for handler in config["handlers"].values():
        handler["stream"] = "ext://sys.stderr"
    return config


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) and listening, created with proto IPPROTO_TCP (what
    asyncio's own `create_server(host, port)` gets from getaddrinfo), so the event loop disables
    Nagle's algorithm on the connections it accepts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class ModelServer:
    """A uvicorn server on a socket bound at construction; `serve_forever` in any thread."""

    def __init__(
        self,
        app,
        host: str,
        port: int,
        *,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
        log_config: dict | None = None,
        access_log: bool = False,
    ):
        self.socket = listening_socket(host, port)
        protocol = type("Protocol", (GuardedProtocol,), {"request_timeout": request_timeout})
        config = uvicorn.Config(
            app,
            http=protocol,
            lifespan="off",
            backlog=BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            server_header=False,
            proxy_headers=False,  # nothing reads the client's address: no middleware for it
            log_config=log_config,
            access_log=access_log,
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()
        if hasattr(app, "open_connections"):  # a lone connection is served on the loop
            app.open_connections = self.open_connections

    def open_connections(self) -> int:
        """Connections this process has open (uvicorn's count; each worker process has its own)."""
        return len(self._server.server_state.connections)

    @property
    def server_address(self) -> tuple:
        return self.socket.getsockname()

    def serve_forever(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def serve_in_processes(self, workers: int) -> int:
        """Serve from `workers` processes forked from this one, all accepting on the one listening
        socket; the model, loaded before, is shared copy-on-write. This process only supervises:
        SIGTERM or SIGINT stops the workers, a worker that dies is replaced (unless it died
        within CRASH_LOOP_SECONDS of its start: then all stop). Returns the exit status.

        Why processes: a prediction is mostly Python (pandas, scikit-learn's checks) holding the
        GIL, so one process uses about one core whatever its threads; one process per core uses
        them all. Fork before any thread or OpenMP pool exists in this process."""
        started: dict[int, float] = {}
        stopping = False

        def stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True
            for pid in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

        previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for _ in range(workers):
                started[self._fork_worker(previous)] = time.monotonic()
            status = 0
            while started:
                pid, wait_status = os.wait()
                born = started.pop(pid, None)
                if born is None or stopping:
                    continue
                code = os.waitstatus_to_exitcode(wait_status)
                if time.monotonic() - born < CRASH_LOOP_SECONDS:
                    log.error("worker %d exited (%d) right after starting: stopping", pid, code)
                    status = 1
                    stop(signal.SIGTERM, None)
                else:
                    log.error("worker %d exited (%d): starting another", pid, code)
                    started[self._fork_worker(previous)] = time.monotonic()
            return status
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _fork_worker(self, handlers: dict) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:  # the worker: the signal handlers this process had, then uvicorn's own
            for number, handler in handlers.items():
                signal.signal(number, handler)
            self._server.run(sockets=[self.socket])
            code = 0
        except BaseException:
            log.exception("worker %d failed", os.getpid())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop serving (from another thread) and wait until the server has stopped."""
        self._server.should_exit = True
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()
