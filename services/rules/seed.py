"""The shipped rules, installed as ordinary rules (editable, versioned) for the demo organisation.

    python -m services.rules.seed        # idempotent: installs what is missing, upgrades
                                         # what nobody changed, keeps (and flags) edits

Teams are named ("华东销售部", "华南销售部") and resolved at run time against the directory
projection, so the seed needs no ids.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from services.rules.domain.rules import validate_definition
from shared import config
from shared.db import get_engine
from shared.migrations import upgrade

EAST, SOUTH = "华东销售部", "华南销售部"
TERRITORIES = {"华东": EAST, "华南": SOUTH}
FOLLOW_UPS = ["leads.lead_status_changed", "leads.lead_behaviour_recorded",
              "sales.followup_recorded"]
CLOSED = '["converted", "disqualified"]'

SHIPPED_RULES: list[dict[str, Any]] = [
    {
        "key": "website-lead-call-now",
        "name": "官网线索：立即分配并电话跟进",
        "description": "A new lead from the website is assigned within seconds (territory by "
                       "region, round-robin in the team) and its owner gets a 'call now' task "
                       "due in 15 minutes.",
        "trigger": {"type": "event", "event": "leads.lead_created"},
        "conditions": 'source == "website" and owner_id == None',
        "actions": [
            {"type": "assign", "strategy": "round_robin", "territories": TERRITORIES,
             "team": EAST},
            {"type": "create_task", "title": "立即致电：{{ lead.name }}"
                                              "{% if lead.company %}（{{ lead.company }}）"
                                              "{% endif %}",
             "description": "官网新线索，请在 15 分钟内电话联系。电话：{{ lead.phone or '-' }}，"
                            "邮箱：{{ lead.email or '-' }}",
             "due_in": "15m", "assignee": "owner", "priority": "high"},
            {"type": "notify", "to": ["owner"], "channels": ["in_app", "email"],
             "title": "新线索：{{ lead.name }}，请立即致电",
             "body": "{{ lead.name }}{% if lead.company %}（{{ lead.company }}）{% endif %}"
                     "来自官网，已分配给您。请在 15 分钟内电话联系：{{ lead.phone or '-' }}"},
        ],
    },
    {
        "key": "lead-untreated-72h",
        "name": "线索 72 小时未处理提醒",
        "description": "A lead still untreated (status new) 72 hours after creation: a task "
                       "for its owner and an email to the owner and the owner's manager.",
        "trigger": {"type": "delay", "events": ["leads.lead_created"], "delay": "72h",
                    "unless": ["leads.lead_status_changed"], "record": "lead"},
        "conditions": 'status == "new" and owner_id != None',
        "actions": [
            {"type": "create_task", "title": "72 小时未处理：{{ lead.name }}",
             "description": "该线索创建已超过 72 小时仍未处理，请尽快联系。",
             "due_in": "1d", "assignee": "owner", "priority": "high"},
            {"type": "notify", "to": ["owner", "owner_manager"], "channels": ["email", "in_app"],
             "title": "线索 72 小时未处理：{{ lead.name }}",
             "body": "线索 {{ lead.name }}{% if lead.company %}（{{ lead.company }}）{% endif %}"
                     "创建已超过 72 小时，仍为新建状态。负责人：{{ owner.display_name or '-' }}。"},
        ],
    },
    {
        "key": "pool-unworked-30d-warning",
        "name": "公海预警：分配 27 天未跟进",
        "description": "Three days before an assigned, never-worked lead returns to the pool, "
                       "its owner is warned.",
        "trigger": {"type": "delay", "events": ["leads.lead_assigned"], "delay": "27d",
                    "unless": [*FOLLOW_UPS, "leads.lead_released", "leads.lead_claimed"],
                    "record": "lead"},
        "conditions": 'owner_id != None and status == "new"',
        "actions": [
            {"type": "notify", "to": ["owner"], "channels": ["in_app", "email"],
             "title": "3 天后退回公海：{{ lead.name }}",
             "body": "线索 {{ lead.name }} 分配后一直未跟进，3 天后将自动退回公海。"},
        ],
    },
    {
        "key": "pool-unworked-30d",
        "name": "公海回收：分配 30 天无人跟进",
        "description": "A lead assigned to an owner that nobody takes up (no status change, "
                       "behaviour or follow-up) in 30 days returns to the public pool; the "
                       "sales manager is notified.",
        "trigger": {"type": "delay", "events": ["leads.lead_assigned"], "delay": "30d",
                    "unless": [*FOLLOW_UPS, "leads.lead_released", "leads.lead_claimed"],
                    "record": "lead"},
        "conditions": 'owner_id != None and status == "new"',
        "actions": [
            {"type": "call", "service": "leads", "method": "release_lead",
             "args": {"reason": "分配 30 天无人跟进，自动退回公海"}},
            {"type": "notify", "to": ["owner_manager", "owner"], "channels": ["in_app", "email"],
             "title": "线索已退回公海：{{ lead.name }}",
             "body": "线索 {{ lead.name }}（原负责人 {{ owner.display_name or '-' }}）"
                     "分配 30 天无人跟进，已自动退回公海。"},
        ],
    },
    {
        "key": "pool-no-followup-7d-warning",
        "name": "公海预警：4 天未跟进",
        "description": "Three days before a worked lead returns to the pool for lack of "
                       "follow-up, its owner is warned.",
        "trigger": {"type": "delay", "events": ["leads.lead_claimed", *FOLLOW_UPS],
                    "delay": "4d", "unless": ["leads.lead_released", "leads.lead_assigned"],
                    "record": "lead"},
        "conditions": f"owner_id != None and status not in {CLOSED}",
        "actions": [
            {"type": "notify", "to": ["owner"], "channels": ["in_app", "email"],
             "title": "3 天后退回公海：{{ lead.name }}",
             "body": "线索 {{ lead.name }} 已 4 天没有跟进记录，3 天后将自动退回公海。"},
        ],
    },
    {
        "key": "pool-no-followup-7d",
        "name": "公海回收：领取后 7 天未跟进",
        "description": "A claimed (or worked) lead with no follow-up for 7 days returns to the "
                       "public pool; the sales manager is notified. Each follow-up restarts "
                       "the 7 days.",
        "trigger": {"type": "delay", "events": ["leads.lead_claimed", *FOLLOW_UPS],
                    "delay": "7d", "unless": ["leads.lead_released", "leads.lead_assigned"],
                    "record": "lead"},
        "conditions": f"owner_id != None and status not in {CLOSED}",
        "actions": [
            {"type": "call", "service": "leads", "method": "release_lead",
             "args": {"reason": "7 天未跟进，自动退回公海"}},
            {"type": "notify", "to": ["owner_manager", "owner"], "channels": ["in_app", "email"],
             "title": "线索已退回公海：{{ lead.name }}",
             "body": "线索 {{ lead.name }}（原负责人 {{ owner.display_name or '-' }}）"
                     "7 天未跟进，已自动退回公海。"},
        ],
    },
    {
        "key": "sql-assign-notify",
        "name": "SQL 线索：分配并通知",
        "description": "A lead whose score crosses the SQL threshold is assigned (if it has "
                       "no owner yet: least loaded in the territory's team) and its owner is "
                       "notified.",
        "trigger": {"type": "event", "event": "leads.lead_qualified"},
        "conditions": 'qualification == "sql"',
        "actions": [
            {"type": "assign", "strategy": "least_loaded", "territories": TERRITORIES,
             "team": EAST, "only_unowned": True},
            {"type": "notify", "to": ["owner"], "channels": ["in_app", "email"],
             "title": "SQL 线索：{{ lead.name }}（{{ lead.score }} 分）",
             "body": "线索 {{ lead.name }} 评分 {{ lead.score }}，已达到 SQL 标准，请优先跟进。"},
        ],
    },    # -- service desk groups (issue 17): every new unassigned ticket is routed ----
    {
        "key": "ticket-route-new",
        "name": "工单自动分派：路由到组并分配",
        "description": "A new ticket without an assignee is routed by the service desk: its "
                       "group by the routing rules (type, category, product, customer tier, "
                       "language; else the default group), then a member by the group's "
                       "strategy (round-robin, least loaded, skills). Exactly once per event.",
        "trigger": {"type": "event", "event": "service_desk.ticket_created"},
        "conditions": "assignee_id == None",
        "actions": [
            {"type": "call", "service": "service_desk", "method": "route_ticket"},
        ],
    },
    # -- contracts: overdue instalments and renewals ----
    {
        "key": "contract-instalment-overdue",
        "name": "回款逾期提醒",
        "description": "An instalment of a contract falls overdue (contracts.instalment_overdue, "
                       "once per instalment): its owner gets an email and an in-app "
                       "notification with the contract number, the amount outstanding and "
                       "the due date.",
        "trigger": {"type": "event", "event": "contracts.instalment_overdue"},
        "conditions": "owner_id != None",
        "actions": [
            {"type": "notify", "to": ["owner"], "channels": ["email", "in_app"],
             "title": "回款逾期：合同 {{ instalment.contract_number }} 第 {{ instalment.seq }} 期",
             "body": "合同 {{ instalment.contract_number }}"
                     "{% if instalment.contract_title %}（{{ instalment.contract_title }}）"
                     "{% endif %}第 {{ instalment.seq }} 期回款已逾期 "
                     "{{ instalment.days_overdue }} 天：应收日期 {{ instalment.due_date }}，"
                     "未收金额 {{ instalment.outstanding }} {{ instalment.currency or 'CNY' }}。"
                     "请尽快跟进客户付款。"},
        ],
    },
    {
        "key": "instalment-overdue-7d-escalation",
        "name": "回款逾期 7 天升级",
        "description": "An overdue instalment still not paid 7 days later (no instalment_paid "
                       "for it): the owner's manager is told by email and in-app.",
        "trigger": {"type": "delay", "events": ["contracts.instalment_overdue"], "delay": "7d",
                    "unless": ["contracts.instalment_paid"], "record": "instalment"},
        "conditions": 'status == "overdue"',
        "actions": [
            {"type": "notify", "to": ["owner_manager"], "channels": ["email", "in_app"],
             "title": "回款逾期升级：合同 {{ instalment.contract_number }} "
                      "第 {{ instalment.seq }} 期",
             "body": "合同 {{ instalment.contract_number }} 第 {{ instalment.seq }} 期回款"
                     "（应收日期 {{ instalment.due_date }}，未收金额 "
                     "{{ instalment.outstanding }} {{ instalment.currency or 'CNY' }}）"
                     "逾期已超过 7 天仍未收回。负责人：{{ owner.display_name or '-' }}。"},
        ],
    },
    {
        "key": "contract-renewal-reminder-30d",
        "name": "合同到期前 30 天续约提醒",
        "description": "30 days before an active contract's end date (from contract_signed) "
                       "its owner gets a renewal task and an email; a contract renewed or "
                       "terminated by then (its status is no longer active) gets none.",
        "trigger": {"type": "date", "events": ["contracts.contract_signed"],
                    "field": "end_date", "offset_days": -30, "at": "09:00",
                    "record": "contract"},
        "conditions": 'status == "active" and owner_id != None',
        "actions": [
            {"type": "create_task", "title": "续约跟进：合同 {{ contract.number }}",
             "description": "合同 {{ contract.number }}"
                            "{% if contract.title %}（{{ contract.title }}）{% endif %}"
                            "将于 {{ contract.end_date }} 到期，请与客户沟通续约。",
             "due_in": "7d", "assignee": "owner", "priority": "high"},
            {"type": "notify", "to": ["owner"], "channels": ["email", "in_app"],
             "title": "续约提醒：合同 {{ contract.number }} 将于 {{ contract.end_date }} 到期",
             "body": "合同 {{ contract.number }}"
                     "{% if contract.title %}（{{ contract.title }}）{% endif %}"
                     "将于 {{ contract.end_date }} 到期（金额 {{ contract.amount }} "
                     "{{ contract.currency or 'CNY' }}），请在 30 天内完成续约。"},
        ],
    },
    # -- service_desk SLA (issue 17): timers at the scheduled instants, warnings, breaches ----
    {
        "key": "ticket-sla-check",
        "name": "工单 SLA：到点检查",
        "description": "At each instant a ticket's SLA schedule names (a warning threshold or "
                       "a breach), service_desk checks the ticket's clocks and publishes the "
                       "warnings and breaches due. One timer per ticket: each schedule replaces "
                       "it, an older one (lower sequence) arriving late does not.",
        "trigger": {"type": "date", "events": ["service_desk.ticket_sla_scheduled"],
                    "field": "next_check_at", "at": "exact", "record": "ticket",
                    "sequence": "sequence"},
        "conditions": "",
        "actions": [
            {"type": "call", "service": "service_desk", "method": "check_sla",
             "args": {"now": "{{ now }}"}},
        ],
    },
    {
        "key": "ticket-sla-warning",
        "name": "工单 SLA 预警：通知处理人",
        "description": "A ticket's SLA target passed a warning threshold: its assignee is "
                       "notified in the app and by e-mail.",
        "trigger": {"type": "event", "event": "service_desk.ticket_sla_warning"},
        "conditions": "",
        "actions": [
            {"type": "notify", "to": ["owner"], "channels": ["in_app", "email"],
             "title": "SLA 预警：{{ ticket.number }} {{ ticket.subject }}",
             "body": "工单 {{ ticket.number }}（{{ ticket.priority }}）的 SLA 即将到期，"
                     "请尽快处理。"},
        ],
    },
    {
        "key": "ticket-sla-breached",
        "name": "工单 SLA 超时：通知处理人与主管并升级",
        "description": "A ticket's SLA target fell due unmet: its assignee, the assignee's "
                       "manager and the manager of the ticket's group (the event's "
                       "group_manager_id) are notified (in the app and by e-mail) and its "
                       "priority is raised one step.",
        "trigger": {"type": "event", "event": "service_desk.ticket_sla_breached"},
        "conditions": "",
        "actions": [
            {"type": "notify", "to": ["owner", "owner_manager", "field:group_manager_id"],
             "channels": ["in_app", "email"],
             "title": "SLA 超时：{{ ticket.number }} {{ ticket.subject }}",
             "body": "工单 {{ ticket.number }}（{{ ticket.priority }}）已超出 SLA 时限，"
                     "优先级已升级。"},
            {"type": "call", "service": "service_desk", "method": "escalate_ticket",
             "args": {"reason": "SLA breached"}},
        ],
    },
    # -- contract approval: approvers notified, and escalation of an undecided step ----
    {
        "key": "approval-requested-notify",
        "name": "待审批通知",
        "description": "Whoever an approval step now waits for (contracts' "
                       "approval_requested: a step opened, or a delegation) is notified in "
                       "app; an escalation is notified by approval-step-escalation instead.",
        "trigger": {"type": "event", "event": "contracts.approval_requested"},
        "conditions": "not escalated",
        "actions": [
            {"type": "notify", "to": ["field:approver_ids"], "channels": ["in_app"],
             "title": "待审批：{{ record.step_name }}",
             "body": "{{ record.record_type }} {{ record.record_id }} 的审批"
                     "（步骤「{{ record.step_name }}」）等待您的处理。"},
        ],
    },
    {
        "key": "approval-step-escalation",
        "name": "审批超时升级",
        "description": "An approval step not decided within its business hours "
                       "(`escalate_after_hours` of the flow's step; contracts publishes "
                       "`approval_step_started` with `escalate_at`) is escalated: contracts' "
                       "escalate_approval_step adds the escalation approver (the waiting "
                       "approvers' manager or a named user) and answers who it is, who is "
                       "then notified. A step decided by then is left alone (the command "
                       "answers so, and nobody is notified).",
        "trigger": {"type": "date", "events": ["contracts.approval_step_started"],
                    "field": "escalate_at", "at": "exact", "record": "approval"},
        "conditions": "",
        "actions": [
            {"type": "call", "service": "contracts", "method": "escalate_approval_step",
             "args": {"step": "{{ record.step }}"}},
            {"type": "notify", "to": ["owner"], "channels": ["in_app", "email"],
             "title": "审批超时，请处理：{{ record.step_name }}",
             "body": "审批 {{ record.id }}（{{ record.record_type }} {{ record.record_id }}）"
                     "的步骤「{{ record.step_name }}」在规定的工作时间内未处理，已升级给您审批。"},
        ],
    },
]


def install(url: str | None = None, shipped_rules: list[dict[str, Any]] | None = None
            ) -> dict[str, str]:
    """Install the shipped rules that are missing (by key), upgrade those nobody changed
    since they were installed to what is shipped now, and leave those an admin changed as
    they are, offering the new shipped definition to admins (`update_available`); returns
    key -> installed / present / upgraded / update_available / edited
    (services/rules/domain/shipped.py)."""
    from sqlalchemy.orm import Session

    from services.rules import clock as clock_module
    from services.rules.domain import timing
    from services.rules.usecases.shipped import install_shipped
    from services.rules.usecases.support import Settings, check_template
    from services.rules.usecases.timers import Timers

    url = url or config.database_url("rules")
    upgrade("rules", url)
    shipped_rules = SHIPPED_RULES if shipped_rules is None else shipped_rules
    for shipped in shipped_rules:
        definition = {key: shipped[key] for key in ("trigger", "conditions", "actions")}
        problems = validate_definition(definition, check_template)
        if problems:
            raise ValueError(f"shipped rule {shipped['key']} is invalid: {problems}")
    clock = clock_module.CLOCK
    timers = Timers(clock, timing.zone(Settings.from_env().timezone))
    with Session(get_engine(url)) as session, session.begin():
        if clock.controllable:
            clock.refresh(session)
        return install_shipped(session, shipped_rules, clock.now(), timers)


def main() -> None:
    print(json.dumps(install(), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
    sys.exit(0)
