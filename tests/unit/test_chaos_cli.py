"""`make chaos` (python -m tests.chaos) runs the service desk's mail cycle on each database after
the lead scenarios, as the pytest suite does, and a loss in it fails the run (exit 1). The
system, the cycles and the broker check are stand-ins: this is about the CLI's wiring only."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.chaos import __main__ as cli
from tests.chaos import harness, mail


@dataclass
class Recorded:
    calls: list[tuple] = field(default_factory=list)
    mails_lost: int = 0


@pytest.fixture
def recorded(monkeypatch) -> Recorded:
    state = Recorded()

    @contextmanager
    def running(base, database):
        state.calls.append(("system", database))
        yield database

    def run_cycle(chaos, scenario, leads, concurrency):
        state.calls.append(("cycle", chaos, scenario))
        return harness.Outcome(scenario, chaos, leads)

    def run_mail_cycle(chaos, mails, concurrency):
        state.calls.append(("mail", chaos, mails))
        return mail.MailOutcome(mails=mails, lost=state.mails_lost)

    monkeypatch.setattr(cli, "unavailable_reason", lambda: None)
    monkeypatch.setattr(harness, "postgres_problem", lambda: None)
    monkeypatch.setattr(harness.ChaosSystem, "running", running)
    monkeypatch.setattr(harness, "run_cycle", run_cycle)
    monkeypatch.setattr(mail, "run_mail_cycle", run_mail_cycle)
    return state


def test_the_mail_cycle_runs_on_every_database_after_the_scenarios(recorded):
    assert cli.main(["--scenarios", "poison,kill-rules", "--mails", "40"]) == 0
    assert recorded.calls == [
        ("system", "sqlite"), ("cycle", "sqlite", "poison"), ("cycle", "sqlite", "kill-rules"),
        ("mail", "sqlite", 40),
        ("system", "postgres"), ("cycle", "postgres", "poison"),
        ("cycle", "postgres", "kill-rules"), ("mail", "postgres", 40)]


def test_a_lost_mail_fails_the_run(recorded, capsys):
    recorded.mails_lost = 1
    assert cli.main(["--scenarios", "poison", "--databases", "sqlite"]) == 1
    assert "mail intake: 300 mails, lost 1" in capsys.readouterr().out


def test_no_mails_skips_the_cycle_and_no_scenarios_runs_the_mail_cycle_alone(recorded):
    assert cli.main(["--scenarios", "poison", "--databases", "sqlite", "--mails", "0"]) == 0
    assert [c[0] for c in recorded.calls] == ["system", "cycle"]
    recorded.calls.clear()
    assert cli.main(["--scenarios", "", "--databases", "sqlite", "--mails", "5"]) == 0
    assert recorded.calls == [("system", "sqlite"), ("mail", "sqlite", 5)]
