"""Browser scenario of the customer 360's later parts (receivables over all contracts, the
tickets): registered in scenarios.SCENARIOS, run in a child process by browser.run_scenario."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.console.browser import Console


def rep_360_tickets(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """The rep's customer 360 shows the receivables of the customer's contracts and the tickets
    the rep may see (the unassigned one, not another agent's), each opening its desk page."""
    page = console.sign_in(params["rep"])
    page.goto(console.url + f"/console/customers/{params['customer_id']}")
    tickets = page.locator('[data-test="customer-tickets"]')
    # the 360 asks every service: slower than one read on a loaded machine
    expect(tickets.locator('[data-test="customer-tickets-count"]')).to_have_text(
        "未解决 1 / 共 1", timeout=30_000)
    rows = tickets.locator('[data-test="customer-tickets-table"] .el-table__body tr')
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(params["visible_subject"])
    expect(rows.first).to_contain_text("紧急")
    expect(tickets).not_to_contain_text(params["hidden_subject"])
    owed = page.locator('[data-test="customer-receivables"]')
    expect(owed).to_contain_text(params["outstanding"])
    console.shot(page, "120-customer-360-tickets")
    rows.first.locator('[data-test="open-ticket"]').click()
    page.wait_for_url(f"**/console/desk/tickets/{params['visible_ticket_id']}")
    expect(page.locator('[data-test="ticket-subject"]')).to_have_text(params["visible_subject"])
    console.shot(page, "121-ticket-from-360")
    assert not page.console_errors, page.console_errors
    return {}


SCENARIOS_360 = {"rep_360_tickets": rep_360_tickets}
