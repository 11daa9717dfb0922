"""The frames of `basic.publish` for the outbox relay's persistent JSON messages.

py-amqp encodes every publish through its generic serializer (a format string interpreted per
argument and per property, a BytesIO per header table) and writes each message on its own:
that was most of the relay's CPU, which under a burst of timers is a third of the rules
service's. The relay's messages all have one shape (a JSON body, its content type and
encoding, delivery mode 2, a message id and string or integer headers), so their frames are
encoded here directly and a whole batch is written at once. The frames are the same bytes
py-amqp writes (a test compares them); py-amqp still owns the connection, the channel and the
broker's confirms.
"""

from __future__ import annotations

import struct
from typing import Any

from amqp.serialization import dumps as amqp_dumps

FRAME_END = b"\xce"
METHOD, HEADER, BODY = 1, 2, 3
BASIC_CLASS, PUBLISH_METHOD = 60, 40
# Property flags of the basic class: content_type, content_encoding, headers, delivery_mode
# and message_id, in the order of their bits (and of their values in the frame).
PROPERTY_FLAGS = 0x8000 | 0x4000 | 0x2000 | 0x1000 | 0x0080
PERSISTENT = 2

_FRAME = struct.Struct(">BHI")  # type, channel, payload size
_CONTENT_HEADER = struct.Struct(">HHQH")  # class, weight, body size, property flags
_LONG = struct.Struct(">I")
_INT = struct.Struct(">i")
INT_RANGE = range(-2147483647, 2147483648)  # py-amqp's 'I' range; beyond it, 'L'


def shortstr(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) > 255:
        raise ValueError(f"{value[:40]!r}... is longer than an AMQP short string (255 bytes)")
    return bytes((len(raw),)) + raw


def header_table(headers: dict[str, Any]) -> bytes:
    """An AMQP field table; values other than strings and 32-bit integers are left to
    py-amqp's serializer."""
    parts = []
    for key, value in headers.items():
        parts.append(shortstr(key))
        if isinstance(value, str):
            raw = value.encode("utf-8", "surrogatepass")
            parts.append(b"S" + _LONG.pack(len(raw)) + raw)
        elif type(value) is int and value in INT_RANGE:
            parts.append(b"I" + _INT.pack(value))
        else:
            return amqp_dumps("F", [headers])
    data = b"".join(parts)
    return _LONG.pack(len(data)) + data


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return _FRAME.pack(kind, channel, len(payload)) + payload + FRAME_END


class PublishEncoder:
    """Encodes the frames of persistent JSON messages published on one channel."""

    FIXED_PROPERTIES = shortstr("application/json") + shortstr("utf-8")

    def __init__(self, channel: int, frame_max: int) -> None:
        self.channel = channel
        self.chunk = frame_max - 8  # a frame's payload, without its header and end
        self._methods: dict[tuple[str, str], bytes] = {}

    def method_frame(self, exchange: str, routing_key: str) -> bytes:
        """`basic.publish` to `exchange` with `routing_key`, neither mandatory nor immediate;
        the same for every event of a type, so made once."""
        key = (exchange, routing_key)
        encoded = self._methods.get(key)
        if encoded is None:
            payload = (struct.pack(">HHH", BASIC_CLASS, PUBLISH_METHOD, 0) + shortstr(exchange)
                       + shortstr(routing_key) + b"\x00")
            encoded = self._methods[key] = frame(METHOD, self.channel, payload)
        return encoded

    def encode(self, exchange: str, routing_key: str, body: bytes, headers: dict[str, Any],
               message_id: str) -> bytes:
        """The method, content header and body frames of one message."""
        properties = (self.FIXED_PROPERTIES + header_table(headers) + bytes((PERSISTENT,))
                      + shortstr(message_id))
        parts = [
            self.method_frame(exchange, routing_key),
            frame(HEADER, self.channel,
                  _CONTENT_HEADER.pack(BASIC_CLASS, 0, len(body), PROPERTY_FLAGS) + properties),
        ]
        for start in range(0, len(body), self.chunk):
            parts.append(frame(BODY, self.channel, body[start : start + self.chunk]))
        return b"".join(parts)
