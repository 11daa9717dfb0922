"""The one list of the CRM's services and what the rest of the system needs to know of each.

Read by deploy/devctl.py (what to start, on which port, what to seed), deploy/generate.py (the
Procfile, the Kubernetes manifests and the migrate job), shared/catalogue.py (whose events),
the gateway (which resource modules, which RPC commands exist) and the rules service (which
services it has RPC clients for, which commands a rule may call, which record types there are).
Adding a service is a folder, one `Service` entry below and a gateway resource module: see
docs/adding-a-service.md.

Standard library only: devctl imports this module before the virtualenv exists.

Services outside this file (an out-of-tree service, or a test's throw-away one) are added with
`CRM_EXTRA_SERVICES=<module>[,<module>...]`: each module defines `SERVICES`, a sequence of
`Service` entries, and must itself import only the standard library and this module.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

EXTRA_SERVICES_ENV = "CRM_EXTRA_SERVICES"

GATEWAY = "gateway"
# The gateway's own resource modules (health, identity), registered before the services' ones.
GATEWAY_RESOURCES: tuple[str, ...] = (
    "services.gateway.resources.system",
    "services.gateway.identity.resources",
)
GATEWAY_EVENTS = "services.gateway.events"


@dataclass(frozen=True)
class RecordType:
    """A kind of record a service owns. `link_field` is the foreign key (`lead_id`) by which an
    event about another record concerns one of these; None when no event links to it by id."""

    name: str
    link_field: str | None = None
    # The field of its snapshot naming the person responsible: a rule's `owner` (recipients,
    # task assignee, `owner_manager`). A ticket's is its `assignee_id`.
    owner_field: str = "owner_id"


@dataclass(frozen=True)
class RuleCommand:
    """A command a rule may call: the record type it acts on (its id is passed as
    `<record type>_id`) and the other arguments a rule may pass. `takes_command_id`: the
    command takes a `command_id` keyword and does nothing on a repeat with the same one, so
    the rules service passes `rules:<run id>:<action index>` and a run resumed after a crash
    (or a retried call whose reply was lost) has the command's effect once."""

    acts_on: str
    args: tuple[str, ...] = ()
    takes_command_id: bool = False


@dataclass(frozen=True)
class Service:
    """One nameko service. `package` defaults to `services.<name>`; the module paths below are
    derived from it unless given."""

    name: str
    port: int  # its HTTP port (/health, /metrics) on one machine; fixed so it never moves
    planned: bool = False  # designed and given a port, but its folder does not exist yet
    # Every @rpc method of its service class, the ones only the gateway calls included.
    commands: tuple[str, ...] = ()
    # The commands a rule may call (a subset of `commands`), by command name.
    rule_commands: Mapping[str, RuleCommand] = field(default_factory=dict)
    records: tuple[RecordType, ...] = ()
    events: bool = True  # it publishes events with schemas in `<package>.<events_in>`
    # The module with its EVENT_SCHEMAS: `contract` in the service template of issue 15.
    events_in: str = "events"
    database: bool = True  # it keeps a database migrated from `<package>/migrations`
    seed: str | None = None  # a module `python -m` runs for its demo data, after the gateway's
    gateway_resources: tuple[str, ...] = ()  # modules with a flask-smorest `blp`
    # Its queue receives every event (rules): started first, so no event goes unseen.
    receives_all_events: bool = False
    package: str = ""

    @property
    def module_root(self) -> str:
        return self.package or f"services.{self.name}"

    @property
    def class_name(self) -> str:
        return self.name.title().replace("_", "") + "Service"

    @property
    def target(self) -> str:
        """What `nameko run` runs: `services.<name>.service:<Name>Service`. The class is named
        because a bare module would also pick up imported mixins with entrypoints."""
        return f"{self.module_root}.service:{self.class_name}"

    @property
    def events_module(self) -> str | None:
        return f"{self.module_root}.{self.events_in}" if self.events else None


