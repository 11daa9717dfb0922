"""Webhook delivery under the SSRF policy, against a real HTTP endpoint on 127.0.0.1
(tests/support/webhook_receiver.py): the address checked is the address connected to, whatever
the name resolves to afterwards; a refused target is never contacted; redirects are not
followed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from services.rules.notify import deliver_checked, generate_secret, verify
from services.rules.notify.targets import Allowlist
from tests.support.webhook_receiver import Reply, WebhookReceiver

LOOPBACK = Allowlist.from_env({"CRM_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32"})
BODY = b'{"type":"leads.lead_created"}'


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def answering(address: str):
    calls: list[str] = []

    def resolve(host: str, port: int, type: int = 0):  # noqa: A002 - getaddrinfo's name
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_the_delivery_connects_to_the_checked_address_with_the_urls_host(receiver) -> None:
    # a name no DNS knows: only the checked address can have been connected to
    url = f"http://hooks.example.test:{receiver.port}/hook"
    secret = generate_secret()
    resolve = answering("127.0.0.1")
    outcome = deliver_checked(url, secret, "msg_pin", BODY, LOOPBACK, resolve=resolve)
    assert outcome.ok, outcome
    assert resolve.calls == ["hooks.example.test"]  # one lookup: the one checked
    request = receiver.wait_for_count(1)[0]
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    verify(secret, request.headers, request.body)


def test_a_name_rebound_to_an_internal_address_is_not_contacted(receiver) -> None:
    url = f"http://hooks.example.test:{receiver.port}/hook"
    outcome = deliver_checked(url, generate_secret(), "msg_rebind", BODY, Allowlist(),
                              resolve=answering("127.0.0.1"))
    assert not outcome.ok and not outcome.retry and outcome.status_code is None
    assert "loopback" in outcome.error and outcome.duration_ms == 0.0
    assert receiver.requests == []


def test_loopback_without_the_allowlist_is_refused_and_with_it_delivered(receiver) -> None:
    refused = deliver_checked(receiver.url, generate_secret(), "msg_a", BODY, Allowlist())
    assert refused.error.startswith("not sent:") and receiver.requests == []
    allowed = deliver_checked(receiver.url, generate_secret(), "msg_b", BODY, LOOPBACK)
    assert allowed.ok and len(receiver.wait_for_count(1)) == 1


def test_a_redirect_to_the_metadata_service_is_not_followed(receiver) -> None:
    receiver.responses = [Reply(302, {"Location": "http://169.254.169.254/latest/meta-data/"})]
    outcome = deliver_checked(receiver.url, generate_secret(), "msg_c", BODY, LOOPBACK)
    assert not outcome.ok and outcome.status_code == 302 and "not followed" in outcome.error
    assert len(receiver.requests) == 1
