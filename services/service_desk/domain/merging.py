"""Merging a duplicate ticket into another (issue 17, groups part). Pure Python: what may be
merged, and the notes both tickets keep in their history."""

from __future__ import annotations

from collections.abc import Iterable

from shared.errors import Conflict, PreconditionFailed, ValidationFailed


def check_merge(source_id: str, target_id: str, source_status: str, target_status: str,
                source_merged_into: str | None) -> bool:
    """True when the merge is to be done, False when it was done already (the same target:
    a repeat changes nothing); raises when it may not be done."""
    if source_id == target_id:
        raise ValidationFailed.for_fields({"into": ["a ticket cannot be merged into itself"]})
    if source_merged_into == target_id:
        return False
    if source_merged_into is not None:
        raise Conflict("the ticket was merged into another ticket",
                       {"merged_into_id": source_merged_into})
    if target_status == "closed":
        raise PreconditionFailed("a closed ticket takes no merged tickets",
                                 {"status": target_status, "field": "into"})
    if source_status == "closed":
        raise PreconditionFailed("a closed ticket cannot be merged", {"status": source_status})
    return True


def target_note(source_number: str, subject: str, requester: str,
                messages: Iterable[str]) -> str:
    """The internal note the target keeps: the source's requester and its conversation."""
    lines = [f"合并自 {source_number}（{requester}）：{subject}"]
    lines.extend(m for m in messages if m)
    return "\n\n".join(lines)


def source_note(target_number: str) -> str:
    return f"已合并到 {target_number}，请在该工单继续处理。"
