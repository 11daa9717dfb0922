"""Settled timers are pruned after the retention (`CRM_RULES_TIMER_RETENTION_DAYS`), on SQLite
and PostgreSQL: fired ones fired before it, cancelled ones set and due before it, with their
cancelling keys; never a pending one (however overdue), nor a failed one, nor a recent one."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.rules import clock as clock_module
from services.rules import service as rules_service_module
from services.rules.contract import EVENT_SCHEMAS
from services.rules.models import Timer, TimerCancel, outbox
from services.rules.service import RulesService
from services.rules.usecases.support import Settings
from shared.context import Context
from shared.db import get_engine
from tests.service.workers import migrated_database, service_worker

DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def rules_url(request, tmp_path):
    return migrated_database(request, tmp_path, "rules")


def add(session: Session, name: str, status: str, *, created: timedelta, due: timedelta,
        fired: timedelta | None = None, keys: int = 1) -> None:
    now = clock_module.CLOCK.now()
    timer_id = f"{name}-{uuid.uuid4().hex[:8]}"
    cancel_keys = [f"lead:{name}-{n}|leads.lead_converted" for n in range(keys)]
    session.add(Timer(id=timer_id, kind="rule", due_at=now - due, status=status,
                      rule_id="r1", rule_version=1, record_key=f"lead:{name}", payload={},
                      cancel_keys=cancel_keys, created_at=now - created,
                      fired_at=now - fired if fired is not None else None,
                      outcome=status))
    for key in cancel_keys:
        session.add(TimerCancel(key=key, timer_id=timer_id))


def names(url: str) -> list[str]:
    with Session(get_engine(url)) as session:
        return sorted(t.id.rsplit("-", 1)[0] for t in session.scalars(select(Timer)))


def cancel_keys(url: str) -> list[str]:
    with Session(get_engine(url)) as session:
        return sorted(k.key.split(":", 1)[1].rsplit("-", 1)[0]
                      for k in session.scalars(select(TimerCancel)))


def test_only_old_fired_and_cancelled_timers_are_pruned(rules_url):
    with Session(get_engine(rules_url)) as session, session.begin():
        add(session, "old-fired", "fired", created=10 * DAY, due=9 * DAY, fired=8 * DAY)
        add(session, "fired-late", "fired", created=30 * DAY, due=20 * DAY, fired=6 * DAY)
        add(session, "recent-fired", "fired", created=2 * DAY, due=DAY, fired=DAY)
        add(session, "old-cancelled", "cancelled", created=12 * DAY, due=8 * DAY)
        add(session, "cancelled-due-ahead", "cancelled", created=30 * DAY, due=-30 * DAY)
        add(session, "recent-cancelled", "cancelled", created=DAY, due=8 * DAY)
        add(session, "overdue-pending", "pending", created=60 * DAY, due=50 * DAY)
        add(session, "pending", "pending", created=60 * DAY, due=-DAY)
        add(session, "old-failed", "failed", created=60 * DAY, due=50 * DAY, fired=50 * DAY)
    worker = service_worker(RulesService, get_engine(rules_url), outbox, EVENT_SCHEMAS,
                            Context(correlation_id="corr-prune"))
    assert worker.engine.prune_timers(clock_module.CLOCK.now()) == 2
    kept = ["cancelled-due-ahead", "fired-late", "old-failed", "overdue-pending", "pending",
            "recent-cancelled", "recent-fired"]
    assert names(rules_url) == kept
    # the pruned timers' cancelling keys went with them; no other
    assert cancel_keys(rules_url) == kept
    assert worker.engine.prune_timers(clock_module.CLOCK.now()) == 0


def test_pruning_goes_batch_by_batch(rules_url):
    with Session(get_engine(rules_url)) as session, session.begin():
        for n in range(7):
            add(session, f"fired{n}", "fired", created=40 * DAY, due=35 * DAY, fired=31 * DAY)
        add(session, "pending", "pending", created=40 * DAY, due=35 * DAY)
    worker = service_worker(RulesService, get_engine(rules_url), outbox, EVENT_SCHEMAS,
                            Context(correlation_id="corr-prune"))
    now = clock_module.CLOCK.now()
    assert worker.engine.prune_timers(now, batch=3, batches=2) == 6
    assert worker.engine.prune_timers(now, batch=3, batches=2) == 1
    assert names(rules_url) == ["pending"] and cancel_keys(rules_url) == ["pending"]


def test_the_maintenance_prunes_with_the_configured_retention(rules_url, monkeypatch):
    monkeypatch.setattr(rules_service_module, "SETTINGS",
                        Settings(timer_retention=timedelta(days=30)))
    with Session(get_engine(rules_url)) as session, session.begin():
        for n in range(7):
            add(session, f"fired{n}", "fired", created=40 * DAY, due=35 * DAY, fired=31 * DAY,
                keys=0)
        add(session, "within-30-days", "fired", created=40 * DAY, due=35 * DAY, fired=29 * DAY)
        add(session, "pending", "pending", created=40 * DAY, due=35 * DAY)
    worker = service_worker(RulesService, get_engine(rules_url), outbox, EVENT_SCHEMAS,
                            Context(correlation_id="corr-prune"))
    worker.engine.maintenance()
    assert names(rules_url) == ["pending", "within-30-days"]
    with Session(get_engine(rules_url)) as session:
        assert session.scalar(select(func.count()).select_from(TimerCancel)) == 2
