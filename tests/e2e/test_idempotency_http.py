"""Idempotency over HTTP after a lost reply: the lead was committed, the answer never reached
the client (a 503), and the client's retry with the same Idempotency-Key gets the original 201
and the same lead, not a 409 "duplicate" and not a second lead.

The reply is lost for real: the leads process is stopped (SIGSTOP) with the request already
delivered to it, the gateway gives up after its RPC timeout (503), and when leads goes on it
commits the lead and replies to a caller that is gone.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import requests

from deploy import devctl


def website_lead() -> dict:
    tag = uuid.uuid4().hex[:8]
    return {"name": f"幂等{tag}", "phone": f"+86 137{int(tag, 16) % 10**8:08d}",
            "email": f"idem.{tag}@example.cn", "source": "referral", "region": "华南"}


def leads_named(system, name: str) -> list[dict]:
    page = system.get("/leads", user="admin", params={"q": name, "limit": 10})
    assert page.status_code == 200, page.text
    return [item for item in page.json()["items"] if item["name"] == name]


def test_a_retry_after_a_lost_reply_gets_the_original_201(system):
    lead = website_lead()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    pid = devctl.read_pid(system.run_dir, "leads")
    assert pid, "leads is not running"
    answers: list[requests.Response] = []
    os.kill(pid, signal.SIGSTOP)
    try:
        sender = threading.Thread(target=lambda: answers.append(system.post(
            "/leads", user="admin", json=lead, headers=key, timeout=60)))
        sender.start()
        sender.join(timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert answers, "the gateway gave no answer"
    lost = answers[0]
    assert lost.status_code == 503, (lost.status_code, lost.text)

    # leads goes on: it commits the lead, and its reply finds no caller.
    found = system.wait_for(lambda: leads_named(system, lead["name"]), timeout=30,
                            message="the request held by the stopped leads was never run")
    assert len(found) == 1
    time.sleep(0.5)  # no second lead shows up late

    retry = system.post("/leads", user="admin", json=lead, headers=key)
    assert retry.status_code == 201, (retry.status_code, retry.text)
    assert retry.json()["id"] == found[0]["id"]
    assert retry.json()["name"] == lead["name"]
    assert len(leads_named(system, lead["name"])) == 1

    # Once answered, the gateway replays its stored answer.
    again = system.post("/leads", user="admin", json=lead, headers=key)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == found[0]["id"]

    # Without the key the same lead is a duplicate (the key is what makes the retry safe).
    duplicate = system.post("/leads", user="admin", json=lead)
    assert duplicate.status_code == 409, (duplicate.status_code, duplicate.text)
