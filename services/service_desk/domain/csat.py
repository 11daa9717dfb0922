"""Satisfaction surveys (CSAT): the answer's rules and the figures. Pure Python.

A ticket's first solve creates its survey; the requester answers once through the link, good
or bad, a reason (required with bad, one of BAD_REASONS) and a comment. The figures count
surveys sent (created) and answered; the score is the share of good answers among the
answered ones, the response rate the share of answered among the sent.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared.errors import ValidationFailed

RATINGS = ("good", "bad")
# 问题未解决, 响应太慢, 服务态度, 解释不清楚, 其他
BAD_REASONS = ("unresolved", "slow", "attitude", "unclear", "other")
ANSWER_WINDOW = timedelta(days=30)
GROUPINGS = ("agent", "group", "month")
TOKEN_BYTES = 32  # 256 bits: the link is the only credential the requester has


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def expires_at(created_at: datetime) -> datetime:
    return created_at + ANSWER_WINDOW


def survey_mail(number: str, subject: str, requester_name: str | None, url: str,
                tag: str) -> tuple[str, str]:
    """The survey's e-mail (subject, text): Chinese first, then English; `tag` the ticket's
    subject tag, so an answer by mail threads into the ticket."""
    greeting = f"{requester_name}，您好：" if requester_name else "您好："
    text = (f"{greeting}\n\n"
            f"您的工单 {number}「{subject}」已解决。请花几秒钟告诉我们您对本次服务是否满意：\n\n"
            f"{url}\n\n"
            f"链接 {ANSWER_WINDOW.days} 天内有效，每个工单只能评价一次。\n\n"
            f"Your ticket {number} ({subject}) has been solved. Please tell us how we did "
            f"(one answer, within {ANSWER_WINDOW.days} days):\n{url}\n")
    return f"服务满意度调查 / How did we do? {tag}", text


def check_answer(rating: str, reason: str | None) -> None:
    """A bad answer names its reason; a good one may (any reason is refused with good)."""
    if rating not in RATINGS:
        raise ValidationFailed.for_fields({"rating": [f"must be one of {', '.join(RATINGS)}"]})
    if rating == "bad" and reason is None:
        raise ValidationFailed.for_fields(
            {"reason": [f"a bad rating needs a reason: one of {', '.join(BAD_REASONS)}"]})
    if rating == "good" and reason is not None:
        raise ValidationFailed.for_fields({"reason": ["only a bad rating takes a reason"]})


def _percent(part: int, whole: int) -> str | None:
    if not whole:
        return None
    return str((Decimal(part) * 100 / whole).quantize(Decimal("0.01"), ROUND_HALF_UP))


def figures(sent: int, answered: int, good: int, reasons: Mapping[str, int]) -> dict[str, Any]:
    """The figures of a set of surveys from its counts (`reasons`: bad answers per reason)."""
    return {"sent": sent, "answered": answered, "good": good, "bad": answered - good,
            "score": _percent(good, answered), "response_rate": _percent(answered, sent),
            "reasons": {reason: reasons[reason] for reason in BAD_REASONS
                        if reasons.get(reason)}}


def check_grouping(grouping: str) -> None:
    if grouping not in GROUPINGS:
        raise ValidationFailed.for_fields(
            {"group_by": [f"must be one of {', '.join(GROUPINGS)}"]})


def report(grouping: str, counts: Iterable[tuple[str | None, int, int, int]],
           reasons: Iterable[tuple[str | None, str, int]]) -> dict[str, Any]:
    """Figures per key of `grouping` (agent, group or month; None: no agent / no group),
    ordered by key (None last), and the total. `counts`: (key, sent, answered, good) rows;
    `reasons`: (key, reason, bad answers) rows."""
    per_key: dict[str | None, dict[str, int]] = {}
    for key, reason, n in reasons:
        per_key.setdefault(key, {})[reason] = n
    rows = sorted(counts, key=lambda row: (row[0] is None, row[0] or ""))
    items = [{"key": key, **figures(sent, answered, good, per_key.get(key, {}))}
             for key, sent, answered, good in rows]
    total_reasons: Counter[str] = Counter()
    for by_reason in per_key.values():
        total_reasons.update(by_reason)
    total = figures(sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows),
                    total_reasons)
    return {"group_by": grouping, "items": items, "total": total}
