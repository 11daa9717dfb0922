"""The fault suite's moving parts: the system on its own broker node, a lead load whose every
201 goes into a ledger, the faults, and the check of the ledger against every database.

A cycle = a load of `leads` website leads at `concurrency`, with one fault injected when a third
of them have been answered; then the system is left to settle (as long as its effects still
grow), and every lead of the cycle is checked: it exists once, it has exactly its rule effects
(an owner, one "call now" task, one in-app notification, one e-mail at the SMTP server), its
rule run ended; the outboxes are drained, the queues empty, and the dead letters are exactly
the poison messages sent. E-mails count by Message-ID: a copy with the same Message-ID is the
one message in flight when rules was killed, sent again (`resent`, at most one per kill of
rules); a second message is a duplicate.
The system is healthy and serving within RECOVERY_GOAL (30 s) of the fault's end.

Clients behave as a careful integrator does: a request that fails with a connection error, a
timeout, a 5xx, a 429 or a 409 "still in progress" is sent again with the same Idempotency-Key
until it gets an answer.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kombu
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from deploy import devctl
from tests.chaos import diagnostics, side_loads
from tests.chaos.node import BrokerNode
from tests.e2e.system import System, free_port
from tests.support.smtp_server import SmtpServer

# contracts: the ERP's inbound consumer and its directory projection; service_desk: its
# projection of sales' customers and contacts (the requesters) (tests/chaos/side_loads.py)
SERVICES = ("leads", "sales", "rules", "contracts", "service_desk")
DATABASES = (*SERVICES, "gateway")
CALL_NOW_RULE = "website-lead-call-now"
# Settling goes on while the effects still grow (a loaded machine's rules service works off
# thousands of events and e-mails slowly: that is late, not lost), until nothing has moved for
# SETTLE_SECONDS, and at most SETTLE_MAX_SECONDS. Longer than the e-mail delivery lease (2 min):
# the deliveries a killed rules process had claimed go out only when it has passed.
SETTLE_SECONDS = float(os.environ.get("CRM_CHAOS_SETTLE_SECONDS", "180"))
SETTLE_MAX_SECONDS = float(os.environ.get("CRM_CHAOS_SETTLE_MAX_SECONDS", "1800"))
RECOVERY_LIMIT = float(os.environ.get("CRM_CHAOS_RECOVERY_LIMIT", "120"))
# The goal: healthy and serving within this many seconds of the fault's end (the broker's
# return), with no manual step.
RECOVERY_GOAL = float(os.environ.get("CRM_CHAOS_RECOVERY_GOAL", "30"))
PG_ADMIN_URL = os.environ.get("CRM_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

Log = Callable[[str], None]


def _say(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


# --------------------------------------------------------------------------- the system


@dataclass
class ChaosSystem:
    node: BrokerNode
    smtp: SmtpServer
    system: System
    database: str
    engines: dict[str, Engine]
    pg_databases: list[str] = field(default_factory=list)
    manual_restarts: int = 0
    poison_sent: int = 0

    @classmethod
    @contextmanager
    def running(cls, base_dir: Path, database: str = "sqlite",
                log: Log = _say) -> Iterator[ChaosSystem]:
        node = BrokerNode()
        smtp = SmtpServer().start()
        pg_databases: list[str] = []
        system = None
        try:
            log(f"starting a RabbitMQ node of its own ({node.name}, port {node.port})")
            node.start()
            urls: dict[str, str] = {}
            if database == "postgres":
                for name in DATABASES:
                    db_name = f"crm_chaos_{name}_{uuid.uuid4().hex[:8]}"
                    _pg_admin(f'CREATE DATABASE "{db_name}"')
                    pg_databases.append(db_name)
                    urls[name] = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + db_name
            log(f"starting the system on {database}, supervised")
            system = System.start(
                node.uri, base_dir, database_urls=urls, broker_proxy=False, supervise=True,
                extra_env={
                    "CRM_SMTP_HOST": smtp.host, "CRM_SMTP_PORT": str(smtp.port),
                    "CRM_SMTP_SECURITY": "none", "CRM_SMTP_USER": "",
                    "CRM_RABBITMQ_NODENAME": node.name,
                    # the load must not be throttled: it is one integrator's key
                    "CRM_RATE_LIMIT": "0",
                    # the service desk's SMTP listener (tests/chaos/mail.py)
                    "SERVICE_DESK_SMTP_LISTEN": f"127.0.0.1:{free_port()}",
                    # replies a killed sender held are sent again after 15 s, not 2 minutes
                    "SERVICE_DESK_MAIL_SEND_LEASE": "15",
                },
            )
            engines = {
                name: create_engine(_sqlalchemy_url(
                    urls.get(name) or f"sqlite:///{system.data_dir / name}.db"))
                for name in DATABASES
            }
            running = cls(node, smtp, system, database, engines, pg_databases)
            running.wait_directory()
            yield running
        finally:
            if system is not None:
                system.stop()
            node.remove()
            smtp.stop()
            for db_name in pg_databases:
                _pg_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

    def wait_directory(self) -> None:
        """The rules service assigns only users it has heard of: wait for the directory."""
        for name in ("zhangwei", "lina", "chenjing"):
            self.system.wait_for(
                lambda name=name: self.system.get(
                    f"/assignment/members/{self.system.users[name]}", user="admin"
                ).status_code == 200, timeout=60,
                message=f"{name} never reached the rules service's directory")

    # ---- faults

    def processes(self) -> list[str]:
        return [spec.name for spec in devctl.load_specs(self.system.run_dir)]

    def healthy(self) -> bool:
        for spec in devctl.load_specs(self.system.run_dir):
            try:
                code, _ = devctl.http_get(spec.health_url, timeout=2)
            except OSError:
                return False
            if code != 200:
                return False
        return True

    def serves(self) -> bool:
        try:
            response = self.system.get("/leads", user="admin", params={"limit": 1}, timeout=5)
        except requests.RequestException:
            return False
        return response.status_code == 200

    def wait_recovered(self, since: float) -> float:
        """Seconds from `since` until every process is healthy and the gateway serves leads.
        A system that has not recovered by RECOVERY_LIMIT gets a manual restart (counted:
        the goal is none)."""
        while time.monotonic() - since < RECOVERY_LIMIT:
            if self.healthy() and self.serves():
                return time.monotonic() - since
            time.sleep(0.25)
        _say(f"not recovered within {RECOVERY_LIMIT:.0f}s: restarting by hand")
        self.manual_restarts += 1
        for spec in devctl.load_specs(self.system.run_dir):
            devctl.stop_system(self.system.run_dir, [spec.name], log=lambda _: None)
            devctl.start_process(self.system.run_dir, spec.name)
        return float("inf")

    def signal_process(self, name: str, signum: int) -> None:
        pid = devctl.read_pid(self.system.run_dir, name)
        if pid is None:
            raise RuntimeError(f"{name} has no pid")
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while devctl.is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def publish_poison(self) -> int:
        """One message of each kind that no handler can take, into the stream of every event:
        a body that is not JSON, a content type nobody accepts, an envelope without `data`, and
        a JSON body that is not an envelope at all."""
        envelope = {"event_id": str(uuid.uuid4()), "event_type": "lead_created", "version": 1,
                    "occurred_at": "2026-01-01T00:00:00+00:00", "producer": "leads",
                    "correlation_id": str(uuid.uuid4()), "causation_id": None, "actor": None}
        poison = [
            (b"{not json", "application/json"),
            (b"\x80\x03}q\x00.", "application/x-python-serialize"),
            (json.dumps(envelope).encode(), "application/json"),
            (json.dumps([1, 2, 3]).encode(), "application/json"),
        ]
        with kombu.Connection(self.node.uri) as connection:
            producer = connection.Producer()
            for body, content_type in poison:
                producer.publish(
                    body, exchange="leads.events", routing_key="lead_created",
                    content_type=content_type, content_encoding="binary",
                    delivery_mode=2, headers={"x-chaos": "poison"},
                    declare=[kombu.Exchange("leads.events", type="topic", durable=True)],
                )
        self.poison_sent += len(poison)
        erp = side_loads.poison_erp(self)  # and the ERP's, into the contracts' consumer
        self.poison_sent += erp
        return len(poison) + erp

    # ---- state

    def outbox_backlog(self) -> dict[str, int]:
        backlog = {}
        for name, engine in self.engines.items():
            with engine.connect() as connection:
                backlog[name] = connection.execute(
                    text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one()
        return backlog

    def queue_backlog(self) -> dict[str, int]:
        """Messages waiting (ready or unacknowledged) in every queue but the dead letters and
        the RPC reply queues of clients."""
        return {name: depth for name, depth in self.node.queue_depths().items()
                if depth and name != "crm.dead-letter" and not name.startswith("rpc.reply")}

    def dead_letters(self) -> int:
        return self.node.queue_depths().get("crm.dead-letter", 0)


def _sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _pg_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


def postgres_problem() -> str | None:
    try:
        _pg_admin("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure is the reason
        return f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {exc}"
    return None


# --------------------------------------------------------------------------- the load


@dataclass
class Entry:
    """One lead the client wanted created."""

    number: int
    name: str
    phone: str
    key: str
    lead_id: str | None = None
    status: int | None = None
    attempts: int = 0
    problems: list[str] = field(default_factory=list)


def _in_progress(response: requests.Response) -> bool:
    if response.status_code != 409:
        return False
    try:
        problem = response.json()
    except ValueError:
        return False
    return str(problem.get("type", "")).endswith("idempotency-key-in-progress")


class Load:
    """`total` website leads at `concurrency`, each retried with its Idempotency-Key."""

    def __init__(self, chaos: ChaosSystem, cycle: str, total: int, concurrency: int,
                 deadline_seconds: float = 300.0) -> None:
        self.chaos = chaos
        self.total = total
        self.concurrency = concurrency
        self.deadline_seconds = deadline_seconds
        stamp = uuid.uuid4().int % 10_000
        self.entries = [
            Entry(i, f"混沌{cycle}-{stamp}-{i}", f"+86139{stamp:04d}{i:04d}",
                  str(uuid.uuid4()))
            for i in range(total)
        ]
        self.answered = 0
        self._lock = threading.Lock()
        self._next = 0

    def _take(self) -> Entry | None:
        with self._lock:
            if self._next >= len(self.entries):
                return None
            entry = self.entries[self._next]
            self._next += 1
            return entry

    def _send(self, session: requests.Session, entry: Entry) -> None:
        url = self.chaos.system.url + "/leads"
        headers = {"Authorization": "Bearer " + self.chaos.system.keys["admin"],
                   "Idempotency-Key": entry.key}
        # no company: similar company names are duplicates by design (409)
        body = {"name": entry.name, "phone": entry.phone, "source": "website",
                "email": f"chaos-{entry.key}@example.cn",
                "region": "华东" if entry.number % 2 else "华南"}
        deadline = time.monotonic() + self.deadline_seconds
        pause = 0.2
        while time.monotonic() < deadline:
            entry.attempts += 1
            try:
                response = session.post(url, json=body, headers=headers, timeout=30)
            except requests.RequestException as exc:
                entry.problems.append(type(exc).__name__)
            else:
                if response.status_code in (200, 201):
                    entry.status = response.status_code
                    entry.lead_id = response.json()["id"]
                    return
                if _in_progress(response):
                    # The key's first request is running, or died with a killed gateway:
                    # "retry later" (Retry-After), as a careful client does.
                    entry.problems.append("409 in progress")
                    time.sleep(min(5.0, float(response.headers.get("Retry-After") or 1)))
                    continue
                if response.status_code < 500 and response.status_code != 429:
                    entry.status = response.status_code  # a final answer, and a wrong one
                    entry.problems.append(f"{response.status_code} {response.text[:200]}")
                    return
                entry.problems.append(str(response.status_code))
            time.sleep(pause)
            pause = min(2.0, pause * 2)
        entry.problems.append("gave up")

    def _worker(self) -> None:
        session = requests.Session()
        session.trust_env = False
        try:
            while (entry := self._take()) is not None:
                self._send(session, entry)
                with self._lock:
                    self.answered += 1
        finally:
            session.close()

    def run(self) -> list[Entry]:
        threads = [threading.Thread(target=self._worker, daemon=True)
                   for _ in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.entries


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """Something done to the system while the load runs; returns when it has been undone
    (the broker is back, the signal sent); recovery is measured from then."""

    name: str
    inject: Callable[[ChaosSystem], None]
    poison: bool = False
    # E-mails that may be sent again (same Message-ID): one in flight per death of rules.
    resends: int = 0


def broker_kill(chaos: ChaosSystem) -> None:
    chaos.node.kill9()
    time.sleep(5)
    chaos.node.start()


def kill_process(name: str) -> Fault:
    return Fault(f"kill -9 {name}", lambda chaos: chaos.signal_process(name, signal.SIGKILL),
                 resends=1 if name == "rules" else 0)


def rolling_sigterm(chaos: ChaosSystem) -> None:
    """SIGTERM every process in turn; the supervisor starts each again; the next one goes
    when the previous one is healthy."""
    for name in chaos.processes():
        chaos.signal_process(name, signal.SIGTERM)
        chaos.wait_recovered(time.monotonic())


def poison(chaos: ChaosSystem) -> None:
    chaos.publish_poison()


FAULTS: dict[str, Fault] = {
    "broker-kill": Fault("broker kill -9", broker_kill),
    **{f"kill-{name}": kill_process(name) for name in (*SERVICES, devctl.GATEWAY)},
    "sigterm-rolling": Fault("SIGTERM rolling restart", rolling_sigterm),
    "poison": Fault("poison messages", poison, poison=True),
}


# --------------------------------------------------------------------------- the check


@dataclass
class Outcome:
    scenario: str
    database: str
    leads: int
    refused: int = 0  # a final answer that is not 200/201 (e.g. 409 on a retry)
    lost: int = 0
    duplicated: int = 0
    without_effects: int = 0
    duplicate_effects: int = 0
    resent: int = 0  # e-mails sent again with their Message-ID (the one in flight at a kill)
    resent_allowed: int = 0
    runs_not_ended: int = 0
    outbox_backlog: int = 0
    queue_backlog: int = 0
    dead_letters: int = 0
    dead_letters_expected: int = 0
    recovery_seconds: float = 0.0
    settle_seconds: float = 0.0  # from the load's end until everything was done
    manual_restarts: int = 0
    # the side loads (tests/chaos/side_loads.py): ERP payments lost / recorded twice, users
    # missing or stale in the contracts' or the rules' directory projection
    erp_lost: int = 0
    erp_doubled: int = 0
    directory_lost: int = 0
    # the service desk's requesters projection: customers or contacts missing or different
    requesters_lost: int = 0
    details: list[str] = field(default_factory=list)
    # Printed after the details when the cycle failed: where the events stopped, the logs'
    # warnings and errors, the broker's queues, consumers and bindings.
    diagnostics: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.refused or self.lost or self.duplicated or self.without_effects
                    or self.duplicate_effects or self.runs_not_ended or self.outbox_backlog
                    or self.erp_lost or self.erp_doubled or self.directory_lost
                    or self.requesters_lost
                    or self.queue_backlog or self.manual_restarts
                    or self.resent > self.resent_allowed
                    or self.dead_letters != self.dead_letters_expected
                    or self.recovery_seconds > RECOVERY_GOAL)


def _effects(chaos: ChaosSystem, entries: list[Entry]) -> dict[str, dict[str, Any]]:
    """Per phone of the cycle: the lead rows with it and their effects, from every database
    and the SMTP server. A lead is found by its phone, so that a lead created behind a lost
    answer is found too."""
    found: dict[str, dict[str, Any]] = {
        e.phone: {"ids": [], "owner_id": None, "tasks": 0, "notifications": 0, "emails": 0,
                  "message_ids": {}, "runs": [], "name": e.name} for e in entries}
    by_id: dict[str, dict[str, Any]] = {}
    with chaos.engines["leads"].connect() as connection:
        for lead_id, phone, owner_id in connection.execute(
                text("SELECT id, phone, owner_id FROM leads WHERE phone IN :phones")
                .bindparams(_expanding("phones")), {"phones": list(found)}):
            row = found[phone]
            row["ids"].append(lead_id)
            row["owner_id"] = owner_id
            by_id[lead_id] = row
    with chaos.engines["rules"].connect() as connection:
        rule_id = connection.execute(
            text("SELECT id FROM rules WHERE key = :key"), {"key": CALL_NOW_RULE}).scalar()
        for (record_id,) in connection.execute(
                text("SELECT record_id FROM tasks WHERE rule_id = :rule"), {"rule": rule_id}):
            if record_id in by_id:
                by_id[record_id]["tasks"] += 1
        for (record_id,) in connection.execute(
                text("SELECT record_id FROM notifications WHERE rule_id = :rule"),
                {"rule": rule_id}):
            if record_id in by_id:
                by_id[record_id]["notifications"] += 1
        for record_key, status in connection.execute(
                text("SELECT record_key, status FROM rule_runs WHERE rule_id = :rule"),
                {"rule": rule_id}):
            lead_id = str(record_key).removeprefix("lead:")
            if lead_id in by_id:
                by_id[lead_id]["runs"].append(status)
    by_name = {row["name"]: row for row in found.values()}
    for message in chaos.smtp.messages:
        subject = str(message["Subject"] or "")
        if subject.startswith("新线索：") and "，" in subject:
            row = by_name.get(subject.removeprefix("新线索：").split("，", 1)[0])
            if row is not None:
                message_id = str(message["Message-ID"] or "")
                row["message_ids"][message_id] = row["message_ids"].get(message_id, 0) + 1
    for row in found.values():
        # Distinct messages: a copy with the same Message-ID is the one message that was in
        # flight when rules died, sent again (allowed, and counted apart as `resent`).
        row["emails"] = len(row["message_ids"])
        row["resent"] = sum(row["message_ids"].values()) - row["emails"]
    return found


def _expanding(name: str):
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def settle(chaos: ChaosSystem, entries: list[Entry], expected_dead: int,
           side: tuple[Any, ...] = ()) -> dict[str, Any]:
    """Wait until every lead of the cycle has its effects, the side loads theirs, and nothing
    is left to do, or nothing has moved for SETTLE_SECONDS (bounded by SETTLE_MAX_SECONDS)."""
    started = time.monotonic()
    last_change, last_state = started, None
    while True:
        effects = _effects(chaos, entries)
        rows = [row for row in effects.values() if row["ids"]]
        complete = all(
            row["owner_id"] and row["tasks"] >= 1 and row["notifications"] >= 1
            and row["emails"] >= 1 and row["runs"] and all(s != "running" for s in row["runs"])
            for row in rows)
        complete = complete and all(load.complete() for load in side)
        outbox, queued = chaos.outbox_backlog(), chaos.queue_backlog()
        quiet = (complete and not any(outbox.values()) and not queued
                 and chaos.dead_letters() >= expected_dead)
        state = (sum(bool(row["owner_id"]) + row["tasks"] + row["notifications"] + row["emails"]
                     + sum(s != "running" for s in row["runs"]) for row in rows),
                 sum(outbox.values()), sum(queued.values()),
                 tuple(load.progress() for load in side))
        now = time.monotonic()
        if state != last_state:
            last_change, last_state = now, state
        if (quiet or now - last_change > SETTLE_SECONDS
                or now - started > SETTLE_MAX_SECONDS):
            time.sleep(2)  # anything late (a second e-mail) has a moment to show itself
            return _effects(chaos, entries)
        time.sleep(1)


def run_cycle(chaos: ChaosSystem, scenario: str, leads: int, concurrency: int,
              log: Log = _say) -> Outcome:
    fault = FAULTS[scenario]
    load = Load(chaos, scenario, leads, concurrency)
    dead_before = chaos.dead_letters()
    expected_dead = dead_before
    recovery: list[float] = []

    def injector() -> None:
        while load.answered < leads // 3:
            time.sleep(0.05)
        log(f"{scenario}: {fault.name} after {load.answered} answers")
        fault.inject(chaos)
        recovery.append(chaos.wait_recovered(time.monotonic()))

    thread = threading.Thread(target=injector, daemon=True)
    manual_before = chaos.manual_restarts
    poison_before = chaos.poison_sent
    erp = side_loads.ErpLoad(chaos, scenario, load)
    directory = side_loads.DirectoryLoad(chaos, scenario, load)
    requesters = side_loads.RequesterLoad(chaos, scenario, load)
    thread.start()
    erp.start()
    directory.start()
    requesters.start()
    entries = load.run()
    thread.join()
    erp.join()
    directory.join()
    requesters.join()
    expected_dead += chaos.poison_sent - poison_before
    log(f"{scenario}: load done ({sum(1 for e in entries if e.lead_id)} of {leads} created); "
        "settling")
    settle_started = time.monotonic()
    effects = settle(chaos, entries, expected_dead, side=(erp, directory, requesters))
    settle_seconds = round(time.monotonic() - settle_started, 1)

    outcome = Outcome(scenario, chaos.database, leads, resent_allowed=fault.resends,
                      recovery_seconds=round(recovery[0], 1) if recovery else float("inf"),
                      manual_restarts=chaos.manual_restarts - manual_before,
                      settle_seconds=settle_seconds,
                      dead_letters=chaos.dead_letters(), dead_letters_expected=expected_dead)
    no_effects: list[str] = []
    for entry in entries:
        row = effects[entry.phone]
        if entry.status not in (200, 201):
            outcome.refused += 1
            outcome.details.append(f"refused: {entry.name} answered {entry.status} after "
                                   f"{entry.attempts} attempts: {entry.problems[-1:]}")
        if entry.lead_id is not None and entry.lead_id not in row["ids"]:
            outcome.lost += 1
            outcome.details.append(f"lost: {entry.name} {entry.lead_id} (rows {row['ids']})")
        if len(row["ids"]) > 1:
            outcome.duplicated += 1
            outcome.details.append(f"duplicated: {entry.name} rows {row['ids']}")
        if not row["ids"]:
            continue
        if not (row["owner_id"] and row["tasks"] and row["notifications"] and row["emails"]):
            outcome.without_effects += 1
            no_effects.extend(row["ids"])
            outcome.details.append(f"without effects: {entry.name} {row['ids']} owner "
                                   f"{row['owner_id']} tasks {row['tasks']} notifications "
                                   f"{row['notifications']} emails {row['emails']} "
                                   f"runs {row['runs']}")
        if row["tasks"] > 1 or row["notifications"] > 1 or row["emails"] > 1:
            outcome.duplicate_effects += 1
            outcome.details.append(f"duplicate effects: {entry.name} tasks {row['tasks']} "
                                   f"notifications {row['notifications']} "
                                   f"emails {row['emails']}")
        if row["resent"]:
            outcome.resent += row["resent"]
            outcome.details.append(f"resent: {entry.name} {row['message_ids']}")
        if not row["runs"] or any(status == "running" for status in row["runs"]):
            outcome.runs_not_ended += 1
    outcome.erp_lost, outcome.erp_doubled, erp_details = erp.problems()
    outcome.directory_lost, directory_details = directory.problems()
    outcome.requesters_lost, requester_details = requesters.problems()
    outcome.details.extend(erp_details + directory_details + requester_details)
    outcome.outbox_backlog = sum(chaos.outbox_backlog().values())
    outcome.queue_backlog = sum(chaos.queue_backlog().values())
    if outcome.queue_backlog:
        outcome.details.append(f"queues: {chaos.queue_backlog()}")
    if not outcome.passed:
        outcome.diagnostics = diagnostics.report(chaos, no_effects)
    return outcome


COLUMNS = [
    ("scenario", 24), ("db", 8), ("leads", 6), ("refused", 7), ("lost", 5), ("dup", 4),
    ("no effects", 10), ("dup effects", 11), ("resent", 6), ("open runs", 9), ("outbox", 6),
    ("queued", 6), ("dead (exp)", 10), ("erp/dir/req", 11),
    ("recovery s", 10), ("settle s", 8), ("manual", 6), ("", 4),
]


def table(outcomes: list[Outcome]) -> str:
    lines = ["  ".join(f"{title:<{width}}" for title, width in COLUMNS)]
    for o in outcomes:
        values = [
            FAULTS[o.scenario].name, o.database, o.leads, o.refused, o.lost, o.duplicated,
            o.without_effects, o.duplicate_effects, f"{o.resent}/{o.resent_allowed}",
            o.runs_not_ended, o.outbox_backlog,
            o.queue_backlog, f"{o.dead_letters} ({o.dead_letters_expected})",
            f"{o.erp_lost}/{o.erp_doubled}/{o.directory_lost}/{o.requesters_lost}",
            o.recovery_seconds, o.settle_seconds, o.manual_restarts,
            "ok" if o.passed else "FAIL",
        ]
        lines.append("  ".join(f"{str(v):<{w}}" for v, (_, w) in zip(values, COLUMNS,
                                                                       strict=True)))
    return "\n".join(lines)
