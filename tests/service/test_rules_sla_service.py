"""SLA warnings and breaches through the rules service's timers, in process (SQLite and
PostgreSQL, the controllable clock): the real service_desk service publishes its schedules, the
rules service's shipped rules time them and call `service_desk.check_sla` (the real service,
in process) at each instant, the warning notifies the assignee (in-app and e-mail), the breach
the assignee and their manager and raises the priority. A paused ticket gets no warning; an
older schedule arriving late does not replace the newer timer; a waited-for instant is never
taken for a loop."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.rules import clock as clock_module
from services.rules import seed
from services.rules import service as rules_service_module
from services.rules.contract import EVENT_SCHEMAS
from services.rules.models import Timer, outbox
from services.rules.service import RulesService
from services.rules.usecases.cached import forget_cached_rules
from services.service_desk.contract import EVENT_SCHEMAS as DESK_EVENTS
from services.service_desk.models import outbox as desk_outbox
from services.service_desk.service import ServiceDeskService
from shared.context import Context
from shared.db import get_engine
from shared.migrations import upgrade
from tests.service.test_rules_service import TEAMS, USERS, InProcessLeads, envelope
from tests.service.workers import service_worker

ADMIN = {"all": True}


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request, tmp_path):
    if request.param == "sqlite":
        urls = {"rules": f"sqlite:///{tmp_path}/rules.db",
                "service_desk": f"sqlite:///{tmp_path}/desk.db"}
    else:
        make = request.getfixturevalue("pg_url_factory")
        urls = {"rules": make(), "service_desk": make()}
    for name, url in urls.items():
        upgrade(name, url)
    return urls


@pytest.fixture
def desk(urls, smtp_server, monkeypatch):
    monkeypatch.setenv("CRM_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("CRM_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("CRM_SMTP_SECURITY", "none")
    monkeypatch.delenv("CRM_SMTP_USER", raising=False)
    monkeypatch.setattr(rules_service_module, "_email_sender", None)
    monkeypatch.setattr(clock_module, "CLOCK", clock_module.Clock(controllable=True))
    forget_cached_rules()
    smtp_server.clear()
    rules_engine = get_engine(urls["rules"])
    desk_engine = get_engine(urls["service_desk"])

    def service_desk(ctx: Context | None = None) -> ServiceDeskService:
        ctx = ctx or Context(correlation_id="corr-desk", actor="u-admin")
        return service_worker(ServiceDeskService, desk_engine, desk_outbox, DESK_EVENTS, ctx)

    context_data: dict = {}
    in_process = InProcessLeads(service_desk, context_data)  # any service, by its methods

    def rules() -> RulesService:
        ctx = Context(correlation_id="corr-rules", actor="u-admin")
        return service_worker(RulesService, rules_engine, outbox, EVENT_SCHEMAS, ctx,
                              service_desk=in_process,
                              worker_ctx=SimpleNamespace(data=context_data))

    seen: set[str] = set()

    def desk_events(event_type: str | None = None) -> list[dict]:
        with desk_engine.connect() as conn:
            rows = conn.execute(select(desk_outbox.c.envelope)
                                .order_by(desk_outbox.c.seq)).scalars().all()
        return [e for e in map(json.loads, rows) if event_type in (None, e["event_type"])]

    def deliver() -> None:
        while fresh := [e for e in desk_events() if e["event_id"] not in seen]:
            for event in fresh:
                seen.add(event["event_id"])
                rules().on_any_event(event)

    def advance(seconds: float) -> int:
        rules().advance_clock(seconds)
        fired = 0
        for _ in range(10):  # timers -> check_sla -> events -> the next timers, until quiet
            deliver()
            count = rules().engine.tick()
            fired += count
            if not count:
                break
        deliver()
        rules().engine.tick()  # e-mail deliveries
        return fired

    service = rules()
    for user in USERS:
        service.on_any_event(envelope("gateway", "user_changed", {"user": {
            **user, "display_name": user["username"], "active": True,
            "email": f"{user['username']}@demo.crm.local"}}))
    for team in TEAMS:
        service.on_any_event(envelope("gateway", "team_changed", {"team": team}))
    seed.install(urls["rules"])
    forget_cached_rules()
    return SimpleNamespace(rules=rules, desk=service_desk, deliver=deliver, advance=advance,
                           desk_events=desk_events, smtp=smtp_server, rules_engine=rules_engine,
                           calls=in_process.calls)


def titles(desk, user_id: str) -> list[str]:
    return [n["title"] for n in desk.rules().list_notifications(user_id)["items"]]


def hourly_policy(desk, **first_reply) -> dict:
    return desk.desk().create_sla_policy({
        "name": "紧急 1 小时", "priorities": ["high", "urgent"],
        "targets": {"first_reply": {"minutes": 60, "business": False, **first_reply},
                    "resolution": {"minutes": 240, "business": False}}})


def new_ticket(desk, subject: str, **fields) -> dict:
    return desk.desk().create_ticket({"subject": subject, "requester_email": "li@example.cn",
                                      "priority": "high", "assignee_id": "u-lina", **fields},
                                     ADMIN)


def mails_to(desk, address: str, subject_part: str) -> list:
    return [m for m in desk.smtp.messages
            if address in str(m["To"]) and subject_part in str(m["Subject"])]


def test_warning_then_breach_fire_from_the_timers_without_a_ticket_update(desk):
    hourly_policy(desk)
    ticket = new_ticket(desk, "服务器宕机")
    desk.deliver()
    [timer] = [t for t in _timers(desk) if t.status == "pending"]
    assert timer.record_key == f"ticket:{ticket['id']}"

    assert desk.advance(40 * 60) == 0  # before 75 %: nothing
    assert desk.desk_events("ticket_sla_warning") == []

    assert desk.advance(6 * 60) >= 1  # 46 min: past 75 %
    warnings = desk.desk_events("ticket_sla_warning")
    assert [(w["data"]["target"], w["data"]["threshold"]) for w in warnings] == [
        ("first_reply", 0.75)]
    label = f"{ticket['number']} 服务器宕机"
    assert titles(desk, "u-lina") == [f"SLA 预警：{label}"]
    assert mails_to(desk, "lina@demo.crm.local", ticket["number"])
    assert desk.desk().get_ticket(ticket["id"])["priority"] == "high"

    desk.advance(15 * 60)  # 61 min: 90 % and the breach
    assert [w["data"]["threshold"] for w in desk.desk_events("ticket_sla_warning")] == [
        0.75, 0.9]
    [breach] = desk.desk_events("ticket_sla_breached")
    assert breach["data"]["ticket_id"] == ticket["id"]
    assert f"SLA 超时：{label}" in titles(desk, "u-lina")
    assert titles(desk, "u-manager") == [f"SLA 超时：{label}"]
    assert mails_to(desk, "manager@demo.crm.local", "SLA 超时")
    assert desk.desk().get_ticket(ticket["id"])["priority"] == "urgent"
    [escalated] = desk.desk_events("ticket_escalated")
    assert (escalated["data"]["from"], escalated["data"]["to"]) == ("high", "urgent")

    desk.advance(60 * 60)  # nothing published twice
    assert len(desk.desk_events("ticket_sla_breached")) == 1
    assert titles(desk, "u-manager") == [f"SLA 超时：{label}"]
    # one live timer for the ticket at any time (resolution's next instant now)
    assert len([t for t in _timers(desk) if t.status == "pending"]) == 1


def test_a_ticket_paused_before_the_instant_gets_no_warning(desk):
    hourly_policy(desk, pause_statuses=["pending"])
    ticket = new_ticket(desk, "等客户回复")
    desk.deliver()
    desk.desk().update_ticket(ticket["id"], {"status": "pending"}, ADMIN)
    desk.deliver()
    assert [t for t in _timers(desk) if t.status == "pending"] == []  # resolution paused too
    desk.advance(50 * 60)
    assert desk.desk_events("ticket_sla_warning") == []
    assert titles(desk, "u-lina") == []
    assert [c for c in desk.calls if c[0] == "check_sla"] == []  # never called


def _timers(desk) -> list[Timer]:
    with sessionmaker(desk.rules_engine)() as session:
        return list(session.scalars(select(Timer).where(Timer.rule_id == "ticket-sla-check")
                                    .order_by(Timer.created_at)).all())


def _scheduled(ticket_id: str, sequence: int, instant: datetime, depth: int = 0) -> dict:
    return envelope("service_desk", "ticket_sla_scheduled", {
        "ticket_id": ticket_id, "sequence": sequence, "policy_id": "p1",
        "next_check_at": instant.isoformat(), "clocks": {}}, depth=depth)


def test_an_older_schedule_arriving_late_does_not_replace_the_newer_timer(desk):
    now = clock_module.CLOCK.now()
    newer, older = now + timedelta(minutes=5), now + timedelta(hours=3)
    desk.rules().on_any_event(_scheduled("t-1", 2, newer))
    desk.rules().on_any_event(_scheduled("t-1", 1, older))
    [timer] = [t for t in _timers(desk) if t.status == "pending"]
    assert timer.due_at == newer and timer.payload["sequence"] == 2
    runs = desk.rules().list_runs({"rule_id": "ticket-sla-check"})["items"]
    assert [r["reason"] for r in runs] == [
        "superseded: sequence 1 is older than the pending timer's 2"]
    latest = now + timedelta(minutes=1)
    desk.rules().on_any_event(_scheduled("t-1", 3, latest))  # a newer one replaces it
    assert [t.due_at for t in _timers(desk) if t.status == "pending"] == [latest]


def test_waited_instants_are_neither_deduped_nor_cut_off_by_depth(desk):
    """A timer at a future instant fires in a run of depth 0, even within the dedupe window of
    the rule's previous run on the ticket and when the schedule came from a deep chain."""
    now = clock_module.CLOCK.now()
    desk.rules().on_any_event(_scheduled("t-2", 1, now + timedelta(seconds=10), depth=9))
    desk.advance(11)
    desk.rules().on_any_event(_scheduled("t-2", 2, now + timedelta(seconds=20), depth=9))
    desk.advance(10)
    runs = desk.rules().list_runs({"rule_id": "ticket-sla-check",
                                   "record_key": "ticket:t-2"})["items"]
    timer_runs = [r for r in runs if r["trigger"] == "timer"]
    assert len(timer_runs) == 2
    assert {r["causation_depth"] for r in timer_runs} == {0}
    # the ticket does not exist in service_desk: the call fails, but it was made, not stopped
    assert {r["status"] for r in timer_runs} != {"stopped"}
    assert [c[1]["ticket_id"] for c in desk.calls if c[0] == "check_sla"] == ["t-2", "t-2"]


