"""nameko entrypoints of the rules service: every event in; rules, timers, tasks, notifications
and webhooks; assignment settings; the controllable clock."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from nameko.timer import timer
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.rules import clock as clock_module
from services.rules.domain import authority as authority_domain
from services.rules.domain import records, timing
from services.rules.domain import rules as rules_domain
from services.rules.domain.authority import Authority
from services.rules.engine import (
    Engine,
    PermanentFailure,
    Ports,
    Settings,
    check_template,
    delivery_to_dict,
    event_summary,
    forget_cached_rules,
    iso,
    new_id,
    notification_to_dict,
    render,
    rule_to_dict,
    run_to_dict,
    subscription_to_dict,
    task_to_dict,
)
from services.rules.engine import (
    directory as engine_directory,
)
from services.rules.events import EVENT_SCHEMAS
from services.rules.models import (
    DirectoryUser,
    EventLog,
    MemberSetting,
    Notification,
    RecordSnapshot,
    Rule,
    RuleRun,
    RuleVersion,
    Task,
    Timer,
    WebhookDelivery,
    WebhookSubscription,
    outbox,
)
from services.rules.schemas import (
    DryRunSchema,
    MemberSettingsSchema,
    PageSchema,
    RuleFiltersSchema,
    RuleInputSchema,
    RunFiltersSchema,
    ScopeSchema,
    SnoozeSchema,
    TaskCreateSchema,
    TaskFiltersSchema,
    WebhookInputSchema,
    WebhookUpdateSchema,
)
from shared import config, registry
from shared.consumer import all_events_handler
from shared.context import CallContext, Context
from shared.db import Database
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.paging import page_after, page_of
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import rpc, rpc_proxy

setup_logging("rules")
log = logging.getLogger(__name__)

TICK_SECONDS = float(config.env("CRM_RULES_TICK_SECONDS", "0.25"))
TICK_BUDGET_SECONDS = 2.0
MAINTENANCE_EVERY = 20  # ticks: the timer lag metric, stale claims, old events
SETTINGS = Settings.from_env()

rule_input_schema = RuleInputSchema()
dry_run_schema = DryRunSchema()
rule_filters_schema = RuleFiltersSchema()
run_filters_schema = RunFiltersSchema()
scope_schema = ScopeSchema()
page_schema = PageSchema()
task_filters_schema = TaskFiltersSchema()
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

    def _call(self, service: str, method: str, **kwargs: Any) -> Any:
        if service not in registry.rule_callable_services():
            raise PermanentFailure(f"no RPC client for {service}")
        reply = getattr(getattr(self, service), method).call_async(**kwargs)
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
        data["correlation_id"] = correlation_id or str(uuid.uuid4())
        data["causation_id"] = causation_id
        data["causation_depth"] = depth
        data.pop("actor", None)  # the rule acts, not the user whose request started the chain
        self.events.ctx = Context(correlation_id=data["correlation_id"], actor=None,
                                  causation_id=causation_id, causation_depth=depth)

    # -- events in and timers --------------------------------------------------------------

    @all_events_handler("rules.all-events")
    def on_any_event(self, envelope: dict) -> None:
        run_ids = self.engine.intake(envelope)
        for run_id in run_ids:
            self.engine.execute_run(run_id)

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

    def _validated(self, data: dict, acting: Authority | None = None,
                   session: Session | None = None) -> dict[str, Any]:
        fields_ = load(rule_input_schema, data)
        definition = {"trigger": fields_["trigger"], "conditions": fields_["conditions"] or "",
                      "actions": fields_["actions"]}
        problems = rules_domain.validate_definition(definition, check_template)
        if not problems and acting is not None and not acting.is_organisation:
            problems = self._authority_problems(session, definition, acting)
        if problems:
            raise ValidationFailed.for_fields(problems, "the rule is not valid")
        return {**fields_, "definition": definition}

    def _authority_problems(self, session: Session | None, definition: dict[str, Any],
                            acting: Authority) -> dict[str, list[str]]:
        """What a team rule names outside its author's teams (and webhooks not theirs)."""
        from services.rules.engine import directory

        def check(session: Session) -> dict[str, list[str]]:
            people = directory(session)
            effective = acting.effective(people.users, people.teams)
            problems = authority_domain.definition_problems(
                definition, effective, people.users, people.teams)
            for index, action in enumerate(definition["actions"]):
                if "webhook" in (action.get("channels") or []):
                    sub = session.get(WebhookSubscription, action.get("subscription_id"))
                    if sub is None or not Authority.of(sub.authority).managed_by(acting):
                        problems.setdefault(f"actions.{index}.subscription_id", []).append(
                            "not a webhook subscription of yours")
            return problems

        if session is not None:
            return check(session)
        with self.db.read() as session:
            return check(session)

    def _principal(self, principal: dict | None) -> Authority:
        """The authority a caller has (the gateway passes `principal`: user_id, role,
        team_id, owner_ids); no principal is the organisation (the seed, scripts)."""
        if principal is not None and not isinstance(principal, dict):
            raise ValidationFailed.for_fields({"principal": ["an object"]})
        try:
            return Authority.for_author(principal)
        except authority_domain.NotAllowed as exc:
            raise Forbidden(str(exc)) from None

    @staticmethod
    def _check_manages(rule: Rule, acting: Authority) -> None:
        stored = Authority.of(rule.authority)
        if not stored.visible_to(acting):
            raise NotFound(f"rule {rule.id} not found", {"field": "rule_id"})
        if not stored.managed_by(acting):
            raise Forbidden("organisation rules (the shipped ones among them) are changed by "
                            "admins only", {"field": "rule_id"})

    @rpc
    def create_rule(self, data: dict, principal: dict | None = None) -> dict[str, Any]:
        acting = self._principal(principal)
        fields_ = self._validated(data, acting)
        if fields_.get("key") and not acting.is_organisation:
            raise Forbidden("a rule key marks an organisation rule: admins only",
                            {"field": "key"})
        now = self.engine.clock.now()
        with self.db.begin() as session:
            if fields_.get("key") and session.scalar(
                select(Rule.id).where(Rule.key == fields_["key"])
            ):
                raise Conflict(f"a rule with key {fields_['key']!r} exists", {"field": "key"})
            rule = Rule(
                id=new_id(), key=fields_.get("key"), name=fields_["name"],
                description=fields_.get("description"), enabled=fields_["enabled"], version=1,
                trigger_type=fields_["definition"]["trigger"]["type"],
                definition=fields_["definition"], created_at=now, updated_at=now,
                updated_by=self.context.actor,
                authority=None if acting.is_organisation else acting.to_dict(),
            )
            session.add(rule)
            self._add_version(session, rule)
            session.flush()
            self.engine.schedule_rule(session, rule)
            forget_cached_rules()
            return rule_to_dict(rule)

    def _add_version(self, session: Session, rule: Rule) -> None:
        session.add(RuleVersion(rule_id=rule.id, version=rule.version, name=rule.name,
                                definition=rule.definition, created_at=rule.updated_at,
                                created_by=self.context.actor))

    @rpc
    def update_rule(self, rule_id: str, data: dict,
                    principal: dict | None = None) -> dict[str, Any]:
        """Replace the rule's definition: a new version (runs record the version they used).
        A manager saving their rule gives it their scope of now; an admin keeps its authority."""
        acting = self._principal(principal)
        with self.db.read() as session:
            self._check_manages(self._rule(session, rule_id), acting)
        fields_ = self._validated(data, acting)
        with self.db.begin() as session:
            rule = self._rule(session, rule_id, lock=True)
            self._check_manages(rule, acting)
            if not acting.is_organisation:
                rule.authority = acting.to_dict()
            rule.name = fields_["name"]
            rule.description = fields_.get("description")
            rule.enabled = fields_["enabled"]
            rule.definition = fields_["definition"]
            rule.trigger_type = fields_["definition"]["trigger"]["type"]
            rule.version += 1
            rule.updated_at = self.engine.clock.now()
            rule.updated_by = self.context.actor
            self._add_version(session, rule)
            self.engine.schedule_rule(session, rule)
            forget_cached_rules()
            return rule_to_dict(rule)

    @rpc
    def set_rule_enabled(self, rule_id: str, enabled: bool,
                         principal: dict | None = None) -> dict[str, Any]:
        acting = self._principal(principal)
        if not isinstance(enabled, bool):
            raise ValidationFailed.for_fields({"enabled": ["Not a valid boolean."]})
        with self.db.begin() as session:
            rule = self._rule(session, rule_id, lock=True)
            self._check_manages(rule, acting)
            if rule.enabled != enabled:
                rule.enabled = enabled
                rule.updated_at = self.engine.clock.now()
                rule.updated_by = self.context.actor
                self.engine.schedule_rule(session, rule)
            forget_cached_rules()
            return rule_to_dict(rule)

    @rpc
    def get_rule(self, rule_id: str, principal: dict | None = None) -> dict[str, Any]:
        acting = self._principal(principal)
        with self.db.read() as session:
            rule = self._rule(session, rule_id)
            if not Authority.of(rule.authority).visible_to(acting):
                raise NotFound(f"rule {rule_id} not found", {"field": "rule_id"})
            versions = session.scalars(
                select(RuleVersion).where(RuleVersion.rule_id == rule.id)
                .order_by(RuleVersion.version.desc())
            ).all()
            result = rule_to_dict(rule)
            result["versions"] = [
                {"version": v.version, "name": v.name, **v.definition,
                 "created_at": iso(v.created_at), "created_by": v.created_by}
                for v in versions
            ]
            return result

    @rpc
    def list_rules(self, filters: dict | None = None,
                   principal: dict | None = None) -> dict[str, Any]:
        """The organisation's rules and, for a manager, their own (not other managers')."""
        acting = self._principal(principal)
        filters = load(rule_filters_schema, filters)
        query = select(Rule).order_by(Rule.created_at, Rule.id)
        if "enabled" in filters:
            query = query.where(Rule.enabled.is_(filters["enabled"]))
        if "trigger_type" in filters:
            query = query.where(Rule.trigger_type == filters["trigger_type"])
        with self.db.read() as session:
            return {"items": [rule_to_dict(r) for r in session.scalars(query).all()
                              if Authority.of(r.authority).visible_to(acting)]}

    @staticmethod
    def _rule(session: Session, rule_id: str, lock: bool = False) -> Rule:
        rule = session.get(Rule, rule_id, with_for_update=lock) if isinstance(
            rule_id, str) else None
        if rule is None:
            raise NotFound(f"rule {rule_id} not found", {"field": "rule_id"})
        return rule

    @rpc
    def dry_run(self, rule_id: str | None = None, data: dict | None = None,
                principal: dict | None = None) -> dict[str, Any]:
        """What the rule (saved, or `data.definition`) would do for an event (`data.sample` or
        a past `data.event_id`), without doing it. A manager dry-runs their own rules and
        unsaved ones, on events about records they may see; the actions are worked out with
        the rule's authority, as a run would."""
        acting = self._principal(principal)
        request = load(dry_run_schema, data)
        with self.db.read() as session:
            if request.get("definition"):
                definition = self._validated({"name": "dry run", **request["definition"]},
                                             acting, session)["definition"]
                version = None
                rule_name = request["definition"].get("name", "dry run")
                stored = None if acting.is_organisation else acting.to_dict()
            elif rule_id:
                rule = self._rule(session, rule_id)
                self._check_manages(rule, acting)
                definition, version, rule_name = rule.definition, rule.version, rule.name
                stored = rule.authority
            else:
                raise ValidationFailed.for_fields({"definition": ["give a rule or a definition"]})
            viewer = self.engine.authority(session, acting.to_dict())
            if request.get("event_id"):
                logged = session.get(EventLog, request["event_id"])
                if logged is None or not self._event_visible(session, viewer, logged.envelope):
                    # the same answer for an event outside the caller's view as for none
                    raise NotFound("no such event in the last days", {"field": "event_id"})
                envelope = dict(logged.envelope)
            else:
                envelope = self._sample_envelope(request["sample"])
            return self._dry_run(session, definition, version, rule_name, envelope, stored,
                                 viewer)

    @staticmethod
    def _event_visible(session: Session, viewer: Authority, envelope: dict[str, Any]) -> bool:
        if viewer.is_organisation:
            return True
        data = envelope.get("data") or {}
        name = f"{envelope.get('producer')}.{envelope.get('event_type')}"
        record_type, record = records.primary_record(data)
        if record is None or name.startswith(("rules.", "gateway.")):
            return viewer.sees_event(name, data)
        stored = session.get(RecordSnapshot, records.record_key(record_type, str(record["id"])))
        # as the record stands now, or as the event had it when never seen in full
        return viewer.covers(record_type, dict(stored.data) if stored else record) and (
            viewer.covers(record_type, record) or len(record) <= 1)

    @staticmethod
    def _sample_envelope(sample: dict[str, Any]) -> dict[str, Any]:
        name = sample.get("event_type") or ""
        if "." not in name or not isinstance(sample.get("data", {}), dict):
            raise ValidationFailed.for_fields({"sample.event_type": [
                "'<service>.<event_type>', e.g. leads.lead_created, with an object 'data'"]})
        producer, event_type = name.split(".", 1)
        return {"event_id": "dry-run", "event_type": event_type, "producer": producer,
                "correlation_id": "dry-run", "causation_depth": 0,
                "occurred_at": datetime.now().astimezone().isoformat(),
                "actor": sample.get("actor"), "data": sample.get("data") or {}}

    def _dry_run(
        self, session: Session, definition: dict[str, Any], version: int | None, rule_name: str,
        envelope: dict[str, Any], authority: dict[str, Any] | None = None,
        viewer: Authority | None = None,
    ) -> dict[str, Any]:
        engine = self.engine
        name = f"{envelope['producer']}.{envelope['event_type']}"
        data = envelope.get("data") or {}
        record_type, record = records.primary_record(data)
        stored = session.get(RecordSnapshot, records.record_key(
            record_type, str(record["id"]))) if record else None
        if stored is not None and viewer is not None and not viewer.covers(
                record_type, stored.data):
            stored = None  # a sample naming a record the caller may not see learns nothing
        if record is not None and len(record) <= 1 and stored is not None:
            record = dict(stored.data)
        changes = records.changes(stored.data if stored else None, record) if record else {}
        trigger = definition["trigger"]
        kind = trigger["type"]
        result: dict[str, Any] = {"rule_version": version, "event": event_summary(envelope),
                                  "trigger": {"type": kind}}
        if kind == "event":
            matches = rules_domain.event_matches(trigger["event"], name) and (
                rules_domain.field_change_matches(trigger, changes))
        elif kind in ("delay", "date"):
            matches = rules_domain.event_matches(trigger["events"], name)
        else:
            matches = False
        result["trigger"]["matches"] = matches
        now = engine.clock.now()
        if kind == "delay" and matches:
            result["trigger"]["would_fire_at"] = (
                now + timing.parse_duration(trigger["delay"])).isoformat()
            result["trigger"]["cancelled_by"] = trigger.get("unless") or []
        if kind == "date" and matches and record:
            due = timing.relative_due(
                record.get(trigger["field"]), now=now, tz=engine.tz,
                offset_days=trigger.get("offset_days", 0),
                offset_months=trigger.get("offset_months", 0),
                at=timing.parse_time_of_day(trigger.get("at")),
                yearly=trigger.get("yearly", False))
            result["trigger"]["would_fire_at"] = iso(due)
        if kind == "schedule":
            result["trigger"]["next_at"] = timing.next_cron(trigger["cron"], now,
                                                            engine.tz).isoformat()
        names = engine.names(session, envelope, record_type, record, changes)
        from services.rules.domain import conditions

        try:
            matched = conditions.evaluate(definition.get("conditions"), names, now)
            result["conditions"] = {"expression": definition.get("conditions") or "",
                                    "matched": matched}
        except conditions.ConditionFailed as exc:
            matched = False
            result["conditions"] = {"expression": definition.get("conditions"),
                                    "matched": False, "error": str(exc)}
        context = {"record_type": record_type, "record": dict(record or {}),
                   "event": event_summary(envelope), "changes": changes,
                   "rule": {"id": None, "name": rule_name, "version": version},
                   "authority": authority}
        acting = engine.authority(session, authority)
        if not acting.covers(record_type, record):
            result["outside_authority"] = True  # a run would not even start

        result["actions"] = [self._describe_action(session, a, context)
                             for a in definition["actions"]]
        result["would_act"] = (bool(matches and matched) if kind == "event" else bool(matches)
                               ) and not result.get("outside_authority")
        return result

    def _describe_action(
        self, session: Session, action: dict[str, Any], context: dict[str, Any]
    ) -> dict[str, Any]:
        engine = self.engine
        record = context["record"]
        described: dict[str, Any] = {"type": action["type"]}
        try:
            values = engine._template_context(session, context)
            acting = engine.authority(session, context.get("authority"))
            people = engine_directory(session).users
            if action["type"] == "assign":
                chosen = engine.choose_assignee(session, action, record, commit=False,
                                                authority=acting)
                described.update(chosen)
                record["owner_id"] = chosen["owner_id"]
            elif action["type"] == "create_task":
                described["assignee_id"] = engine._task_assignee(
                    session, action.get("assignee", "owner"), context)
                described["title"] = render(action["title"], values)
                described["due_in"] = action.get("due_in")
            elif action["type"] in ("notify", "escalate"):
                if action["type"] == "notify":
                    recipients = engine.recipients(session, action["to"], context)
                else:
                    recipients = engine.manager_chain(
                        session, record.get("owner_id"), action.get("levels", 1))
                described["recipients"], left_out = acting.within(recipients, people)
                if left_out:
                    described["left_out"] = left_out
                described["channels"] = action.get("channels") or ["in_app"]
                described["title"] = render(action["title"], values)
            elif action["type"] == "call":
                described["call"] = f"{action['service']}.{action['method']}"
                described["args"] = {k: render(v, values) if isinstance(v, str) else v
                                     for k, v in (action.get("args") or {}).items()}
        except Exception as exc:  # noqa: BLE001 - a dry run reports what would fail
            described["error"] = f"{type(exc).__name__}: {exc}"
        return described

    # -- runs ------------------------------------------------------------------------------

    def _managed_rule_ids(self, session: Session, acting: Authority) -> list[str] | None:
        """The rules whose runs the caller may read (None: all): a manager's own."""
        if acting.is_organisation:
            return None
        return [rule.id for rule in session.scalars(select(Rule).where(
            Rule.authority.is_not(None))) if Authority.of(rule.authority).managed_by(acting)]

    @rpc
    def list_runs(self, filters: dict | None = None, cursor: str | None = None,
                  limit: int = 50, principal: dict | None = None) -> dict[str, Any]:
        """Runs, newest first; a manager's are those of their rules (an organisation rule's
        runs concern every team's records)."""
        acting = self._principal(principal)
        filters = load(run_filters_schema, filters)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        query = select(RuleRun)
        if not acting.is_organisation:
            with self.db.read() as session:
                query = query.where(RuleRun.rule_id.in_(
                    self._managed_rule_ids(session, acting) or ["-"]))
        for name in ("rule_id", "status", "event_id", "record_key", "correlation_id"):
            if name in filters:
                query = query.where(getattr(RuleRun, name) == filters[name])
        if "matched" in filters:
            query = query.where(RuleRun.matched.is_(filters["matched"]))
        query = page_after(query, RuleRun.started_at, RuleRun.id, page["cursor"], page["limit"])
        with self.db.read() as session:
            rows = session.scalars(query).all()
        return page_of(rows, page["limit"], "started_at", run_to_dict)

    @rpc
    def get_run(self, run_id: str, principal: dict | None = None) -> dict[str, Any]:
        acting = self._principal(principal)
        with self.db.read() as session:
            run = session.get(RuleRun, run_id) if isinstance(run_id, str) else None
            allowed = self._managed_rule_ids(session, acting)
            if run is None or (allowed is not None and run.rule_id not in allowed):
                raise NotFound(f"rule run {run_id} not found", {"field": "run_id"})
            return run_to_dict(run)

    # -- tasks -----------------------------------------------------------------------------

    @staticmethod
    def _task_scope_clause(scope: dict[str, Any]):
        if scope["all"]:
            return Task.id.is_not(None)
        return Task.assignee_id.in_(scope["owner_ids"] or ["-"])

    @rpc
    def list_tasks(self, filters: dict | None = None, scope: dict | None = None,
                   cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        filters = load(task_filters_schema, filters)
        scope = load(scope_schema, scope)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        now = self.engine_clock_now()
        query = select(Task).where(self._task_scope_clause(scope))
        for name in ("record_type", "record_id", "assignee_id", "status"):
            if name in filters:
                query = query.where(getattr(Task, name) == filters[name])
        if filters.get("overdue") is True:
            query = query.where(
                Task.status == "open", Task.due_at <= now,
                or_(Task.snoozed_until.is_(None), Task.snoozed_until <= now))
        elif filters.get("overdue") is False:
            query = query.where(or_(Task.status != "open", Task.due_at.is_(None),
                                    Task.due_at > now, Task.snoozed_until > now))
        query = page_after(query, Task.created_at, Task.id, page["cursor"], page["limit"])
        with self.db.read() as session:
            rows = session.scalars(query).all()
        return page_of(rows, page["limit"], "created_at", lambda t: task_to_dict(t, now))

    def engine_clock_now(self) -> datetime:
        return clock_module.CLOCK.now()

    def _visible_task(self, session: Session, task_id: str, scope: dict[str, Any]) -> Task:
        task = session.get(Task, task_id, with_for_update=True) if isinstance(
            task_id, str) else None
        if task is None or not (scope["all"] or task.assignee_id in scope["owner_ids"]):
            raise NotFound(f"task {task_id} not found", {"field": "task_id"})
        return task

    @rpc
    def get_task(self, task_id: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        with self.db.read() as session:
            return task_to_dict(self._visible_task(session, task_id, scope),
                                self.engine_clock_now())

    def _check_assignable(self, assignee_id: str, scope: dict[str, Any],
                          principal: dict | None) -> None:
        """A rep gives tasks to themselves and their team's members, a manager within their
        teams, an admin to anyone (`principal`: user_id, role, team_id from the gateway; the
        teams come from the directory projection). Without a principal, the scope decides."""
        if principal is None:
            if not scope["all"] and assignee_id not in scope["owner_ids"]:
                raise Forbidden("you can give tasks to yourself or your team only",
                                {"field": "assignee_id"})
            return
        if not isinstance(principal, dict):
            raise ValidationFailed.for_fields({"principal": ["an object"]})
        if scope["all"] and principal.get("role") == "admin":
            return
        with self.db.read() as session:
            allowed = authority_domain.assignable(
                principal, scope["owner_ids"], engine_directory(session).users)
        if allowed is not None and assignee_id not in allowed:
            raise Forbidden("you can give tasks to yourself and the members of your team only",
                            {"field": "assignee_id"})

    @rpc
    def create_task(self, data: dict, scope: dict | None = None,
                    principal: dict | None = None) -> dict[str, Any]:
        """A to-do created by a person (rules create theirs through actions)."""
        fields_ = load(task_create_schema, data)
        scope = load(scope_schema, scope)
        self._check_assignable(fields_["assignee_id"], scope, principal)
        now = self.engine_clock_now()
        with self.db.begin() as session:
            user = session.get(DirectoryUser, fields_["assignee_id"])
            task = Task(id=new_id(), status="open", created_at=now, updated_at=now,
                        team_id=user.team_id if user else None, **fields_)
            session.add(task)
            self.events.record(session, "task_created", {"task": task_to_dict(task, now)})
            return task_to_dict(task, now)

    @rpc
    def complete_task(self, task_id: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        now = self.engine_clock_now()
        with self.db.begin() as session:
            task = self._visible_task(session, task_id, scope)
            if task.status == "done":
                return task_to_dict(task, now)
            task.status, task.completed_at = "done", now
            task.completed_by, task.updated_at = self.context.actor, now
            self.events.record(session, "task_completed", {"task": task_to_dict(task, now)})
            return task_to_dict(task, now)

    @rpc
    def reassign_task(self, task_id: str, assignee_id: str,
                      scope: dict | None = None, principal: dict | None = None
                      ) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        if not isinstance(assignee_id, str) or not assignee_id:
            raise ValidationFailed.for_fields({"assignee_id": ["a user id is required"]})
        self._check_assignable(assignee_id, scope, principal)
        now = self.engine_clock_now()
        with self.db.begin() as session:
            task = self._visible_task(session, task_id, scope)
            if task.status != "open":
                raise Conflict("a completed task cannot be reassigned", {"field": "status"})
            previous = task.assignee_id
            user = session.get(DirectoryUser, assignee_id)
            task.assignee_id, task.updated_at = assignee_id, now
            task.team_id = user.team_id if user else task.team_id
            self.events.record(session, "task_reassigned", {
                "task": task_to_dict(task, now), "previous_assignee_id": previous})
            return task_to_dict(task, now)

    @rpc
    def snooze_task(self, task_id: str, until: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(scope_schema, scope)
        moment = load(snooze_schema, {"until": until})["until"]
        now = self.engine_clock_now()
        if moment <= now:
            raise ValidationFailed.for_fields({"until": ["must be in the future"]})
        with self.db.begin() as session:
            task = self._visible_task(session, task_id, scope)
            if task.status != "open":
                raise Conflict("a completed task cannot be snoozed", {"field": "status"})
            task.snoozed_until, task.updated_at = moment, now
            self.events.record(session, "task_snoozed", {"task": task_to_dict(task, now)})
            return task_to_dict(task, now)

    # -- notifications ---------------------------------------------------------------------

    @rpc
    def list_notifications(self, user_id: str, unread: bool | None = None,
                           cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        query = select(Notification).where(Notification.user_id == user_id)
        if unread is True:
            query = query.where(Notification.read_at.is_(None))
        query = page_after(query, Notification.created_at, Notification.id, page["cursor"],
                           page["limit"])
        with self.db.read() as session:
            rows = session.scalars(query).all()
        return page_of(rows, page["limit"], "created_at", notification_to_dict)

    @rpc
    def mark_notification_read(self, notification_id: str, user_id: str) -> dict[str, Any]:
        with self.db.begin() as session:
            item = session.get(Notification, notification_id) if isinstance(
                notification_id, str) else None
            if item is None or item.user_id != user_id:
                raise NotFound(f"notification {notification_id} not found",
                               {"field": "notification_id"})
            if item.read_at is None:
                item.read_at = self.engine_clock_now()
            return notification_to_dict(item)

    # -- webhooks --------------------------------------------------------------------------

    @staticmethod
    def _checked_url(url: str) -> None:
        """422 naming `url` for a target webhooks may not reach (SSRF); checked again at
        every delivery. A name that does not resolve yet is accepted (an integrator may
        register before their DNS is live, or on a machine without it): nothing is sent to
        it until it resolves to an address that passes."""
        from services.rules.notify import targets

        try:
            targets.check_url(url, targets.Allowlist.from_env())
        except targets.TargetUnresolved:
            return
        except targets.TargetRefused as exc:
            raise ValidationFailed.for_fields({"url": [str(exc)]},
                                              "the webhook URL is not accepted") from None

    @rpc
    def create_webhook(self, data: dict, principal: dict | None = None) -> dict[str, Any]:
        """A subscription; its secret is in this answer only. An admin's gets every event
        (the organisation's); a manager's only those about records of their teams."""
        from services.rules.notify import generate_secret

        acting = self._principal(principal)
        fields_ = load(webhook_input_schema, data)
        self._checked_url(fields_["url"])
        with self.db.begin() as session:
            sub = WebhookSubscription(
                id=new_id(), url=fields_["url"], secret=generate_secret(),
                event_types=fields_["event_types"], description=fields_.get("description"),
                active=fields_["active"], created_at=self.engine_clock_now(),
                created_by=self.context.actor,
                authority=None if acting.is_organisation else acting.to_dict(),
            )
            session.add(sub)
            forget_cached_rules()
            return {**subscription_to_dict(sub), "secret": sub.secret}

    @rpc
    def list_webhooks(self, principal: dict | None = None) -> dict[str, Any]:
        acting = self._principal(principal)
        with self.db.read() as session:
            rows = session.scalars(select(WebhookSubscription).order_by(
                WebhookSubscription.created_at)).all()
            return {"items": [subscription_to_dict(s) for s in rows
                              if Authority.of(s.authority).managed_by(acting)]}

    def _subscription(self, session: Session, subscription_id: str,
                      acting: Authority | None = None) -> WebhookSubscription:
        """A subscription the caller manages (admins every one, a manager theirs); another's
        is answered like a missing one."""
        sub = session.get(WebhookSubscription, subscription_id) if isinstance(
            subscription_id, str) else None
        if sub is None or (acting is not None
                           and not Authority.of(sub.authority).managed_by(acting)):
            raise NotFound(f"webhook subscription {subscription_id} not found",
                           {"field": "subscription_id"})
        return sub

    @rpc
    def get_webhook(self, subscription_id: str, principal: dict | None = None
                    ) -> dict[str, Any]:
        acting = self._principal(principal)
        with self.db.read() as session:
            return subscription_to_dict(self._subscription(session, subscription_id, acting))

    @rpc
    def update_webhook(self, subscription_id: str, data: dict,
                       principal: dict | None = None) -> dict[str, Any]:
        acting = self._principal(principal)
        fields_ = load(webhook_update_schema, data)
        with self.db.read() as session:
            self._subscription(session, subscription_id, acting)
        if "url" in fields_:
            self._checked_url(fields_["url"])
        with self.db.begin() as session:
            sub = self._subscription(session, subscription_id, acting)
            for name, value in fields_.items():
                setattr(sub, name, value)
            if fields_.get("active"):
                sub.disabled_reason = None
            forget_cached_rules()
            return subscription_to_dict(sub)

    @rpc
    def delete_webhook(self, subscription_id: str, principal: dict | None = None) -> None:
        acting = self._principal(principal)
        with self.db.begin() as session:
            sub = self._subscription(session, subscription_id, acting)
            session.delete(sub)
        forget_cached_rules()

    @rpc
    def list_webhook_deliveries(self, subscription_id: str, status: str | None = None,
                                cursor: str | None = None, limit: int = 50,
                                principal: dict | None = None) -> dict[str, Any]:
        acting = self._principal(principal)
        page = load(page_schema, {"cursor": cursor, "limit": limit})
        if status is not None and status not in ("pending", "sending", "delivered", "failed"):
            raise ValidationFailed.for_fields({"status": [
                "must be one of pending, sending, delivered, failed"]})
        with self.db.read() as session:
            self._subscription(session, subscription_id, acting)
            query = select(WebhookDelivery).where(
                WebhookDelivery.subscription_id == subscription_id)
            if status:
                query = query.where(WebhookDelivery.status == status)
            query = page_after(query, WebhookDelivery.created_at, WebhookDelivery.id,
                               page["cursor"], page["limit"])
            rows = session.scalars(query).all()
        return page_of(rows, page["limit"], "created_at", delivery_to_dict)

    @rpc
    def replay_webhook_delivery(self, delivery_id: str,
                                principal: dict | None = None) -> dict[str, Any]:
        """Send a delivery again (same webhook-id, so the receiver can recognise it)."""
        acting = self._principal(principal)
        with self.db.begin() as session:
            item = session.get(WebhookDelivery, delivery_id) if isinstance(
                delivery_id, str) else None
            sub = session.get(WebhookSubscription, item.subscription_id) if item else None
            if item is None or sub is None or not Authority.of(sub.authority).managed_by(
                    acting):
                raise NotFound(f"webhook delivery {delivery_id} not found",
                               {"field": "delivery_id"})
            if not sub.active:
                raise Conflict("the subscription is disabled; enable it first",
                               {"field": "subscription_id"})
            if item.status in ("pending", "sending"):
                raise Conflict("the delivery is still being attempted", {"field": "status"})
            item.status, item.next_attempt_at = "pending", self.engine_clock_now()
            item.attempt_log = [*(item.attempt_log or []), {
                "at": self.engine_clock_now().isoformat(), "replayed_by": self.context.actor}]
            return delivery_to_dict(item)

    # -- assignment settings ---------------------------------------------------------------

    @rpc
    def set_member_settings(self, user_id: str, data: dict) -> dict[str, Any]:
        fields_ = load(member_settings_schema, data)
        with self.db.begin() as session:
            if session.get(DirectoryUser, user_id) is None:
                raise NotFound(f"user {user_id} is not in the directory", {"field": "user_id"})
            row = session.get(MemberSetting, user_id) or MemberSetting(user_id=user_id)
            for name, value in fields_.items():
                setattr(row, name, value)
            row.updated_at = self.engine_clock_now()
            session.merge(row)
        return self.get_member_settings(user_id)

    @rpc
    def get_member_settings(self, user_id: str) -> dict[str, Any]:
        with self.db.read() as session:
            user = session.get(DirectoryUser, user_id) if isinstance(user_id, str) else None
            if user is None:
                raise NotFound(f"user {user_id} is not in the directory", {"field": "user_id"})
            row = session.get(MemberSetting, user_id)
            from sqlalchemy import func

            load_ = session.scalar(select(func.count()).select_from(RecordSnapshot).where(
                RecordSnapshot.record_type == "lead", RecordSnapshot.is_open.is_(True),
                RecordSnapshot.owner_id == user_id))
            return {"user_id": user_id, "username": user.username, "team_id": user.team_id,
                    "active": user.active, "capacity": row.capacity if row else None,
                    "out_of_office_until": iso(row.out_of_office_until) if row else None,
                    "open_leads": load_}

    # -- clock -----------------------------------------------------------------------------

    @rpc
    def get_clock(self) -> dict[str, Any]:
        clock = clock_module.CLOCK
        with self.db.read() as session:
            clock.refresh(session)
        return {"now": clock.now().isoformat(), "offset_seconds": clock.offset,
                "controllable": clock.controllable}

    @rpc
    def advance_clock(self, seconds: float) -> dict[str, Any]:
        clock = clock_module.CLOCK
        if not clock.controllable:
            raise Forbidden("the clock is controllable only with CRM_CLOCK=controllable")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not (
            0 < seconds <= 10 * 366 * 86400
        ):
            raise ValidationFailed.for_fields({"advance_seconds": [
                "a positive number of seconds (at most ten years)"]})
        with self.db.begin() as session:
            clock.advance(session, float(seconds))
        return self.get_clock()

    @rpc
    def timer_stats(self) -> dict[str, Any]:
        from sqlalchemy import func

        with self.db.read() as session:
            counts = dict(session.execute(
                select(Timer.status, func.count()).group_by(Timer.status)).all())
        return {"timers": counts}


# One RPC client per service with rule commands (shared/registry.py), e.g. `self.leads`; nameko
# finds dependencies on the class when the container starts, so set after the class is enough.
for _callee in registry.rule_callable_services():
    setattr(RulesService, _callee, rpc_proxy(_callee))
