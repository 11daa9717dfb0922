"""What every nameko service has besides its business: health, metrics, tracing of workers,
and `ping` (the gateway's echo RPC, the ceiling `make bench` measures against)."""

from __future__ import annotations

import json
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from nameko.web.handlers import http
from sqlalchemy import text
from werkzeug.wrappers import Response

from shared import metrics
from shared.consumer import stalled_consumers
from shared.heap import freeze_startup_heap
from shared.rpc import rpc


class StartupHeap(DependencyProvider):
    """Freezes the heap (`shared.heap`) right after the container has started."""

    def start(self) -> None:
        # Spawned: it runs once the container's start has returned and every extension is up.
        eventlet.spawn(freeze_startup_heap)

    def get_dependency(self, worker_ctx) -> None:
        return None


class PlatformEndpoints:
    """Mixin of a service class with a `db` dependency: `/health` and `/metrics` over HTTP,
    `ping` over RPC; the startup heap frozen."""

    startup_heap = StartupHeap()

    @rpc
    def ping(self, payload: Any = None) -> Any:
        return payload

    @http("GET", "/health")
    def health(self, request):
        """200 when the database answers and no event consumer is stuck (it holds messages
        and has finished none for CRM_CONSUMER_STALL_SECONDS); else 503 with the reasons.
        Kubernetes uses it as the liveness and readiness probe (deploy/README.md)."""
        checks: dict[str, str] = {}
        try:
            with self.db.read() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
            checks["database"] = str(exc)
        stalled = stalled_consumers()
        checks["consumers"] = "; ".join(stalled) if stalled else "ok"
        healthy = all(value == "ok" for value in checks.values())
        body = {"status": "ok" if healthy else "unavailable", "service": self.name,
                "checks": checks}
        return (200 if healthy else 503), {"Content-Type": "application/json"}, json.dumps(body)

    @http("GET", "/metrics")
    def metrics(self, request) -> Response:
        # A Response, not a (status, headers, payload) tuple: nameko's tuple path refuses bytes
        # ("Payload must be a string"), and generate_latest() returns bytes.
        payload, content_type = metrics.exposition()
        return Response(payload, status=200, content_type=content_type)