def test_a_breach_notifies_the_tickets_group_manager(desk):
    """chenjing's team has no manager: the breach of a ticket of a group managed by u-manager
    reaches u-manager through the group (`field:group_manager_id`), the warning does not."""
    hourly_policy(desk)
    group = desk.desk().create_ticket_group({"name": "二线", "manager_id": "u-manager",
                                             "members": [{"user_id": "u-chenjing"}]})
    desk.desk().create_routing_rule({"name": "专线", "group_id": group["id"],
                                     "conditions": {"products": ["专线"]}})
    ticket = new_ticket(desk, "专线中断", assignee_id=None, product="专线")
    desk.deliver()  # the shipped rule ticket-route-new routes it: the group, its member
    routed = desk.desk().get_ticket(ticket["id"])
    assert (routed["group_id"], routed["assignee_id"]) == (group["id"], "u-chenjing")
    label = f"{ticket['number']} 专线中断"
    desk.advance(46 * 60)
    assert titles(desk, "u-chenjing") == [f"SLA 预警：{label}"]
    assert titles(desk, "u-manager") == []
    desk.advance(15 * 60)
    assert f"SLA 超时：{label}" in titles(desk, "u-chenjing")
    assert titles(desk, "u-manager") == [f"SLA 超时：{label}"]
    assert mails_to(desk, "manager@demo.crm.local", "SLA 超时")
    assert desk.desk().get_ticket(ticket["id"])["priority"] == "urgent"
