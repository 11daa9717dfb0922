"""Replies of our RPC entrypoint over the real broker: one link per process that survives a
dropped connection, and results that cannot be serialised answered as nameko's error."""

from __future__ import annotations

import json
import uuid

import kombu
from nameko.exceptions import deserialize

from shared.rpc import ReplyLink, reply_body


def _reply_queue(conn: kombu.Connection) -> tuple[kombu.SimpleQueue, str]:
    key = uuid.uuid4().hex
    exchange = kombu.Exchange("nameko-rpc", type="topic", durable=True)
    queue = kombu.Queue(f"test-replies-{key}", exchange, routing_key=key, exclusive=True)
    return conn.SimpleQueue(queue), key


def test_a_reply_link_reconnects_after_the_broker_dropped_it(nameko_config: dict) -> None:
    link = ReplyLink(nameko_config, "nameko-rpc")
    with kombu.Connection(nameko_config["AMQP_URI"]) as conn:
        replies, key = _reply_queue(conn)
        try:
            link.publish(b'{"result": 1, "error": null}', key, "c1")
            # Received before the drop: a reply in flight when a connection dies may be lost
            # (replies are transient; the caller's timeout covers it).
            received = [replies.get(timeout=5)]
            # The link's socket goes away under it, as when the broker restarts.
            link._connection.connection.sock.close()
            link.publish(b'{"result": 2, "error": null}', key, "c2")
            received.append(replies.get(timeout=5))
            assert [m.properties["correlation_id"] for m in received] == ["c1", "c2"]
            assert [json.loads(m.body)["result"] for m in received] == [1, 2]
            assert received[1].properties["delivery_mode"] == 1  # transient
        finally:
            replies.close()
            link.close()


def test_an_unserialisable_result_is_answered_as_an_error() -> None:
    body, result, exc_info = reply_body({"when": object()}, None)
    reply = json.loads(body)
    assert reply["result"] is None and result is None and exc_info is not None
    assert reply["error"]["exc_type"] == "UnserializableValueError"
    assert "object" in str(deserialize(reply["error"]))  # names what could not be sent
