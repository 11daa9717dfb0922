"""The commands a rule may call, called twice with one `command_id` (a run resumed after its
call took effect, a retry after a lost reply): the second answers success with the record as
it is now, the state changed once and the outbox has one event. Another `command_id`, or none,
is a new command, refused as ever where it should be.

The leads and sales services' entrypoints with nameko's worker_factory over real databases
(SQLite and PostgreSQL) and the real outbox recorder."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.leads.contract import EVENT_SCHEMAS as LEADS_EVENTS
from services.leads.models import inbox as leads_inbox
from services.leads.models import outbox as leads_outbox
from services.leads.service import LeadsService
from services.sales.events import EVENT_SCHEMAS as SALES_EVENTS
from services.sales.models import StageHistory
from services.sales.models import outbox as sales_outbox
from services.sales.service import SalesService
from shared.context import Context
from shared.db import get_engine
from shared.errors import Conflict, PreconditionFailed, ValidationFailed
from tests.service.workers import migrated_database, service_worker

ALL = {"all": True}
KEY = "rules:run-1:0"
LEAD = {"name": "王芳", "company": "杭州云帆科技有限公司", "email": "wang.fang@yunfan.cn",
        "source": "website", "region": "华东"}


def events(engine, outbox, event_type: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).order_by(outbox.c.seq)).scalars().all()
    return [e for e in map(json.loads, rows) if e["event_type"] == event_type]


# --------------------------------------------------------------------------- leads


@pytest.fixture(params=["sqlite", "postgresql"])
def leads(request, tmp_path):
    engine = get_engine(migrated_database(request, tmp_path, "leads"))

    def make(actor: str = "u-admin") -> LeadsService:
        return service_worker(LeadsService, engine, leads_outbox, LEADS_EVENTS,
                              Context(correlation_id="corr-once", actor=actor))

    make.engine = engine
    return make


def lead_events(leads, event_type: str) -> list[dict]:
    return events(leads.engine, leads_outbox, event_type)


def test_a_status_change_repeated_with_its_command_id_is_answered_not_done_again(leads):
    lead = leads().create_lead(LEAD)["lead"]
    first = leads().change_status(lead["id"], "contacted", "called", ALL, command_id=KEY)
    again = leads().change_status(lead["id"], "contacted", "called", ALL, command_id=KEY)
    assert first["status"] == again["status"] == "contacted"
    assert again == first, "the lead as it is now: as the first call left it"
    [event] = lead_events(leads, "lead_status_changed")
    assert event["data"]["status"] == "contacted"
    history = leads().get_lead(lead["id"], ALL)["history"]
    assert [h["kind"] for h in history].count("status_changed") == 1
    # Without the key, or with another, it is a second change: refused as ever.
    with pytest.raises(PreconditionFailed):
        leads().change_status(lead["id"], "contacted", None, ALL)
    with pytest.raises(PreconditionFailed):
        leads().change_status(lead["id"], "contacted", None, ALL, command_id="rules:run-2:0")
    assert len(lead_events(leads, "lead_status_changed")) == 1


def test_a_repeat_answers_the_lead_as_it_is_now_and_undoes_nothing(leads):
    lead = leads().create_lead(LEAD)["lead"]
    leads().change_status(lead["id"], "contacted", None, ALL, command_id=KEY)
    leads().change_status(lead["id"], "qualified", None, ALL)  # someone moved it on since
    again = leads().change_status(lead["id"], "contacted", None, ALL, command_id=KEY)
    assert again["status"] == "qualified"
    assert leads().get_lead(lead["id"], ALL)["status"] == "qualified"
    assert [e["data"]["status"] for e in lead_events(leads, "lead_status_changed")] == [
        "contacted", "qualified"]


def test_a_release_repeated_with_its_command_id_succeeds_once(leads):
    lead = leads().create_lead(LEAD, owner_id="u-rep", scope=ALL)["lead"]
    released = leads().release_lead(lead["id"], "no answer", ALL, command_id=KEY)
    again = leads().release_lead(lead["id"], "no answer", ALL, command_id=KEY)
    assert released["in_pool"] is True and again["in_pool"] is True
    assert again["owner_id"] is None
    assert len(lead_events(leads, "lead_released")) == 1
    with pytest.raises(PreconditionFailed):
        leads().release_lead(lead["id"], "no answer", ALL, command_id="rules:run-2:0")
    assert len(lead_events(leads, "lead_released")) == 1


def test_an_assignment_repeated_with_its_command_id_does_not_take_the_lead_back(leads):
    lead = leads().create_lead(LEAD)["lead"]
    assigned = leads().assign_lead(lead["id"], "u-rep", ALL, command_id=KEY)
    assert assigned["owner_id"] == "u-rep"
    leads().assign_lead(lead["id"], "u-other", ALL)  # a manager handed it on since
    again = leads().assign_lead(lead["id"], "u-rep", ALL, command_id=KEY)
    assert again["owner_id"] == "u-other"
    assert [e["data"]["owner_id"] for e in lead_events(leads, "lead_assigned")] == [
        "u-rep", "u-other"]
    # Another key is another assignment.
    moved = leads().assign_lead(lead["id"], "u-rep", ALL, command_id="rules:run-2:0")
    assert moved["owner_id"] == "u-rep"
    assert len(lead_events(leads, "lead_assigned")) == 3


def test_a_refused_command_records_no_key_so_its_retry_is_tried_again(leads):
    lead = leads().create_lead(LEAD)["lead"]
    with pytest.raises(ValidationFailed) as err:  # disqualifying needs a reason
        leads().change_status(lead["id"], "disqualified", "", ALL, command_id=KEY)
    assert "reason" in err.value.errors
    with leads.engine.connect() as conn:
        assert conn.execute(select(leads_inbox.c.handler)).scalars().all() == []
    done = leads().change_status(lead["id"], "disqualified", "no budget", ALL, command_id=KEY)
    assert done["status"] == "disqualified"
    assert len(lead_events(leads, "lead_status_changed")) == 1


def test_one_command_id_is_one_command_on_one_record(leads):
    first = leads().create_lead(LEAD, owner_id="u-rep", scope=ALL)["lead"]
    second = leads().create_lead({**LEAD, "email": "li@other.cn", "company": "别的公司"},
                                 on_duplicate="create")["lead"]
    leads().change_status(first["id"], "contacted", None, ALL, command_id=KEY)
    with pytest.raises(Conflict) as err:
        leads().change_status(second["id"], "contacted", None, ALL, command_id=KEY)
    assert err.value.extra["field"] == "command_id"
    # The key names the command too: the same key for another command is that command's.
    released = leads().release_lead(first["id"], None, ALL, command_id=KEY)
    assert released["in_pool"] is True


@pytest.mark.parametrize("bad", ["", "x" * 201, 42, ["k"]])
def test_a_bad_command_id_is_refused_naming_it(leads, bad):
    lead = leads().create_lead(LEAD)["lead"]
    for call in (lambda: leads().change_status(lead["id"], "contacted", None, ALL,
                                               command_id=bad),
                 lambda: leads().release_lead(lead["id"], None, ALL, command_id=bad),
                 lambda: leads().assign_lead(lead["id"], "u-rep", ALL, command_id=bad)):
        with pytest.raises(ValidationFailed) as err:
            call()
        assert list(err.value.errors) == ["command_id"]
    assert leads().get_lead(lead["id"], ALL)["status"] == "new"
    assert len(leads().change_status(lead["id"], "contacted", None, ALL,
                                     command_id="x" * 200)) > 0


# --------------------------------------------------------------------------- sales


@pytest.fixture(params=["sqlite", "postgresql"])
def sales(request, tmp_path):
    engine = get_engine(migrated_database(request, tmp_path, "sales"))

    def make(actor: str = "u-admin") -> SalesService:
        return service_worker(SalesService, engine, sales_outbox, SALES_EVENTS,
                              Context(correlation_id="corr-once", actor=actor))

    make.engine = engine
    return make


def sales_events(sales, event_type: str) -> list[dict]:
    return events(sales.engine, sales_outbox, event_type)


def open_opportunity(sales) -> tuple[dict, dict[str, str]]:
    service = sales()
    customer = service.create_customer({"name": "苏州精工机械有限公司", "owner_id": "rep-a"},
                                       scope=ALL)
    opportunity = service.create_opportunity(
        {"customer_id": customer["id"], "name": "MES 一期", "owner_id": "rep-a"}, scope=ALL)
    names = ("qualification", "needs", "proposal", "negotiation", "won", "lost")
    stages = dict(zip(names, (s["id"] for s in service.get_pipeline()["stages"]), strict=True))
    return opportunity, stages


def test_a_move_repeated_with_its_command_id_is_answered_and_undoes_no_later_move(sales):
    opportunity, stages = open_opportunity(sales)
    lost = sales().move_opportunity(opportunity["id"], stages["lost"], "预算取消", ALL,
                                    command_id=KEY)
    again = sales().move_opportunity(opportunity["id"], stages["lost"], "预算取消", ALL,
                                     command_id=KEY)
    assert lost["status"] == again["status"] == "lost"
    assert again["stage"]["id"] == stages["lost"] and again["probability"] == lost["probability"]
    assert len(sales_events(sales, "opportunity_lost")) == 1
    assert len(sales_events(sales, "opportunity_stage_changed")) == 1

    # Reopened since: the repeat answers it as it is (open, in needs), not lost again.
    sales().move_opportunity(opportunity["id"], stages["needs"], None, ALL)
    again = sales().move_opportunity(opportunity["id"], stages["lost"], "预算取消", ALL,
                                     command_id=KEY)
    assert (again["status"], again["stage_id"]) == ("open", stages["needs"])
    assert len(sales_events(sales, "opportunity_lost")) == 1
    with sales.engine.connect() as conn:
        history = conn.execute(select(StageHistory.stage_id).order_by(
            StageHistory.entered_at)).scalars().all()
    assert history == [stages["qualification"], stages["lost"], stages["needs"]]

    # Another key is another move: refused as ever where it should be (exit criteria),
    # and done where it may be.
    with pytest.raises(PreconditionFailed):
        sales().move_opportunity(opportunity["id"], stages["proposal"], None, ALL,
                                 command_id="rules:run-3:0")
    relost = sales().move_opportunity(opportunity["id"], stages["lost"], "预算取消", ALL,
                                      command_id="rules:run-2:0")
    assert relost["status"] == "lost"
    assert len(sales_events(sales, "opportunity_lost")) == 2
    assert len(sales_events(sales, "opportunity_stage_changed")) == 3


def test_a_customer_assignment_repeated_with_its_command_id_happens_once(sales):
    opportunity, _ = open_opportunity(sales)
    customer_id = opportunity["customer_id"]
    assigned = sales().assign_customer(customer_id, "rep-b", ALL, None, True, command_id=KEY)
    again = sales().assign_customer(customer_id, "rep-b", ALL, None, True, command_id=KEY)
    assert assigned["owner_id"] == again["owner_id"] == "rep-b"
    assert len(sales_events(sales, "customer_updated")) == 1
    assert len(sales_events(sales, "opportunity_updated")) == 1
    sales().assign_customer(customer_id, "rep-c", ALL)  # handed on since
    again = sales().assign_customer(customer_id, "rep-b", ALL, None, True, command_id=KEY)
    assert again["owner_id"] == "rep-c"
    assert sales().get_customer(customer_id, scope=ALL)["owner_id"] == "rep-c"
    assert len(sales_events(sales, "customer_updated")) == 2
    back = sales().assign_customer(customer_id, "rep-b", ALL, command_id="rules:run-2:0")
    assert back["owner_id"] == "rep-b"


@pytest.mark.parametrize("bad", ["", "x" * 201, 7])
def test_a_bad_command_id_is_refused_naming_it_by_sales_too(sales, bad):
    opportunity, stages = open_opportunity(sales)
    with pytest.raises(ValidationFailed) as err:
        sales().move_opportunity(opportunity["id"], stages["lost"], "x", ALL, command_id=bad)
    assert list(err.value.errors) == ["command_id"]
    with pytest.raises(ValidationFailed) as err:
        sales().assign_customer(opportunity["customer_id"], "rep-b", ALL, command_id=bad)
    assert list(err.value.errors) == ["command_id"]
    assert sales_events(sales, "opportunity_lost") == []
