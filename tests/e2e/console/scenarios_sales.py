"""Browser scenarios of the opportunity and contract pages (console-sales): registered in
scenarios.SCENARIOS, run in a child process by browser.run_scenario like the others."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.console.browser import PHONE, Console


def _pick(page: Page, select: Any, option: str) -> None:
    select.click()
    page.locator(".el-select-dropdown__item:visible").filter(has_text=option).first.click()


def rep_quote_and_contract(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """The rep opens the opportunity from its board card, makes a quote from the price book
    (a bad quantity first: the 422 at the line, what was typed stays) and sees it listed; then
    opens the contract from the customer 360 and sees its payment plan; the same at a phone's
    width."""
    page = console.sign_in(params["rep"])
    page.goto(console.url + "/console/board")
    card = page.locator('[data-test="card"]').filter(has_text=params["opportunity_name"])
    expect(card).to_have_count(1)
    card.locator('[data-test="open-opportunity"]').click()
    page.wait_for_url(f"**/console/opportunities/{params['opportunity_id']}")
    expect(page.locator('[data-test="opportunity-page"] h1')).to_have_text(
        params["opportunity_name"])
    expect(page.locator('[data-test="opportunity-amount"]')).to_have_text("CNY 380000.00")
    expect(page.locator('[data-test="opportunity-contacts"]')).to_contain_text(params["contact_name"])
    expect(page.locator('[data-test="opportunity-contacts"]')).to_contain_text("主要联系人")
    console.shot(page, "100-opportunity-page")

    page.locator('[data-test="new-quote"]').click()
    form = page.locator('[data-test="quote-form"]')
    expect(form).to_be_visible()
    _pick(page, form.locator('[data-test="quote-book"]'), params["book_name"])
    _pick(page, form.locator('[data-test="line-product-0"]'), params["product_name"])
    form.locator("#line-0-quantity").fill("3x")
    form.locator("#line-0-discount").fill("5")
    form.locator('[data-test="save-quote"]').click()
    expect(form.locator(".el-form-item__error")).to_contain_text("请输入数字")
    expect(form.locator("#line-0-quantity")).to_have_value("3x")
    expect(form.locator("#line-0-discount")).to_have_value("5")
    console.shot(page, "101-quote-form-422")
    form.locator("#line-0-quantity").fill("3")
    expect(form.locator("#line-0-price")).to_have_attribute("placeholder", params["tier_price"])
    form.locator('[data-test="save-quote"]').click()
    expect(form).to_be_hidden()
    expect(page.locator('[data-test="quote-status"]')).to_have_text("草稿")
    expect(page.locator('[data-test="quote-lines"]')).to_contain_text(params["product_name"])
    expect(page.locator('[data-test="quote-words"]')).not_to_be_empty()
    console.shot(page, "102-quote-created")
    page.keyboard.press("Escape")
    quotes = page.locator('[data-test="quotes-table"] .el-table__body tr')
    expect(quotes).to_have_count(1)
    expect(quotes.first).to_contain_text("草稿")
    grand_total = quotes.first.locator("td").nth(3).inner_text().strip()

    page.goto(console.url + f"/console/customers/{params['customer_id']}")
    contracts = page.locator('[data-test="contracts-table"]')
    # the 360 asks every service: slower than one read on a loaded machine
    expect(contracts).to_contain_text(params["contract_title"], timeout=30_000)
    contracts.locator('[data-test="contract-page-link"]').filter(
        has_text=params["contract_title"]).click()
    page.wait_for_url(f"**/console/contracts/{params['contract_id']}")
    plan = page.locator('[data-test="payment-plan"] .el-table__body tr')
    expect(plan).to_have_count(2, timeout=20_000)
    expect(page.locator('[data-test="instalment-1"]')).to_have_text("部分回款")
    expect(page.locator('[data-test="instalment-2"]')).to_have_text("待回款")
    expect(plan.nth(0)).to_contain_text("35000.00")  # outstanding of the first
    expect(page.locator('[data-test="contract-page-receipts"]')).to_contain_text("TT-CONSOLE")
    expect(page.locator('[data-test="contract-page-status"]')).to_have_text("执行中")
    console.shot(page, "103-contract-page")
    assert not page.console_errors, page.console_errors

    phone = console.sign_in(params["rep"], viewport=PHONE)
    phone.goto(console.url + f"/console/contracts/{params['contract_id']}")
    expect(phone.locator('[data-test="payment-plan"] .el-table__body tr')).to_have_count(2)
    width = phone.evaluate("document.documentElement.scrollWidth")
    console.shot(phone, "104-phone-contract-page")
    phone.goto(console.url + f"/console/opportunities/{params['opportunity_id']}")
    expect(phone.locator('[data-test="quotes-table"] .el-table__body tr')).to_have_count(1)
    opportunity_width = phone.evaluate("document.documentElement.scrollWidth")
    console.shot(phone, "105-phone-opportunity-page")
    return {"grand_total": grand_total, "scroll_width": max(width, opportunity_width)}


def other_team_sales_pages(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """A rep of another team: no card on the board, and both pages are the not-found message
    with nothing of the records."""
    page = console.sign_in(params["rep"])
    page.goto(console.url + "/console/board")
    expect(page.locator('[data-test="column"]').first).to_be_visible()
    expect(page.locator('[data-test="card"]').filter(has_text=params["opportunity_name"])
           ).to_have_count(0)
    for path, root in ((f"opportunities/{params['opportunity_id']}", "opportunity-page"),
                       (f"contracts/{params['contract_id']}", "contract-page")):
        page.goto(console.url + "/console/" + path)
        expect(page.get_by_role("alert")).to_contain_text("不在您的可见范围")
        expect(page.locator(f'[data-test="{root}"] h1')).to_have_count(0)
        page.wait_for_load_state("networkidle")
        text = page.locator(f'[data-test="{root}"]').inner_text()
        for marker in params["markers"]:
            assert marker not in text, (path, marker)
    console.shot(page, "106-other-team-contract-404")
    return {}


SCENARIOS = {
    "rep_quote_and_contract": rep_quote_and_contract,
    "other_team_sales_pages": other_team_sales_pages,
}
