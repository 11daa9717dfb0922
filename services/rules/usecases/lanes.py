"""Performing the runs of a fired batch side by side: one lane (a green thread) per subject,
at most `concurrency` at once, each lane's runs in the order they were fired.

A run's call to another service (`service_desk.check_sla`, `leads.assign_lead`) is a round
trip over the broker; performed one after the other, a batch of thousands of due timers
drained at the speed of one caller. What makes each effect happen once is unchanged: every
run is performed by exactly one lane, its outcomes are stored as they happen, a run left
unfinished by a dead process is resumed by its `run_resume` timer, and its calls carry their
`command_id`. A lane that fails is logged and the others go on (the run's resume timer
finishes it later)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import eventlet
from eventlet.greenpool import GreenPool

log = logging.getLogger(__name__)

Work = Callable[[], object]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def run_in_lanes(
    items: list[tuple[str, Work]], concurrency: int,
    lane: Callable[[], AbstractContextManager[object]] = _nothing,
) -> None:
    """`items`: (subject, work) in firing order; the works of one subject run one after the
    other, in that order, those of different subjects side by side, at most `concurrency`
    at once. `lane()`: a context entered around each lane, inside its green thread (what a
    run performed there must not share with the others: its outbox recorder)."""
    groups: dict[str, list[Work]] = {}
    for subject, work in items:
        groups.setdefault(subject, []).append(work)
    if concurrency <= 1 or len(groups) <= 1:
        for works in groups.values():
            _perform(works)
        return
    pool = GreenPool(min(concurrency, len(groups)))

    def one_lane(works: list[Work]) -> None:
        with lane():
            _perform(works)

    threads = []
    try:
        for works in groups.values():
            threads.append(pool.spawn(one_lane, works))
        pool.waitall()
    except BaseException:
        # The tick itself is stopped (a killed container): so are its lanes, which must not
        # go on over a torn-down container. Their runs are resumed by their timers.
        for thread in threads:
            thread.kill()
        raise


def _perform(works: list[Work]) -> None:
    for work in works:
        try:
            work()
        except (Exception, eventlet.Timeout):  # one run's trouble must not stop the others
            log.exception("performing a fired timer's run failed; its resume timer goes on")
