"""nameko entrypoints of the service_desk service: each loads its input with the contract's
schemas and calls one use case (services/service_desk/usecases/), whose result is a plain dict."""

from __future__ import annotations

from typing import Any

from nameko.timer import timer

from services.service_desk import clock as desk_clock
from services.service_desk.contract import (
    EVENT_SCHEMAS,
    TICKET_NUMBERS_PARAMS,
    AssignTicketSchema,
    CalendarWriteSchema,
    CheckSlaByIdSchema,
    CheckSlaSchema,
    ComputeClocksSchema,
    CsatAnswerSchema,
    CsatReportQuerySchema,
    CsatSurveyFiltersSchema,
    DeskKbDraftSchema,
    DeskQueueFiltersSchema,
    EscalateTicketSchema,
    KbArticleCreateSchema,
    KbArticleFiltersSchema,
    KbArticleUpdateSchema,
    KbCategoryCreateSchema,
    KbFeedbackCreateSchema,
    KbSearchQuerySchema,
    KbSuggestionRequestSchema,
    RouteTicketSchema,
    SlaPolicyWriteSchema,
    SlaPreviewSchema,
    SlaReorderSchema,
    TicketCreateSchema,
    TicketFiltersSchema,
    TicketFormSubmissionSchema,
    TicketFormWriteSchema,
    TicketGroupMoveSchema,
    TicketGroupWriteSchema,
    TicketMergeSchema,
    TicketNumbersFiltersSchema,
    TicketReplyCreateSchema,
    TicketRoutingReorderSchema,
    TicketRoutingRuleWriteSchema,
    TicketScopeSchema,
    TicketUpdateSchema,
)
from services.service_desk.models import inbox, outbox
from services.service_desk.smtp import smtp_intake, transport
from services.service_desk.usecases import (
    csat,
    desk_view,
    forms,
    group_moves,
    groups,
    kb,
    mail,
    mail_outbox,
    merging,
    numbers,
    outcomes_backfill,
    requesters,
    sla,
    sla_checks,
    tickets,
)
from shared import config
from shared.consumer import event_handler
from shared.context import CallContext, Context
from shared.db import Database
from shared.errors import ValidationFailed
from shared.inbox import first_delivery
from shared.kernel.schemas import PageSchema
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import ask, rpc, rpc_proxy

setup_logging("service_desk")

# Schemas are built once: constructing one costs more than loading a payload with it.
# SLA
calendar_create_schema = CalendarWriteSchema()
calendar_update_schema = CalendarWriteSchema(partial=True)
policy_create_schema = SlaPolicyWriteSchema()
policy_update_schema = SlaPolicyWriteSchema(partial=True)
reorder_schema = SlaReorderSchema()
compute_clocks_schema = ComputeClocksSchema()
preview_schema = SlaPreviewSchema()
check_sla_schema = CheckSlaSchema()
# SLA scheduling (rule commands)
check_sla_by_id_schema = CheckSlaByIdSchema()
escalate_schema = EscalateTicketSchema()
SLA_SWEEP_SECONDS = 1.0
OUTCOMES_BACKFILL_SECONDS = 2.0


# tickets: a call without scope is a trusted internal one (sees all)
ticket_create_schema = TicketCreateSchema()
ticket_update_schema = TicketUpdateSchema()
ticket_group_move_schema = TicketGroupMoveSchema()
ticket_reply_schema = TicketReplyCreateSchema()
ticket_filters_schema = TicketFiltersSchema()
page_schema = PageSchema()
scope_schema = TicketScopeSchema()  # with the caller's user_id (groups part)

# knowledge base
kb_category_schema = KbCategoryCreateSchema()
kb_article_create_schema = KbArticleCreateSchema()
kb_article_filters_schema = KbArticleFiltersSchema()
kb_article_update_schema = KbArticleUpdateSchema()
kb_search_schema = KbSearchQuerySchema()
kb_suggestion_schema = KbSuggestionRequestSchema()
kb_feedback_schema = KbFeedbackCreateSchema()

# CSAT
csat_answer_schema = CsatAnswerSchema()
csat_report_schema = CsatReportQuerySchema()
csat_survey_filters_schema = CsatSurveyFiltersSchema()

