"""The service desk's projection of the sales customers and contacts, with nameko's
worker_factory over migrated SQLite and PostgreSQL databases: the handlers take real envelopes
(once each), a ticket's requester is linked by address, a late older event changes nothing, a
new tier reaches open tickets as a `tier_changed` entry, a merge moves contacts and tickets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.service import desk

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


database_url = desk.database_url


@pytest.fixture
def service(database_url):
    return desk.worker(database_url, actor="agent-1")


def envelope(event_type: str, data: dict) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "source": "sales",
            "occurred_at": datetime.now(UTC).isoformat(), "data": data}


def customer(cid: str, tier: str | None, at: datetime, **extra) -> dict:
    return {"customer": {"id": cid, "name": f"客户{cid}", "tier": tier, "owner_id": "rep-a",
                         "updated_at": at.isoformat(), **extra}}


def contact(kid: str, cid: str, email: str | None, at: datetime) -> dict:
    return {"contact": {"id": kid, "customer_id": cid, "name": "王芳", "email": email,
                        "updated_at": at.isoformat()}}


def new_ticket(service, email: str, **fields) -> dict:
    return service.create_ticket({"subject": "发票问题", "requester_email": email, **fields})


def test_a_requester_is_linked_by_address_to_the_contact_and_its_customer(service):
    service.on_sales_customer_created(envelope("customer_created", customer("c1", "A", T0)))
    service.on_sales_contact_created(envelope("contact_created",
                                              contact("k1", "c1", "Wang@Example.cn", T0)))
    ticket = new_ticket(service, "wang@example.CN")
    assert (ticket["customer_id"], ticket["contact_id"], ticket["customer_tier"]) == \
        ("c1", "k1", "A")
    stranger = new_ticket(service, "nobody@example.cn")
    assert (stranger["customer_id"], stranger["contact_id"], stranger["customer_tier"]) == \
        (None, None, None)
    # a trusted caller naming the customer gets its tier; a tier given stays
    named = new_ticket(service, "other@example.cn", customer_id="c1")
    assert (named["customer_id"], named["customer_tier"]) == ("c1", "A")
    given = new_ticket(service, "wang@example.cn", customer_tier="VIP")
    assert given["customer_tier"] == "VIP"


def test_each_event_is_taken_once_and_a_late_older_one_changes_nothing(service):
    created = envelope("customer_created", customer("c2", "B", T0))
    service.on_sales_customer_created(created)
    service.on_sales_customer_updated(envelope("customer_updated",
                                               customer("c2", "A", T0 + timedelta(hours=1),
                                                        changed=["tier"])))
    service.on_sales_customer_created(created)  # redelivered: taken once
    service.on_sales_customer_updated(envelope("customer_updated",
                                               customer("c2", "C", T0 + timedelta(minutes=5))))
    service.on_sales_contact_created(envelope("contact_created",
                                              contact("k2", "c2", "li@example.cn", T0)))
    assert new_ticket(service, "li@example.cn")["customer_tier"] == "A"


def test_a_new_tier_reaches_open_tickets_as_a_log_entry(service):
    service.on_sales_customer_created(envelope("customer_created", customer("c3", "B", T0)))
    service.on_sales_contact_created(envelope("contact_created",
                                              contact("k3", "c3", "zhao@example.cn", T0)))
    open_ticket = new_ticket(service, "zhao@example.cn")
    solved = new_ticket(service, "zhao@example.cn")
    service.update_ticket(solved["id"], {"status": "solved"})
    service.on_sales_customer_updated(envelope("customer_updated", customer(
        "c3", "A", T0 + timedelta(hours=1))))
    now_open = service.get_ticket(open_ticket["id"])
    assert now_open["customer_tier"] == "A"
    assert [(e["kind"], e["from"], e["to"]) for e in now_open["entries"]][-1] == \
        ("tier_changed", "B", "A")
    assert service.get_ticket(solved["id"])["customer_tier"] == "B"  # closed work keeps its tier


def test_a_merge_moves_contacts_and_tickets_to_the_survivor(service):
    for cid, tier in (("keep", "A"), ("gone", "C")):
        service.on_sales_customer_created(envelope("customer_created", customer(cid, tier, T0)))
    service.on_sales_contact_created(envelope("contact_created",
                                              contact("k4", "gone", "sun@example.cn", T0)))
    before = new_ticket(service, "sun@example.cn")
    assert before["customer_id"] == "gone"
    service.on_sales_customer_merged(envelope("customer_merged", {
        **customer("keep", "A", T0 + timedelta(hours=1)), "source_id": "gone",
        "moved": {"contacts": 1}}))
    assert service.get_ticket(before["id"])["customer_id"] == "keep"
    after = new_ticket(service, "sun@example.cn")
    assert (after["customer_id"], after["customer_tier"]) == ("keep", "A")


def _scheduled(service, ticket_id: str) -> list[dict]:
    return [e["data"] for e in desk.envelopes(service.engine, "ticket_sla_scheduled")
            if e["data"]["ticket_id"] == ticket_id]


def test_a_new_tier_reschedules_the_open_tickets_under_the_matching_policy(service):
    """Tier B has a 4-hour first reply, tier A one hour: a customer moved to A gets its open
    tickets' policy and timers rescheduled at once (`ticket_sla_scheduled`, the next sequence);
    a solved ticket and another customer's ticket are left alone."""
    slow = service.create_sla_policy({"name": "B 4h", "priorities": ["normal"],
                                      "customer_tiers": ["B"], "targets": {
                                          "first_reply": {"minutes": 240, "business": False}}})
    fast = service.create_sla_policy({"name": "A 1h", "priorities": ["normal"],
                                      "customer_tiers": ["A"], "targets": {
                                          "first_reply": {"minutes": 60, "business": False}}})
    for cid, email in (("c5", "qian@example.cn"), ("c6", "feng@example.cn")):
        service.on_sales_customer_created(envelope("customer_created", customer(cid, "B", T0)))
        service.on_sales_contact_created(envelope("contact_created",
                                                  contact(f"k-{cid}", cid, email, T0)))
    ticket = new_ticket(service, "qian@example.cn")
    solved = new_ticket(service, "qian@example.cn")
    service.update_ticket(solved["id"], {"status": "solved"})
    other = new_ticket(service, "feng@example.cn")
    [before] = _scheduled(service, ticket["id"])
    assert before["policy_id"] == slow["id"]
    created = datetime.fromisoformat(ticket["created_at"])
    assert datetime.fromisoformat(before["clocks"]["first_reply"]["breach_at"]) == \
        created + timedelta(minutes=240)
    solved_before = len(_scheduled(service, solved["id"]))
    other_before = len(_scheduled(service, other["id"]))

    service.on_sales_customer_updated(envelope("customer_updated", customer(
        "c5", "A", T0 + timedelta(hours=1))))
    after = _scheduled(service, ticket["id"])[-1]
    assert (after["sequence"], after["policy_id"]) == (2, fast["id"])
    assert after["ticket"]["customer_tier"] == "A"
    assert datetime.fromisoformat(after["clocks"]["first_reply"]["breach_at"]) == \
        created + timedelta(minutes=60)
    assert datetime.fromisoformat(after["next_check_at"]) == created + timedelta(minutes=45)
    assert len(_scheduled(service, solved["id"])) == solved_before
    assert len(_scheduled(service, other["id"])) == other_before
    # check_sla agrees: the schedule stands, nothing new to publish
    checked = service.check_sla(ticket_id=ticket["id"])
    assert (checked["policy_id"], checked["sequence"]) == (fast["id"], 2)

    # the same tier again (a redelivered or unrelated update) reschedules nothing
    service.on_sales_customer_updated(envelope("customer_updated", customer(
        "c5", "A", T0 + timedelta(hours=2))))
    assert len(_scheduled(service, ticket["id"])) == 2


