"""Prometheus metrics of the service desk (besides the shared entrypoint and event metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OUTCOMES_BACKFILLED = Counter(
    "crm_service_desk_outcomes_backfilled_total",
    "Tickets the ticket_sla_outcomes backfill computed, by result (written: rows kept; "
    "no_policy: no SLA policy applies, no rows; failed: not computable, e.g. a calendar year "
    "unknown)",
    ["result"],
)
OUTCOMES_BACKFILL_PENDING = Gauge(
    "crm_service_desk_outcomes_backfill_pending",
    "1 while the ticket_sla_outcomes backfill has tickets left to look at, else 0",
)
