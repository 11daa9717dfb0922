"""`shared.schema_check.quick_check` never says yes where marshmallow finds a problem, and says
yes to the valid events of the schemas it covers."""

from __future__ import annotations

import copy
import importlib
from datetime import UTC, datetime
from typing import Any

import pytest
from marshmallow import EXCLUDE, Schema, fields, validate, validates_schema

from shared import registry
from shared.payloads import Timestamp
from shared.schema_check import quick_check


class Inner(Schema):
    code = fields.String(required=True, validate=validate.Length(max=5))
    level = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=9))


class Sample(Schema):
    name = fields.String(required=True)
    kind = fields.String(validate=validate.OneOf(["a", "b"]))
    count = fields.Integer(required=True)
    ratio = fields.Float(allow_none=True)
    flag = fields.Boolean()
    extra = fields.Dict()
    anything = fields.Raw(allow_none=True)
    tags = fields.List(fields.String())
    inner = fields.Nested(Inner, required=True)
    items = fields.List(fields.Nested(Inner))
    renamed = fields.String(data_key="otherName")
    written = fields.String(dump_only=True)
    at = fields.DateTime()
    aware = fields.AwareDateTime(allow_none=True)
    stamp = Timestamp(required=True)


VALID = {"name": "n", "kind": "a", "count": 3, "ratio": 0.5, "flag": True, "extra": {"k": 1},
         "anything": [1, "x"], "tags": ["t"], "inner": {"code": "c1", "level": 2},
         "items": [{"code": "x"}, {"code": "y", "level": None}], "otherName": "r",
         "at": "2026-11-23T10:00:00", "aware": "2026-11-23T10:00:00+08:00",
         "stamp": "2026-11-23T02:00:00.123456+00:00"}

WRONG_VALUES = [None, "", "s", "123456", 0, 1, -1, 10, 2.5, float("nan"), float("inf"), True,
                False, [], ["t"], [1], {}, {"code": "z"}, {"code": "z", "more": 1}, b"bytes",
                ("t",), "2026-11-23T10:00:00", "2026-11-23", "2026-13-01T00:00:00+00:00",
                "2026-11-23T10:00:00Z", "20261123T100000+0800", " 2026-11-23T10:00:00+00:00",
                datetime(2026, 11, 23, tzinfo=UTC)]


def mutations(payload: dict[str, Any]):
    """Payloads near a valid one: each key dropped, renamed or given each wrong value, at the
    top and one level down, and unknown keys added."""
    yield {**payload, "unknown": 1}
    for key in payload:
        yield {k: v for k, v in payload.items() if k != key}
        for value in WRONG_VALUES:
            yield {**payload, key: value}
        if isinstance(payload[key], dict):
            for inner in mutations(payload[key]):
                yield {**payload, key: inner}
        if isinstance(payload[key], list) and payload[key] and isinstance(payload[key][0], dict):
            for inner in mutations(payload[key][0]):
                yield {**payload, key: [inner, *payload[key][1:]]}


def assert_never_more_lenient(schema: Schema, payload: dict[str, Any]) -> int:
    check = quick_check(schema)
    assert check is not None
    assert check(payload) and not schema.validate(payload)
    accepted = 0
    for candidate in mutations(payload):
        if check(copy.deepcopy(candidate)):
            accepted += 1
            assert not schema.validate(candidate), candidate
    return accepted


def test_the_quick_check_accepts_only_what_marshmallow_accepts():
    accepted = assert_never_more_lenient(Sample(), VALID)
    assert accepted > 20  # it is not merely saying no to everything


