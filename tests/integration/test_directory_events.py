"""The gateway announces its directory (users, teams) on `gateway.events` over the real broker:
at once after the change commits, and later by the sweep when the broker was away."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from sqlalchemy import func, select

from services.gateway.models import outbox
from services.gateway.seed import DEMO_USERS, seed
from tests.support.gateway import auth

pytestmark = pytest.mark.integration


@pytest.fixture
def directory_queue(amqp_uri: str):
    """A queue bound to every gateway event, declared before anything is published."""
    with Connection(amqp_uri) as conn:
        queue = Queue("test.directory", Exchange("gateway.events", type="topic", durable=True),
                      routing_key="#", auto_delete=False, durable=False)
        bound = queue(conn.default_channel)
        bound.declare()
        bound.purge()

        def received() -> list[dict[str, Any]]:
            envelopes = []
            while (message := bound.get(no_ack=True)) is not None:
                envelopes.append(json.loads(message.body))
            return envelopes

        yield received
        bound.delete()


def test_user_and_team_changes_are_published_after_commit(client, org, directory_queue):
    admin = auth(org, "admin")
    team = client.post("/teams", headers=admin, json={"name": "西南销售部"}).get_json()
    user = client.post("/users", headers=admin, json={
        "username": "zhaolei", "display_name": "赵磊", "email": "zhaolei@example.cn",
        "role": "manager", "team_id": team["id"]}).get_json()
    patched = client.patch(f"/teams/{team['id']}", headers=admin,
                           json={"manager_id": user["id"]})
    assert patched.status_code == 200, patched.get_data(as_text=True)
    client.patch(f"/users/{user['id']}", headers=admin, json={"active": False})

    events = directory_queue()
    assert [e["event_type"] for e in events] == [
        "team_changed", "user_changed", "team_changed", "user_changed"]
    assert all(e["producer"] == "gateway" and e["actor"] == org["admin"]["id"] for e in events)
    assert events[2]["data"]["team"] == {"id": team["id"], "name": "西南销售部",
                                         "manager_id": user["id"]}
    assert events[3]["data"]["user"]["active"] is False
    assert events[3]["data"]["user"]["email"] == "zhaolei@example.cn"


def test_a_refused_change_publishes_nothing(client, org, directory_queue):
    admin = auth(org, "admin")
    response = client.patch(f"/teams/{org['admin']['id']}", headers=admin, json={"name": "x"})
    assert response.status_code == 404
    taken = client.post("/teams", headers=admin, json={"name": "华东销售部"})
    assert taken.status_code == 409
    assert directory_queue() == []


def test_the_seed_announces_every_user_and_team(app, directory_queue):
    gw = app.extensions["crm_gateway"]
    seed(gw.store, gw.directory)
    seed(gw.store, gw.directory)  # each run announces again: consumers keep the newest state
    events = directory_queue()
    users = [e["data"]["user"]["username"] for e in events if e["event_type"] == "user_changed"]
    teams = [e["data"]["team"]["name"] for e in events if e["event_type"] == "team_changed"]
    assert sorted(users) == sorted([u[0] for u in DEMO_USERS] * 2)
    assert sorted(teams) == sorted(["华东销售部", "华南销售部"] * 2)


def test_the_sweep_publishes_what_the_broker_missed(app, directory_queue):
    gw = app.extensions["crm_gateway"]
    seed(gw.store)  # recorded in the outbox, not published (as when the broker is away)
    assert directory_queue() == []
    gw.directory.relay.publish_pending(grace=timedelta(0))
    assert len(directory_queue()) == len(DEMO_USERS) + 2
    with gw.store.read() as session:
        unsent = session.scalar(select(func.count()).select_from(outbox)
                                .where(outbox.c.published_at.is_(None)))
    assert unsent == 0
