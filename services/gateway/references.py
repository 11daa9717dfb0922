"""References in a request body to records another service owns (the lead of a follow-up, the
record a task is about), checked against that owner under the caller's scope.

A record that does not exist and one the caller may not see answer alike, 422 naming the
field: a body cannot probe for records outside the caller's view. (The record of the path
answers 404; that is the owner service's answer, passed on.)
"""

from __future__ import annotations

from typing import Any

from services.gateway.app import current_principal, rpc_call
from services.gateway.problems import validation_problem
from shared.errors import NotFound

# What a body may refer to, by record type: the owner, its read command and that command's id
# argument (every one is a declared command: tests/unit/test_registry.py).
RECORD_READS: dict[str, tuple[str, str, str]] = {
    "lead": ("leads", "get_lead", "lead_id"),
    "customer": ("sales", "get_customer", "customer_id"),
    "opportunity": ("sales", "get_opportunity", "opportunity_id"),
    "contact": ("sales", "get_contact", "contact_id"),
}


def owner_scope(service: str) -> dict[str, Any]:
    """The caller's scope as `service` takes it: only leads have a public pool."""
    scope = dict(current_principal().leads_scope())
    if service != "leads":
        scope.pop("include_pool", None)
    return scope


def read_reference(record_type: str, record_id: str, field: str) -> dict[str, Any]:
    """The record as its owner shows it to the caller; 422 on `field` when it is missing or
    hidden. `record_type` is one of RECORD_READS."""
    service, command, id_argument = RECORD_READS[record_type]
    try:
        return rpc_call(service, command, **{id_argument: record_id,
                                             "scope": owner_scope(service)})
    except NotFound:
        raise validation_problem({field: [f"No such {record_type}."]}) from None
