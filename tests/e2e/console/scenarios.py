"""Browser scenarios of the console (run in a child process by browser.run_scenario).

Each takes the Console and the test's params and returns a small JSON-able result; a failed
`expect` or `assert` ends the child process non-zero, which fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.e2e.console.browser import PHONE, Console
from tests.e2e.console.desk_scenarios import DESK_SCENARIOS  # console-desk
from tests.e2e.console.scenarios_360 import SCENARIOS_360
from tests.e2e.console.scenarios_bench import SCENARIOS_BENCH

PROPOSAL = "方案报价"


def _rows(page: Page, table: str) -> Locator:
    return page.locator(f'[data-test="{table}"] .el-table__body tr')


def _row(page: Page, table: str, text: str) -> Locator:
    return _rows(page, table).filter(has_text=text)


def _expect_empty(page: Page, table: str) -> None:
    expect(page.locator(f'[data-test="{table}"] .el-table__empty-text')).to_be_visible()


def _funnel_reached(page: Page, stage_prefix: str) -> int:
    page.goto(page.url.split("/console/")[0] + "/console/dashboard")
    row = _row(page, "funnel-table", stage_prefix)
    expect(row).to_have_count(1)
    return int(row.locator("td").nth(1).inner_text().strip())


def _visible_menu_item(page: Page, test_id: str) -> Locator:
    return page.locator(f'[data-test="{test_id}"]:visible')


def _card(page: Page, text: str) -> Locator:
    return page.locator('[data-test="card"]').filter(has_text=text)


def _column(page: Page, stage_prefix: str) -> Locator:
    return page.locator(f'[data-test="column"][data-stage^="{stage_prefix}"]')


def rep_flow(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """Capture a lead, see it assigned, convert it, get the board's refusal, add what is
    missing, move again, see the funnel change."""
    name, company, phone = params["name"], params["company"], params["phone"]
    page = console.sign_in(params["rep"])
    proposal_before = _funnel_reached(page, PROPOSAL)

    page.goto(console.url + "/console/leads")
    console.shot(page, "01-leads")
    page.locator('[data-test="new-lead"]').click()
    form = page.locator('[data-test="lead-form"]')
    # First a bad e-mail: the 422 is shown at the field, and what was typed stays.
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=company]").fill(company)
    form.locator("input[name=phone]").fill(phone)
    form.locator("input[name=email]").fill("not-an-email")
    form.locator("input[name=region]").fill("华东")
    form.locator('[data-test="save-lead"]').click()
    expect(form.locator(".el-form-item__error")).to_contain_text("邮箱格式不正确")
    expect(form.locator("input[name=name]")).to_have_value(name)
    console.shot(page, "02-lead-form-422")
    form.locator("input[name=email]").fill("")
    form.locator('[data-test="save-lead"]').click()
    expect(form).to_be_hidden()

    # The shipped rule assigns a website lead at once; the inbox polls, no reload.
    row = _row(page, "lead-table", name)
    expect(row).to_have_count(1, timeout=30_000)
    expect(row).to_contain_text(params["rep_display_name"])
    console.shot(page, "03-lead-assigned")

    # The score's breakdown.
    row.get_by_role("button", name=re.compile("评分明细")).click()
    breakdown = page.locator('[data-test="score-breakdown"]')
    expect(breakdown).to_contain_text("Came in through the website")
    console.shot(page, "04-score-breakdown")
    page.keyboard.press("Escape")
    expect(breakdown).to_be_hidden()

    # The same phone again: the 409 offers the merge.
    page.locator('[data-test="new-lead"]').click()
    form = page.locator('[data-test="lead-form"]')
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=phone]").fill(phone)
    form.locator('[data-test="save-lead"]').click()
    expect(form.locator('[data-test="duplicate"]')).to_contain_text("已存在相同的线索（电话）")
    console.shot(page, "05-duplicate-409")
    page.locator('[data-test="lead-form"]').get_by_role("button", name="取消", exact=True).click()

    row.locator('[data-test="change-status"]').click()
    _visible_menu_item(page, "status-qualified").click()
    expect(row.locator('[data-test="lead-status"]')).to_have_text("已确认")
    row.locator('[data-test="convert"]').click()
    page.wait_for_url("**/console/customers/*")
    customer_id = page.url.rstrip("/").rsplit("/", 1)[1]
    expect(page.locator('[data-test="customer-360"] h1')).to_have_text(company)
    console.shot(page, "06-customer-360")

    page.goto(console.url + "/console/board")
    card = _card(page, company)
    expect(card).to_have_count(1)
    card.drag_to(_column(page, PROPOSAL))
    refusal = page.locator('[data-test="refusal"]')
    expect(refusal).to_be_visible()
    missing = refusal.locator('[data-test="missing"]')
    expect(missing).to_have_count(3)
    expect(refusal).to_contain_text("必须填写「金额」")
    expect(refusal).to_contain_text("必须填写「预计成交日期」")
    expect(refusal).to_contain_text("需要 1 次标记为「needs_analysis」的会议（已有 0 次）")
    console.shot(page, "07-board-refusal-412")

    # What is missing, from the refusal's own links: the amount and date, then the meeting.
    refusal.locator('[data-test="fix-field"]').first.click()
    opportunity = page.locator('[data-test="opportunity-form"]')
    opportunity.locator("input[name=amount]").fill("380000.00")
    date_input = opportunity.locator(".el-date-editor input")
    date_input.fill("2027-03-31")
    date_input.press("Enter")
    opportunity.locator('[data-test="save-opportunity"]').click()
    expect(opportunity).to_be_hidden()
    refusal.locator('[data-test="fix-activity"]').click()
    followup = page.locator('[data-test="followup-form"]')
    expect(followup.locator("input[name=tags]")).to_have_value("needs_analysis")
    followup.locator("input[name=subject]").fill("需求调研会")
    followup.locator("input[name=pain_points]").fill("排产靠人工, 库存不准")
    followup.locator('[data-test="save-followup"]').click()
    expect(followup).to_be_hidden()
    page.get_by_role("button", name="关闭", exact=True).click()
    expect(refusal).to_be_hidden()

    card = _card(page, company)
    card.drag_to(_column(page, PROPOSAL))
    expect(_column(page, PROPOSAL).locator('[data-test="card"]').filter(has_text=company)) \
        .to_have_count(1)
    console.shot(page, "08-board-moved")

    proposal_after = _funnel_reached(page, PROPOSAL)
    assert proposal_after == proposal_before + 1, (proposal_before, proposal_after)
    _row(page, "funnel-table", PROPOSAL).click()
    expect(page.locator('[data-test="drill-table"]')).to_contain_text(company)
    console.shot(page, "09-dashboard-drilldown")

    page.goto(console.url + f"/console/customers/{customer_id}")
    expect(page.locator('[data-test="timeline"]')).to_contain_text("需求调研会")
    page.goto(console.url + "/console/tasks")
    console.shot(page, "10-tasks")
    page.locator('[data-test="inbox"]').click()
    console.shot(page, "11-notifications")
    assert not page.console_errors, page.console_errors
    return {"customer_id": customer_id, "proposal_before": proposal_before,
            "proposal_after": proposal_after}


def manager_view(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    page = console.sign_in("manager")
    page.get_by_role("tab", name="全部可见").click()
    page.locator('input[data-test="lead-search"]').fill(params["name"])
    page.locator('input[data-test="lead-search"]').press("Enter")
    row = _row(page, "lead-table", params["name"])
    expect(row).to_have_count(1)
    expect(row).to_contain_text(params["rep_display_name"])
    console.shot(page, "20-manager-leads")
    page.goto(console.url + "/console/board")
    expect(_card(page, params["company"])).to_have_count(1)
    page.goto(console.url + "/console/dashboard")
    _row(page, "funnel-table", PROPOSAL).click()
    expect(page.locator('[data-test="drill-table"]')).to_contain_text(params["company"])
    console.shot(page, "21-manager-dashboard")
    page.goto(console.url + "/console/admin")
    expect(_rows(page, "users-table").filter(has_text="zhangwei")).to_have_count(1)
    console.shot(page, "22-admin-users")
    return {}


def other_team_rep(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """A rep of another team sees none of the records, on any screen."""
    name, company = params["name"], params["company"]
    page = console.sign_in(params["rep"])
    for tab in ("我的线索", "公海"):
        page.get_by_role("tab", name=tab).click()
        page.locator('input[data-test="lead-search"]').fill(name)
        page.locator('input[data-test="lead-search"]').press("Enter")
        _expect_empty(page, "lead-table")
    page.goto(console.url + "/console/board")
    expect(page.locator('[data-test="board"]')).to_be_visible()
    expect(page.locator('[data-test="column"]').first).to_be_visible()
    expect(_card(page, company)).to_have_count(0)
    page.goto(console.url + "/console/customers")
    page.get_by_role("search").locator("input").fill(company)
    page.get_by_role("search").locator("input").press("Enter")
    _expect_empty(page, "customer-table")
    page.goto(console.url + f"/console/customers/{params['customer_id']}")
    expect(page.get_by_role("alert")).to_contain_text("不在您的可见范围")
    expect(page.locator('[data-test="customer-360"] h1')).to_have_count(0)
    console.shot(page, "30-other-team-customer-404")
    page.goto(console.url + "/console/dashboard")
    _row(page, "funnel-table", PROPOSAL).click()
    drill = page.locator('[data-test="drill-table"]')
    expect(drill).to_be_visible()
    page.wait_for_load_state("networkidle")
    expect(drill).not_to_contain_text(company)
    page.goto(console.url + "/console/tasks")
    page.wait_for_load_state("networkidle")
    expect(page.locator('[data-test="task-table"]')).not_to_contain_text(name)
    return {}


def phone_screens(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """The main screens at a phone's width: the menu folds into a drawer, the board stacks."""
    page = console.sign_in(params["rep"], viewport=PHONE)
    expect(page.get_by_role("button", name="菜单")).to_be_visible()
    console.shot(page, "40-phone-leads")
    page.get_by_role("button", name="菜单").click()
    page.locator(".el-drawer").get_by_text("商机看板").click()
    page.wait_for_url("**/console/board")
    expect(page.locator('[data-test="column"]').first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"the board is {width}px wide on a phone"
    console.shot(page, "41-phone-board")
    # English, chosen in the header, for every screen after it.
    page.locator(".locale").click()
    page.get_by_role("option", name="English").click()
    expect(page.locator("h1")).to_contain_text("Pipeline board")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    console.shot(page, "42-phone-board-english")
    return {"scroll_width": width}


def public_pool(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """A trade-show lead waits in the public pool (公海): claim it, then release it with a
    reason; the release asks for the reason and refuses an empty one."""
    name = params["name"]
    page = console.sign_in(params["rep"])
    page.reload()
    expect(page.locator('[data-test="lead-table"]')).to_be_visible()
    # performance.now() counts from the reload's navigation: a figure for the report only.
    first_screen_ms = page.evaluate("performance.now()")
    page.get_by_role("tab", name="公海").click()
    search = page.locator('input[data-test="lead-search"]')
    search.fill(name)
    search.press("Enter")
    row = _row(page, "lead-table", name)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("公海")
    console.shot(page, "12-public-pool")
    row.locator('[data-test="claim"]').click()
    expect(row).to_have_count(0)  # no longer in the pool
    page.get_by_role("tab", name="我的线索").click()
    row = _row(page, "lead-table", name)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(params["rep_display_name"])
    row.locator('[data-test="release"]').click()
    box = page.locator(".el-message-box")
    box.get_by_role("button", name="确定").click()
    expect(box).to_contain_text("必填")  # a release needs its reason
    box.locator("input").fill("客户在华南")
    box.get_by_role("button", name="确定").click()
    expect(row).to_have_count(0)
    page.get_by_role("tab", name="公海").click()
    expect(_row(page, "lead-table", name)).to_have_count(1)
    return {"first_screen_ms": round(first_screen_ms)}


def outage(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """The gateway has lost the broker: sign-in still works (it is the gateway's own), and the
    lead inbox says, in the user's language, when to try again (503 with Retry-After)."""
    page = console.sign_in(params["rep"])
    alert = page.get_by_role("alert").filter(has_text="服务暂时不可用")
    expect(alert).to_contain_text(re.compile(r"请 \d+ 秒后重试"))
    console.shot(page, "50-outage-503")
    return {"alert": alert.first.inner_text()}


def _pick(page: Page, select: Locator, option: str) -> None:
    """Chooses `option` in an Element Plus select (its list is teleported to the body)."""
    select.click()
    page.locator(".el-select-dropdown__item:visible").filter(has_text=option).first.click()


def admin_setup(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """An admin creates a team (with its manager) and a user in it, then a rule whose condition
    does not parse: the 422 is shown at the conditions and the form keeps what was typed; the
    fixed rule is saved and listed. The new user then signs in."""
    team, username, rule = params["team"], params["username"], params["rule"]
    page = console.sign_in("admin")
    page.goto(console.url + "/console/admin")
    expect(_rows(page, "users-table").filter(has_text="zhangwei")).to_have_count(1)

    page.locator('[data-test="new-team"]').click()
    form = page.locator('[data-test="team-form"]')
    form.locator("#team-name").fill(team)
    _pick(page, form.locator('[data-test="team-manager"]'), "(manager)")
    form.locator('[data-test="save-team"]').click()
    expect(form).to_be_hidden()
    expect(_row(page, "teams-table", team)).to_have_count(1)

    page.locator('[data-test="new-user"]').click()
    form = page.locator('[data-test="user-form"]')
    form.locator("#user-username").fill(username)
    form.locator("#user-display-name").fill(params["display_name"])
    form.locator("#user-email").fill("not-an-email")
    form.locator("#user-password").fill(params["password"])
    _pick(page, form.locator('[data-test="user-team"]'), team)
    form.locator('[data-test="save-user"]').click()
    expect(form.locator(".el-form-item__error")).to_contain_text("邮箱格式不正确")
    expect(form.locator("#user-username")).to_have_value(username)
    form.locator("#user-email").fill(f"{username}@example.com")
    form.locator('[data-test="save-user"]').click()
    expect(form).to_be_hidden()
    row = _row(page, "users-table", username)
    expect(row).to_have_count(1)
    expect(row).to_contain_text(team)
    console.shot(page, "60-admin-user-created")

    page.get_by_role("tab", name="规则").click()
    page.locator('[data-test="new-rule"]').click()
    form = page.locator('[data-test="rule-form"]')
    form.locator("#rule-name").fill(rule)
    # Off, and a score no lead reaches: the rule must not act on other tests' leads.
    form.locator('[data-test="rule-enabled"]').click()
    form.locator("#rule-conditions").fill('source == "website" and')
    form.locator('[data-test="save-rule"]').click()
    conditions = form.locator(".el-form-item").filter(has=page.locator("#rule-conditions"))
    expect(conditions.locator(".el-form-item__error")).to_contain_text("column")
    expect(form.locator("#rule-name")).to_have_value(rule)
    console.shot(page, "61-admin-rule-422")
    form.locator("#rule-conditions").fill('source == "website" and score >= 1000')
    form.locator('[data-test="save-rule"]').click()
    expect(form).to_be_hidden()
    row = _row(page, "rules-table", rule)
    expect(row).to_have_count(1)
    expect(row.locator(".el-switch")).not_to_have_class(re.compile("is-checked"))
    console.shot(page, "62-admin-rule-saved")
    assert not page.console_errors, page.console_errors

    newcomer = console.sign_in(username)
    expect(newcomer.locator('[data-test="who"]')).to_contain_text(params["display_name"])
    return {}


def own_account(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """A user opens their account from their name in the header: a wrong current password is
    shown at its field and what was typed stays; the password is changed; an API key is created
    and shown once. The key is returned so the test can use it over HTTP."""
    page = console.sign_in(params["username"])
    page.locator('[data-test="who"]').click()
    page.wait_for_url("**/console/account")
    form = page.locator('[data-test="password-form"]')
    form.locator("#current-password").fill("not-my-password")
    form.locator("#new-password").fill(params["new_password"])
    form.locator('button[type="submit"]').click()
    current = form.locator(".el-form-item").filter(has=page.locator("#current-password"))
    expect(current.locator(".el-form-item__error")).not_to_be_empty()
    expect(form.locator("#new-password")).to_have_value(params["new_password"])
    form.locator("#current-password").fill(params["password"])
    form.locator('button[type="submit"]').click()
    expect(form.locator("#current-password")).to_have_value("")
    expect(form.locator("#new-password")).to_have_value("")

    keys = page.locator('[data-test="key-form"]')
    keys.locator("#key-name").fill(params["key_name"])
    keys.locator('button[type="submit"]').click()
    shown = page.locator('[data-test="new-key"]')
    expect(shown).to_be_visible()
    expect(_row(page, "keys-table", params["key_name"])).to_have_count(1)
    console.shot(page, "70-account")
    text = shown.inner_text()
    key = text.split("：" if "：" in text else ":", 1)[1].strip()
    # The page goes on with the new token: a reload still shows the account, the key not.
    page.reload()
    expect(_row(page, "keys-table", params["key_name"])).to_have_count(1)
    expect(page.locator('[data-test="new-key"]')).to_have_count(0)
    assert not page.console_errors, page.console_errors
    return {"key": key}


def phone_approval(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """The approver at a phone's width (375 px): the drawer's 审批, the inbox, the approval
    opened from the keyboard, its terms and steps, approve with a comment; the trail shows it."""
    narrow = {"width": 375, "height": 812}
    page = console.sign_in(params["approver"], viewport=narrow)
    page.get_by_role("button", name="菜单").click()
    page.locator(".el-drawer").get_by_text("审批", exact=True).click()
    page.wait_for_url("**/console/approvals")
    item = page.locator('[data-test="approval-item"]').filter(has_text=params["record_id"])
    expect(item).to_have_count(1)
    expect(item).to_contain_text(params["flow_name"])
    console.shot(page, "80-phone-approvals-inbox")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= narrow["width"] + 1, f"the approval inbox is {width}px wide on a phone"
    item.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/approvals/" + params["approval_id"])
    detail = page.locator('[data-test="approval-detail"]')
    expect(detail.locator('[data-test="approval-status"]')).to_have_text("审批中")
    expect(detail.locator('[data-test="terms"]')).to_contain_text(params["supplier"])
    expect(detail.locator('[data-test="steps"]')).to_contain_text("或签")
    comment = page.get_by_label("审批意见")
    comment.fill(params["comment"])
    approve = page.locator('[data-test="approve"]')
    approve.scroll_into_view_if_needed()
    box = approve.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= narrow["width"], box
    console.shot(page, "81-phone-approval-detail")
    approve.click()
    expect(detail.locator('[data-test="approval-status"]')).to_have_text("已通过")
    expect(detail.locator('[data-test="trail-comment"]').filter(has_text=params["comment"])).to_have_count(1)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= narrow["width"] + 1, f"the approval is {width}px wide on a phone"
    console.shot(page, "82-phone-approval-approved")
    assert not page.console_errors, page.console_errors
    return {"scroll_width": width}


# --------------------------------------------------------------------------- console-admin:
# the rule form's dry run, webhook deliveries and replay, unlocking a locked account


def admin_dry_run_and_webhook(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """An admin drafts a rule in the form and dry-runs it on the recent events: the lead the
    test created is in the list and would act, with its task's title rendered; nothing is
    saved. Then a webhook subscription is created and its secret shown once."""
    page = console.sign_in("admin")
    page.goto(console.url + "/console/admin")
    page.get_by_role("tab", name="规则").click()
    page.locator('[data-test="new-rule"]').click()
    form = page.locator('[data-test="rule-form"]')
    form.locator("#rule-name").fill(params["rule"])
    lead_name = params["lead_name"]
    form.locator("#rule-conditions").fill(f'name == "{lead_name}"')
    dialog = page.locator(".el-dialog").filter(has=form)
    dialog.locator('[data-test="dry-recent"]').click()
    results = dialog.locator('[data-test="dry-results"]')
    expect(results.locator('[data-test="dry-summary"]')).to_contain_text("中有 1 个会触发动作")
    row = results.locator(".el-table__body tr").filter(has_text=params["record_key"])
    expect(row).to_have_count(1)
    expect(row.locator('[data-test="dry-would-act"]')).to_have_count(1)
    expect(row).to_contain_text(f'"跟进 {lead_name}"')
    results.scroll_into_view_if_needed()
    console.shot(page, "90-admin-rule-dry-run")
    dialog.get_by_role("button", name="取消").click()
    expect(form).to_be_hidden()

    page.get_by_role("tab", name="Webhook").click()
    hooks = page.locator('[data-test="webhook-form"]')
    hooks.locator("#hook-url").fill(params["hook_url"])
    hooks.locator("#hook-events").fill("leads.lead_created")
    hooks.locator("#hook-description").fill(params["hook_description"])
    hooks.locator('[data-test="create-webhook"]').click()
    secret = page.locator('[data-test="webhook-secret"]')
    expect(secret).to_contain_text("whsec_")
    expect(_row(page, "webhooks-table", params["hook_description"])).to_have_count(1)
    console.shot(page, "91-admin-webhook-created")
    assert not page.console_errors, page.console_errors
    return {"secret": secret.inner_text().split("whsec_", 1)[1].strip()}


def _try_sign_in(page: Page, username: str, password: str) -> None:
    page.locator("#signin-username").fill(username)
    page.locator("#signin-password").fill(password)
    page.get_by_role("button", name="登录").click()


def admin_deliveries_and_unlock(console: Console, params: dict[str, Any]) -> dict[str, Any]:
    """The admin opens the subscription's deliveries: the lead's event was delivered (status,
    attempts, the response code); it is replayed. A user locked by failed sign-ins cannot sign
    in; the admin unlocks the account and the user signs in."""
    page = console.sign_in("admin")
    page.goto(console.url + "/console/admin")
    page.get_by_role("tab", name="Webhook").click()
    _row(page, "webhooks-table", params["hook_description"]).locator(
        '[data-test="webhook-deliveries"]').click()
    dialog = page.locator(".el-dialog").filter(has=page.locator('[data-test="deliveries-table"]'))
    row = _rows(page, "deliveries-table").filter(has_text="leads.lead_created")
    expect(row).to_have_count(1)
    expect(row.locator('[data-test="delivery-status"]')).to_have_text("已送达")
    expect(row.locator("td").nth(4)).to_have_text("1")  # attempts
    expect(row.locator("td").nth(5)).to_have_text("200")  # the receiver's answer
    console.shot(page, "92-admin-webhook-deliveries")
    row.locator('[data-test="replay"]').click()
    expect(page.locator(".el-message").filter(has_text="已重新投递")).to_have_count(1)
    expect(dialog.locator(".error-alert")).to_have_count(0)
    dialog.locator(".el-dialog__headerbtn").click()

    # The locked user, in a browser of their own: refused with the time to wait.
    other = console.context_factory({"width": 1366, "height": 900})
    console.contexts.append(other)
    locked = other.pages[0] if other.pages else other.new_page()
    locked.goto(console.url + "/")
    _try_sign_in(locked, params["locked_user"], params["password"])
    expect(locked.get_by_role("alert")).to_contain_text("秒后重试")
    console.shot(locked, "93-sign-in-locked")

    page.get_by_role("tab", name="用户与团队").click()
    locked_flag = page.locator(f'[data-test="locked-{params["locked_user"]}"]')  # console-sales
    expect(locked_flag).to_have_text("已锁定")
    _row(page, "users-table", params["locked_user"]).locator('[data-test="unlock-user"]').click()
    expect(page.locator(".el-message").filter(has_text=f"已解除 {params['locked_user']} 的登录锁定")
           ).to_have_count(1)
    expect(locked_flag).to_have_text("否")  # console-sales: the list is read again
    console.shot(page, "94-admin-user-unlocked")
    # Another gateway worker may believe the block for a few seconds more (throttles.py).
    for _ in range(10):
        _try_sign_in(locked, params["locked_user"], params["password"])
        try:
            locked.wait_for_url("**/console/leads", timeout=3_000)
            break
        except Exception:  # noqa: BLE001 - still blocked in that worker: try again
            continue
    expect(locked.locator('[data-test="who"]')).to_contain_text(params["locked_display_name"])
    assert not page.console_errors, page.console_errors
    return {}


SCENARIOS: dict[str, Callable[[Console, dict[str, Any]], dict[str, Any]]] = {
    "rep_flow": rep_flow,
    "manager_view": manager_view,
    "other_team_rep": other_team_rep,
    "phone_screens": phone_screens,
    "outage": outage,
    "public_pool": public_pool,
    "admin_setup": admin_setup,
    "own_account": own_account,
    "phone_approval": phone_approval,
    # console-admin
    "admin_dry_run_and_webhook": admin_dry_run_and_webhook,
    "admin_deliveries_and_unlock": admin_deliveries_and_unlock,
    **DESK_SCENARIOS,
    **SCENARIOS_360,
    **SCENARIOS_BENCH,
}

from tests.e2e.console import scenarios_sales  # noqa: E402 - registered after the table

SCENARIOS.update(scenarios_sales.SCENARIOS)
