"""Webhook subscriptions, their deliveries and replays, visible to their owner and admins
only (an admin's subscription is the organisation's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.rules import clock as clock_module
from services.rules.domain import deliveries
from services.rules.domain.authority import Authority
from services.rules.models import WebhookDelivery, WebhookSubscription
from services.rules.usecases.cached import forget_cached_rules
from services.rules.usecases.dumps import delivery_to_dict, subscription_to_dict
from services.rules.usecases.support import Worker, new_id
from shared.errors import NotFound, ValidationFailed
from shared.paging import page_after, page_of

DELIVERY_STATUSES = ("pending", "sending", "delivered", "failed")


def check_url(url: str) -> None:
    """422 naming `url` for a target webhooks may not reach (SSRF); checked again at
    every delivery. A name that does not resolve yet is accepted (an integrator may
    register before their DNS is live, or on a machine without it): nothing is sent to
    it until it resolves to an address that passes."""
    from services.rules.notify import targets

    try:
        targets.check_url(url, targets.Allowlist.from_env())
    except targets.TargetUnresolved:
        return
    except targets.TargetRefused as exc:
        raise ValidationFailed.for_fields({"url": [str(exc)]},
                                          "the webhook URL is not accepted") from None


def _subscription(session: Session, subscription_id: str,
                  acting: Authority | None = None) -> WebhookSubscription:
    """A subscription the caller manages (admins every one, a manager theirs); another's
    is answered like a missing one."""
    sub = session.get(WebhookSubscription, subscription_id) if isinstance(
        subscription_id, str) else None
    if sub is None or (acting is not None
                       and not Authority.of(sub.authority).managed_by(acting)):
        raise NotFound(f"webhook subscription {subscription_id} not found",
                       {"field": "subscription_id"})
    return sub


def create_webhook(worker: Worker, fields_: dict[str, Any], acting: Authority
                   ) -> dict[str, Any]:
    """A subscription; its secret is in this answer only. An admin's gets every event
    (the organisation's); a manager's only those about records of their teams."""
    from services.rules.notify import generate_secret

    check_url(fields_["url"])
    with worker.db.begin() as session:
        sub = WebhookSubscription(
            id=new_id(), url=fields_["url"], secret=generate_secret(),
            event_types=fields_["event_types"], description=fields_.get("description"),
            active=fields_["active"], created_at=clock_module.CLOCK.now(),
            created_by=worker.actor,
            authority=None if acting.is_organisation else acting.to_dict(),
        )
        session.add(sub)
        forget_cached_rules()
        return {**subscription_to_dict(sub), "secret": sub.secret}


def list_webhooks(worker: Worker, acting: Authority) -> dict[str, Any]:
    with worker.db.read() as session:
        rows = session.scalars(select(WebhookSubscription).order_by(
            WebhookSubscription.created_at)).all()
        return {"items": [subscription_to_dict(s) for s in rows
                          if Authority.of(s.authority).managed_by(acting)]}


def get_webhook(worker: Worker, subscription_id: str, acting: Authority) -> dict[str, Any]:
    with worker.db.read() as session:
        return subscription_to_dict(_subscription(session, subscription_id, acting))


def update_webhook(worker: Worker, subscription_id: str, fields_: dict[str, Any],
                   acting: Authority) -> dict[str, Any]:
    with worker.db.read() as session:
        _subscription(session, subscription_id, acting)
    if "url" in fields_:
        check_url(fields_["url"])
    with worker.db.begin() as session:
        sub = _subscription(session, subscription_id, acting)
        for name, value in fields_.items():
            setattr(sub, name, value)
        if fields_.get("active"):
            sub.disabled_reason = None
        forget_cached_rules()
        return subscription_to_dict(sub)


def delete_webhook(worker: Worker, subscription_id: str, acting: Authority) -> None:
    with worker.db.begin() as session:
        sub = _subscription(session, subscription_id, acting)
        session.delete(sub)
    forget_cached_rules()


def list_webhook_deliveries(worker: Worker, subscription_id: str, status: str | None,
                            page: dict[str, Any], acting: Authority) -> dict[str, Any]:
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationFailed.for_fields({"status": [
            "must be one of pending, sending, delivered, failed"]})
    with worker.db.read() as session:
        _subscription(session, subscription_id, acting)
        query = select(WebhookDelivery).where(
            WebhookDelivery.subscription_id == subscription_id)
        if status:
            query = query.where(WebhookDelivery.status == status)
        query = page_after(query, WebhookDelivery.created_at, WebhookDelivery.id,
                           page["cursor"], page["limit"])
        rows = session.scalars(query).all()
    return page_of(rows, page["limit"], "created_at", delivery_to_dict)


def replay_webhook_delivery(worker: Worker, delivery_id: str, acting: Authority
                            ) -> dict[str, Any]:
    """Send a delivery again (same webhook-id, so the receiver can recognise it)."""
    with worker.db.begin() as session:
        item = session.get(WebhookDelivery, delivery_id) if isinstance(
            delivery_id, str) else None
        sub = session.get(WebhookSubscription, item.subscription_id) if item else None
        if item is None or sub is None or not Authority.of(sub.authority).managed_by(
                acting):
            raise NotFound(f"webhook delivery {delivery_id} not found",
                           {"field": "delivery_id"})
        deliveries.replay(item, sub.active, clock_module.CLOCK.now(), worker.actor)
        return delivery_to_dict(item)
