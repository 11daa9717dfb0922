"""Browser scenarios of the agents' desk (console-desk), registered in scenarios.SCENARIOS: an
agent works a ticket from the queue to solved and makes a draft article, reads the knowledge
base; another team's agent finds nothing; the ticket page at a phone's width."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.console.browser import PHONE, Console


def _queue_item(page: Page, number: str):
    return page.locator(f'[data-test="queue-item"][data-number="{number}"]')


def _search_queue(page: Page, text: str) -> None:
    page.locator('input[data-test="queue-search"]').fill(text)
    page.locator('input[data-test="queue-search"]').press("Enter")


def desk_agent_flow(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """The queue (my tickets, SLA state, search), the ticket: suggestions while replying, a
    public reply, an internal note, solved, a draft article; the knowledge base's search and
    "was this helpful"; then the ticket and the queue at a phone's width."""
    number, mark = params["number"], params["mark"]
    page = console.sign_in(params["agent"])
    page.locator("nav").get_by_text("工单", exact=True).click()
    page.wait_for_url("**/console/desk")
    item = _queue_item(page, number)
    expect(item).to_have_count(1)  # 我的工单 is the first view
    expect(item).to_contain_text(params["subject"])
    expect(item.locator('[data-test="queue-item-sla"]')).to_contain_text("首次响应 截止")
    console.shot(page, "60-desk-queue")
    _search_queue(page, number)
    expect(page.locator('[data-test="queue-item"]')).to_have_count(1)
    item.click()
    page.wait_for_url(f"**/console/desk/tickets/{params['ticket_id']}")
    expect(page.locator('[data-test="ticket-subject"]')).to_have_text(params["subject"])
    clocks = page.locator('[data-test="sla-clock"]')
    expect(clocks).to_have_count(2)
    expect(clocks.filter(has_text="首次响应")).to_contain_text("剩余")
    expect(page.locator('[data-test="message"]').first).to_contain_text(params["description"])

    # suggestions from the knowledge base while replying
    body = page.locator('textarea[data-test="reply-body"]')
    body.fill(f"您好，请先关机再取出卡纸。{mark}")
    suggestion = page.locator('[data-test="suggestion"]').filter(has_text=params["article_title"])
    expect(suggestion).to_have_count(1)
    expect(suggestion.locator("mark").first).to_be_visible()
    console.shot(page, "61-desk-ticket-reply-with-suggestions")
    page.locator('[data-test="reply-send"]').click()
    messages = page.locator('[data-test="message"]')
    expect(messages.filter(has_text=f"请先关机再取出卡纸。{mark}")).to_have_count(1)
    expect(body).to_have_value("")
    expect(clocks.filter(has_text="首次响应")).to_contain_text("已达成")

    page.locator('[data-test="reply-internal"]').click()
    body.fill(f"内部：已联系厂家 {mark}")
    page.locator('[data-test="reply-send"]').click()
    note = messages.filter(has_text=f"已联系厂家 {mark}")
    expect(note).to_have_attribute("data-kind", "internal")

    page.locator('[data-test="ticket-solve"]').click()
    expect(page.locator('[data-test="ticket-status"]')).to_have_text("已解决")
    page.locator('[data-test="make-draft"]').click()
    draft = page.locator('[data-test="draft-link"]')
    expect(draft).to_contain_text(params["subject"])
    console.shot(page, "62-desk-ticket-solved-draft")

    # the knowledge base: search, highlighted snippet, the article, "was this helpful"
    page.locator("nav").get_by_text("知识库", exact=True).click()
    page.wait_for_url("**/console/kb")
    page.locator('input[data-test="kb-search"]').fill(params["article_word"])
    page.locator('input[data-test="kb-search"]').press("Enter")
    hit = page.locator('[data-test="kb-hit"]').filter(has_text=params["article_title"])
    expect(hit).to_have_count(1)
    expect(hit.locator("mark").first).to_be_visible()
    console.shot(page, "63-kb-search")
    hit.locator("a").first.click()
    page.wait_for_url(f"**/console/kb/{params['article_id']}")
    expect(page.locator('[data-test="kb-article-title"]')).to_have_text(params["article_title"])
    page.locator('[data-test="kb-helpful-yes"]').click()
    expect(page.locator('[data-test="kb-feedback-done"]')).to_be_visible()
    console.shot(page, "64-kb-article-helpful")
    assert not page.console_errors, page.console_errors

    # a phone's width: the menu's drawer, the queue and the ticket in one column
    phone = console.sign_in(params["agent"], viewport=PHONE)
    phone.get_by_role("button", name="菜单").click()
    phone.locator(".el-drawer").get_by_text("工单", exact=True).click()
    phone.wait_for_url("**/console/desk")
    phone.get_by_role("tab", name="全部可见").click()
    _search_queue(phone, number)
    expect(_queue_item(phone, number)).to_contain_text("已解决")
    widths = {"queue": phone.evaluate("document.documentElement.scrollWidth")}
    console.shot(phone, "65-phone-desk-queue")
    # the ticket page by its address (the queue's click was taken on the desktop above)
    phone.goto(console.url + f"/console/desk/tickets/{params['ticket_id']}")
    expect(phone.locator('[data-test="ticket-subject"]')).to_have_text(params["subject"])
    expect(phone.locator('[data-test="sla-clock"]')).to_have_count(2)
    widths["ticket"] = phone.evaluate("document.documentElement.scrollWidth")
    console.shot(phone, "66-phone-desk-ticket")
    assert not phone.console_errors, phone.console_errors
    return {"widths": widths}


def desk_other_agent(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """Another team's agent: the ticket is in none of the queue's views, and its page is a
    "not found" with nothing of it shown."""
    page = console.sign_in(params["agent"])
    page.goto(console.url + "/console/desk")
    for view in ("我的工单", "未分配", "全部可见"):
        page.get_by_role("tab", name=view).click()
        _search_queue(page, params["number"])
        expect(page.locator('[data-test="queue-empty"]')).to_be_visible()
        expect(page.locator('[data-test="queue-item"]')).to_have_count(0)
    page.goto(console.url + f"/console/desk/tickets/{params['ticket_id']}")
    expect(page.get_by_role("alert")).to_contain_text("不在您的可见范围")
    expect(page.locator('[data-test="ticket"]')).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(params["subject"])
    console.shot(page, "67-desk-other-agent-404")
    return {}


def desk_move_group(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """The ticket's assignee moves it from no group to a group (console-writes): the selector
    offers the groups, the move shows at the group and in the history."""
    page = console.sign_in(params["agent"])
    page.goto(console.url + f"/console/desk/tickets/{params['ticket_id']}")
    expect(page.locator('[data-test="ticket-group"]')).to_have_text("无")
    select = page.locator('[data-test="ticket-group-select"]')
    select.click()
    page.locator(".el-select-dropdown__item:visible").filter(
        has_text=params["group_name"]).first.click()
    expect(page.locator('[data-test="ticket-group"]')).to_have_text(params["group_name"])
    expect(page.locator('[data-test="history"]')).to_contain_text(
        f"处理组：无 → {params['group_name']}")
    console.shot(page, "68-desk-ticket-moved-group")
    assert not page.console_errors, page.console_errors
    return {}


DESK_SCENARIOS = {"desk_agent_flow": desk_agent_flow, "desk_other_agent": desk_other_agent,
                  "desk_move_group": desk_move_group}