# In this order: ports ascend with it for the services of today, and it is the order of the
# record types (which the rules service tries in turn on an event's data) and of the gateway's
# resources (which is the order of the OpenAPI document).
BUILT_IN: tuple[Service, ...] = (
    Service(
        "leads", 8101,
        commands=(
            "ping", "create_lead", "get_lead", "list_leads", "change_status", "assign_lead",
            "claim_lead", "release_lead", "merge_leads", "record_behaviour",
            "get_scoring_model", "set_scoring_model",
        ),
        rule_commands={
            "release_lead": RuleCommand("lead", ("reason",), takes_command_id=True),
            "change_status": RuleCommand("lead", ("status", "reason"),
                                         takes_command_id=True),
            "assign_lead": RuleCommand("lead", ("owner_id",), takes_command_id=True),
        },
        records=(RecordType("lead", "lead_id"),),
        events_in="contract",
        gateway_resources=("services.gateway.resources.leads",),
    ),
    Service(
        "sales", 8102,
        commands=(
            "ping",
            # customers and contacts
            "create_customer", "get_customer", "list_customers", "update_customer",
            "merge_customers", "find_duplicate_customers", "tag_customer", "assign_customer",
            "customer_insights", "create_contact", "get_contact", "list_contacts",
            "update_contact", "record_followup", "list_followups", "convert_lead",
            # pipelines and opportunities
            "create_pipeline", "get_pipeline", "list_pipelines", "update_pipeline",
            "create_opportunity", "get_opportunity", "list_opportunities",
            "update_opportunity", "move_opportunity", "opportunity_board",
            # numbers: custom fields, quotas, reports, imports and exports
            "define_custom_field", "list_custom_fields", "update_custom_field", "set_quota",
            "list_quotas", "quota_performance", "funnel", "forecast", "forecast_accuracy",
            "take_forecast_snapshot", "list_forecast_snapshots", "channel_conversion",
            "dormant_customers", "drill_down", "start_import", "get_import", "export",
        ),
        rule_commands={
            "move_opportunity": RuleCommand("opportunity", ("stage_id", "reason"),
                                            takes_command_id=True),
            "assign_customer": RuleCommand("customer", ("owner_id",), takes_command_id=True),
        },
        records=(
            RecordType("customer", "customer_id"),
            RecordType("contact", "contact_id"),
            RecordType("opportunity", "opportunity_id"),
            RecordType("followup"),
        ),
        gateway_resources=(
            "services.gateway.resources.sales",
            "services.gateway.resources.sales_numbers",
        ),
    ),
    Service(
        "service_desk", 8104,
        commands=(
            "ping",
            # sla
            "list_business_calendars", "get_business_calendar", "create_business_calendar",
            "update_business_calendar", "list_sla_policies", "get_sla_policy",
            "create_sla_policy", "update_sla_policy", "reorder_sla_policies", "compute_clocks",
            "sla_preview", "check_sla",
            # sla scheduling
            "escalate_ticket",
            # knowledge base
            "kb_create_category", "kb_list_categories", "kb_create_article",
            "kb_create_article_from", "kb_get_article", "kb_list_articles",
            "kb_update_article", "kb_publish_article", "kb_archive_article",
            "kb_list_versions", "kb_get_version", "kb_search", "kb_suggest",
            "kb_give_feedback",
            # tickets
            "create_ticket", "get_ticket", "ticket_sla", "list_tickets", "update_ticket",
            "add_ticket_reply",
            # groups, routing and web forms
            "create_ticket_group", "list_ticket_groups", "get_ticket_group",
            "update_ticket_group", "delete_ticket_group", "create_routing_rule",
            "list_routing_rules", "get_routing_rule", "update_routing_rule",
            "delete_routing_rule", "reorder_routing_rules", "route_ticket", "assign_ticket",
            "create_ticket_form", "list_ticket_forms", "get_ticket_form", "update_ticket_form",
            "rotate_ticket_form_token", "get_public_form", "submit_form_ticket",
            "merge_tickets", "move_ticket_to_group",
            # e-mail
            "list_ticket_attachments", "get_ticket_attachment", "list_ticket_mail",
            # csat
            "get_survey", "answer_survey", "csat_report", "list_surveys",
            "ticket_volume_report", "ticket_backlog_report", "first_reply_time_report",
            "resolution_time_report", "sla_attainment_report", "reopen_rate_report",
            "ticket_numbers_drill_down", "customer_tickets",
            # the agents' desk in the console
            "desk_queue", "desk_kb_draft",
        ),
        rule_commands={
            # groups: routing (group, then member) and assignment, exactly once
            "route_ticket": RuleCommand("ticket", (), takes_command_id=True),
            "assign_ticket": RuleCommand("ticket", ("assignee_id",), takes_command_id=True),
            # sla scheduling: the timer's check at a scheduled instant, the breach's escalation
            "check_sla": RuleCommand("ticket", ("now",), takes_command_id=True),
            "escalate_ticket": RuleCommand("ticket", ("priority", "reason"),
                                           takes_command_id=True),
        },
        records=(RecordType("ticket", "ticket_id", owner_field="assignee_id"),),
        events_in="contract",
        gateway_resources=(
            "services.gateway.resources.service_desk_sla",  # sla
            "services.gateway.resources.service_desk_kb",  # knowledge base
            "services.gateway.resources.service_desk_tickets",  # tickets
            "services.gateway.resources.service_desk_groups",  # groups, routing, web forms
            "services.gateway.resources.service_desk_forms_public",  # groups: public forms
            "services.gateway.resources.service_desk_mail",  # e-mail
            "services.gateway.resources.service_desk_csat",  # csat
            "services.gateway.resources.service_desk_numbers",
            "services.gateway.resources.service_desk_desk",
        ),
    ),
    Service(
        "contracts", 8103,
        commands=(
            "ping",
            # approvals
            "define_approval_flow", "update_approval_flow", "get_approval_flow",
            "list_approval_flows", "submit_for_approval", "decide_approval", "recall_approval",
            "delegate_approval", "get_approval", "list_my_approvals", "current_approval",
            "verify_approval", "set_approval_absence",
            # pdf
            "create_print_template", "update_print_template", "get_print_template",
            "list_print_templates", "preview_print_template", "render_quote_pdf", "quote_pdf",
            # quotes
            "create_product", "update_product", "get_product", "list_products",
            "create_price_book", "update_price_book", "get_price_book", "list_price_books",
            "create_quote", "update_quote", "get_quote", "list_quote_versions", "list_quotes",
            "revise_quote", "submit_quote", "mark_quote_sent", "reject_quote", "accept_quote",
            # contracts
            "create_contract",
            # contracts (RPC)
            "get_contract", "list_contracts", "sign_contract", "terminate_contract",
            "set_payment_plan", "get_payment_plan", "record_receipt", "list_receipts",
            "contract_receivables",
            # erp: invoices, orders
            "record_invoice", "list_invoices", "void_invoice", "get_contract_order",
            # overdue and renewals
            "mark_overdue", "renew_contract",
            # attachments
            "add_contract_attachment", "list_contract_attachments", "get_contract_attachment",
            "remove_contract_attachment",
            # numbers
            "collection_report", "aging_report", "dso_report", "quote_win_rate",
            "approval_cycle_times", "numbers_drill_down", "customer_summary",
            # contract approval
            "submit_contract", "update_contract", "contract_approval_terms",
            "set_standard_clauses", "get_standard_clauses", "escalate_approval_step",
        ),
        rule_commands={
            # contract approval: the escalation timer of an undecided approval step
            "escalate_approval_step": RuleCommand("approval", ("step",),
                                                  takes_command_id=True),
        },
        records=(
            RecordType("contract", "contract_id"),
            RecordType("quote", "quote_id"),
            RecordType("order", "order_id"),
            RecordType("instalment", "instalment_id"),  # overdue and renewals
            RecordType("approval", "approval_id"),  # contract approval
        ),
        events_in="contract",
        gateway_resources=(
            "services.gateway.resources.contracts_approvals",  # approvals
            "services.gateway.resources.contracts_print",  # pdf
            "services.gateway.resources.contracts_quotes",  # quotes
            "services.gateway.resources.contracts_contracts",  # contracts
            "services.gateway.resources.contracts_invoices",  # erp: invoices, orders
            "services.gateway.resources.contracts_renewals",  # overdue and renewals
            "services.gateway.resources.contracts_attachments",  # attachments
            "services.gateway.resources.contracts_numbers",  # numbers
            "services.gateway.resources.contracts_contract_approval",  # contract approval
        ),
    ),
    Service(
        "rules", 8105,
        commands=(
            "ping",
            "create_rule", "get_rule", "list_rules", "update_rule", "set_rule_enabled",
            "adopt_shipped_rule",
            "dry_run", "list_runs", "get_run",
            "create_task", "get_task", "list_tasks", "complete_task", "reassign_task",
            "snooze_task", "list_notifications", "mark_notification_read",
            "create_webhook", "get_webhook", "list_webhooks", "update_webhook",
            "delete_webhook", "list_webhook_deliveries", "replay_webhook_delivery",
            "get_member_settings", "set_member_settings",
            "get_clock", "advance_clock", "timer_stats",
            "list_recent_events",  # console-sales
        ),
        records=(RecordType("task"),),
        events_in="contract",
        seed="services.rules.seed",
        gateway_resources=("services.gateway.resources.rules",
                           "services.gateway.resources.rules_events"),  # console-sales
        receives_all_events=True,
    ),
)


