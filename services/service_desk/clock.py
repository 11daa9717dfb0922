"""The service_desk service's now, for tickets' timestamps and their SLA clocks.

The wall clock in production. With `CRM_CLOCK=controllable` (tests, demos) it follows the rules
service's controllable clock: the service's timer polls `rules.get_clock` (every
`CLOCK_POLL_SECONDS`) and keeps its offset, so a ticket created after `rules.advance_clock` is
stamped on the same clock as the rules' timers that check it, and its SLA instants are not
already past for them.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from shared.envelope import utcnow

CLOCK_POLL_SECONDS = 0.5
_offset = 0.0


def controllable() -> bool:
    return os.environ.get("CRM_CLOCK", "").strip().lower() == "controllable"


def now() -> datetime:
    moment = utcnow()
    return moment + timedelta(seconds=_offset) if _offset else moment


def follow(offset_seconds: float) -> None:
    """The rules service's offset (controllable mode only; it only moves forward)."""
    global _offset
    if controllable():
        _offset = max(_offset, float(offset_seconds))
