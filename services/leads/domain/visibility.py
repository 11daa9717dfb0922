"""Row-level visibility and edit rights of a caller's scope (services/leads/README.md).

A scope is the kernel's (`shared.kernel.schemas.ScopeSchema`): `all`, `owner_ids`,
`include_pool`, `manage_pool`. A lead without an owner is in the public pool (公海).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import Forbidden


def lead_visible(owner_id: str | None, scope: Mapping[str, Any]) -> bool:
    """Whether a caller with `scope` may see a lead owned by `owner_id` (None: in the public
    pool)."""
    if scope.get("all"):
        return True
    if owner_id is None:
        return bool(scope.get("include_pool"))
    return owner_id in scope.get("owner_ids", ())


def may_merge(owner_id: str | None, scope: Mapping[str, Any]) -> bool:
    """Whether the caller may merge into (or retire by merging) a lead owned by `owner_id`.

    A merge writes identity fields and attributes into a lead, rescoring it (which can fire
    rules), and a merge with a source retires the source: it needs edit rights, not sight.
    Leads of the caller's scope (their own; their teams' for a manager; all for an admin) may
    be merged. A public-pool lead belongs to nobody: only who manages the pool (scope
    `manage_pool`, a manager) may merge into or from it; a rep claims it first, so that taking
    a pool lead always goes through the claim (and the pool rules that watch claims) instead of
    being absorbed into the rep's own lead or written into unclaimed.
    """
    if scope.get("all"):
        return True
    if owner_id is None:
        return bool(scope.get("include_pool") and scope.get("manage_pool"))
    return owner_id in scope.get("owner_ids", ())


def may_act_for_others(scope: Mapping[str, Any]) -> bool:
    """Whether the caller may release leads that are not their own (a manager, an admin)."""
    return bool(scope.get("all") or scope.get("owner_ids"))


def check_owner_in_scope(owner_id: str, scope: Mapping[str, Any], refusal: str,
                         extra: dict[str, Any] | None = None) -> None:
    """Forbidden (with `refusal`) unless `owner_id` is one of the scope's owners: a lead is
    captured for, claimed for or assigned to someone the caller acts for, never anyone else."""
    if not scope["all"] and owner_id not in scope["owner_ids"]:
        raise Forbidden(refusal, extra)
