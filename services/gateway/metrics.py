"""Prometheus metrics of the gateway.

Under gunicorn each worker is a process, so when PROMETHEUS_MULTIPROC_DIR is set the values
live in files there and /metrics aggregates them (the gunicorn config marks dead workers).
The metric objects are module-level because prometheus_client registers them globally.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUESTS = Counter(
    "crm_gateway_http_requests_total",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "crm_gateway_http_request_duration_seconds",
    "HTTP request latency, by route template and status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
RPC_LATENCY = Histogram(
    "crm_gateway_rpc_duration_seconds",
    "RPC call latency as seen by the gateway, by service.method and outcome.",
    ["target", "outcome"],
    buckets=LATENCY_BUCKETS,
)
UNAVAILABLE = Counter(
    "crm_gateway_service_unavailable_total",
    "Requests answered 503 because the broker or a service could not answer.",
    ["service"],
)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
