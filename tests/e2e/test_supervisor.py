"""`make run` supervises: a service killed with -9 comes back by itself; one stopped on purpose
stays stopped; `stop` ends the supervisor too."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import devctl
from tests.e2e.system import System


@pytest.fixture(scope="module")
def supervised(amqp_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with devctl.temporary_vhost(amqp_uri, log=lambda _: None) as uri:
        running = System.start(uri, tmp_path_factory.mktemp("supervised"), services=["leads"],
                               broker_proxy=False, supervise=True)
        try:
            yield running
        finally:
            running.stop()


def _wait(predicate, what: str, limit: float = 90.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"not within {limit:.0f}s: {what}")


def _lists_leads(system: System) -> bool:
    return system.get("/leads", user="admin").status_code == 200


def test_a_killed_service_is_restarted_by_the_supervisor(supervised: System):
    run_dir = Path(supervised.run_dir)
    assert _lists_leads(supervised)
    pid = devctl.read_pid(run_dir, "leads")
    os.killpg(pid, signal.SIGKILL)
    _wait(lambda: (p := devctl.read_pid(run_dir, "leads")) != pid and devctl.is_alive(p),
          "leads started again")
    _wait(lambda: _lists_leads(supervised), "the gateway lists leads again")
    state = devctl.supervisor_state(run_dir)
    assert state["leads"]["restarts"] == 1
    assert state["leads"]["last_exit"] == "died"


def test_a_service_stopped_on_purpose_stays_stopped_until_started(supervised: System):
    run_dir = Path(supervised.run_dir)
    before = devctl.supervisor_state(run_dir).get("leads", {}).get("restarts", 0)
    devctl.stop_system(run_dir, ["leads"], log=lambda _: None)
    time.sleep(3)  # many supervisor rounds (0.5 s each); not a timing assertion
    assert devctl.read_pid(run_dir, "leads") is None
    devctl.start_process(run_dir, "leads")
    _wait(lambda: _lists_leads(supervised), "the gateway lists leads again")
    assert devctl.supervisor_state(run_dir).get("leads", {}).get("restarts", 0) == before


def test_stop_ends_the_supervisor_first(supervised: System):
    run_dir = Path(supervised.run_dir)
    supervisor_pid = devctl.read_pid(run_dir, devctl.SUPERVISOR)
    assert devctl.is_alive(supervisor_pid)
    devctl.stop_system(run_dir, log=lambda _: None)
    assert not devctl.is_alive(supervisor_pid)
    for spec in devctl.load_specs(run_dir):
        assert devctl.running_pid(run_dir, spec) is None
