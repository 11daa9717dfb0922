"""The service desk's numbers with nameko's worker_factory over migrated SQLite and PostgreSQL
databases, on a fixed clock: business-time first-reply and resolution times from the SLA clocks
(a reply the next working morning counts the working hours only), attainment per policy, group
and agent, volume, backlog at each day's end, reopen rate, the drill-down's pages, the
customer 360's part, and another agent's scope seeing none of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from services.service_desk import clock
from services.service_desk.models import TicketSlaOutcomeRow, outbox
from services.service_desk.usecases import outcomes_backfill, sla_schedule
from shared.errors import ValidationFailed
from tests.service import desk

ADMIN = {"all": True}
AGENT = {"owner_ids": ["agent-1"], "user_id": "agent-1"}
OTHER = {"owner_ids": ["agent-9"], "user_id": "agent-9"}
DAYS = {"date_from": "2026-03-02", "date_to": "2026-03-03"}
MONDAY = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a working Monday

database_url = desk.database_url


class Clock:
    def __init__(self) -> None:
        self.at = MONDAY

    def __call__(self) -> datetime:
        return self.at

    def local(self, day: int, hour: int, minute: int = 0) -> None:
        """2026-03-0<day> hour:minute in Shanghai."""
        self.at = datetime(2026, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


@pytest.fixture
def now(monkeypatch):
    fixed = Clock()
    monkeypatch.setattr(clock, "utcnow", fixed)
    monkeypatch.setenv("CRM_TIMEZONE", "Asia/Shanghai")
    return fixed


@pytest.fixture
def service(database_url, now):
    return desk.worker(database_url, actor="agent-1")


def agent_reply(service, ticket_id: str) -> None:
    service.add_ticket_reply(ticket_id, {"body": "您好，已处理", "public": True,
                                         "author_kind": "agent"}, ADMIN)


def solve(service, ticket_id: str) -> None:
    service.update_ticket(ticket_id, {"status": "solved"}, ADMIN)


@pytest.fixture
def desk_week(service, now):
    """A: created Mon 10:00, replied 10:30, solved 12:00. B: created Mon 17:00, replied Tue
    10:00 (2 working hours: breached), solved Tue 11:00, reopened 12:00, solved 13:00. C:
    agent-9's, created Mon 11:00, not replied."""
    calendar = service.create_business_calendar({
        "name": "9-18", "holiday_source": "cn",
        "hours": {d: ["09:00-18:00"] for d in ("0", "1", "2", "3", "4")}})
    policy = service.create_sla_policy({
        "name": "standard", "calendar_id": calendar["id"],
        "targets": {"first_reply": {"minutes": 60}, "resolution": {"minutes": 480}}})
    made = {}
    now.local(2, 10)
    made["a"] = service.create_ticket({"subject": "发票抬头", "requester_email": "a@example.cn",
                                       "assignee_id": "agent-1", "customer_id": "cust-1"},
                                      ADMIN)
    now.local(2, 10, 30)
    agent_reply(service, made["a"]["id"])
    now.local(2, 11)
    made["c"] = service.create_ticket({"subject": "无法登录", "requester_email": "c@example.cn",
                                       "assignee_id": "agent-9", "priority": "high"}, ADMIN)
    now.local(2, 12)
    solve(service, made["a"]["id"])
    now.local(2, 17)
    made["b"] = service.create_ticket({"subject": "退款进度", "requester_email": "b@example.cn",
                                       "assignee_id": "agent-1", "channel": "email",
                                       "customer_id": "cust-1"}, ADMIN)
    now.local(3, 10)
    agent_reply(service, made["b"]["id"])
    now.local(3, 11)
    solve(service, made["b"]["id"])
    now.local(3, 12)
    service.add_ticket_reply(made["b"]["id"], {"body": "还没到账", "author_kind": "customer"},
                             ADMIN)
    now.local(3, 13)
    solve(service, made["b"]["id"])
    now.local(3, 14)
    return {**made, "policy": policy}