# numbers (sd-numbers)
numbers_filters_schema = TicketNumbersFiltersSchema()
numbers_params_schemas = {figure: schema() for figure, schema in TICKET_NUMBERS_PARAMS.items()}

# groups, routing and web forms
group_create_schema = TicketGroupWriteSchema()
group_update_schema = TicketGroupWriteSchema(partial=True)
routing_rule_create_schema = TicketRoutingRuleWriteSchema()
routing_rule_update_schema = TicketRoutingRuleWriteSchema(partial=True)
routing_reorder_schema = TicketRoutingReorderSchema()
route_ticket_schema = RouteTicketSchema()
assign_ticket_schema = AssignTicketSchema()
form_create_schema = TicketFormWriteSchema()
form_update_schema = TicketFormWriteSchema(partial=True)
form_submission_schema = TicketFormSubmissionSchema()
merge_schema = TicketMergeSchema()
desk_queue_schema = DeskQueueFiltersSchema()
desk_draft_schema = DeskKbDraftSchema()


# e-mail (part s-mail): how often the mail outbox is looked at
MAIL_SEND_INTERVAL = float(config.env("SERVICE_DESK_MAIL_SEND_INTERVAL", "0.5"))


def _ticket_scope(scope: dict | None) -> dict[str, Any]:
    return {"all": True} if scope is None else load(scope_schema, scope)


