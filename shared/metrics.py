"""Prometheus metrics of a service process and the nameko dependency that times entrypoints."""

from __future__ import annotations

import time
import weakref

from nameko.extensions import DependencyProvider
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

ENTRYPOINT_LATENCY = Histogram(
    "crm_entrypoint_seconds",
    "Latency of nameko entrypoints (RPC methods, event handlers, timers)",
    ["service", "entrypoint", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter(
    "crm_events_published_total", "Events published from the outbox", ["service", "event_type"]
)
EVENTS_CONSUMED = Counter(
    "crm_events_consumed_total", "Events handled", ["service", "handler", "outcome"]
)
EVENTS_RETRIED = Counter(
    "crm_events_retried_total", "Events sent for retry", ["service", "handler"]
)
EVENTS_DEAD_LETTERED = Counter(
    "crm_events_dead_lettered_total", "Events dead-lettered after retries", ["service", "handler"]
)
EVENTS_REPLAYED = Counter(
    "crm_events_replayed_total",
    "Events published again after the relay's broker connection broke", ["service"]
)
OUTBOX_BACKLOG = Gauge("crm_outbox_backlog", "Outbox rows not yet published", ["service"])


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


class EntrypointMetrics(DependencyProvider):
    """Observes every worker's duration and outcome (ok / error) without entrypoint code."""

    def __init__(self) -> None:
        self._started: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def worker_setup(self, worker_ctx) -> None:
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx, result=None, exc_info=None) -> None:
        started = self._started.pop(worker_ctx, None)
        if started is None:
            return
        ENTRYPOINT_LATENCY.labels(
            self.container.service_name,
            worker_ctx.entrypoint.method_name,
            "ok" if exc_info is None else exc_info[0].__name__,
        ).observe(time.perf_counter() - started)

    def get_dependency(self, worker_ctx) -> None:
        return None
