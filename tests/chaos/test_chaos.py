"""The short form of `make chaos` inside `make test`: on SQLite, a lead load through a broker
kill -9, a kill -9 of the rules, the leads, the contracts and the service desk services and of
the gateway (its requests in flight), and poison messages; a kill -9 of the service desk while
mail comes in through its SMTP listener and while its replies go out. Beside the leads, every
cycle sends the ERP's payments to the contracts service, changes the directory, and changes
sales' customers and contacts, whose projection in the service desk must end equal to sales'
rows (tests/chaos/side_loads.py). Nothing is lost, duplicated or left without its effects, and
no one restarts anything by hand."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.chaos import harness, mail
from tests.chaos.node import unavailable_reason

LEADS = int(os.environ.get("CRM_CHAOS_TEST_LEADS", "150"))
MAILS = int(os.environ.get("CRM_CHAOS_TEST_MAILS", "120"))
SCENARIOS = ["broker-kill", "kill-rules", "kill-leads", "kill-contracts", "kill-gateway",
             "poison", "kill-service_desk"]
# kill-contracts and kill-service_desk are about the side loads (the ERP's payments, the
# directory, the service desk's requesters): a short lead load is enough to carry them, and
# keeps the suite's added time small
LEADS_OF = {"kill-contracts": max(30, LEADS // 4), "kill-service_desk": max(30, LEADS // 4)}


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.ChaosSystem]:
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CRM_REQUIRE_BROKER"):
            pytest.fail(f"the fault suite cannot start its broker node: {reason}")
        pytest.skip(reason)
    with harness.ChaosSystem.running(tmp_path_factory.mktemp("chaos")) as running:
        yield running


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_lead_or_effect_is_lost_or_doubled(chaos: harness.ChaosSystem, scenario: str):
    outcome = harness.run_cycle(chaos, scenario, LEADS_OF.get(scenario, LEADS), concurrency=8)
    print("\n" + harness.table([outcome]))
    assert outcome.passed, "\n".join([harness.table([outcome]), *outcome.details[:30],
                                       *outcome.diagnostics])


def test_no_mail_or_reply_is_lost_or_doubled(chaos: harness.ChaosSystem):
    """kill -9 of the service desk while mail comes in through its SMTP listener, and again
    while its mail outbox sends the replies (tests/chaos/mail.py)."""
    outcome = mail.run_mail_cycle(chaos, MAILS, concurrency=4)
    print("\n" + outcome.summary())
    assert outcome.passed, "\n".join([outcome.summary(), *outcome.details])