def test_first_reply_and_resolution_times_are_business_time(service, desk_week):
    first = service.first_reply_time_report(DAYS, ADMIN)
    assert (first["count"], first["p50_seconds"], first["p90_seconds"],
            first["average_seconds"], first["breached"]) == (2, 1800, 7200, 4500, 1)
    assert {b["bucket"]: b["count"] for b in first["buckets"]}["1-4h"] == 1
    resolution = service.resolution_time_report(DAYS, ADMIN)
    # A: 2 h; B: 1 h on Monday + 2 h to the first solve + 1 h after the reopen
    assert (resolution["count"], resolution["p50_seconds"], resolution["p90_seconds"]) == (
        2, 7200, 14400)
    mine = service.first_reply_time_report({**DAYS, "assignee_id": "agent-1"}, AGENT)
    assert mine["count"] == 2
    assert service.first_reply_time_report(DAYS, OTHER)["count"] == 0
    assert service.resolution_time_report(DAYS, OTHER)["count"] == 0
    # narrowing never widens: agent-9 filtering on agent-1 sees nothing
    assert service.first_reply_time_report({**DAYS, "assignee_id": "agent-1"},
                                           OTHER)["count"] == 0


def test_sla_attainment_per_policy_group_and_agent(service, desk_week):
    report = service.sla_attainment_report(DAYS, ADMIN)
    total = {row["target"]: row for row in report["total"]}
    assert (total["first_reply"]["met"], total["first_reply"]["breached"],
            total["first_reply"]["open"]) == (1, 1, 1)
    assert total["first_reply"]["attainment_percent"] == "50.00"
    assert (total["resolution"]["met"], total["resolution"]["open"]) == (2, 1)
    [policy_row] = [r for r in report["by_policy"] if r["target"] == "first_reply"]
    assert (policy_row["policy_id"], policy_row["policy_name"]) == (
        desk_week["policy"]["id"], "standard")
    agents = {(r["assignee_id"], r["target"]): r for r in report["by_agent"]}
    assert agents[("agent-1", "first_reply")]["breached"] == 1
    assert agents[("agent-9", "first_reply")]["open"] == 1
    theirs = service.sla_attainment_report(DAYS, OTHER)
    assert {r["assignee_id"] for r in theirs["by_agent"]} == {"agent-9"}
    only = service.sla_attainment_report({**DAYS, "target": "resolution"}, ADMIN)
    assert {r["target"] for r in only["total"]} == {"resolution"}


def test_volume_backlog_and_reopen_rate(service, desk_week):
    volume = service.ticket_volume_report(DAYS, ADMIN)
    assert [(p["period"], p["count"]) for p in volume["periods"]] == [
        ("2026-03-02", 3), ("2026-03-03", 0)]
    assert volume["total"]["by_channel"] == {"web": 2, "email": 1}
    assert volume["total"]["by_priority"] == {"normal": 2, "high": 1}
    assert volume["total"]["by_group"] == [{"group_id": None, "count": 3}]
    assert service.ticket_volume_report({**DAYS, "interval": "week"}, AGENT)["total"][
        "count"] == 2
    backlog = service.ticket_backlog_report(DAYS, ADMIN)
    # Monday's end: B and C open (A solved); Tuesday (now, 14:00): C only
    assert [(p["period"], p["open"]) for p in backlog["periods"]] == [
        ("2026-03-02", 2), ("2026-03-03", 1)]
    assert backlog["now"]["open"] == 1 and backlog["now"]["by_status"]["new"] == 1
    assert {b["band"]: b["count"] for b in backlog["now"]["by_age"]}["1-3d"] == 1
    assert service.ticket_backlog_report(DAYS, AGENT)["now"]["open"] == 0
    reopen = service.reopen_rate_report(DAYS, ADMIN)
    assert (reopen["solved"], reopen["reopened"], reopen["reopen_rate_percent"]) == (
        2, 1, "50.00")
    assert service.reopen_rate_report(DAYS, OTHER)["solved"] == 0


def test_the_backlog_of_each_period_is_what_its_records_list(service, desk_week, now):
    """The report counts back from the open tickets by the changes since each period's end;
    the records read each ticket's status at that end: both say the same."""
    now.local(3, 15)
    d = service.create_ticket({"subject": "换货", "requester_email": "d@example.cn",
                               "assignee_id": "agent-1"}, ADMIN)["id"]
    now.local(3, 16)
    service.update_ticket(d, {"status": "pending"}, ADMIN)
    now.local(4, 9)
    service.update_ticket(d, {"status": "open"}, ADMIN)
    solve(service, desk_week["c"]["id"])
    now.local(5, 10)
    solve(service, d)
    service.update_ticket(desk_week["a"]["id"], {"status": "closed"}, ADMIN)
    now.local(6, 10)
    days = {"date_from": "2026-03-01", "date_to": "2026-03-08"}
    for scope in (ADMIN, AGENT, OTHER):
        report = service.ticket_backlog_report(days, scope)
        listed = [len(service.ticket_numbers_drill_down(
            "backlog", days, {"period": p["period"]}, scope, limit=200)["items"])
            for p in report["periods"]]
        assert [p["open"] for p in report["periods"]] == listed
    assert [p["open"] for p in service.ticket_backlog_report(days, ADMIN)["periods"]] == [
        0, 2, 2, 1, 0, 0, 0, 0]  # Mon: B, C; Tue: C, D; Wed: D; the days after now: 0


