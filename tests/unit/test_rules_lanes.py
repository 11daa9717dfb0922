"""The lanes a fired batch's runs are performed in (services/rules/usecases/lanes.py): at most
`concurrency` at once, one subject's in order and never two at a time, a failing one stops
no other, each lane in its own context."""

from __future__ import annotations

from contextlib import contextmanager

import eventlet
import pytest
from greenlet import GreenletExit

from services.rules.usecases.lanes import run_in_lanes


class Recorder:
    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        self.most = 0
        self.done: list[tuple[str, int]] = []

    def work(self, subject: str, n: int, yields: int = 2, fail: bool = False):
        def perform() -> None:
            self.in_flight[subject] = self.in_flight.get(subject, 0) + 1
            assert self.in_flight[subject] == 1, f"two runs of {subject} at once"
            self.most = max(self.most, sum(self.in_flight.values()))
            try:
                for _ in range(yields):  # a call in flight: other lanes go on meanwhile
                    eventlet.sleep(0)
                if fail:
                    raise RuntimeError(f"{subject} {n} failed")
                self.done.append((subject, n))
            finally:
                self.in_flight[subject] -= 1
        return subject, perform


def test_at_most_the_concurrency_is_in_flight_and_more_than_one():
    seen = Recorder()
    run_in_lanes([seen.work(f"ticket:{n}", 0) for n in range(20)], concurrency=4)
    assert seen.most == 4
    assert sorted(seen.done) == sorted((f"ticket:{n}", 0) for n in range(20))


def test_one_subjects_runs_go_in_firing_order_one_at_a_time():
    seen = Recorder()
    items = []
    for n in range(5):  # interleaved, the earlier ones slower
        items.append(seen.work("lead:a", n, yields=10 - 2 * n))
        items.append(seen.work(f"lead:other{n}", 0))
    run_in_lanes(items, concurrency=8)
    assert [n for subject, n in seen.done if subject == "lead:a"] == [0, 1, 2, 3, 4]
    assert len(seen.done) == 10


def test_a_failing_run_stops_neither_the_other_lanes_nor_its_own_lanes_next_run(caplog):
    seen = Recorder()
    items = [seen.work("t:1", 0, fail=True), seen.work("t:1", 1), seen.work("t:2", 0),
             seen.work("t:3", 0, fail=True), seen.work("t:4", 0)]
    run_in_lanes(items, concurrency=3)
    assert sorted(seen.done) == [("t:1", 1), ("t:2", 0), ("t:4", 0)]
    assert sum("failed" in r.getMessage() for r in caplog.records) == 2


def test_concurrency_one_performs_them_one_after_the_other_in_order():
    seen = Recorder()
    run_in_lanes([seen.work(f"t:{n}", n) for n in range(6)], concurrency=1)
    assert seen.most == 1
    assert seen.done == [(f"t:{n}", n) for n in range(6)]


def test_each_lane_runs_inside_its_own_context_in_its_own_green_thread():
    entered: list[object] = []
    performed: dict[str, object] = {}

    @contextmanager
    def lane():
        entered.append(eventlet.getcurrent())
        yield

    def work(subject: str):
        def perform() -> None:
            eventlet.sleep(0)
            performed[subject] = eventlet.getcurrent()
        return subject, perform

    run_in_lanes([work("a"), work("b"), work("c")], concurrency=3, lane=lane)
    assert len(set(entered)) == 3 and set(performed.values()) == set(entered)
    assert eventlet.getcurrent() not in entered


def test_a_stopped_tick_stops_its_lanes():
    lanes: list[object] = []

    def slow(subject: str):
        def perform() -> None:
            lanes.append(eventlet.getcurrent())
            eventlet.sleep(30)
        return subject, perform

    tick = eventlet.spawn(run_in_lanes, [slow("a"), slow("b")], 2)
    while len(lanes) < 2:
        eventlet.sleep(0)
    tick.kill()
    with pytest.raises(GreenletExit):
        tick.wait()
    assert tick.dead
    assert all(lane.dead for lane in lanes)