class ServiceDeskService(PlatformEndpoints):
    name = "service_desk"

    db = Database("service_desk")
    events = EventOutbox("service_desk", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()

    # -- SLA: business calendars and SLA policies ----

    @property
    def sla_ports(self) -> sla.SlaPorts:
        return sla.SlaPorts(self.db, self.events)

    @rpc
    def list_business_calendars(self) -> list[dict[str, Any]]:
        return sla.list_calendars(self.sla_ports)

    @rpc
    def get_business_calendar(self, calendar_id: str) -> dict[str, Any]:
        return sla.get_calendar(self.sla_ports, calendar_id)

    @rpc
    def create_business_calendar(self, data: dict) -> dict[str, Any]:
        return sla.create_calendar(self.sla_ports, load(calendar_create_schema, data))

    @rpc
    def update_business_calendar(self, calendar_id: str, data: dict) -> dict[str, Any]:
        """Change the given fields; an edited calendar applies to the next clock computation."""
        return sla.update_calendar(self.sla_ports, calendar_id, load(calendar_update_schema, data))

    @rpc
    def list_sla_policies(self) -> list[dict[str, Any]]:
        """In order: the first that matches a ticket applies."""
        return sla.list_policies(self.sla_ports)

    @rpc
    def get_sla_policy(self, policy_id: str) -> dict[str, Any]:
        return sla.get_policy(self.sla_ports, policy_id)

    @rpc
    def create_sla_policy(self, data: dict) -> dict[str, Any]:
        return sla.create_policy(self.sla_ports, load(policy_create_schema, data))

    @rpc
    def update_sla_policy(self, policy_id: str, data: dict) -> dict[str, Any]:
        return sla.update_policy(self.sla_ports, policy_id, load(policy_update_schema, data))

    @rpc
    def reorder_sla_policies(self, data: dict) -> list[dict[str, Any]]:
        return sla.reorder_policies(self.sla_ports, load(reorder_schema, data)["policy_ids"])

    @rpc
    def compute_clocks(self, data: dict) -> dict[str, Any]:
        """SLA clocks of a ticket's event log ({events, policy_id?, now?})."""
        values = load(compute_clocks_schema, data)
        return sla.compute_clocks(self.sla_ports, values["events"], values["policy_id"],
                                  values["now"])

    @rpc
    def sla_preview(self, data: dict) -> dict[str, Any]:
        """The policy and due instants a new ticket ({priority, customer_tier, start}) gets."""
        values = load(preview_schema, data)
        return sla.preview(self.sla_ports, values["priority"], values["customer_tier"],
                           values["start"])

    @rpc
    def check_sla(self, data: dict | None = None, ticket_id: str | None = None,
                  now: str | None = None, scope: dict | None = None,
                  command_id: str | None = None) -> dict[str, Any]:
        """Publish the warnings and breaches due by now for a ticket, each once; answer them
        and `next_check_at`. By id (the rule command: `ticket_id`, `now`, `scope`; the log is
        the ticket's own, and the next `ticket_sla_scheduled` follows) or with a log passed in
        (`data` = {ticket_id, events, policy_id?, now?}). `command_id` changes nothing: a
        repeat publishes nothing new anyway."""
        if data is None:
            values = load(check_sla_by_id_schema, {"ticket_id": ticket_id, "now": now})
            return sla_checks.check_sla(self, values["ticket_id"], values["now"],
                                        _ticket_scope(scope))
        values = load(check_sla_schema, data)
        return sla.check_sla(self.sla_ports, values["ticket_id"], values["events"],
                             values["policy_id"], values["now"])

    # -- SLA scheduling: the escalation command and the sweep ----

    @rpc
    def escalate_ticket(self, ticket_id: str, priority: str | None = None,
                        reason: str | None = None, scope: dict | None = None,
                        command_id: str | None = None) -> dict[str, Any]:
        """Raise the priority one step (or to `priority` if higher), never lower; a repeated
        `command_id` does nothing. Answers the ticket with `escalated`."""
        values = load(escalate_schema, {"ticket_id": ticket_id, "priority": priority,
                                        "reason": reason})
        return sla_checks.escalate_ticket(self, values["ticket_id"], values["priority"],
                                          values["reason"], _ticket_scope(scope), command_id)

    @timer(interval=SLA_SWEEP_SECONDS)
    def sla_sweep_timer(self) -> None:
        """After a policy or calendar change, every open ticket is rechecked (in batches)."""
        sla_checks.sweep_step(self)

    @timer(interval=OUTCOMES_BACKFILL_SECONDS)
    def outcomes_backfill_timer(self) -> None:
        """The numbers' rows of the tickets that have none (an installation upgraded past
        0011n), in batches, until done (usecases/outcomes_backfill.py)."""
        outcomes_backfill.run_for(self.db)

    # The rules service's controllable clock, followed in CRM_CLOCK=controllable mode only.
    rules = rpc_proxy("rules")

    @timer(interval=desk_clock.CLOCK_POLL_SECONDS)
    def follow_rules_clock(self) -> None:
        if desk_clock.controllable():
            desk_clock.follow(self.rules.get_clock()["offset_seconds"])

    # -- tickets ----

    # A ticket's customer_id is checked with sales, with the caller's scope.
    sales = rpc_proxy("sales")

    def _ask_sales(self, command: str, **kwargs: Any) -> Any:
        return ask("sales", self.sales, command, **kwargs)

    @rpc
    def create_ticket(self, data: dict, scope: dict | None = None) -> dict[str, Any]:
        """A new ticket (status new, number T-000123 without gaps); scope from the gateway. A
        `customer_id` must be a customer the caller sees in sales (else 422 on the field)."""
        return tickets.create_ticket(self, load(ticket_create_schema, data), _ticket_scope(scope),
                                     self._ask_sales)

    @rpc
    def get_ticket(self, ticket_id: str, scope: dict | None = None) -> dict[str, Any]:
        """The ticket with its `entries` (history and conversation), if the caller sees it."""
        return tickets.get_ticket(self, ticket_id, _ticket_scope(scope))

    @rpc
    def ticket_sla(self, ticket_id: str, scope: dict | None = None) -> dict[str, Any]:
        """The ticket's SLA policy and clocks now, if the caller sees the ticket (read only)."""
        return sla_checks.ticket_sla(self, ticket_id, _ticket_scope(scope))

    @rpc
    def list_tickets(self, filters: dict | None = None, scope: dict | None = None,
                     cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        """Tickets the caller sees, newest first; filters status, priority, assignee_id."""
        return tickets.list_tickets(self, load(ticket_filters_schema, filters or {}),
                                    _ticket_scope(scope),
                                    load(page_schema, {"cursor": cursor, "limit": limit}))

    @rpc
    def update_ticket(self, ticket_id: str, data: dict, scope: dict | None = None
                      ) -> dict[str, Any]:
        """Status (domain transitions: a refused move is a 412), priority, assignee, tags."""
        return tickets.update_ticket(self, ticket_id, load(ticket_update_schema, data),
                                     _ticket_scope(scope))

    @rpc
    def move_ticket_to_group(self, ticket_id: str, data: dict, scope: dict | None = None
                             ) -> dict[str, Any]:
        """`data.group_id` (and `reason`): the ticket moves there (usecases/group_moves.py)."""
        return group_moves.move_ticket_to_group(
            self, ticket_id, load(ticket_group_move_schema, data), _ticket_scope(scope))

    @rpc
    def add_ticket_reply(self, ticket_id: str, data: dict, scope: dict | None = None
                         ) -> dict[str, Any]:
        """A public reply or internal note; a customer's public reply reopens pending/solved."""
        return tickets.add_reply(self, ticket_id, load(ticket_reply_schema, data),
                                 _ticket_scope(scope))

    # -- knowledge base ----

    @rpc
    def kb_create_category(self, data: dict, principal: dict | None = None) -> dict:
        return kb.create_category(self, load(kb_category_schema, data), principal)

    @rpc
    def kb_list_categories(self) -> dict:
        return kb.list_categories(self)

    @rpc
    def kb_create_article(self, data: dict, principal: dict | None = None) -> dict:
        return kb.create_article(self, load(kb_article_create_schema, data), principal)

    @rpc
    def kb_create_article_from(self, title: str, body: str, source_ticket_id: str,
                               principal: dict | None = None) -> dict:
        data = load(kb_article_create_schema, {"title": title, "body": body})
        return kb.create_article_from(self, data["title"], data["body"], source_ticket_id,
                                      principal)

    @rpc
    def kb_get_article(self, article_id: str, principal: dict | None = None) -> dict:
        return kb.get_article(self, article_id, principal)

    @rpc
    def kb_list_articles(self, filters: dict | None = None, principal: dict | None = None,
                         cursor: str | None = None, limit: int = 50) -> dict:
        filters = load(kb_article_filters_schema, filters or {})
        return kb.list_articles(self, filters, principal,
                                load(page_schema, {"cursor": cursor, "limit": limit}))

    @rpc
    def kb_update_article(self, article_id: str, data: dict,
                          principal: dict | None = None) -> dict:
        return kb.update_article(self, article_id, load(kb_article_update_schema, data),
                                 principal)

    @rpc
    def kb_publish_article(self, article_id: str, principal: dict | None = None) -> dict:
        return kb.publish_article(self, article_id, principal)

    @rpc
    def kb_archive_article(self, article_id: str, principal: dict | None = None) -> dict:
        return kb.archive_article(self, article_id, principal)

    @rpc
    def kb_list_versions(self, article_id: str, principal: dict | None = None) -> dict:
        return kb.list_versions(self, article_id, principal)

    @rpc
    def kb_get_version(self, article_id: str, version: int,
                       principal: dict | None = None) -> dict:
        return kb.get_version(self, article_id, int(version), principal)

    @rpc
    def kb_search(self, query: dict, principal: dict | None = None) -> dict:
        q = load(kb_search_schema, query)
        return kb.search(self, q["q"], principal, q["limit"], q.get("status"),
                         q.get("category_id"))

    @rpc
    def kb_suggest(self, data: dict) -> dict:
        d = load(kb_suggestion_schema, data)
        return kb.suggest(self, d["subject"], d["text"], d["limit"])

    @rpc
    def kb_give_feedback(self, article_id: str, data: dict,
                         principal: dict | None = None) -> dict:
        d = load(kb_feedback_schema, data)
        return kb.give_feedback(self, article_id, d["helpful"], d.get("comment"), principal)

    # -- groups, routing and web forms (issue 17: groups part) ----

    @rpc
    def create_ticket_group(self, data: dict, principal: dict | None = None) -> dict:
        """A group (queue) with members, skills, capacities and a strategy."""
        return groups.create_group(self, load(group_create_schema, data), principal)

    @rpc
    def list_ticket_groups(self) -> list[dict[str, Any]]:
        return groups.list_groups(self)

    @rpc
    def get_ticket_group(self, group_id: str) -> dict[str, Any]:
        return groups.get_group(self, group_id)

    @rpc
    def update_ticket_group(self, group_id: str, data: dict,
                            principal: dict | None = None) -> dict:
        return groups.update_group(self, group_id, load(group_update_schema, data), principal)

    @rpc
    def delete_ticket_group(self, group_id: str, principal: dict | None = None) -> None:
        """Refused (409) while routing rules, forms or tickets refer to the group."""
        groups.delete_group(self, group_id, principal)

    @rpc
    def create_routing_rule(self, data: dict, principal: dict | None = None) -> dict:
        return groups.create_rule(self, load(routing_rule_create_schema, data), principal)

    @rpc
    def list_routing_rules(self) -> list[dict[str, Any]]:
        """In order: the first enabled rule that matches a ticket routes it."""
        return groups.list_rules(self)

    @rpc
    def get_routing_rule(self, rule_id: str) -> dict[str, Any]:
        return groups.get_rule(self, rule_id)

    @rpc
    def update_routing_rule(self, rule_id: str, data: dict,
                            principal: dict | None = None) -> dict:
        return groups.update_rule(self, rule_id, load(routing_rule_update_schema, data),
                                  principal)

    @rpc
    def delete_routing_rule(self, rule_id: str, principal: dict | None = None) -> None:
        groups.delete_rule(self, rule_id, principal)

    @rpc
    def reorder_routing_rules(self, data: dict, principal: dict | None = None) -> list:
        return groups.reorder_rules(self, load(routing_reorder_schema, data)["rule_ids"],
                                    principal)

    @rpc
    def route_ticket(self, ticket_id: str, scope: dict | None = None,
                     command_id: str | None = None) -> dict[str, Any]:
        """The rules' command: a group by the routing rules, then a member by the group's
        strategy; once per `command_id`."""
        values = load(route_ticket_schema, {"ticket_id": ticket_id, "command_id": command_id})
        return groups.route_ticket(self, values["ticket_id"], _ticket_scope(scope),
                                   values["command_id"])

    @rpc
    def assign_ticket(self, ticket_id: str, assignee_id: str, scope: dict | None = None,
                      command_id: str | None = None) -> dict[str, Any]:
        """Assign a ticket; once per `command_id`."""
        values = load(assign_ticket_schema, {"ticket_id": ticket_id,
                                             "assignee_id": assignee_id,
                                             "command_id": command_id})
        return groups.assign_ticket(self, values["ticket_id"], values["assignee_id"],
                                    _ticket_scope(scope), values["command_id"])

    @rpc
    def create_ticket_form(self, data: dict, principal: dict | None = None) -> dict:
        """A web form; the answer carries its token, this once."""
        return forms.create_form(self, load(form_create_schema, data), principal)

    @rpc
    def list_ticket_forms(self, principal: dict | None = None) -> list[dict[str, Any]]:
        return forms.list_forms(self, principal)

    @rpc
    def get_ticket_form(self, form_id: str, principal: dict | None = None) -> dict:
        return forms.get_form(self, form_id, principal)

    @rpc
    def update_ticket_form(self, form_id: str, data: dict,
                           principal: dict | None = None) -> dict:
        return forms.update_form(self, form_id, load(form_update_schema, data), principal)

    @rpc
    def rotate_ticket_form_token(self, form_id: str, principal: dict | None = None) -> dict:
        """A new token, answered this once; the old one stops working."""
        return forms.rotate_token(self, form_id, principal)

    @rpc
    def get_public_form(self, form_key: str) -> dict[str, Any]:
        """What a site's page needs to post the form, with a fresh fill-time stamp."""
        return forms.public_form(self, form_key)

    @rpc
    def submit_form_ticket(self, form_key: str, token: str | None, data: dict,
                           client_address: str, origin: str | None = None) -> dict:
        """A public post of a web form (the gateway's route without an API key)."""
        return forms.submit_form(self, form_key, token, load(form_submission_schema, data),
                                 str(client_address)[:100], origin)

    @rpc
    def merge_tickets(self, ticket_id: str, data: dict, scope: dict | None = None) -> dict:
        """Merge a duplicate ticket `into` another: it closes with a link; both keep a note."""
        return merging.merge_tickets(self, ticket_id, load(merge_schema, data)["into"],
                                     _ticket_scope(scope))
    # -- e-mail: the inbound listener, the mail outbox, attachments (part s-mail) ----

    @smtp_intake
    def receive_mail(self, raw: bytes, mail_from: str, rcpt_tos: tuple[str, ...]
                     ) -> dict[str, Any]:
        """One mail from the SMTP listener (SERVICE_DESK_SMTP_LISTEN): a new ticket or an entry
        of its thread's ticket; answered 250 only once committed."""
        return mail.receive(self, raw, mail_from, rcpt_tos)

    @timer(interval=MAIL_SEND_INTERVAL)
    def send_mail_outbox(self) -> None:
        """Send the public replies due by e-mail (with retries)."""
        while mail_outbox.deliver_due(self.db, transport()) >= mail_outbox.OUTBOX_BATCH:
            pass

    @rpc
    def list_ticket_attachments(self, ticket_id: str, scope: dict | None = None) -> dict:
        """The files that came with the ticket's mail, if the caller sees the ticket."""
        return {"items": mail.list_attachments(self, ticket_id, _ticket_scope(scope))}

    @rpc
    def get_ticket_attachment(self, ticket_id: str, attachment_id: str,
                              scope: dict | None = None) -> dict:
        """One attachment with its `content` (base64), if the caller sees the ticket."""
        return mail.get_attachment(self, ticket_id, attachment_id, _ticket_scope(scope))

    @rpc
    def list_ticket_mail(self, ticket_id: str, scope: dict | None = None) -> dict:
        """The ticket's outgoing mail (public replies) and how far each got."""
        return {"items": mail.outbox_state(self, ticket_id, _ticket_scope(scope))}

    # -- CSAT: satisfaction surveys ----

    @rpc
    def get_survey(self, token: str) -> dict[str, Any]:
        """What a survey link shows (public: the token is the credential)."""
        return csat.public_survey(self, str(token))

    @rpc
    def answer_survey(self, token: str, data: dict) -> dict[str, Any]:
        """The requester's one answer (409 when answered, 412 after 30 days)."""
        return csat.answer(self, str(token), load(csat_answer_schema, data))

    @rpc
    def csat_report(self, query: dict | None = None, scope: dict | None = None
                    ) -> dict[str, Any]:
        """Sent, answered, score, response rate, bad reasons per agent, group or month."""
        filters = load(csat_report_schema, query or {})
        return csat.report(self, filters.pop("group_by"), filters, _ticket_scope(scope))

    @rpc
    def list_surveys(self, filters: dict | None = None, scope: dict | None = None,
                     cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        """The surveys behind a figure of `csat_report`, newest first."""
        return csat.list_surveys(self, load(csat_survey_filters_schema, filters or {}),
                                 _ticket_scope(scope),
                                 load(page_schema, {"cursor": cursor, "limit": limit}))

    # -- numbers (sd-numbers): volume, backlog, times, SLA attainment, reopen rate ----

    def _numbers_filters(self, filters: dict | None) -> dict[str, Any]:
        return load(numbers_filters_schema, filters or {})

    @rpc
    def ticket_volume_report(self, filters: dict | None = None, scope: dict | None = None
                             ) -> dict[str, Any]:
        """Tickets created per period, by channel, priority and group."""
        return numbers.volume(self, self._numbers_filters(filters), _ticket_scope(scope))

    @rpc
    def ticket_backlog_report(self, filters: dict | None = None, scope: dict | None = None
                              ) -> dict[str, Any]:
        """Open tickets at each period's end, and now by status and age band."""
        return numbers.backlog(self, self._numbers_filters(filters), _ticket_scope(scope))

    @rpc
    def first_reply_time_report(self, filters: dict | None = None, scope: dict | None = None
                                ) -> dict[str, Any]:
        """First replies given in the period: business seconds p50 / p90 / average, buckets."""
        return numbers.durations(self, "first_reply", self._numbers_filters(filters),
                                 _ticket_scope(scope))

    @rpc
    def resolution_time_report(self, filters: dict | None = None, scope: dict | None = None
                               ) -> dict[str, Any]:
        """Tickets solved in the period: business seconds p50 / p90 / average, buckets."""
        return numbers.durations(self, "resolution", self._numbers_filters(filters),
                                 _ticket_scope(scope))

    @rpc
    def sla_attainment_report(self, filters: dict | None = None, scope: dict | None = None
                              ) -> dict[str, Any]:
        """Met / breached / open per SLA target, per policy, group and agent."""
        return numbers.sla_attainment(self, self._numbers_filters(filters),
                                      _ticket_scope(scope))

    @rpc
    def reopen_rate_report(self, filters: dict | None = None, scope: dict | None = None
                           ) -> dict[str, Any]:
        """Tickets solved in the period and reopened in it."""
        return numbers.reopen_rate(self, self._numbers_filters(filters), _ticket_scope(scope))

    @rpc
    def ticket_numbers_drill_down(self, figure: str, filters: dict | None = None,
                                  params: dict | None = None, scope: dict | None = None,
                                  cursor: str | None = None, limit: int = 50
                                  ) -> dict[str, Any]:
        """The tickets behind one figure, newest first (keyset cursor); `params` are the
        figure's own (contract.TICKET_NUMBERS_PARAMS)."""
        schema = numbers_params_schemas.get(str(figure))
        if schema is None:
            raise ValidationFailed.for_fields({"figure": [
                f"one of {', '.join(numbers_params_schemas)}"]})
        return numbers.drill_down(self, str(figure), self._numbers_filters(filters),
                                  load(schema, params or {}),
                                  _ticket_scope(scope),
                                  load(page_schema, {"cursor": cursor, "limit": limit}))

    @rpc
    def customer_tickets(self, customer_id: str, scope: dict | None = None,
                         limit: int = 10) -> dict[str, Any]:
        """The customer 360's part: open count and recent tickets with their SLA state."""
        return numbers.customer_tickets(self, str(customer_id), _ticket_scope(scope),
                                        max(1, min(int(limit), 50)))

    # -- requesters: the sales customers and contacts projection ----

    @event_handler("sales", "customer_created")
    def on_sales_customer_created(self, envelope: dict[str, Any]) -> None:
        self._project_sales(envelope)

    @event_handler("sales", "customer_updated")
    def on_sales_customer_updated(self, envelope: dict[str, Any]) -> None:
        self._project_sales(envelope)

    @event_handler("sales", "customer_merged")
    def on_sales_customer_merged(self, envelope: dict[str, Any]) -> None:
        self._project_sales(envelope)

    @event_handler("sales", "contact_created")
    def on_sales_contact_created(self, envelope: dict[str, Any]) -> None:
        self._project_sales(envelope)

    @event_handler("sales", "contact_updated")
    def on_sales_contact_updated(self, envelope: dict[str, Any]) -> None:
        self._project_sales(envelope)

    def _project_sales(self, envelope: dict[str, Any]) -> None:
        handler = f"service_desk.requesters.{envelope['event_type']}"
        with self.db.begin() as session:
            if first_delivery(session, inbox, envelope["event_id"], handler):
                requesters.project(self, session, envelope["event_type"],
                                   envelope.get("data") or {})

    # the agents' desk in the console

    @rpc
    def desk_queue(self, filters: dict | None = None, scope: dict | None = None,
                   cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        """The queue (view mine / groups / unassigned / all, filters, `q`), each ticket with
        its SLA state; the scope's `user_id` is the caller (mine, and an admin's groups)."""
        return desk_view.queue(self, load(desk_queue_schema, filters or {}),
                               _ticket_scope(scope),
                               load(page_schema, {"cursor": cursor, "limit": limit}))

    @rpc
    def desk_kb_draft(self, ticket_id: str, data: dict | None = None,
                      scope: dict | None = None, principal: dict | None = None) -> dict:
        """A draft article from a solved ticket (title and body default from the ticket)."""
        return desk_view.draft_article(self, ticket_id, load(desk_draft_schema, data or {}),
                                       _ticket_scope(scope), principal)