def test_each_figure_drills_down_to_its_tickets(service, desk_week):
    def ids(figure, params=None, scope=ADMIN, filters=DAYS, **page):
        result = service.ticket_numbers_drill_down(figure, filters, params or {}, scope,
                                                   **page)
        return [item["id"] for item in result["items"]], result

    a, b, c = (desk_week[k]["id"] for k in "abc")
    found, page = ids("first_reply", {"bucket": "1-4h"})
    assert found == [b] and page["items"][0]["seconds"] == 7200
    assert ids("sla", {"target": "first_reply", "outcome": "breached"})[0] == [b]
    assert ids("sla", {"target": "first_reply", "outcome": "open"})[0] == [c]
    assert ids("reopen", {"outcome": "reopened"})[0] == [b]
    assert set(ids("reopen")[0]) == {a, b}
    assert ids("backlog", {"period": "2026-03-02"})[0] == [b, c]
    assert ids("backlog")[0] == [c]
    assert ids("volume", {"period": "2026-03-02", "channel": "email"})[0] == [b]
    # newest first, a page at a time
    first, page = ids("volume", limit=2)
    assert first == [b, c] and page["next_cursor"]
    rest, last = ids("volume", limit=2, cursor=page["next_cursor"])
    assert rest == [a] and last["next_cursor"] is None
    assert ids("volume", scope=OTHER)[0] == [c]
    with pytest.raises(ValidationFailed) as bad:
        service.ticket_numbers_drill_down("volume", DAYS, {"period": "2026-04-01"}, ADMIN)
    assert "period" in bad.value.extra["errors"]
    with pytest.raises(ValidationFailed) as unknown:
        service.ticket_numbers_drill_down("nothing", DAYS, {}, ADMIN)
    assert "figure" in unknown.value.extra["errors"]
    # each figure's own parameters, checked by the service for every RPC caller
    for figure, params, field in (("sla", {"outcome": "solved"}, "outcome"),
                                  ("reopen", {"outcome": "met"}, "outcome"),
                                  ("volume", {"bucket": "1-4h"}, "bucket"),
                                  ("backlog", {"status": "solved"}, "status")):
        with pytest.raises(ValidationFailed) as wrong:
            service.ticket_numbers_drill_down(figure, DAYS, params, ADMIN)
        assert list(wrong.value.extra["errors"]) == [field], (figure, params)


def test_the_customer_360_part(service, desk_week):
    mine = service.customer_tickets("cust-1", AGENT)
    assert (mine["open_count"], mine["total"]) == (0, 2)
    [newest, oldest] = mine["recent"]
    assert newest["id"] == desk_week["b"]["id"] and newest["status"] == "solved"
    assert newest["sla_state"] == "breached" and newest["sla"]["first_reply"]["breached"]
    assert oldest["sla_state"] == "met"
    assert service.customer_tickets("cust-1", OTHER)["total"] == 0


# -- the backfill of ticket_sla_outcomes (tickets last changed before 0011n have no rows) ----


def outcome_rows(service) -> list[tuple]:
    with service.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(
            TicketSlaOutcomeRow.ticket_id, TicketSlaOutcomeRow.target,
            TicketSlaOutcomeRow.policy_id, TicketSlaOutcomeRow.business,
            TicketSlaOutcomeRow.state, TicketSlaOutcomeRow.breached,
            TicketSlaOutcomeRow.elapsed_seconds, TicketSlaOutcomeRow.due_at,
            TicketSlaOutcomeRow.achieved_at)))


def published(service) -> int:
    with service.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(outbox))


