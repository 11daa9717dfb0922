"""The relay's own encoding of `basic.publish` writes the bytes py-amqp would write."""

from types import SimpleNamespace

import pytest
from amqp import Message
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

from shared.amqp_frames import PublishEncoder, header_table, shortstr

FRAME_MAX = 4096


def py_amqp_frames(channel, exchange, routing_key, body, headers, message_id) -> bytes:
    written = []
    connection = SimpleNamespace(frame_max=FRAME_MAX, bytes_sent=0)
    write = frame_writer(connection, SimpleNamespace(write=lambda data: written.append(
        bytes(data))))
    message = Message(body, content_type="application/json", content_encoding="utf-8",
                      delivery_mode=2, message_id=message_id, application_headers=headers)
    write(1, channel, (60, 40), dumps("Bssbb", (0, exchange, routing_key, False, False)),
          message)
    return b"".join(written)


HEADERS = {"nameko.correlation_id": "c-1", "nameko.causation_id": "e-1",
           "nameko.actor": "用户-7", "nameko.causation_depth": 3}


@pytest.mark.parametrize("body", [
    b"", b"{}", '{"name": "张三的线索"}'.encode(),
    b"x" * (FRAME_MAX - 8), b"y" * (FRAME_MAX * 3 + 17),  # split into several body frames
], ids=["empty", "object", "chinese", "one-full-frame", "several-frames"])
@pytest.mark.parametrize("headers", [
    HEADERS, {}, {"big": 2**40, "negative": -5, "flag": True, "none": None, "nested": {"a": 1}},
], ids=["context", "none", "other-types"])
def test_frames_are_the_bytes_py_amqp_writes(body, headers):
    encoder = PublishEncoder(channel=3, frame_max=FRAME_MAX)
    ours = encoder.encode("leads.events", "lead_created", body, headers, "e-1")
    assert ours == py_amqp_frames(3, "leads.events", "lead_created", body, headers, "e-1")
    # the method frame is cached per exchange and routing key; a second message is the same
    assert encoder.encode("leads.events", "lead_created", body, headers, "e-1") == ours


def test_header_table_matches_py_amqp_for_edge_integers():
    for value in (2147483647, -2147483647, -2147483648, 2147483648, 0):
        assert header_table({"n": value}) == dumps("F", [{"n": value}])


def test_a_too_long_short_string_is_refused():
    assert shortstr("é" * 127) == bytes([254]) + ("é" * 127).encode()
    with pytest.raises(ValueError, match="short string"):
        shortstr("x" * 256)
