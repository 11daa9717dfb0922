"""nameko entrypoints of the contracts service: each loads its input with the contract's
schemas and calls one use case (services/contracts/usecases/), whose result is a plain dict."""

from __future__ import annotations

from services.contracts.contract import EVENT_SCHEMAS
from services.contracts.models import outbox
from shared.context import CallContext, Context
from shared.db import Database
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.platform import PlatformEndpoints

setup_logging("contracts")


class ContractsService(PlatformEndpoints):
    name = "contracts"

    db = Database("contracts")
    events = EventOutbox("contracts", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()
