"""Prometheus metrics of the rules service (besides the shared entrypoint and event metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TIMER_LATENESS = Histogram(
    "crm_rules_timer_lateness_seconds",
    "How long after its due time a timer fired",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
TIMER_LAG = Gauge(
    "crm_rules_timer_lag_seconds", "How overdue the oldest pending timer is (0 = none overdue)"
)
TIMERS_FIRED = Counter("crm_rules_timers_fired_total", "Timers fired")
RULE_RUNS = Counter("crm_rules_runs_total", "Rule runs by final status", ["status"])
