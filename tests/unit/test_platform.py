"""The platform pieces that need no broker: envelope, typed errors over the wire, catalogue."""

from __future__ import annotations

from nameko.exceptions import deserialize, serialize

from services.leads.schemas import LeadCreateSchema
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
