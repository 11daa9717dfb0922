"""Lead conversion: what a qualified lead becomes (a customer, a contact, an opportunity), who
owns the result and under which team it is filed. Pure Python; the lead is the leads service's
answer (`leads.get_lead`), read by the conversion use case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import PreconditionFailed, ValidationFailed

# What a conversion reads of the lead.
LEAD_FIELDS = ("id", "name", "company", "title", "email", "phone", "source", "region",
               "industry", "product_interest", "campaign", "attributes", "status", "owner_id")
NOT_THE_OWNERS_TEAM = "Must be the owner's team: the team follows the owner."


def check_convertible(lead: Mapping[str, Any]) -> None:
    """Only a qualified lead converts."""
    if lead.get("status") != "qualified":
        raise PreconditionFailed(
            f"only a qualified lead can be converted; this one is {lead.get('status')}",
            {"field": "status", "status": lead.get("status")},
        )


def owner_of(options: Mapping[str, Any], lead: Mapping[str, Any], actor: str | None) -> str | None:
    """Who owns what the conversion creates: the one asked for, else the lead's owner, else
    the converting user (a lead from the public pool has no owner)."""
    return options.get("owner_id") or lead.get("owner_id") or actor


def team_of(
    owner_id: str | None,
    requested: str | None,
    owner_teams: Mapping[str, str | None] | None,
    may_choose_team: bool,
) -> str | None:
    """The team the converted records are filed under. The team follows the owner: with
    `owner_teams` (each possible owner's team, from the gateway, which keeps users and teams)
    the owner's team, or another one only for a caller who may choose (an admin; the gateway
    checked that it exists). Without `owner_teams` the caller resolved the team itself."""
    if owner_teams is None:
        return requested
    owner_team = owner_teams.get(owner_id or "")
    if not requested or requested == owner_team:
        return owner_team
    if not may_choose_team:
        raise ValidationFailed.for_fields({"team_id": [NOT_THE_OWNERS_TEAM]})
    return requested


def customer_name(lead: Mapping[str, Any], overrides: Mapping[str, Any]) -> str:
    return overrides.get("name") or lead.get("company") or lead.get("name")


def new_customer_values(
    lead: Mapping[str, Any], overrides: Mapping[str, Any], name: str, credit_code: str | None,
    team_id: str | None,
) -> dict[str, Any]:
    """A new customer from the lead: a prospect, with the lead's channel and classification
    unless `overrides` (the caller's values) say otherwise."""
    return {
        "name": name, "lifecycle_stage": "prospect", "source": lead.get("source"),
        "campaign": lead.get("campaign"), "region": lead.get("region"),
        "industry": lead.get("industry"), "team_id": team_id, **overrides,
        "credit_code": credit_code,
    }


def contact_values(lead: Mapping[str, Any], customer_id: str, name: str) -> dict[str, Any]:
    """The lead's person as a contact of the customer (not yet consenting to be contacted)."""
    return {
        "customer_id": customer_id, "name": lead.get("name") or name, "title": lead.get("title"),
        "email": lead.get("email"), "phone": lead.get("phone"), "consent": False,
        "lead_id": lead["id"],
    }


def opportunity_values(
    lead: Mapping[str, Any], wanted: Mapping[str, Any], customer_name_: str, contact_id: str,
    team_id: str | None,
) -> dict[str, Any]:
    """The opportunity of the lead: named after the customer and the products it wants,
    keeping the lead's channel and campaign."""
    products = wanted.get("products") or lead.get("product_interest") or []
    name = wanted.get("name") or " - ".join(
        [customer_name_, *([", ".join(products)] if products else [])])[:200]
    return {
        "name": name, "contact_id": contact_id, "amount": wanted.get("amount"),
        "currency": wanted.get("currency"),
        "expected_close_date": wanted.get("expected_close_date"),
        "pipeline_id": wanted.get("pipeline_id"), "products": products,
        "source": lead.get("source"), "campaign": lead.get("campaign"), "lead_id": lead["id"],
        "team_id": team_id,
    }