def test_a_merge_gives_the_moved_open_tickets_the_survivors_tier_and_schedule(service):
    service.create_sla_policy({"name": "C 8h", "priorities": ["normal"],
                               "customer_tiers": ["C"], "targets": {
                                   "first_reply": {"minutes": 480, "business": False}}})
    fast = service.create_sla_policy({"name": "A 1h", "priorities": ["normal"],
                                      "customer_tiers": ["A"], "targets": {
                                          "first_reply": {"minutes": 60, "business": False}}})
    for cid, tier in (("keep2", "A"), ("gone2", "C")):
        service.on_sales_customer_created(envelope("customer_created", customer(cid, tier, T0)))
    service.on_sales_contact_created(envelope("contact_created",
                                              contact("k7", "gone2", "wu@example.cn", T0)))
    moved = new_ticket(service, "wu@example.cn")
    assert moved["customer_tier"] == "C"
    service.on_sales_customer_merged(envelope("customer_merged", {
        **customer("keep2", "A", T0 + timedelta(hours=1)), "source_id": "gone2",
        "moved": {"contacts": 1}}))
    now = service.get_ticket(moved["id"])
    assert (now["customer_id"], now["customer_tier"]) == ("keep2", "A")
    assert [(e["kind"], e["from"], e["to"]) for e in now["entries"]][-1] == \
        ("tier_changed", "C", "A")
    assert _scheduled(service, moved["id"])[-1]["policy_id"] == fast["id"]