def test_schemas_beyond_it_get_no_quick_check():
    class WithHook(Schema):
        a = fields.String()

        @validates_schema
        def check(self, data, **kwargs):
            pass

    class WithEmail(Schema):
        a = fields.Email()

    class Lenient(Schema):
        inner = fields.Nested(Inner, unknown=EXCLUDE)

    class DatedList(Schema):
        at = fields.List(fields.Date())

    class Formatted(Schema):
        at = fields.DateTime(format="%Y/%m/%d")

    class Defaulted(Schema):
        at = fields.AwareDateTime(default_timezone=UTC)

    class ValidatedTime(Schema):
        at = fields.DateTime(validate=lambda value: value.year > 2000)

    for schema in (WithHook(), WithEmail(), Lenient(), DatedList(), Formatted(), Defaulted(),
                   ValidatedTime(), Sample(many=True)):
        assert quick_check(schema) is None


def test_an_open_schema_accepts_unknown_keys_as_marshmallow_does():
    class Open(Schema):
        class Meta:
            unknown = EXCLUDE

        a = fields.String(required=True)

    check = quick_check(Open())
    assert check({"a": "x", "b": 1}) and not Open().validate({"a": "x", "b": 1})


def event_schemas(service: str) -> dict[str, type[Schema]]:
    return importlib.import_module(dict(registry.event_producers())[service]).EVENT_SCHEMAS


def event_samples() -> list[tuple[str, str, dict[str, Any]]]:
    """The events the tests of each service recorded are not at hand here: one valid payload
    per covered schema, built from the schema's own fields."""
    samples = []
    for service, _ in registry.event_producers():
        for event_type, schema_cls in event_schemas(service).items():
            schema = schema_cls()
            if quick_check(schema) is not None:
                samples.append((service, event_type, example(schema)))
    return samples


def example(schema: Schema) -> dict[str, Any]:
    values = {fields.String: "x", fields.Integer: 1, fields.Float: 1.5, fields.Boolean: True,
              fields.Raw: {"any": 1}, fields.Dict: {"k": "v"},
              fields.DateTime: "2026-11-23T10:00:00", Timestamp: "2026-11-23T02:00:00+00:00",
              fields.AwareDateTime: "2026-11-23T10:00:00+08:00"}
    data = {}
    for name, field in schema.load_fields.items():
        if isinstance(field, fields.Nested):
            value = example(field.schema)
        elif isinstance(field, fields.List):
            inner = field.inner
            value = [example(inner.schema) if isinstance(inner, fields.Nested)
                     else values[type(inner)]]
        else:
            value = values[type(field)]
            choices = [v for v in field.validators if isinstance(v, validate.OneOf)]
            if choices:
                value = choices[0].choices[0]
        data[field.data_key or name] = value
    return data


@pytest.mark.parametrize(("service", "event_type", "payload"), event_samples(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_event_schemas_it_covers(service, event_type, payload):
    schema = event_schemas(service)[event_type]()
    assert_never_more_lenient(schema, payload)


def test_it_covers_the_rules_services_events():
    covered = {(service, event_type) for service, event_type, _ in event_samples()}
    assert {("rules", "rule_run_completed"), ("rules", "notification_created"),
            ("rules", "task_created")} <= covered


def test_it_covers_the_leads_services_events():
    covered = {(service, event_type) for service, event_type, _ in event_samples()}
    assert {("leads", "lead_created"), ("leads", "lead_qualified"),
            ("leads", "lead_scored")} <= covered


def test_the_recorder_refuses_an_event_that_does_not_fit_its_schema():
    from types import SimpleNamespace

    from services.rules.contract import EVENT_SCHEMAS
    from services.rules.models import outbox
    from shared.context import Context
    from shared.errors import ValidationFailed
    from shared.outbox import EventRecorder

    recorder = EventRecorder("rules", outbox, EVENT_SCHEMAS, Context(correlation_id="c"))
    session = SimpleNamespace(info={})  # deferred rows only touch the session's info
    run = example(EVENT_SCHEMAS["rule_run_completed"]())["run"]
    recorder.record(session, "rule_run_completed", {"run": run}, defer=True)
    with pytest.raises(ValidationFailed) as refused:
        recorder.record(session, "rule_run_completed", {"run": {**run, "rule_version": "two"}},
                        defer=True)
    assert refused.value.errors == {"run": {"rule_version": ["Not a valid integer."]}}
    assert len(recorder._uncommitted) == 1
