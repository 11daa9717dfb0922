"""Shipped rules on an installed system: which of them the seed upgrades to the new shipped
definition and which it leaves to their admins (pure: no database)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

# What the seed does with a shipped rule (`python -m services.rules.seed` reports it per key).
INSTALLED = "installed"  # missing: installed
PRESENT = "present"  # as shipped
UPGRADED = "upgraded"  # nobody changed it since it was installed: the new shipped definition
UPDATE_AVAILABLE = "update_available"  # an admin changed it: kept, the new one offered
EDITED = "edited"  # an admin changed it, and nothing new is shipped: kept


def content(name: str, description: str | None, definition: dict[str, Any]) -> dict[str, Any]:
    """What of a rule is shipped (its enabled flag is the admin's, never shipped)."""
    return {"name": name, "description": description,
            "definition": {key: definition[key] for key in ("trigger", "conditions", "actions")}}


def content_hash(value: dict[str, Any]) -> str:
    """A stable hash of a rule's `content`: the same for equal content, whatever the order of
    its keys."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Installed:
    """What the seed last wrote of a shipped rule: the rule's version and its content's hash."""

    version: int
    hash: str


def decide(shipped_hash: str, current_version: int, current_hash: str,
           installed: Installed | None) -> str:
    """What the seed does with a present shipped rule. `installed`: what it last wrote (None:
    unknown, a rule an older seed installed that an admin has edited since).

    A rule at the version the seed wrote is unchanged (an admin's edit is a new version;
    enabling or disabling is not, and is kept). An unchanged rule follows the shipped one; a
    changed one is left as it is, the new shipped definition offered if there is one."""
    if current_hash == shipped_hash:
        return PRESENT
    if installed is not None and current_version == installed.version:
        return UPGRADED if shipped_hash != installed.hash else PRESENT
    if installed is not None and shipped_hash == installed.hash:
        return EDITED
    return UPDATE_AVAILABLE
