"""The shared payload fields: Timestamp answers UTC, JsonObject bounds free-form objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from marshmallow import Schema, ValidationError

from shared.payloads import JsonObject, Timestamp, utc_iso

SHANGHAI = timezone(timedelta(hours=8))


class Stamped(Schema):
    at = Timestamp(allow_none=True)


def test_timestamp_is_utc_whatever_offset_it_was_given() -> None:
    given = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
    assert Stamped().dump({"at": given}) == {"at": "2026-11-23T02:00:00+00:00"}
    assert Stamped().dump({"at": "2026-11-23T10:00:00+08:00"}) == {
        "at": "2026-11-23T02:00:00+00:00"}
    stored = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert Stamped().dump({"at": stored}) == Stamped().dump({"at": given})
    assert Stamped().dump({"at": None}) == {"at": None}


def test_utc_iso_leaves_other_strings_alone() -> None:
    assert utc_iso("2026-11-23") == "2026-11-23"
    assert utc_iso("not a time") == "not a time"
    assert utc_iso("2026-11-23T02:00:00Z") == "2026-11-23T02:00:00+00:00"
    assert utc_iso(datetime(2026, 1, 1)) == "2026-01-01T00:00:00+00:00"  # naive = stored UTC


class Attributes(Schema):
    attributes = JsonObject(max_properties=3, max_string_length=10, max_items=2, max_depth=2,
                            max_bytes=50)


@pytest.mark.parametrize("value", [
    {"a": 1, "b": 2, "c": 3, "d": 4},
    {"a": "x" * 11},
    {"a": [1, 2, 3]},
    {"a": {"b": {"c": 1}}},
    {"a": "x" * 10, "b": "y" * 10, "c": ["z" * 10, "w" * 10]},
    {"k" * 65: 1},
    ["not", "an", "object"],
])
def test_json_object_refuses_what_exceeds_its_bounds(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        Attributes().load({"attributes": value})
    assert list(caught.value.messages) == ["attributes"]


def test_json_object_within_bounds_loads_unchanged() -> None:
    value = {"n": 500, "tags": ["a", "b"], "erp": {"id": "4711"}}
    assert Attributes().load({"attributes": value}) == {"attributes": value}
