"""The console's admin in headless Chromium against the whole system: a draft rule's dry run on
the recent events, a webhook subscription with its deliveries and a replay, and unlocking an
account locked by failed sign-ins. Screenshots go to var/test-artefacts/console/ (90-94).

Every request comes from 127.0.0.1: the failed sign-ins count against that address too, so the
test lifts the address's blocks afterwards (as tests/e2e/test_auth_http.py does)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.gateway.identity.throttles import ACCOUNT_POLICY
from tests.e2e.console.browser import ARTEFACTS, PASSWORD, run_scenario
from tests.e2e.system import System
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

LOOPBACK = "127.0.0.1"


def _ok(response: Any) -> Any:
    assert response.status_code < 300, (response.status_code, response.text[:500])
    return response.json() if response.content else None


@pytest.fixture
def unblock(system: System) -> Iterator[None]:
    yield
    response = system.post("/auth/unblock", user="admin", json={"address": LOOPBACK})
    assert response.status_code == 204, response.text


def _lock_out(system: System, username: str) -> None:
    """Wrong passwords until the account is locked (ACCOUNT_POLICY.lock_after failures; from
    throttle_after on each one first waits out the short block the previous one set)."""
    failures = 0
    while failures < ACCOUNT_POLICY.lock_after:
        answer = system.post("/auth/tokens", json={"username": username, "password": "wrong"})
        if answer.status_code == 429:
            time.sleep(int(answer.headers["Retry-After"]))
            continue
        assert answer.status_code == 401, answer.text
        failures += 1
    refused = system.post("/auth/tokens", json={"username": username, "password": PASSWORD})
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) > 60  # locked, not just slowed down


def test_admin_dry_runs_a_draft_rule_watches_a_webhook_and_unlocks_a_user(
        system: System, chromium: str, webhook_receiver: WebhookReceiver, unblock: None) -> None:
    tag = secrets.token_hex(3)
    lead_name, rule_name = f"试运行{tag}", f"控制台试运行{tag}"
    description = f"控制台 Webhook {tag}"
    # A recent event for the dry run: a website lead, which the shipped rules run on.
    lead = _ok(system.post("/leads", user="admin", json={
        "name": lead_name, "company": f"{lead_name}有限公司", "source": "website",
        "phone": f"136{secrets.randbelow(10**8):08d}"}))
    record_key = f"lead:{lead['id']}"
    system.wait_for(lambda: _ok(system.get("/rule-runs", user="admin", params={
        "record_key": record_key}))["items"], timeout=30, message="no rule ran on the lead")

    first = run_scenario("admin_dry_run_and_webhook", {
        "url": system.url, "artefacts": str(ARTEFACTS), "rule": rule_name,
        "lead_name": lead_name, "record_key": record_key, "hook_url": webhook_receiver.url,
        "hook_description": description})
    # The dry run saved nothing; the subscription is the browser's, its secret the one shown.
    rules = _ok(system.get("/rules", user="admin"))["items"]
    assert rule_name not in [rule["name"] for rule in rules]
    [hook] = [h for h in _ok(system.get("/webhooks", user="admin"))["items"]
              if h["description"] == description]
    assert (hook["url"], hook["event_types"], hook["active"]) == (
        webhook_receiver.url, ["leads.lead_created"], True)
    assert first["secret"]

    try:
        # An event after the subscription: it is delivered to the receiver.
        _ok(system.post("/leads", user="admin", json={
            "name": f"推送{tag}", "company": f"推送{tag}有限公司", "source": "website",
            "phone": f"135{secrets.randbelow(10**8):08d}"}))
        headers = webhook_receiver.wait_for_count(1, timeout=30)[0].headers
        system.wait_for(lambda: [d for d in _ok(system.get(
            f"/webhooks/{hook['id']}/deliveries", user="admin"))["items"]
            if d["status"] == "delivered"], timeout=30, message="the delivery is not recorded")

        username, display_name = f"locked_{tag}", f"锁定{tag}"
        _ok(system.post("/users", user="admin", json={
            "username": username, "display_name": display_name, "password": PASSWORD,
            "role": "sales_rep"}))
        _lock_out(system, username)
        # console-sales: the users list says who is locked
        listed = _ok(system.get("/users", user="admin", params={"limit": 200}))["items"]
        assert next(u for u in listed if u["username"] == username)["locked"] is True

        run_scenario("admin_deliveries_and_unlock", {
            "url": system.url, "artefacts": str(ARTEFACTS), "hook_description": description,
            "locked_user": username, "locked_display_name": display_name,
            "password": PASSWORD})
        # The replay is the same delivery again (the same webhook-id); the user is unlocked.
        replayed = webhook_receiver.wait_for_count(2, timeout=30)
        assert replayed[1].headers["webhook-id"] == headers["webhook-id"]
        signed = system.post("/auth/tokens", json={"username": username, "password": PASSWORD})
        assert signed.status_code == 201, signed.text
    finally:
        system.delete(f"/webhooks/{hook['id']}", user="admin")
    for shot in ("90-admin-rule-dry-run", "91-admin-webhook-created",
                 "92-admin-webhook-deliveries", "93-sign-in-locked", "94-admin-user-unlocked"):
        assert (ARTEFACTS / f"{shot}.png").stat().st_size > 0, shot
