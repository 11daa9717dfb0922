"""What one failed delivery attempt says."""

from __future__ import annotations


class DeliveryFailed(Exception):
    """One delivery attempt failed. `permanent` says whether trying again can help: a refused
    recipient or a malformed address will not change, a dropped connection or a 4xx may.

    `refused` maps the addresses the server refused to its reply when only some recipients were
    refused; `message_id` is then set too, because the others did receive the message (a retry
    should address only the refused ones).
    """

    def __init__(
        self,
        reason: str,
        permanent: bool = False,
        *,
        refused: dict[str, str] | None = None,
        message_id: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.refused = dict(refused or {})
        self.message_id = message_id

    def __repr__(self) -> str:
        return f"DeliveryFailed({self.reason!r}, permanent={self.permanent})"