class RegistryError(ValueError):
    """The registry contradicts itself (two services on one port, an undeclared rule command)."""


class UndeclaredCall(LookupError):
    """An RPC to a service or command the registry does not declare: a bug in the caller."""


# --------------------------------------------------------------------------- the entries


def services(env: Mapping[str, str] | None = None) -> tuple[Service, ...]:
    """Every service, planned ones included: the built-in ones, then CRM_EXTRA_SERVICES'."""
    env = os.environ if env is None else env
    return _load(env.get(EXTRA_SERVICES_ENV, ""))


@functools.lru_cache(maxsize=8)
def _load(extra_modules: str) -> tuple[Service, ...]:
    entries = list(BUILT_IN)
    for module_name in filter(None, (m.strip() for m in extra_modules.split(","))):
        entries.extend(importlib.import_module(module_name).SERVICES)
    found = tuple(entries)
    check(found)
    return found


def present(env: Mapping[str, str] | None = None) -> tuple[Service, ...]:
    """The services that exist (not planned), in registry order."""
    return tuple(s for s in services(env) if not s.planned)


def get(name: str, env: Mapping[str, str] | None = None) -> Service:
    for entry in services(env):
        if entry.name == name:
            return entry
    raise KeyError(f"no service {name!r} in shared/registry.py")


