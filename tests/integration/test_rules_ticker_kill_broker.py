"""kill -9 of the rules process in the middle of a concurrent batch (real processes, the real
broker in a vhost of its own, PostgreSQL): a batch of SLA check timers all due at once, their
runs calling `service_desk.check_sla` side by side (`CRM_RULES_TIMER_CONCURRENCY`); the rules
process is killed while some runs are done and others are in flight or waiting, then started
again. Every ticket gets its warning exactly once (none lost, none doubled), every timer fired
once with one run, every run completed with one `rule_run_completed`, and the runs the dead
process left were finished by their resume timers."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from deploy import devctl
from services.rules import seed
from shared.migrations import upgrade
from tests.bench_service_desk import _sla_load_desk, _sla_load_rules, _sla_start

pytestmark = pytest.mark.integration

TICKETS = int(os.environ.get("CRM_TEST_KILL_BATCH", "300"))
CONCURRENCY = 4
RULE = "ticket-sla-check"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


def run_counts(url: str) -> Counter:
    with psycopg.connect(url, autocommit=True) as conn:
        return Counter(dict(conn.execute(
            "SELECT status, count(*) FROM rule_runs WHERE rule_id = %s GROUP BY status",
            (RULE,)).fetchall()))


def warnings(url: str) -> Counter:
    """Published `ticket_sla_warning`s per (ticket, threshold)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT envelope FROM outbox WHERE event_type = "
                            "'ticket_sla_warning' AND published_at IS NOT NULL").fetchall()
    return Counter((d["ticket_id"], d["threshold"])
                   for d in (json.loads(envelope)["data"] for (envelope,) in rows))


def settled(url: str) -> bool:
    """Nothing left that could call or publish again: no pending resume or retry timers, no
    unfinished run, no unpublished event."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM timers WHERE status = 'pending' AND kind IN "
            "('run_resume', 'action_retry')) + (SELECT count(*) FROM rule_runs WHERE "
            "status NOT IN ('completed', 'failed', 'no_match', 'stopped')) + "
            "(SELECT count(*) FROM outbox WHERE published_at IS NULL)").fetchone()[0] == 0


def test_a_rules_process_killed_mid_batch_loses_and_doubles_no_effect(
    pg_url_factory, tmp_path: Path
):
    base_uri = os.environ.get("AMQP_URI") or devctl.DEFAULT_AMQP_URI
    if devctl.broker_problem(base_uri):
        pytest.skip(f"no broker at {base_uri}")
    rules_url, desk_url = pg_url_factory(), pg_url_factory()
    upgrade("service_desk", desk_url)
    seed.install(rules_url)
    with psycopg.connect(rules_url, autocommit=True) as conn:
        conn.execute("UPDATE rules SET enabled = false WHERE key <> %s", (RULE,))
    processes: list[subprocess.Popen] = []
    with devctl.temporary_vhost(base_uri, log=lambda _: None) as amqp_uri:
        env = {**{k: v for k, v in os.environ.items() if not k.endswith("_DATABASE_URL")},
               "AMQP_URI": amqp_uri, "RULES_DATABASE_URL": rules_url,
               "SERVICE_DESK_DATABASE_URL": desk_url, "CRM_DATA_DIR": str(tmp_path),
               "CRM_LOG_LEVEL": "WARNING", "CRM_RULES_TIMER_CONCURRENCY": str(CONCURRENCY),
               "CRM_RULES_RESUME_SECONDS": "3"}
        env.pop("CRM_CLOCK", None)
        try:
            rules, _ = _sla_start("rules", env, tmp_path)
            processes.append(rules)
            desk, _ = _sla_start("service_desk", env, tmp_path)
            processes.append(desk)
            ids = [str(uuid.uuid4()) for _ in range(TICKETS)]
            instant = datetime.now(UTC) + timedelta(seconds=3)
            instants = [instant] * TICKETS  # one batch: all due at the same tick
            _sla_load_desk(desk_url, ids, instants)
            _sla_load_rules(rules_url, ids, instants)

            # killed once some runs are done and the batch is fired, the others not yet
            counts = wait_for(lambda: (c := run_counts(rules_url))["completed"] >= 5 and c,
                              timeout=120, what="the first runs of the batch")
            rules.kill()
            rules.wait(timeout=30)
            at_kill = run_counts(rules_url)
            assert sum(at_kill.values()) == TICKETS, f"not one batch: {counts}"
            assert at_kill["completed"] < TICKETS, "the batch finished before the kill"

            rules, _ = _sla_start("rules", env, tmp_path)
            processes.append(rules)
            wait_for(lambda: run_counts(rules_url)["completed"] == TICKETS, timeout=180,
                     what=f"all runs completed (at the kill: {dict(at_kill)})")
            wait_for(lambda: settled(rules_url), timeout=60, what="the rules to settle")
            wait_for(lambda: len(warnings(desk_url)) == TICKETS, timeout=60,
                     what="every warning published")
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()

    published = warnings(desk_url)
    assert set(published) == {(ticket, 0.75) for ticket in ids}  # none lost, nothing else
    assert set(published.values()) == {1}  # none doubled
    with psycopg.connect(rules_url, autocommit=True) as conn:
        per_timer = conn.execute(
            "SELECT t.status, count(r.id) FROM timers t LEFT JOIN rule_runs r ON "
            "r.timer_id = t.id WHERE t.rule_id = %s AND t.status <> 'pending' "
            "GROUP BY t.id, t.status", (RULE,)).fetchall()
        completed = conn.execute(
            "SELECT envelope::jsonb -> 'data' -> 'run' ->> 'id' FROM outbox "
            "WHERE event_type = 'rule_run_completed'").fetchall()
        resumed = conn.execute(
            "SELECT count(*) FROM timers WHERE kind = 'run_resume' AND status = 'fired' "
            "AND outcome = 'retrying the action'").fetchone()[0]
    assert len(per_timer) == TICKETS and set(per_timer) == {("fired", 1)}
    assert len(completed) == TICKETS and len(set(completed)) == TICKETS
    print(f"runs at the kill: {dict(at_kill)}; resume timers fired after it: {resumed}")
    assert resumed > 0  # the dead process's unfinished runs went on in the new one
