"""The platform pieces that need no broker: envelope, typed errors over the wire, catalogue."""

from __future__ import annotations

from nameko.exceptions import deserialize, serialize

from services.leads.contract import LeadCreateSchema
from shared import catalogue
from shared.context import Context
from shared.envelope import EnvelopeSchema, context_headers, new_envelope
from shared.errors import Conflict, ValidationFailed
from shared.payloads import load


def test_envelope_has_every_field_of_the_convention():
    envelope = new_envelope("leads", "lead_created", {"x": 1},
                            Context(correlation_id="c", actor="u", causation_id="e0"))
    assert EnvelopeSchema().validate(envelope) == {}
    assert envelope["occurred_at"].endswith("+00:00")
    assert envelope["causation_depth"] == 0
    assert context_headers(envelope) == {"nameko.correlation_id": "c",
                                         "nameko.causation_id": envelope["event_id"],
                                         "nameko.actor": "u",
                                         "nameko.causation_depth": 1}


def test_typed_errors_survive_the_rpc_wire():
    error = ValidationFailed.for_fields({"email": ["not an email"]})
    back = deserialize(serialize(error))
    assert isinstance(back, ValidationFailed) and back.errors == {"email": ["not an email"]}
    matches = [{"lead_id": "l1", "score": 97.5, "exact": False}]
    conflict = deserialize(serialize(Conflict("duplicate", {"existing_id": "l1",
                                                            "matches": matches})))
    assert isinstance(conflict, Conflict) and conflict.detail == "duplicate"
    assert conflict.extra == {"existing_id": "l1", "matches": matches}, "types survive"


def test_load_names_unknown_and_wrong_fields():
    try:
        load(LeadCreateSchema(), {"name": 5, "source": "web", "email": "a@b.cn", "color": "red"})
    except ValidationFailed as err:
        assert set(err.errors) == {"name", "color"}
    else:
        raise AssertionError("invalid input was accepted")


def test_event_catalogue_is_current():
    for path, text in catalogue.rendered().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is stale: run `make catalogue` and commit it"
        )


def _worker_log_line(error: BaseException) -> dict:
    """What nameko's worker logging writes for `error`, through our handler."""
    import io
    import json
    import logging
    import sys

    from shared.logging import ExpectedErrors, JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("probe"))
    handler.addFilter(ExpectedErrors())
    logger = logging.getLogger("nameko.containers.test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise error
        except BaseException:
            logger.error("error handling worker %s: %s", "<WorkerContext [probe.do]>", error,
                         exc_info=sys.exc_info())
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, "one JSON line, traceback included"
    return json.loads(lines[0])


def test_expected_client_errors_are_info_without_a_traceback():
    from shared.errors import Forbidden, NotFound, PreconditionFailed

    for error in (ValidationFailed.for_fields({"email": ["bad"]}), NotFound("no lead x"),
                  Conflict("duplicate"), Forbidden("not yours"), PreconditionFailed("stage")):
        line = _worker_log_line(error)
        assert line["level"] == "INFO", error
        assert "exc" not in line
        assert str(error.status) in line["message"] and type(error).__name__ in line["message"]


def test_real_faults_stay_errors_with_their_traceback():
    line = _worker_log_line(RuntimeError("the disk is on fire"))
    assert line["level"] == "ERROR"
    assert "Traceback" in line["exc"] and "the disk is on fire" in line["exc"]


def test_a_consumer_holding_messages_without_progress_is_stalled():
    from shared.consumer import ConsumerProgress, envelope_problem

    progress = ConsumerProgress("rules.all-events")
    messages = [object(), object()]
    for message in messages:
        progress.started(message)
    start = max(progress.in_flight.values())
    assert progress.stall(60, now=start + 10) is None, "busy, not stuck yet"
    reason = progress.stall(60, now=start + 75)
    assert reason is not None and "2 messages unfinished" in reason
    assert progress.done(messages[0]) and not progress.done(messages[0])
    assert progress.stall(60, now=progress.last_finished + 5) is None, "it made progress"
    progress.done(messages[1])
    assert progress.stall(60, now=start + 1000) is None, "idle is not stuck"

    assert envelope_problem([1]) and envelope_problem({"event_id": "e", "event_type": "t"})
    assert envelope_problem({"event_id": "e", "event_type": "t", "data": {}}) is None
