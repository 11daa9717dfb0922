"""nameko entrypoints of the rules service: every event in; rules, timers, tasks, notifications
and webhooks; assignment settings; the controllable clock. Each loads its input with a
contract schema and calls one use case (services/rules/usecases/)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import eventlet
import eventlet.corolocal
from nameko.extensions import DependencyProvider
from nameko.timer import timer

from services.rules import clock as clock_module
from services.rules.contract import (
    EVENT_SCHEMAS,
    DryRunSchema,
    MemberSettingsSchema,
    PageSchema,
    RecentEventsQuerySchema,
    RuleFiltersSchema,
    RunFiltersSchema,
    ScopeSchema,
    SnoozeSchema,
    TaskCreateSchema,
    TaskRpcFiltersSchema,
    WebhookInputSchema,
    WebhookUpdateSchema,
)
from services.rules.models import outbox
from services.rules.usecases import (
    dry_run,
    members,
    notifications,
    recent_events,
    rule_admin,
    shipped,
    system,
    tasks,
    webhooks,
)
from services.rules.usecases.authoring import principal_authority
from services.rules.usecases.engine import Engine
from services.rules.usecases.support import PermanentFailure, Ports, Settings, Worker
from shared import config, registry
from shared.consumer import all_events_handler
from shared.context import CallContext, Context
from shared.db import Database
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import rpc, rpc_proxy

setup_logging("rules")
log = logging.getLogger(__name__)

TICK_SECONDS = float(config.env("CRM_RULES_TICK_SECONDS", "0.25"))
TICK_BUDGET_SECONDS = 2.0
MAINTENANCE_EVERY = 20  # ticks: the timer lag metric, stale claims, old events
SETTINGS = Settings.from_env()
# The context of the run a green thread acts for (`_set_context`, `_call`).
_CALL_CONTEXT = eventlet.corolocal.local()

dry_run_schema = DryRunSchema()
rule_filters_schema = RuleFiltersSchema()
run_filters_schema = RunFiltersSchema()
scope_schema = ScopeSchema()
page_schema = PageSchema()
recent_events_schema = RecentEventsQuerySchema()
task_filters_schema = TaskRpcFiltersSchema()
snooze_schema = SnoozeSchema()
task_create_schema = TaskCreateSchema()
webhook_input_schema = WebhookInputSchema()
webhook_update_schema = WebhookUpdateSchema()
member_settings_schema = MemberSettingsSchema()


class RulesDatabase(Database):
    """The shared database dependency, with batched inserts sent as multi-row INSERTs: a
    batch of timers writes hundreds of runs, notifications and outbox rows, and one statement
    costs far less than one round trip per row (measured: about 1.4x the firing rate)."""

    def setup(self) -> None:
        super().setup()
        self.engine.dialect.use_insertmanyvalues_wo_returning = True


class WorkerContext(DependencyProvider):
    """The worker's nameko context: the engine sets the causation of the RPC calls it makes
    for a run there (nameko sends `worker_ctx.data` as headers at call time)."""

    def get_dependency(self, worker_ctx):
        return worker_ctx


_email_sender = None


def email_sender():
    global _email_sender
    if _email_sender is None:
        from services.rules.notify import EmailSender

        _email_sender = EmailSender.from_env()
    return _email_sender


class RulesService(PlatformEndpoints):
    name = "rules"

    db = RulesDatabase("rules")
    # Our own events go to `rules.events` only: reading them back from `crm.events` would cost
    # a message per task and notification for nothing; webhooks for them are queued directly.
    events = EventOutbox("rules", outbox, EVENT_SCHEMAS, into_all_events=False)
    context: Context = CallContext()
    entrypoint_metrics = EntrypointMetrics()
    # and an RPC client per service with commands a rule may call, named after it: see below
    worker_ctx = WorkerContext()

    # -- plumbing --------------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        engine = getattr(self, "_engine", None)
        if engine is None:
            engine = Engine(self.db, self.events, clock_module.CLOCK, SETTINGS, Ports(
                call=self._call, email_connection=lambda: email_sender().connection(),
                send_email=self._send_email,
                deliver_webhook=self._deliver_webhook, set_context=self._set_context,
            ))
            self._engine = engine
        return engine

    @property
    def worker(self) -> Worker:
        """What the use cases behind the RPCs work with."""
        return Worker(self.db, self.events, lambda: self.engine, self.context.actor)

    def _call(self, service: str, method: str, **kwargs: Any) -> Any:
        if service not in registry.rule_callable_services():
            raise PermanentFailure(f"no RPC client for {service}")
        proxy = getattr(getattr(self, service), method)
        # The calling run's context (lanes of one worker share its `worker_ctx`): put back
        # just before the call, which reads the headers before it yields.
        values = getattr(_CALL_CONTEXT, "values", None)
        if values is not None:
            self.worker_ctx.data.update(values)
            self.worker_ctx.data.pop("actor", None)
        reply = proxy.call_async(**kwargs)
        with eventlet.Timeout(config.rpc_timeout()):
            return reply.result()

    @staticmethod
    def _send_email(to: list[str], subject: str, text: str, connection: Any,
                    message_key: str | None = None) -> str:
        return email_sender().send(to, subject, text, connection=connection,
                                   message_key=message_key)

    @staticmethod
    def _deliver_webhook(url: str, secret: str, msg_id: str, body: bytes) -> Any:
        from services.rules.notify import deliver_checked

        # Checked again at every delivery (DNS can change), connected to the address checked.
        return deliver_checked(url, secret, msg_id, body)

    def _set_context(self, correlation_id: str | None, causation_id: str | None,
                     depth: int) -> None:
        data = self.worker_ctx.data
        values = {"correlation_id": correlation_id or str(uuid.uuid4()),
                  "causation_id": causation_id, "causation_depth": depth}
        _CALL_CONTEXT.values = values  # this green thread's run (a lane, see usecases/lanes.py)
        data.update(values)
        data.pop("actor", None)  # the rule acts, not the user whose request started the chain
        self.engine.own_events.recorder.ctx = Context(
            correlation_id=values["correlation_id"], actor=None, causation_id=causation_id,
            causation_depth=depth)

    # -- events in and timers --------------------------------------------------------------

    @all_events_handler("rules.all-events")
    def on_any_event(self, envelope: dict) -> None:
        self.engine.take_event(envelope)

    @timer(interval=TICK_SECONDS)
    def tick(self) -> None:
        started = eventlet.hubs.get_hub().clock()
        engine = self.engine
        while True:
            fired = engine.tick()
            if fired < SETTINGS.timer_batch or (
                eventlet.hubs.get_hub().clock() - started > TICK_BUDGET_SECONDS
            ):
                break
        RulesService._tick_count = getattr(RulesService, "_tick_count", 0) + 1
        if RulesService._tick_count % MAINTENANCE_EVERY == 1:
            engine.maintenance()

    # -- rules -----------------------------------------------------------------------------

    @rpc
    def create_rule(self, data: dict, principal: dict | None = None) -> dict[str, Any]:
        return rule_admin.create_rule(self.worker, data, principal_authority(principal))

    @rpc
    def update_rule(self, rule_id: str, data: dict,
                    principal: dict | None = None) -> dict[str, Any]:
        return rule_admin.update_rule(self.worker, rule_id, data,
                                      principal_authority(principal))

    @rpc
    def set_rule_enabled(self, rule_id: str, enabled: bool,
                         principal: dict | None = None) -> dict[str, Any]:
        return rule_admin.set_rule_enabled(self.worker, rule_id, enabled,
                                           principal_authority(principal))

    @rpc
    def adopt_shipped_rule(self, rule_id: str, principal: dict | None = None
                           ) -> dict[str, Any]:
        return shipped.adopt_shipped_rule(self.worker, rule_id, principal_authority(principal))

    @rpc
    def get_rule(self, rule_id: str, principal: dict | None = None) -> dict[str, Any]:
        return rule_admin.get_rule(self.worker, rule_id, principal_authority(principal))

    @rpc
    def list_rules(self, filters: dict | None = None,
                   principal: dict | None = None) -> dict[str, Any]:
        acting = principal_authority(principal)
        return rule_admin.list_rules(self.worker, load(rule_filters_schema, filters), acting)

    @rpc
    def dry_run(self, rule_id: str | None = None, data: dict | None = None,
                principal: dict | None = None) -> dict[str, Any]:
        """What the rule (saved, or `data.definition`) would do for an event (`data.sample` or
        a past `data.event_id`), without doing it."""
        acting = principal_authority(principal)
        return dry_run.dry_run(self.worker, rule_id, load(dry_run_schema, data), acting)

    @rpc
    def list_recent_events(self, query: dict | None = None, principal: dict | None = None
                           ) -> dict[str, Any]:
        """The newest events of the event log matching `query.event` (a trigger's names or
        patterns), for a dry run to pick from; admins only."""
        acting = principal_authority(principal)
        return recent_events.recent_events(self.worker, load(recent_events_schema, query or {}),
                                           acting)

    # -- runs ------------------------------------------------------------------------------

    @rpc
    def list_runs(self, filters: dict | None = None, cursor: str | None = None,
                  limit: int = 50, principal: dict | None = None) -> dict[str, Any]:
        acting = principal_authority(principal)
        filters = load(run_filters_schema, filters)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        return rule_admin.list_runs(self.worker, filters, page, acting)

    @rpc
    def get_run(self, run_id: str, principal: dict | None = None) -> dict[str, Any]:
        return rule_admin.get_run(self.worker, run_id, principal_authority(principal))

    # -- tasks -----------------------------------------------------------------------------

    @rpc
    def list_tasks(self, filters: dict | None = None, scope: dict | None = None,
                   cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        filters = load(task_filters_schema, filters)
        scope = load(scope_schema, scope)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        return tasks.list_tasks(self.worker, filters, scope, page)

    @rpc
    def get_task(self, task_id: str, scope: dict | None = None) -> dict[str, Any]:
        return tasks.get_task(self.worker, task_id, load(scope_schema, scope))

    @rpc
    def create_task(self, data: dict, scope: dict | None = None,
                    principal: dict | None = None) -> dict[str, Any]:
        """A to-do created by a person (rules create theirs through actions)."""
        fields_ = load(task_create_schema, data)
        return tasks.create_task(self.worker, fields_, load(scope_schema, scope), principal)

    @rpc
    def complete_task(self, task_id: str, scope: dict | None = None) -> dict[str, Any]:
        return tasks.complete_task(self.worker, task_id, load(scope_schema, scope))

    @rpc
    def reassign_task(self, task_id: str, assignee_id: str,
                      scope: dict | None = None, principal: dict | None = None
                      ) -> dict[str, Any]:
        return tasks.reassign_task(self.worker, task_id, assignee_id,
                                   load(scope_schema, scope), principal)

    @rpc
    def snooze_task(self, task_id: str, until: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        moment = load(snooze_schema, {"until": until})["until"]
        return tasks.snooze_task(self.worker, task_id, moment, scope)

    # -- notifications ---------------------------------------------------------------------

    @rpc
    def list_notifications(self, user_id: str, unread: bool | None = None,
                           cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        return notifications.list_notifications(self.worker, user_id, unread, page)

    @rpc
    def mark_notification_read(self, notification_id: str, user_id: str) -> dict[str, Any]:
        return notifications.mark_notification_read(self.worker, notification_id, user_id)

    # -- webhooks --------------------------------------------------------------------------

    @rpc
    def create_webhook(self, data: dict, principal: dict | None = None) -> dict[str, Any]:
        """A subscription; its secret is in this answer only."""
        acting = principal_authority(principal)
        return webhooks.create_webhook(self.worker, load(webhook_input_schema, data), acting)

    @rpc
    def list_webhooks(self, principal: dict | None = None) -> dict[str, Any]:
        return webhooks.list_webhooks(self.worker, principal_authority(principal))

    @rpc
    def get_webhook(self, subscription_id: str, principal: dict | None = None
                    ) -> dict[str, Any]:
        return webhooks.get_webhook(self.worker, subscription_id,
                                    principal_authority(principal))

    @rpc
    def update_webhook(self, subscription_id: str, data: dict,
                       principal: dict | None = None) -> dict[str, Any]:
        acting = principal_authority(principal)
        return webhooks.update_webhook(self.worker, subscription_id,
                                       load(webhook_update_schema, data), acting)

    @rpc
    def delete_webhook(self, subscription_id: str, principal: dict | None = None) -> None:
        webhooks.delete_webhook(self.worker, subscription_id, principal_authority(principal))

    @rpc
    def list_webhook_deliveries(self, subscription_id: str, status: str | None = None,
                                cursor: str | None = None, limit: int = 50,
                                principal: dict | None = None) -> dict[str, Any]:
        acting = principal_authority(principal)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        return webhooks.list_webhook_deliveries(self.worker, subscription_id, status, page,
                                                acting)

    @rpc
    def replay_webhook_delivery(self, delivery_id: str,
                                principal: dict | None = None) -> dict[str, Any]:
        """Send a delivery again (same webhook-id, so the receiver can recognise it)."""
        return webhooks.replay_webhook_delivery(self.worker, delivery_id,
                                                principal_authority(principal))

    # -- assignment settings ---------------------------------------------------------------

    @rpc
    def set_member_settings(self, user_id: str, data: dict) -> dict[str, Any]:
        return members.set_member_settings(self.worker, user_id,
                                           load(member_settings_schema, data))

    @rpc
    def get_member_settings(self, user_id: str) -> dict[str, Any]:
        return members.get_member_settings(self.worker, user_id)

    # -- clock -----------------------------------------------------------------------------

    @rpc
    def get_clock(self) -> dict[str, Any]:
        return system.get_clock(self.worker)

    @rpc
    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return system.advance_clock(self.worker, seconds)

    @rpc
    def timer_stats(self) -> dict[str, Any]:
        return system.timer_stats(self.worker)


# One RPC client per service with rule commands (shared/registry.py), e.g. `self.leads`; nameko
# finds dependencies on the class when the container starts, so set after the class is enough.
for _callee in registry.rule_callable_services():
    setattr(RulesService, _callee, rpc_proxy(_callee))
