"""A real HTTP endpoint for webhook tests: a threaded `http.server` on 127.0.0.1, a free port.

    with WebhookReceiver() as receiver:
        receiver.responses = [500, 500, 200]        # then 200 for ever
        ...deliver to receiver.url...
        headers, body, received_at = receiver.wait_for_count(1)[0]

A queued response is a status code or a `Reply` (status, headers, body, delay in seconds before
answering: a delay longer than the sender's timeout makes it time out).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

__all__ = ["RecordedRequest", "Reply", "WebhookReceiver"]


class RecordedRequest(NamedTuple):
    headers: dict[str, str]  # names lower-cased
    body: bytes
    received_at: datetime


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str = b""
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping must not hold up stop()
    receiver: WebhookReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.receiver._record(self.command, self.path, headers, body)
        if reply.delay:
            time.sleep(reply.delay)
        payload = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender gave up (a timeout test)

    do_POST = _handle  # noqa: N815 - http.server's naming
    do_GET = _handle  # noqa: N815
    do_PUT = _handle  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class WebhookReceiver:
    """`url` (POST here), `requests` (RecordedRequest(headers, body, received_at) in arrival
    order, for every path), `paths` (the path of each), `responses` (settable queue of status
    codes or `Reply`; empty means 200)."""

    def __init__(self, path: str = "/hook", host: str = "127.0.0.1") -> None:
        self.path = path
        self.host = host
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._paths: list[str] = []
        self._responses: list[int | Reply] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> WebhookReceiver:
        if self._server is not None:
            return self
        server = _Server((self.host, 0), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
            name="webhook-receiver",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    # ---- responses and records

    @property
    def responses(self) -> list[int | Reply]:
        with self._lock:
            return list(self._responses)

    @responses.setter
    def responses(self, queue: Iterable[int | Reply]) -> None:
        with self._lock:
            self._responses = list(queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def paths(self) -> list[str]:
        with self._lock:
            return list(self._paths)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._paths.clear()

    def wait_for_count(self, n: int, timeout: float = 10) -> list[RecordedRequest]:
        """The requests once at least `n` have arrived; AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {n} webhook requests within {timeout} s, "
                        f"got {len(self._requests)}"
                    )
                self._lock.wait(min(remaining, 0.2))
            return list(self._requests)

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        with self._lock:
            self._requests.append(RecordedRequest(headers, body, datetime.now(UTC)))
            self._paths.append(f"{method} {path}")
            queued = self._responses.pop(0) if self._responses else 200
            self._lock.notify_all()
        return queued if isinstance(queued, Reply) else Reply(status=int(queued))
