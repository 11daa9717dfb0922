"""The garbage collector and long-lived processes.

A service process builds most of its objects while it starts: modules, mappers, schemas,
compiled statements. CPython's full collections scan all of them again and again; under load
they paused a service for 50-80 ms about every ten seconds (measured with `gc.callbacks` on
the rules and leads services and on the gateway's worker), which is most of a tail latency
budget. Freezing the heap once the process has started moves those objects out of the
collector's sight; later full collections scan only what requests created since.

A fast path (`shared.fastpaths`, `heap_freeze`): with it off, nothing is frozen and the
collector works as CPython's default.
"""

from __future__ import annotations

import gc
import logging

from shared import fastpaths

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect what starting left behind, then freeze the survivors. Returns how many objects
    were frozen (0 with the `heap_freeze` fast path off). Safe to call again: a later call
    freezes what survived since."""
    if not fastpaths.enabled("heap_freeze"):
        return 0
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d objects of the startup heap", frozen)
    return frozen
