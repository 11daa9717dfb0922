"""What the domain's transitions read and change on a lead.

The use cases pass their stored lead (the ORM row); the domain knows it only by these
attributes, so its rules stay free of the database and can be tested with a plain object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class LeadRecord(Protocol):
    id: str
    status: str
    disqualify_reason: str | None
    qualification: str | None
    score: int
    score_breakdown: dict[str, Any]
    owner_id: str | None
    claimed_at: datetime | None
    merged_into_id: str | None
    updated_at: datetime
    last_activity_at: datetime | None
    conversion: dict[str, Any] | None
    # Identity fields a merge fills in when the lead lacks them.
    company: str | None
    title: str | None
    email: str | None
    phone: str | None
    region: str | None
    industry: str | None
    campaign: str | None
    product_interest: list[str]
    attributes: dict[str, Any]
