"""nameko entrypoints of the service_desk service: each loads its input with the contract's
schemas and calls one use case (services/service_desk/usecases/), whose result is a plain dict."""

from __future__ import annotations

from services.service_desk.contract import EVENT_SCHEMAS
from services.service_desk.models import outbox
from shared.context import CallContext, Context
from shared.db import Database
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.platform import PlatformEndpoints

setup_logging("service_desk")


class ServiceDeskService(PlatformEndpoints):
    name = "service_desk"

    db = Database("service_desk")
    events = EventOutbox("service_desk", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()
