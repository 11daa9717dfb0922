"""Health, metrics and the RPC echo used by benchmarks."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from services.gateway import metrics
from services.gateway.app import gateway, rpc_call
from services.gateway.schemas import EchoSchema, HealthSchema

blp = Blueprint("system", __name__, description="Health, metrics and diagnostics.")


@blp.route("/health", methods=["GET"])
@blp.doc(security=[])
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="A dependency is down.")
def health() -> Any:
    """Gateway database and message broker reachability (no authentication)."""
    gw = gateway()
    checks = {
        "database": "ok" if gw.store.ping() else "down",
        "broker": "ok" if gw.rpc.broker_ok() else "down",
    }
    healthy = all(value == "ok" for value in checks.values())
    headers = {} if healthy else {"Retry-After": "5"}
    return {"status": "ok" if healthy else "degraded", "checks": checks}, (
        200 if healthy else 503
    ), headers


@blp.route("/metrics", methods=["GET"], endpoint="metrics")
@blp.doc(security=[], responses={200: {"description": "Prometheus text format."}})
def metrics_view() -> Response:
    """Prometheus metrics of every gateway worker (no authentication)."""
    payload, content_type = metrics.render()
    return Response(payload, mimetype=None, content_type=content_type)


@blp.route("/system/echo", methods=["POST"])
@blp.arguments(EchoSchema)
@blp.response(200, description="The payload, as returned by the leads service.")
def echo(payload: dict[str, Any]) -> Any:
    """Round trip through `leads.ping`: the RPC ceiling for benchmarks."""
    return rpc_call("leads", "ping", payload=payload)
