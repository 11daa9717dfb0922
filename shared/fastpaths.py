"""The fast paths: hand-written replacements of library code, and the switch back to it.

Each fast path below was measured to matter and is tested, but leans on what a library does not
promise (py-amqp's frame layout and transport, marshmallow's field classes, nameko's consumer
internals, SQLite's checkpoint timing, CPython's collector). When an upgrade breaks one, the
setting `CRM_FAST_PATHS` turns it off and the library's own path takes over, with the same
behaviour on the wire (tests run both):

    CRM_FAST_PATHS=all                      every fast path (the default)
    CRM_FAST_PATHS=none                     the libraries' own paths only
    CRM_FAST_PATHS=rpc_client,heap_freeze   only these
    CRM_FAST_PATHS=all,-relay_frames        all but these

The setting is read when the code that uses it sets up (a process start, a new engine or RPC
pool), so a process must be restarted to change it. An unknown name is refused at once: a typo
must not quietly leave the fast path on.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

SETTING = "CRM_FAST_PATHS"


@dataclass(frozen=True)
class FastPath:
    name: str
    where: str
    fast: str
    library: str


FAST_PATHS: dict[str, FastPath] = {
    path.name: path
    for path in (
        FastPath(
            "relay_frames", "shared.outbox.BatchPublisher, shared.amqp_frames",
            "the outbox relay encodes a batch's basic.publish frames itself, writes them at "
            "once on py-amqp's transport and waits once for all confirms",
            "kombu's Producer.publish on a confirming channel, one message and one confirm at "
            "a time",
        ),
        FastPath(
            "event_quick_check", "shared.outbox.EventRecorder, shared.schema_check",
            "a recorded event's payload is checked by a function compiled from its schema; "
            "marshmallow decides only what that check is not sure of",
            "marshmallow's Schema.validate for every event",
        ),
        FastPath(
            "rpc_replies", "shared.rpc.ReplyingRpcConsumer, ServiceRpc",
            "replies go out once, transient and unconfirmed, on one link per process; "
            "signatures are checked against a cached inspect.Signature",
            "nameko's responder (a publisher per reply, persistent and confirmed) and its "
            "signature check",
        ),
        FastPath(
            "rpc_client", "services.gateway.rpc.RpcPool",
            "the gateway speaks nameko's RPC protocol over pooled py-amqp links",
            "pooled nameko standalone ClusterRpcProxy instances",
        ),
        FastPath(
            "sqlite_checkpoints", "shared.db.make_engine, _Checkpointer",
            "an OS thread per SQLite file copies the WAL into the database every "
            "CRM_SQLITE_CHECKPOINT_SECONDS; commits checkpoint only if it falls far behind",
            "SQLite's own automatic checkpoint by the commit that fills the WAL",
        ),
        FastPath(
            "heap_freeze", "shared.heap.freeze_startup_heap",
            "the startup heap is frozen (gc.freeze) once a process has started",
            "the collector scans every object as CPython does by default",
        ),
    )
}


def active(setting: str | None = None) -> frozenset[str]:
    """The names of the fast paths `setting` (default: the environment's) turns on."""
    return _parse(os.environ.get(SETTING, "") if setting is None else setting)


@functools.lru_cache(maxsize=16)
def _parse(setting: str) -> frozenset[str]:
    chosen: set[str] = set()
    for token in (part.strip() for part in (setting or "all").split(",")):
        if not token:
            continue
        name = token[1:] if token.startswith("-") else token
        if name == "all":
            names = set(FAST_PATHS)
        elif name == "none":
            names = set()
            chosen.clear()
        elif name in FAST_PATHS:
            names = {name}
        else:
            raise ValueError(f"{SETTING}: no fast path is called {name!r} "
                             f"(known: all, none, {', '.join(FAST_PATHS)})")
        if token.startswith("-"):
            chosen -= names
        else:
            chosen |= names
    return frozenset(chosen)


def enabled(name: str) -> bool:
    """Whether the fast path `name` is on; `False` means: take the library's own path."""
    if name not in FAST_PATHS:
        raise KeyError(f"no fast path is called {name!r}")
    return name in active()
