"""What an event is about: its record (lead, contact, ...), the records it relates to, and what
changed compared with the last snapshot the rules service saw."""

from __future__ import annotations

from typing import Any

from shared import registry

# In the order they are tried on an event's data; the services own them (shared/registry.py).
RECORD_TYPES: tuple[str, ...] = registry.record_types()
# Foreign keys by which an event about one record concerns another (a follow-up of a lead).
LINK_FIELDS: dict[str, str] = registry.link_fields()
# Record types whose owner is another field than `owner_id` (a ticket's `assignee_id`).
OWNER_FIELDS: dict[str, str] = registry.owner_fields()


def record_key(record_type: str, record_id: str) -> str:
    return f"{record_type}:{record_id}"


def with_owner(record_type: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record with `owner_id` set from its type's owner field (a ticket's assignee), so
    that `owner`, `owner_manager` and the owner's scope mean the same for every record."""
    field = OWNER_FIELDS.get(record_type)
    if field is None or field not in record:
        return record
    return {**record, "owner_id": record[field]}


def primary_record(data: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The record an event's data carries as a snapshot (`{"lead": {...}}`), if any."""
    for record_type in RECORD_TYPES:
        value = data.get(record_type)
        if isinstance(value, dict) and value.get("id"):
            return record_type, value
    for link, record_type in LINK_FIELDS.items():  # e.g. sales.lead_converted {"lead_id"}
        if isinstance(data.get(link), str) and data[link]:
            return record_type, {"id": data[link]}
    return None, None


def related_keys(data: dict[str, Any]) -> dict[str, str]:
    """record type -> key of every record the event concerns: its own and linked ones."""
    keys: dict[str, str] = {}
    record_type, record = primary_record(data)
    if record_type and record:
        keys[record_type] = record_key(record_type, str(record["id"]))
        sources = [record, data]
    else:
        sources = [data]
    for source in sources:
        for link, linked_type in LINK_FIELDS.items():
            value = source.get(link)
            if isinstance(value, str) and value and linked_type not in keys:
                keys[linked_type] = record_key(linked_type, value)
    return keys


def changes(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """field -> {"from", "to"} for every field whose value differs (all of them when new)."""
    old = old or {}
    return {
        name: {"from": old.get(name), "to": value}
        for name, value in new.items()
        if name not in old or old.get(name) != value
    }
