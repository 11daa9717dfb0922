"""A rule's changes: every edit is a new version (runs record the version they used)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class RuleState(Protocol):
    name: str
    description: str | None
    enabled: bool
    definition: dict[str, Any]
    trigger_type: str
    version: int
    updated_at: datetime
    updated_by: str | None


def revise(rule: RuleState, fields_: dict[str, Any], now: datetime, by: str | None) -> None:
    """The rule's name, description, enabled flag and definition replaced: version + 1."""
    rule.name = fields_["name"]
    rule.description = fields_.get("description")
    rule.enabled = fields_["enabled"]
    rule.definition = fields_["definition"]
    rule.trigger_type = fields_["definition"]["trigger"]["type"]
    rule.version += 1
    rule.updated_at = now
    rule.updated_by = by


def set_enabled(rule: RuleState, enabled: bool, now: datetime, by: str | None) -> bool:
    """Enabled or disabled (not a new version); False when it already was."""
    if rule.enabled == enabled:
        return False
    rule.enabled = enabled
    rule.updated_at = now
    rule.updated_by = by
    return True
