"""CSAT with nameko's worker_factory over migrated SQLite and PostgreSQL databases and the real
outbox: a survey at the first solve (not again after a reopen), one answer through the token,
the figures per agent, group and month within the caller's scope, and the drill-down."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from services.service_desk.models import CsatSurveyRow, MailOutboxRow
from shared.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from tests.service import desk

ADMIN = {"all": True}
REP_A = {"owner_ids": ["rep-a"], "include_pool": False}
MANAGER = {"owner_ids": ["rep-a", "rep-b"], "include_pool": False}


database_url = desk.database_url


@pytest.fixture
def service(database_url):
    return desk.worker(database_url, actor="rep-a")


def events_of(engine, event_type: str) -> list[dict]:
    return [e["data"] for e in desk.envelopes(engine, event_type)]


def token_of(engine, ticket_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(select(CsatSurveyRow.token)
                            .where(CsatSurveyRow.ticket_id == ticket_id)).scalar_one()


def solved_ticket(service, assignee: str, group: str | None = None) -> dict:
    ticket = service.create_ticket({"subject": "退款进度", "requester_email": "li@example.cn",
                                    "assignee_id": assignee, "group_id": group})
    return service.update_ticket(ticket["id"], {"status": "solved"})


def test_the_first_solve_creates_one_survey_and_a_reopen_keeps_it(service):
    ticket = solved_ticket(service, "rep-a")
    created = events_of(service.engine, "csat_survey_created")
    assert [(e["ticket_id"], e["assignee_id"], e["requester_email"]) for e in created] == [
        (ticket["id"], "rep-a", "li@example.cn")]
    first = token_of(service.engine, ticket["id"])
    with service.engine.connect() as conn:  # the survey's mail, in the solve's transaction
        [mail] = conn.execute(select(MailOutboxRow)
                              .where(MailOutboxRow.ticket_id == ticket["id"])).all()
    assert mail.to_address == "li@example.cn" and f"/surveys/{first}" in mail.body
    assert f"[#{ticket['number']}]" in mail.subject
    service.add_ticket_reply(ticket["id"], {"body": "还没到账", "author_kind": "customer"})
    service.update_ticket(ticket["id"], {"status": "solved"})
    assert len(events_of(service.engine, "csat_survey_created")) == 1
    assert token_of(service.engine, ticket["id"]) == first
    survey = service.get_survey(first)
    assert survey["status"] == "open" and survey["ticket_number"] == ticket["number"]
    assert "rep-a" not in json.dumps(survey)  # the public page tells nothing about the agent


def test_one_answer_per_ticket_through_its_token(service):
    ticket = solved_ticket(service, "rep-a")
    token = token_of(service.engine, ticket["id"])
    with pytest.raises(ValidationFailed) as no_reason:
        service.answer_survey(token, {"rating": "bad"})
    assert "reason" in no_reason.value.extra["errors"]
    answered = service.answer_survey(token, {"rating": "bad", "reason": "slow",
                                             "comment": "等了三天"})
    assert answered["status"] == "answered" and answered["rating"] == "bad"
    with pytest.raises(Conflict):
        service.answer_survey(token, {"rating": "good"})
    with pytest.raises(NotFound):
        service.answer_survey(token + "x", {"rating": "good"})
    assert [(e["rating"], e["reason"], e["comment"]) for e in
            events_of(service.engine, "csat_answered")] == [("bad", "slow", "等了三天")]
    history = service.get_ticket(ticket["id"], ADMIN)["entries"]
    assert history[-1]["kind"] == "csat_answered" and history[-1]["to"] == "bad"


def test_an_expired_survey_refuses_the_answer(service):
    ticket = solved_ticket(service, "rep-a")
    token = token_of(service.engine, ticket["id"])
    with service.engine.begin() as conn:
        conn.execute(update(CsatSurveyRow).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert service.get_survey(token)["status"] == "expired"
    with pytest.raises(PreconditionFailed):
        service.answer_survey(token, {"rating": "good"})


def test_figures_per_agent_group_and_month_within_the_scope(service):
    answers = [("rep-a", "g1", "good", None), ("rep-a", "g1", "bad", "slow"),
               ("rep-b", "g2", "good", None), ("rep-b", "g2", None, None),
               ("rep-c", "g2", "bad", "unresolved")]
    for assignee, group, rating, reason in answers:
        ticket = solved_ticket(service, assignee, group)
        if rating:
            service.answer_survey(token_of(service.engine, ticket["id"]),
                                  {"rating": rating, "reason": reason})
    by_agent = service.csat_report({"group_by": "agent"}, MANAGER)
    assert [(r["key"], r["sent"], r["answered"], r["good"], r["score"]) for r in
            by_agent["items"]] == [("rep-a", 2, 2, 1, "50.00"), ("rep-b", 2, 1, 1, "100.00")]
    assert by_agent["total"]["sent"] == 4  # rep-c's survey is outside the manager's scope
    assert by_agent["total"]["reasons"] == {"slow": 1}
    by_group = service.csat_report({"group_by": "group"}, ADMIN)
    assert [(r["key"], r["sent"], r["reasons"]) for r in by_group["items"]] == [
        ("g1", 2, {"slow": 1}), ("g2", 3, {"unresolved": 1})]
    by_month = service.csat_report({"group_by": "month"}, REP_A)
    assert len(by_month["items"]) == 1 and by_month["items"][0]["sent"] == 2
    month = by_month["items"][0]["key"]
    assert service.csat_report({"group_by": "month", "from_month": "2000-01",
                                "to_month": "2000-12"}, ADMIN)["total"]["sent"] == 0
    assert service.csat_report({"group_by": "month", "from_month": month},
                               ADMIN)["total"]["sent"] == 5
    with pytest.raises(ValidationFailed) as bad:
        service.csat_report({"group_by": "month", "from_month": "2026-13"}, ADMIN)
    assert "from_month" in bad.value.extra["errors"]


def test_the_drill_down_lists_exactly_the_surveys_behind_a_figure(service):
    for assignee, rating in (("rep-a", "good"), ("rep-a", "bad"), ("rep-b", "good")):
        ticket = solved_ticket(service, assignee)
        service.answer_survey(token_of(service.engine, ticket["id"]),
                              {"rating": rating, "reason": "other" if rating == "bad" else None})
    good_of_a = service.list_surveys({"assignee_id": "rep-a", "rating": "good"}, MANAGER)
    assert [(s["assignee_id"], s["rating"]) for s in good_of_a["items"]] == [("rep-a", "good")]
    assert "token" not in good_of_a["items"][0]
    assert {s["assignee_id"] for s in service.list_surveys({}, REP_A)["items"]} == {"rep-a"}
    first = service.list_surveys({}, ADMIN, limit=2)
    rest = service.list_surveys({}, ADMIN, cursor=first["next_cursor"], limit=2)
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None
