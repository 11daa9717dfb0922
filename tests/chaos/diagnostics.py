"""What a failed cycle prints besides its table: for every lead left without effects, where
its `lead_created` event stopped (the leads outbox, rules' inbox and event log, its run), and
the state of the broker and the logs' warnings and errors.

Only read here: nothing in it changes the system.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text

from deploy import devctl

if TYPE_CHECKING:
    from tests.chaos.harness import ChaosSystem

LOG_LINES = 25  # the last WARNING/ERROR lines of each log
LEVELS = ("WARNING", "ERROR", "CRITICAL")
TRAIL_LEADS = 12  # leads shown one by one (the summary counts them all)


def _lead_events(chaos: ChaosSystem, lead_ids: set[str]) -> dict[str, dict[str, Any]]:
    """lead id -> its lead_created row in the leads outbox."""
    found: dict[str, dict[str, Any]] = {}
    with chaos.engines["leads"].connect() as connection:
        rows = connection.execute(text(
            "SELECT event_id, envelope, created_at, published_at FROM outbox "
            "WHERE event_type = 'lead_created'"))
        for event_id, envelope, created_at, published_at in rows:
            try:
                lead = (json.loads(envelope).get("data") or {}).get("lead") or {}
            except (ValueError, AttributeError):
                continue
            lead_id = lead.get("id") if isinstance(lead, dict) else None
            if lead_id in lead_ids:
                found[lead_id] = {"event_id": event_id, "created_at": created_at,
                                  "published_at": published_at}
    return found


def _in_rules(chaos: ChaosSystem, table: str, column: str, event_ids: list[str]
              ) -> dict[str, Any]:
    if not event_ids:
        return {}
    statement = text(f"SELECT event_id, {column} FROM {table} "  # noqa: S608 - our own names
                     "WHERE event_id IN :ids").bindparams(bindparam("ids", expanding=True))
    with chaos.engines["rules"].connect() as connection:
        return dict(connection.execute(statement, {"ids": event_ids}).all())


def event_trail(chaos: ChaosSystem, lead_ids: list[str]) -> list[str]:
    """Per lead without effects: its event in the leads outbox (published?), in rules'
    inbox and event log; first a summary of where they stopped."""
    events = _lead_events(chaos, set(lead_ids))
    event_ids = [e["event_id"] for e in events.values()]
    inbox = _in_rules(chaos, "inbox", "processed_at", event_ids)
    logged = _in_rules(chaos, "event_log", "received_at", event_ids)
    stops: Counter[str] = Counter()
    lines = []
    for lead_id in lead_ids:
        event = events.get(lead_id)
        if event is None:
            where = "no lead_created row in the leads outbox"
            lines.append(f"  lead {lead_id}: {where}")
        else:
            eid = event["event_id"]
            if event["published_at"] is None:
                where = "not yet published by the leads relay"
            elif eid not in inbox:
                where = "published, never taken by rules (not in its inbox)"
            elif eid not in logged:
                where = "in rules' inbox, not in its event log"
            else:
                where = "taken by rules (inbox and event log), no run"
            lines.append(f"  lead {lead_id}: event {eid} created {event['created_at']} "
                         f"published {event['published_at']} rules inbox "
                         f"{inbox.get(eid)} event log {logged.get(eid)}: {where}")
        stops[where] += 1
    summary = "; ".join(f"{n} {where}" for where, n in stops.most_common())
    more = [f"  ... and {len(lines) - TRAIL_LEADS} more"] if len(lines) > TRAIL_LEADS else []
    return [f"where the events of the {len(lead_ids)} leads without effects stopped: "
            f"{summary}", *lines[:TRAIL_LEADS], *more]


def _log_problems(path: Path, lines: int = LOG_LINES) -> list[str]:
    """The last WARNING/ERROR lines of a service's JSON log (tracebacks cut short)."""
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return [f"  ({path}: no log)"]
    picked = []
    for line in content:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in LEVELS:
            exc = str(record.get("exc") or "").strip().splitlines()
            message = " ".join(str(record.get("message")).split())
            picked.append(f"  {record.get('ts')} {record.get('level')} {record.get('logger')}: "
                          f"{message[:300]}"
                          + (f" [{exc[-1][:200]}]" if exc else ""))
    return picked[-lines:] or ["  (no warnings or errors)"]


def _tail(path: Path, lines: int = LOG_LINES) -> list[str]:
    return ["  " + line for line in devctl.log_tail(path, lines).splitlines()]


def _broker_log_problems(chaos: ChaosSystem, lines: int = LOG_LINES) -> list[str]:
    picked = []
    for path in sorted(chaos.node.log_dir.glob("*.log")):
        try:
            content = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        picked += [f"  {path.name}: {line[:300]}" for line in content
                   if any(level in line for level in ("[warning]", "[error]", "[critical]"))]
    return picked[-lines:] or ["  (nothing noteworthy)"]


def _broker_state(chaos: ChaosSystem) -> list[str]:
    lines = []
    for args in (("list_queues", "name", "messages", "messages_unacknowledged", "consumers"),
                 ("list_consumers", "queue_name", "channel_pid", "prefetch_count"),
                 ("list_bindings", "source_name", "source_kind", "destination_name",
                  "destination_kind", "routing_key"),
                 ("list_exchanges", "name", "type", "durable", "auto_delete")):
        lines.append(f"rabbitmqctl {args[0]}:")
        try:
            out = chaos.node.ctl(*args[:1], "-q", "--no-table-headers", *args[1:])
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not fail the report
            lines.append(f"  (failed: {exc})")
            continue
        lines += [f"  {line}" for line in out.splitlines() if line.strip()
                  and not line.split()[0].startswith("amq.")]
    return lines


def report(chaos: ChaosSystem, lead_ids_without_effects: list[str]) -> list[str]:
    """Everything a failed cycle should print after its own details."""
    lines: list[str] = []
    if lead_ids_without_effects:
        try:
            lines += event_trail(chaos, lead_ids_without_effects)
        except Exception as exc:  # noqa: BLE001
            lines.append(f"(the event trail failed: {exc!r})")
    logs = chaos.system.run_dir / "logs"
    for name in ("rules", "leads"):
        lines.append(f"{name}.log, the last warnings and errors:")
        lines += _log_problems(logs / f"{name}.log")
    lines.append("supervisor.log, the end:")
    lines += _tail(logs / "supervisor.log")
    lines.append(f"supervisor state: {devctl.supervisor_state(chaos.system.run_dir)}")
    lines.append(f"the broker's log ({chaos.node.log_dir}), warnings and errors (a queue's "
                 "recovery says how many messages it dropped):")
    lines += _broker_log_problems(chaos)
    lines += _broker_state(chaos)
    return lines
