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


def rep_writes_the_contract(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """A rep on a draft contract of 100000: a plan of 60% + 60000 is refused (the 422 at the
    plan's sum, in Chinese, what was typed stays); 40000 for the second fixes it; signs; records
    a partial receipt against the first instalment with its payer (outstanding goes from 100000
    to 70000); issues an electronic invoice for that receipt."""
    page = console.sign_in(params["rep"])
    page.goto(console.url + f"/console/contracts/{params['contract_id']}")
    expect(page.locator('[data-test="contract-page-status"]')).to_have_text("草稿")
    expect(page.locator('[data-test="issue-invoice"]')).to_have_count(0)
    expect(page.locator('[data-test="invoice-hint"]')).to_contain_text("签署后")
    page.locator('[data-test="edit-plan"]').click()
    form = page.locator('[data-test="plan-form"]')
    form.locator("#plan-0-due").fill("2099-01-31")
    form.locator('[data-test="plan-0-mode"]').get_by_text("按比例").click()
    form.locator("#plan-0-value").fill("60")
    form.locator('[data-test="plan-add"]').click()
    form.locator("#plan-1-due").fill("2099-06-30")
    form.locator("#plan-1-value").fill("60000")
    form.locator('[data-test="save-plan"]').click()
    expect(form.locator('[data-test="plan-sum"] .el-form-item__error')).to_contain_text(
        "各期合计 120000.00 超过合同金额 100000.00")
    expect(form.locator('[data-test="plan-error"]')).to_contain_text("请修正标出的字段")
    expect(form.locator("#plan-0-value")).to_have_value("60")
    expect(form.locator("#plan-1-value")).to_have_value("60000")
    expect(form.locator("#plan-1-due")).to_have_value("2099-06-30")
    console.shot(page, "107-plan-over-amount-422")
    form.locator("#plan-1-value").fill("40000")
    form.locator('[data-test="save-plan"]').click()
    expect(form).to_be_hidden()
    plan = page.locator('[data-test="payment-plan"] .el-table__body tr')
    expect(plan).to_have_count(2)
    expect(plan.nth(0)).to_contain_text("60000.00")
    expect(plan.nth(1)).to_contain_text("40000.00")
    console.shot(page, "108-plan-saved")

    page.locator('[data-test="contract-sign"]').click()
    expect(page.locator('[data-test="contract-page-status"]')).to_have_text("执行中")
    expect(page.locator('[data-test="contract-outstanding"]')).to_have_text("100000.00")
    page.locator('[data-test="record-receipt"]').click()
    receipt = page.locator('[data-test="receipt-form"]')
    receipt.locator("#receipt-amount").fill("30000")
    receipt.locator("#receipt-date").fill("2027-01-20")
    receipt.locator("#receipt-reference").fill(params["reference"])
    _pick(page, receipt.locator('[data-test="receipt-instalment"]'), "第 1 期")
    receipt.locator("#receipt-payer-name").fill(params["payer"])
    receipt.locator("#receipt-payer-account").fill("6222021001122334455")
    receipt.locator('[data-test="save-receipt"]').click()
    expect(receipt).to_be_hidden()
    expect(page.locator('[data-test="contract-outstanding"]')).to_have_text("70000.00")
    expect(page.locator('[data-test="instalment-1"]')).to_have_text("部分回款")
    expect(page.locator('[data-test="contract-page-receipts"]')).to_contain_text(params["reference"])
    expect(page.locator('[data-test="edit-plan"]')).to_have_count(0)  # receipts: the plan stays
    expect(page.locator('[data-test="plan-hint"]')).to_contain_text("已有回款记录")
    console.shot(page, "109-receipt-recorded")

    page.locator('[data-test="issue-invoice"]').click()
    invoice = page.locator('[data-test="invoice-form"]')
    invoice.locator("#invoice-title").fill(params["payer"])
    invoice.locator('[data-test="invoice-type"]').get_by_text("电子发票").click()
    invoice.locator("#invoice-number").fill(params["invoice_number"])
    invoice.locator("#invoice-date").fill("2027-01-21")
    invoice.locator('[data-test="invoice-target"]').get_by_text("某笔回款").click()
    _pick(page, invoice.locator('[data-test="invoice-target-id"]'), "30000.00")
    expect(invoice.locator("#invoice-amount")).to_have_value("30000.00")
    invoice.locator('[data-test="save-invoice"]').click()
    expect(invoice).to_be_hidden()
    expect(page.locator('[data-test="contract-invoices"]')).to_contain_text(params["invoice_number"])
    expect(page.locator('[data-test="contract-page-receivables"]')).to_contain_text("30000.00")
    console.shot(page, "110-invoice-issued")
    assert not page.console_errors, page.console_errors
    return {}


SCENARIOS = {
    "rep_writes_the_contract": rep_writes_the_contract,
    "rep_quote_and_contract": rep_quote_and_contract,
    "other_team_sales_pages": other_team_sales_pages,
}