def reports(service) -> dict:
    """Every figure the outcome rows make, and their records."""
    def drill(figure, params):
        page = service.ticket_numbers_drill_down(figure, DAYS, params, ADMIN)
        return [(item["id"], item.get("seconds")) for item in page["items"]]

    return {"first_reply": service.first_reply_time_report(DAYS, ADMIN),
            "resolution": service.resolution_time_report(DAYS, ADMIN),
            "sla": service.sla_attainment_report(DAYS, ADMIN),
            "customer": service.customer_tickets("cust-1", ADMIN),
            "records": [drill("first_reply", {}), drill("resolution", {"bucket": "1-4h"}),
                        *(drill("sla", {"outcome": o}) for o in ("met", "breached", "open"))]}


@pytest.fixture
def old_install(service, desk_week, now):
    """desk_week as the timers keep it (every ticket rechecked now), its figures and rows,
    then its outcome rows deleted, as on an installation upgraded past 0011n."""
    for key in "abc":
        service.check_sla(ticket_id=desk_week[key]["id"])
    before = {"reports": reports(service), "rows": outcome_rows(service)}
    assert len(before["rows"]) == 6  # 3 tickets, first_reply and resolution
    with service.engine.begin() as conn:
        conn.execute(delete(TicketSlaOutcomeRow))
    assert reports(service) != before["reports"]  # the figures miss the old tickets
    return before


def test_the_backfill_gives_the_old_tickets_their_figures_back(service, old_install):
    with service.db.read() as session:
        assert outcomes_backfill.pending(session)  # migration 0013b requested it
        assert outcomes_backfill.without_rows(session) == 3
    events = published(service)
    steps = []
    while not (steps and steps[-1].done):
        steps.append(outcomes_backfill.step(service.db, batch=1))
    assert sum(s.written for s in steps) == 3 and not any(s.failed for s in steps)
    assert outcome_rows(service) == old_install["rows"]
    assert reports(service) == old_install["reports"]
    assert published(service) == events  # history, not news: no warning or breach again
    with service.db.read() as session:
        assert not outcomes_backfill.pending(session)
    # done: a further step changes nothing
    assert outcomes_backfill.step(service.db).done
    assert outcome_rows(service) == old_install["rows"]


def test_a_backfill_killed_half_way_finishes_on_a_rerun(service, old_install, monkeypatch):
    assert outcomes_backfill.step(service.db, batch=2).written == 2  # a batch committed
    real = sla_schedule.keep_outcomes

    def killed(*args, **kwargs):
        real(*args, **kwargs)  # the rows written, then the process dies before the commit
        raise KeyboardInterrupt

    monkeypatch.setattr(sla_schedule, "keep_outcomes", killed)
    with pytest.raises(KeyboardInterrupt):
        outcomes_backfill.step(service.db, batch=2)
    assert len(outcome_rows(service)) == 4  # the killed batch left nothing
    monkeypatch.setattr(sla_schedule, "keep_outcomes", real)
    progress = outcomes_backfill.run_for(service.db, budget_seconds=60)
    assert progress.done and progress.written == 1
    assert outcome_rows(service) == old_install["rows"]
    assert reports(service) == old_install["reports"]
    # asked again (python -m services.service_desk.backfill_outcomes --again): no ticket is
    # without rows, none is written twice
    with service.db.begin() as session:
        outcomes_backfill.request(session)
    again = outcomes_backfill.run_for(service.db, budget_seconds=60)
    assert again.done and (again.looked_at, again.written) == (0, 0)
    assert outcome_rows(service) == old_install["rows"]


def test_the_backfill_leaves_a_ticket_changed_meanwhile_as_its_recheck_wrote(
        service, old_install, desk_week, now):
    now.local(3, 15)
    agent_reply(service, desk_week["c"]["id"])  # C's recheck writes C's rows now
    mine = [r for r in outcome_rows(service) if r[0] == desk_week["c"]["id"]]
    assert len(mine) == 2
    progress = outcomes_backfill.run_for(service.db, budget_seconds=60)
    assert progress.done and progress.written == 2
    assert [r for r in outcome_rows(service) if r[0] == desk_week["c"]["id"]] == mine


def test_the_backfill_command(service, old_install, monkeypatch, capsys):
    from services.service_desk import backfill_outcomes

    monkeypatch.setenv("SERVICE_DESK_DATABASE_URL", service.engine.url.render_as_string(
        hide_password=False))
    assert backfill_outcomes.main(["--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 tickets without rows" in out and "3/3 looked at, 3 written" in out
    assert outcome_rows(service) == old_install["rows"]
    assert backfill_outcomes.main([]) == 0
    assert "nothing to do" in capsys.readouterr().out