def names(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    return tuple(s.name for s in present(env))


def start_order(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The present services as they are started: those receiving every event first."""
    found = present(env)
    return tuple(s.name for s in found if s.receives_all_events) + tuple(
        s.name for s in found if not s.receives_all_events)


def ports(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Every service's HTTP port, planned ones included, so ports never move."""
    return {s.name: s.port for s in services(env)}


def migrated(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """What the migrate step upgrades, in order: every present service's database, then the
    gateway's."""
    return (*(s.name for s in present(env) if s.database), GATEWAY)


# --------------------------------------------------------------------------- readers


def event_producers(env: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    """(producer, events module) of everything that publishes events: the gateway first."""
    return ((GATEWAY, GATEWAY_EVENTS),
            *((s.name, s.events_module) for s in present(env) if s.events_module))


def gateway_resource_modules(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The modules whose `blp` the gateway registers, in order."""
    return (*GATEWAY_RESOURCES, *(m for s in present(env) for m in s.gateway_resources))


def record_types() -> tuple[str, ...]:
    """Every record type of every service, planned ones included, in registry order."""
    return tuple(r.name for s in services() for r in s.records)


def owner_fields() -> dict[str, str]:
    """Record type -> the snapshot field naming its owner, where it is not `owner_id`."""
    return {r.name: r.owner_field for s in services() for r in s.records
            if r.owner_field != "owner_id"}


def link_fields() -> dict[str, str]:
    """Foreign key -> record type, for the record types that events link to by id."""
    return {r.link_field: r.name for s in services() for r in s.records if r.link_field}


def rule_callable_commands() -> dict[str, tuple[str, tuple[str, ...]]]:
    """`<service>.<command>` -> (record type it acts on, arguments a rule may pass)."""
    return {f"{s.name}.{command}": (spec.acts_on, spec.args)
            for s in present() for command, spec in s.rule_commands.items()}


def rule_commands_taking_command_id() -> frozenset[str]:
    """`<service>.<command>` of the rule commands that take a `command_id` (exactly once)."""
    return frozenset(f"{s.name}.{command}" for s in present()
                     for command, spec in s.rule_commands.items() if spec.takes_command_id)


def rule_callable_services() -> tuple[str, ...]:
    """The services the rules service keeps an RPC client for: those with rule commands."""
    return tuple(s.name for s in present() if s.rule_commands)


# --------------------------------------------------------------------------- checks


def is_declared(service: str, command: str, env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return (service, command) in _declared(env.get(EXTRA_SERVICES_ENV, ""))


@functools.lru_cache(maxsize=8)
def _declared(extra_modules: str) -> frozenset[tuple[str, str]]:
    return frozenset((s.name, c) for s in _load(extra_modules) if not s.planned
                     for c in s.commands)


def check_call(service: str, command: str) -> None:
    """Raise UndeclaredCall unless `service.command` is declared: cheap enough for every call."""
    if (service, command) not in _declared(os.environ.get(EXTRA_SERVICES_ENV, "")):
        raise UndeclaredCall(f"{service}.{command} is not a command of shared/registry.py")


def check(entries: tuple[Service, ...]) -> None:
    """Raise RegistryError where the entries contradict each other or themselves."""
    problems: list[str] = []
    seen_names: set[str] = {GATEWAY}
    seen_ports: dict[int, str] = {}
    seen_records: set[str] = set()
    seen_links: set[str] = set()
    for entry in entries:
        if not entry.name.isidentifier() or not entry.name.islower():
            problems.append(f"{entry.name!r}: a service name is a lower-case identifier")
        if entry.name in seen_names:
            problems.append(f"{entry.name}: declared twice (or named like the gateway)")
        seen_names.add(entry.name)
        if entry.port in seen_ports:
            problems.append(f"{entry.name}: port {entry.port} is {seen_ports[entry.port]}'s")
        seen_ports[entry.port] = entry.name
        if len(set(entry.commands)) != len(entry.commands):
            problems.append(f"{entry.name}: a command is listed twice")
        if entry.planned and (entry.commands or entry.rule_commands or entry.gateway_resources
                              or entry.seed):
            problems.append(f"{entry.name}: planned, so it has no commands, resources or seed")
        own_records = {r.name for r in entry.records}
        for command, spec in entry.rule_commands.items():
            if command not in entry.commands:
                problems.append(f"{entry.name}.{command}: a rule command must be a command")
            if "command_id" in spec.args:
                problems.append(f"{entry.name}.{command}: command_id is not a rule's argument "
                                "(the rules service passes it: takes_command_id=True)")
            if spec.acts_on not in own_records:
                problems.append(f"{entry.name}.{command}: acts on {spec.acts_on}, which "
                                f"{entry.name} does not own")
        for record in entry.records:
            if record.name in seen_records:
                problems.append(f"record type {record.name}: owned twice")
            seen_records.add(record.name)
            if record.link_field:
                if record.link_field in seen_links:
                    problems.append(f"link field {record.link_field}: declared twice")
                seen_links.add(record.link_field)
    if problems:
        raise RegistryError("shared/registry.py: " + "; ".join(problems))
