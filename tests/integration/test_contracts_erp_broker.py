"""The ERP's inbound events over the real broker, with the contracts service in a nameko
container: a payment published to `erp.events` becomes a receipt (and `receipt_recorded` on
`contracts.events`); the same message redelivered, or sent again under another message id,
is one receipt; a malformed message (not JSON, no envelope, a missing field, an amount that
is not a decimal string, an unknown contract) lands in `crm.dead-letter` at once with its
reason, and the consumer goes on."""

from __future__ import annotations

import json
import uuid

import eventlet
import pytest
from kombu import Connection, Exchange, Queue
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.contracts.contract import EVENT_SCHEMAS
from services.contracts.models import Contract, Receipt, outbox
from services.contracts.service import ContractsService
from services.contracts.usecases import contracts as contracts_uc
from services.contracts.usecases import erp
from shared.consumer import DEAD_LETTER_QUEUE, ERROR_HEADER, QUEUE_HEADER, REASON_HEADER
from shared.context import Context
from shared.db import get_engine
from shared.migrations import upgrade
from shared.outbox import EventRecorder

pytestmark = pytest.mark.integration

ERP = Exchange("erp.events", type="topic", durable=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def contracts_db(request, tmp_path, monkeypatch):
    url = (f"sqlite:///{tmp_path}/contracts.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url_factory")())
    upgrade("contracts", url)
    monkeypatch.setenv("CONTRACTS_DATABASE_URL", url)
    return sessionmaker(get_engine(url), expire_on_commit=False)


def signed_contract(sessions) -> dict:
    recorder = EventRecorder("contracts", outbox, EVENT_SCHEMAS, Context(correlation_id="t"))
    with sessions() as session, session.begin():
        created = contracts_uc.create_contract(session, {
            "title": "对接ERP", "customer_id": "cust-1", "amount": "1000"}, "rep")
        contract = session.get(Contract, created["id"])
        contracts_uc.transition(contract, "active")
        erp.create_order(session, recorder, contract)
    return created


def receipts(sessions, contract_id: str) -> int:
    with sessions() as session:
        return session.execute(select(func.count()).select_from(Receipt).where(
            Receipt.contract_id == contract_id)).scalar_one()


def publish(amqp_uri: str, body, routing_key: str = "payment_received",
            content_type: str = "application/json") -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with Connection(amqp_uri) as conn:
        conn.Producer().publish(raw, exchange=ERP, routing_key=routing_key,
                                content_type=content_type, content_encoding="utf-8",
                                delivery_mode=2, declare=[ERP])


def payment(contract: dict, reference: str, **changes) -> dict:
    data = {"contract_number": contract["number"], "amount": "250.00",
            "paid_at": "2026-12-01T10:00:00+08:00", "reference": reference, "payer": "某某"}
    data.update(changes)
    return {"event_id": str(uuid.uuid4()), "event_type": "payment_received", "version": 1,
            "occurred_at": "2026-12-01T02:00:00+00:00", "producer": "erp",
            "data": {k: v for k, v in data.items() if v is not None}}


def dead_letters(amqp_uri: str, wanted: int, timeout: float = 15.0) -> list:
    """Up to `wanted` dead letters (raw body, headers), waiting at most `timeout` seconds."""
    found: list = []
    with Connection(amqp_uri) as conn:
        queue = Queue(DEAD_LETTER_QUEUE, durable=True).bind(conn.default_channel)
        with eventlet.Timeout(timeout, False):
            while len(found) < wanted:
                message = queue.get(no_ack=True)
                if message is None:
                    eventlet.sleep(0.1)
                    continue
                found.append((message.body, message.headers))
    return found


def wait_for(check, timeout: float = 15.0) -> None:
    with eventlet.Timeout(timeout):
        while not check():
            eventlet.sleep(0.05)


def test_payments_over_the_broker_once_and_malformed_ones_dead_lettered(
        container_factory, nameko_config, amqp_uri, contracts_db):
    with Connection(amqp_uri) as conn:
        Queue(DEAD_LETTER_QUEUE, Exchange("crm.dlx", type="topic", durable=True),
              routing_key="#", durable=True).bind(conn.default_channel).declare()
        conn.default_channel.queue_purge(DEAD_LETTER_QUEUE)
    contract = signed_contract(contracts_db)
    tap = Queue(f"tap-{uuid.uuid4().hex}", Exchange("contracts.events", type="topic",
                                                    durable=True),
                routing_key="receipt_recorded", durable=False, auto_delete=False)
    with Connection(amqp_uri) as conn:
        tap.bind(conn.default_channel).declare()
    container = container_factory(ContractsService, {
        **nameko_config, "EVENT_RETRY_BACKOFF": [0.2], "WEB_SERVER_ADDRESS": "127.0.0.1:0"})
    container.start()

    valid = payment(contract, "PAY-1")
    publish(amqp_uri, valid)
    publish(amqp_uri, valid)  # redelivered by the ERP's outbox
    publish(amqp_uri, {**valid, "event_id": str(uuid.uuid4())})  # same payment, new id
    wait_for(lambda: receipts(contracts_db, contract["id"]) >= 1)

    poison = [
        (b"{not json", "bad json"),
        (json.dumps({"event_type": "payment_received", "data": {}}).encode(), "no event_id"),
        (payment(contract, "PAY-2", paid_at=None), "missing paid_at"),
        (payment(contract, "PAY-3", amount=250.5), "a float amount"),
        (payment(contract, "PAY-4", contract_number="HT-1999-000001"), "unknown contract"),
    ]
    for body, _ in poison:
        publish(amqp_uri, body)
    dead = dead_letters(amqp_uri, len(poison))
    assert len(dead) == len(poison), [h.get(REASON_HEADER) for _, h in dead]
    reasons = [(h[REASON_HEADER], h[ERROR_HEADER]) for _, h in dead]
    assert all(h[QUEUE_HEADER].endswith("on_erp_payment_received") for _, h in dead)
    # the consumer's workers run concurrently: the dead letters come in any order
    expected = [("undecodable", ""), ("not an event", "event_id"), ("unprocessable", "paid_at"),
                ("unprocessable", "'amount'"), ("unprocessable", "HT-1999-000001")]
    for reason, mentioned in expected:
        found = [r for r in reasons if r[0] == reason and mentioned in r[1]]
        assert len(found) == 1, (reason, mentioned, reasons)
    # every malformed message was dead-lettered on its first try: no retry copy came back
    eventlet.sleep(0.5)
    assert dead_letters(amqp_uri, 1, timeout=1.0) == []

    # the consumer still works, and the duplicates did nothing
    publish(amqp_uri, payment(contract, "PAY-5", amount="100"))
    wait_for(lambda: receipts(contracts_db, contract["id"]) == 2)
    eventlet.sleep(0.5)
    assert receipts(contracts_db, contract["id"]) == 2
    with Connection(amqp_uri) as conn:
        simple = conn.SimpleQueue(tap)
        bodies = []
        while True:
            try:
                message = simple.get(block=True, timeout=2)
            except simple.Empty:
                break
            bodies.append(message.payload)
            message.ack()
        simple.close()
        tap.bind(conn.default_channel).delete()
    assert sorted(b["data"]["receipt"]["reference"] for b in bodies) == ["PAY-1", "PAY-5"]
    assert all(b["data"]["source"] == "erp" for b in bodies)
