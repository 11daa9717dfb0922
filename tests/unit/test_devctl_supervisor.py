"""The supervisor behind `make run`: a process that dies is started again, with a back-off."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from deploy import devctl


def _spec(run_dir: Path, name: str, code: str) -> devctl.ProcessSpec:
    return devctl.ProcessSpec(
        name, [sys.executable, "-c", code], {"PATH": "/usr/bin:/bin"},
        "127.0.0.1:9", str(run_dir / "logs" / f"{name}.log"),
    )


def _run_until(run_dir: Path, done, lines: list[str], limit: float = 60.0) -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=devctl.supervise, args=(run_dir,),
        kwargs={"poll_seconds": 0.05, "health_seconds": 0.2, "log": lines.append,
                "should_stop": stop.is_set},
        daemon=True,
    )
    thread.start()
    try:
        deadline_thread = threading.Timer(limit, stop.set)
        deadline_thread.start()
        while not stop.is_set() and not done():
            stop.wait(0.05)
        deadline_thread.cancel()
    finally:
        stop.set()
        thread.join(10)


def test_a_process_that_keeps_dying_is_restarted_with_a_doubling_back_off(tmp_path: Path):
    devctl.save_specs(tmp_path, [_spec(tmp_path, "flaky", "import sys; sys.exit(3)")])
    lines: list[str] = []
    _run_until(tmp_path, lambda: devctl.supervisor_state(tmp_path).get("flaky", {})
               .get("restarts", 0) >= 3, lines)
    state = devctl.supervisor_state(tmp_path)["flaky"]
    assert state["restarts"] >= 3
    assert state["last_exit"] == "died"
    backoffs = [line.rsplit("next back-off ", 1)[1] for line in lines if "next back-off" in line]
    assert backoffs[:3] == ["1s)", "2s)", "4s)"]


def test_a_held_process_is_left_stopped(tmp_path: Path):
    devctl.save_specs(tmp_path, [
        _spec(tmp_path, "held", "import sys; sys.exit(0)"),
        _spec(tmp_path, "flaky", "import sys; sys.exit(3)"),
    ])
    devctl.hold_file(tmp_path, "held").write_text("stopped on purpose\n")
    lines: list[str] = []
    # "flaky" being restarted twice shows the supervisor went round its loop many times
    _run_until(tmp_path, lambda: devctl.supervisor_state(tmp_path).get("flaky", {})
               .get("restarts", 0) >= 2, lines)
    state = devctl.supervisor_state(tmp_path)
    assert state["flaky"]["restarts"] >= 2
    assert state["held"]["restarts"] == 0
    assert devctl.read_pid(tmp_path, "held") is None


def test_a_running_process_is_not_restarted(tmp_path: Path):
    spec = _spec(tmp_path, "steady", "import time; time.sleep(120)")
    devctl.save_specs(tmp_path, [spec, _spec(tmp_path, "flaky", "import sys; sys.exit(3)")])
    pid = devctl.launch(spec, tmp_path)
    try:
        lines: list[str] = []
        _run_until(tmp_path, lambda: devctl.supervisor_state(tmp_path).get("flaky", {})
                   .get("restarts", 0) >= 2, lines)
        assert devctl.supervisor_state(tmp_path)["steady"]["restarts"] == 0
        assert devctl.read_pid(tmp_path, "steady") == pid
    finally:
        devctl.terminate({"steady": pid}, log=lambda _: None)