def test_contact_and_merge_events_in_any_order_end_as_sales_has_them(service):
    """Sales moves a merged customer's contacts without contact events: a contact event from
    before the merge taken after it, or the merge taken before the source's own events, still
    ends with the contact at the survivor and the source merged."""
    service.on_sales_customer_created(envelope("customer_created", customer("keep3", "A", T0)))
    service.on_sales_customer_created(envelope("customer_created", customer("gone3", "B", T0)))
    service.on_sales_contact_created(envelope("contact_created",
                                              contact("k8", "gone3", "he@example.cn", T0)))
    merged = envelope("customer_merged", {**customer("keep3", "A", T0 + timedelta(hours=2)),
                                          "source_id": "gone3", "moved": {"contacts": 1}})
    service.on_sales_customer_merged(merged)
    # the contact's address changed before the merge; its event is taken after it
    service.on_sales_contact_updated(envelope("contact_updated", contact(
        "k8", "gone3", "he.new@example.cn", T0 + timedelta(hours=1))))
    # the merge taken before anything of the source's: the source's creation comes late
    service.on_sales_customer_merged(envelope("customer_merged", {
        **customer("keep3", "A", T0 + timedelta(hours=3)), "source_id": "late3",
        "moved": {"contacts": 1}}))
    service.on_sales_customer_created(envelope("customer_created", customer("late3", "C", T0)))
    service.on_sales_contact_created(envelope("contact_created",
                                              contact("k9", "late3", "yu@example.cn", T0)))
    with service.engine.connect() as conn:
        contacts = dict(conn.execute(text(
            "SELECT id, customer_id FROM desk_contacts WHERE id IN ('k8', 'k9')")).all())
        customers = {row[0]: row[1:] for row in conn.execute(text(
            "SELECT id, name, tier, merged_into_id FROM desk_customers "
            "WHERE id IN ('gone3', 'late3')")).all()}
    assert contacts == {"k8": "keep3", "k9": "keep3"}
    assert customers == {"gone3": ("客户gone3", "B", "keep3"),
                         "late3": ("客户late3", "C", "keep3")}
    ticket = new_ticket(service, "he.new@example.cn")
    assert (ticket["customer_id"], ticket["contact_id"]) == ("keep3", "k8")
