"""Customers, contacts, follow-ups, pipelines and opportunities: one sales RPC per request
(the customer 360 composes several), with the caller's visibility scope."""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import request
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, RAISE, Schema
from nameko.exceptions import RemoteError
from sqlalchemy import select

from services.gateway.app import current_principal, gateway, require_role, rpc_call
from services.gateway.identity.models import Team, User
from services.gateway.problems import validation_problem
from services.gateway.references import read_reference
from services.gateway.resources.sales_schemas import (
    AssignBody,
    BoardSchema,
    ContactListQuery,
    ContactPage,
    Customer360Schema,
    CustomerCreateBody,
    CustomerDetailSchema,
    CustomerListQuery,
    CustomerPage,
    DuplicateListSchema,
    FollowupListQuery,
    FollowupPage,
    MergeBody,
    OpportunityListQuery,
    OpportunityPage,
    PipelineListSchema,
)
from services.gateway.rpc import ServiceUnavailable
from services.sales import contract as sales
from shared.errors import DependencyUnavailable

log = logging.getLogger("services.gateway.sales")

blp = Blueprint(
    "sales", __name__, description="Customers, contacts, follow-ups, pipelines and opportunities."
)

# The customer 360's tasks: besides the customer's own, those of at most this many converted
# leads and open opportunities (one rules call each; the newest first).
TASK_RECORDS_MAX = 20
TASKS_MAX = 200  # the open tasks a 360 view shows (one list_tasks call for all its records)
QUOTES_360 = 10  # the customer's most recent quotes a 360 view shows (contracts numbers)
TICKETS_360 = 10  # the customer's most recent tickets a 360 view shows


# -- helpers ---------------------------------------------------------------------------------


def sales_scope() -> dict[str, Any]:
    """Sales records have no public pool: own (rep), the team's (manager) or all (admin)."""
    scope = dict(current_principal().leads_scope())
    scope.pop("include_pool", None)
    return scope


def custom_params(known: set[str]) -> dict[str, str]:
    """`custom.<key>[__op]=value` query params; any other name not in `known` is a 400."""
    custom: dict[str, str] = {}
    unknown: dict[str, list[str]] = {}
    for name in request.args:
        if name.startswith("custom."):
            custom[name[len("custom."):]] = request.args[name]
        elif name not in known:
            unknown[name] = ["Unknown field."]
    if unknown:
        raise validation_problem(unknown)
    return custom


def _plain(value: Any) -> Any:
    """What marshmallow loaded, back to JSON for the RPC: dates ISO, money as strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# References in a body (owner_id, team_id, lead_id here; customer_id, contact_id,
# opportunity_id, pipeline_id in the sales service) that do not exist or that the caller may
# not see or use all answer 422 naming the field, with the same message for both: a body
# cannot probe for records outside the caller's view. The record of the path answers 404.


def _user_ref(user_id: str, field: str = "owner_id") -> User:
    """An active user the caller may give records to: anyone for an admin, the members of
    their teams (and themselves) for a manager, themselves for a rep."""
    principal = current_principal()
    with gateway().store.read() as session:
        user = session.scalar(select(User).where(User.id == user_id))
        usable = user is not None and user.active and (
            principal.role == "admin" or user.id in principal.leads_scope()["owner_ids"])
        if not usable:
            raise validation_problem({field: [sales.NO_SUCH_USER]})
        session.expunge(user)
        return user


def _team_for(owner: User | None, team_id: str | None, field: str = "team_id") -> str | None:
    """A record's team follows its owner; only an admin files it under another (existing)
    team. Teams are listed to everyone, so a wrong one may say why."""
    owner_team = owner.team_id if owner is not None else None
    if not team_id or team_id == owner_team:
        return owner_team
    if current_principal().role != "admin":
        raise validation_problem({field: ["Must be the owner's team: the team follows the "
                                          "owner."]})
    with gateway().store.read() as session:
        if session.get(Team, team_id) is None:
            raise validation_problem({field: ["No such team."]})
    return team_id


def _owner_fields(data: dict[str, Any]) -> None:
    """Default the owner to the caller, check it, and take the team from the owner."""
    owner = _user_ref(data.get("owner_id") or current_principal().user_id)
    data["owner_id"] = owner.id
    data["team_id"] = _team_for(owner, data.get("team_id"))


def _check_assignable(owner_id: str) -> User:
    """Assigning is for admins and managers (403 by role, whatever the record); the new owner
    is a user reference like any other."""
    require_role("admin", "manager")
    return _user_ref(owner_id)


def _lead_ref(lead_id: str, field: str = "lead_id") -> dict[str, Any]:
    """A lead a body refers to (a follow-up on it, an opportunity from it) must be one the
    caller works: visible to them in the leads service (hidden and missing leads answer alike)
    and owned (a lead in the public pool is claimed first, as the pool's timers and the claim
    rules assume)."""
    lead = read_reference("lead", lead_id, field)
    if not lead.get("owner_id"):
        raise validation_problem({field: ["The lead is in the public pool: claim it before "
                                          "working it."]})
    return lead


def _list_args(query: dict[str, Any], schema: type[Schema] | None = None) -> dict[str, Any]:
    """RPC arguments of a list; with the route's query `schema`, also its custom-field
    filters (the route reads the query with unknown=EXCLUDE so that they reach here)."""
    cursor = query.pop("cursor", None)
    limit = query.pop("limit", 50)
    filters = _plain(query)
    custom = custom_params(set(schema().fields)) if schema else {}
    if custom:
        filters["custom"] = custom
    return {"filters": filters, "scope": sales_scope(), "cursor": cursor, "limit": limit}


# -- customers -------------------------------------------------------------------------------


@blp.route("/customers", methods=["POST"])
@blp.arguments(CustomerCreateBody())
@blp.response(201, sales.CustomerSchema, description="Created.")
@blp.alt_response(409, description="Duplicate: the same credit code, or a similar name "
                  "(`existing_id`, `matches`); send on_duplicate=create to keep both.")
def create_customer(data: dict[str, Any]) -> Any:
    """Create a customer (account); the credit code is checked with its check digit."""
    on_duplicate = data.pop("on_duplicate", None) or "reject"
    _owner_fields(data)
    customer = rpc_call("sales", "create_customer", data=_plain(data), scope=sales_scope(),
                        on_duplicate=on_duplicate)
    return customer, 201, {"Location": f"/customers/{customer['id']}"}


@blp.route("/customers", methods=["GET"])
@blp.arguments(CustomerListQuery(), location="query", unknown=EXCLUDE)
@blp.response(200, CustomerPage)
def list_customers(query: dict[str, Any]) -> Any:
    """Customers visible to the caller, newest first; `q` searches names and tags (Chinese
    works); custom-field filters are `custom.<key>[__op]=value` (op eq, ne, gte, lte, in,
    contains, exists)."""
    return rpc_call("sales", "list_customers", **_list_args(query, CustomerListQuery))


@blp.route("/customers/<string:customer_id>", methods=["GET"])
@blp.response(200, CustomerDetailSchema)
def get_customer(customer_id: str) -> Any:
    """A customer with its contacts, health score and RFM segment (explained)."""
    return rpc_call("sales", "get_customer", customer_id=customer_id, scope=sales_scope())


@blp.route("/customers/<string:customer_id>", methods=["PATCH"])
@blp.arguments(sales.CustomerWriteSchema())
@blp.response(200, sales.CustomerSchema)
def update_customer(data: dict[str, Any], customer_id: str) -> Any:
    """Change fields of a customer (tier, lifecycle stage, custom fields...)."""
    return rpc_call("sales", "update_customer", customer_id=customer_id, data=_plain(data),
                    scope=sales_scope())


@blp.route("/customers/<string:customer_id>/merge", methods=["POST"])
@blp.arguments(MergeBody())
@blp.response(200, sales.CustomerSchema)
def merge_customers(data: dict[str, Any], customer_id: str) -> Any:
    """Merge a duplicate into this customer: its contacts, opportunities and follow-ups move."""
    if data["source_id"] == customer_id:
        raise validation_problem({"source_id": ["Cannot merge a customer into itself."]})
    return rpc_call("sales", "merge_customers", target_id=customer_id,
                    source_id=data["source_id"], scope=sales_scope())


@blp.route("/customers/<string:customer_id>/duplicates", methods=["GET"])
@blp.response(200, DuplicateListSchema)
def find_duplicates(customer_id: str) -> Any:
    """Customers that look like this one (same credit code, or a name at least 90 % similar):
    candidates to merge."""
    return {"items": rpc_call("sales", "find_duplicate_customers", customer_id=customer_id,
                              scope=sales_scope())}


@blp.route("/customers/<string:customer_id>/tags", methods=["POST"])
@blp.arguments(sales.TagChangeSchema())
@blp.response(200, sales.CustomerSchema)
def tag_customer(data: dict[str, Any], customer_id: str) -> Any:
    """Add and remove tags."""
    return rpc_call("sales", "tag_customer", customer_id=customer_id, add=data["add"],
                    remove=data["remove"], scope=sales_scope())


@blp.route("/customers/<string:customer_id>/assign", methods=["POST"])
@blp.arguments(AssignBody())
@blp.response(200, sales.CustomerSchema)
def assign_customer(data: dict[str, Any], customer_id: str) -> Any:
    """Give the customer to a user (admins: anyone; managers: within their teams)."""
    owner = _check_assignable(data["owner_id"])
    return rpc_call("sales", "assign_customer", customer_id=customer_id, owner_id=owner.id,
                    team_id=owner.team_id, scope=sales_scope(),
                    include_open_opportunities=data["include_open_opportunities"])


@blp.route("/customers/<string:customer_id>/360", methods=["GET"])
@blp.response(200, Customer360Schema)
def customer_360(customer_id: str) -> Any:
    """Everything about a customer in one call: contacts, recent follow-ups, open and closed
    opportunities, the owner and open tasks, and from the contracts service its recent quotes,
    contracts and receivables, and from the service desk its tickets (open count, the recent
    ones with status, priority and SLA state). A part whose service does not answer is null
    and named in `partial` (`tasks`, `contracts`, `tickets`)."""
    scope = sales_scope()
    customer = rpc_call("sales", "get_customer", customer_id=customer_id, scope=scope)
    followups = rpc_call("sales", "list_followups", filters={"customer_id": customer_id},
                         scope=scope, limit=20)
    opportunities = rpc_call("sales", "list_opportunities",
                             filters={"customer_id": customer_id}, scope=scope, limit=200)
    items = opportunities["items"]
    partial: list[str] = []
    try:
        tasks: Any = _open_tasks(customer, [o["id"] for o in items if o["status"] == "open"],
                                 scope)
    except (ServiceUnavailable, RemoteError) as exc:
        log.warning("customer 360 without tasks: %s", exc)
        tasks = None
        partial.append("tasks")
    # -- contracts numbers: the customer's quotes, contracts and receivables (one call) ----
    try:
        deals: Any = rpc_call("contracts", "customer_summary", customer_id=customer_id,
                              scope=scope, quotes_limit=QUOTES_360)
    except (ServiceUnavailable, RemoteError) as exc:
        log.warning("customer 360 without quotes, contracts and receivables: %s", exc)
        deals = None
        partial.append("contracts")
    # the service desk's part: the customer's tickets the caller sees
    try:
        desk_tickets: Any = rpc_call("service_desk", "customer_tickets",
                                     customer_id=customer_id,
                                     scope=current_principal().tickets_scope(),
                                     limit=TICKETS_360)
    except (ServiceUnavailable, RemoteError) as exc:
        log.warning("customer 360 without tickets: %s", exc)
        desk_tickets = None
        partial.append("tickets")
    owner = None
    if customer.get("owner_id"):
        with gateway().store.read() as session:
            user = session.scalar(select(User).where(User.id == customer["owner_id"]))
            if user is not None:
                owner = {"id": user.id, "username": user.username,
                         "display_name": user.display_name, "email": user.email,
                         "team_id": user.team_id}
    return {
        "customer": customer,
        "owner": owner,
        "recent_followups": followups["items"],
        "open_opportunities": [o for o in items if o["status"] == "open"],
        "closed_opportunities": [o for o in items if o["status"] != "open"],
        "tasks": tasks,
        "quotes": None if deals is None else deals["quotes"],
        "contracts": None if deals is None else deals["contracts"],
        "receivables": None if deals is None else deals["receivables"],
        "tickets": desk_tickets,
        "partial": partial,
    }


def _open_tasks(customer: dict[str, Any], open_opportunity_ids: list[str],
                scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Open tasks on the customer, on the leads converted into it (a lead's tasks do not
    move with the conversion) and on its open opportunities, as the rules service shows them
    to the caller (its scope), soonest due first."""
    records = [("customer", customer["id"])]
    records += [("lead", lead_id)
                for lead_id in (customer.get("converted_lead_ids") or [])[:TASK_RECORDS_MAX]]
    records += [("opportunity", opportunity_id)
                for opportunity_id in open_opportunity_ids[:TASK_RECORDS_MAX]]
    page = rpc_call("rules", "list_tasks", filters={
        "records": [{"record_type": t, "record_id": i} for t, i in records],
        "status": "open"}, scope=scope, limit=TASKS_MAX)
    found = {task["id"]: task for task in page["items"]}
    return sorted(found.values(), key=lambda t: (t.get("due_at") is None, t.get("due_at") or "",
                                                 t.get("created_at") or "", t["id"]))


# -- contacts --------------------------------------------------------------------------------


@blp.route("/contacts", methods=["POST"])
@blp.arguments(sales.ContactCreateSchema())
@blp.response(201, sales.ContactSchema)
def create_contact(data: dict[str, Any]) -> Any:
    """Add a person at a customer (one the caller sees), with their role in the decision
    chain; the owner defaults to the customer's."""
    if data.get("owner_id"):
        _user_ref(data["owner_id"])
    contact = rpc_call("sales", "create_contact", data=_plain(data), scope=sales_scope())
    return contact, 201, {"Location": f"/contacts/{contact['id']}"}


@blp.route("/contacts", methods=["GET"])
@blp.arguments(ContactListQuery(), location="query", unknown=EXCLUDE)
@blp.response(200, ContactPage)
def list_contacts(query: dict[str, Any]) -> Any:
    """Contacts visible to the caller, newest first; custom-field filters as for customers
    (`custom.<key>[__op]=value`)."""
    return rpc_call("sales", "list_contacts", **_list_args(query, ContactListQuery))


@blp.route("/contacts/<string:contact_id>", methods=["GET"])
@blp.response(200, sales.ContactSchema)
def get_contact(contact_id: str) -> Any:
    """A contact."""
    return rpc_call("sales", "get_contact", contact_id=contact_id, scope=sales_scope())


@blp.route("/contacts/<string:contact_id>", methods=["PATCH"])
@blp.arguments(sales.ContactWriteSchema())
@blp.response(200, sales.ContactSchema)
def update_contact(data: dict[str, Any], contact_id: str) -> Any:
    """Change fields of a contact (consent, preferred channel, birthday...)."""
    return rpc_call("sales", "update_contact", contact_id=contact_id, data=_plain(data),
                    scope=sales_scope())


# -- follow-ups ------------------------------------------------------------------------------


@blp.route("/followups", methods=["POST"])
@blp.arguments(sales.FollowupCreateSchema())
@blp.response(201, sales.FollowupSchema)
def record_followup(data: dict[str, Any]) -> Any:
    """Record a call, email, meeting, visit (with check-in) or note with key points and the
    next follow-up date; `tags` label it for stage exit criteria (e.g. needs_analysis). Every
    referenced record must be one the caller sees (a lead: one they own or whose owner is in
    their team, not a pool lead); `owner_id` (default: the caller) one they may give records
    to."""
    if data.get("owner_id"):
        _user_ref(data["owner_id"])
    if data.get("lead_id"):
        _lead_ref(data["lead_id"])
    return rpc_call("sales", "record_followup", data=_plain(data), scope=sales_scope())


@blp.route("/followups", methods=["GET"])
@blp.arguments(FollowupListQuery(), location="query", unknown=RAISE)
@blp.response(200, FollowupPage)
def list_followups(query: dict[str, Any]) -> Any:
    """Follow-ups visible to the caller, the latest first."""
    return rpc_call("sales", "list_followups", **_list_args(query))


# -- pipelines -------------------------------------------------------------------------------


@blp.route("/pipelines", methods=["GET"])
@blp.response(200, PipelineListSchema)
def list_pipelines() -> Any:
    """Every pipeline with its ordered stages, probabilities and exit criteria."""
    current_principal()
    return {"items": rpc_call("sales", "list_pipelines")}


@blp.route("/pipelines", methods=["POST"])
@blp.arguments(sales.PipelineWriteSchema())
@blp.response(201, sales.PipelineSchema)
def create_pipeline(data: dict[str, Any]) -> Any:
    """Create a pipeline (admin). Stages in order: {name, probability, kind open|won|lost,
    exit_criteria {fields: [...], activities: [{kind, tag, min_count}]}}."""
    require_role("admin")
    pipeline = rpc_call("sales", "create_pipeline", data=data)
    return pipeline, 201, {"Location": f"/pipelines/{pipeline['id']}"}


@blp.route("/pipelines/<string:pipeline_id>", methods=["GET"])
@blp.response(200, sales.PipelineSchema)
def get_pipeline(pipeline_id: str) -> Any:
    """A pipeline with its stages."""
    current_principal()
    return rpc_call("sales", "get_pipeline", pipeline_id=pipeline_id)


@blp.route("/pipelines/<string:pipeline_id>", methods=["PUT"])
@blp.arguments(sales.PipelineWriteSchema())
@blp.response(200, sales.PipelineSchema)
def update_pipeline(data: dict[str, Any], pipeline_id: str) -> Any:
    """Replace a pipeline's name and stages (admin); stages keep their identity by id."""
    require_role("admin")
    return rpc_call("sales", "update_pipeline", pipeline_id=pipeline_id, data=data)


# -- opportunities ---------------------------------------------------------------------------


@blp.route("/opportunities", methods=["POST"])
@blp.arguments(sales.OpportunityCreateSchema())
@blp.response(201, sales.OpportunitySchema)
def create_opportunity(data: dict[str, Any]) -> Any:
    """Open an opportunity (amount as a decimal string, currency CNY by default). The
    customer, contact, pipeline and lead (one the caller works) must be visible to the caller;
    the team is the owner's."""
    _owner_fields(data)
    if data.get("lead_id"):
        _lead_ref(data["lead_id"])
    opportunity = rpc_call("sales", "create_opportunity", data=_plain(data), scope=sales_scope())
    return opportunity, 201, {"Location": f"/opportunities/{opportunity['id']}"}


@blp.route("/opportunities", methods=["GET"])
@blp.arguments(OpportunityListQuery(), location="query", unknown=EXCLUDE)
@blp.response(200, OpportunityPage)
def list_opportunities(query: dict[str, Any]) -> Any:
    """Opportunities visible to the caller, newest first; custom-field filters as for
    customers (`custom.<key>[__op]=value`)."""
    return rpc_call("sales", "list_opportunities", **_list_args(query, OpportunityListQuery))


@blp.route("/opportunities/board", methods=["GET"])
@blp.arguments(sales.BoardFiltersSchema(), location="query", unknown=RAISE)
@blp.response(200, BoardSchema)
def opportunity_board(query: dict[str, Any]) -> Any:
    """The kanban board: a column per stage with count, amounts and the newest cards."""
    return rpc_call("sales", "opportunity_board", filters=_plain(query), scope=sales_scope())


@blp.route("/opportunities/<string:opportunity_id>", methods=["GET"])
@blp.response(200, sales.OpportunitySchema)
def get_opportunity(opportunity_id: str) -> Any:
    """An opportunity with its stage history."""
    return rpc_call("sales", "get_opportunity", opportunity_id=opportunity_id, scope=sales_scope())


@blp.route("/opportunities/<string:opportunity_id>", methods=["PATCH"])
@blp.arguments(sales.OpportunityWriteSchema())
@blp.response(200, sales.OpportunitySchema)
def update_opportunity(data: dict[str, Any], opportunity_id: str) -> Any:
    """Change fields of an opportunity; its stage changes only through /move. A new owner
    (admins, managers within their teams) brings their team; the team alone changes only by an
    admin."""
    if "owner_id" in data:
        owner = _check_assignable(data["owner_id"])
        data["team_id"] = _team_for(owner, data.get("team_id"))
    elif "team_id" in data:
        if current_principal().role != "admin":
            raise validation_problem({"team_id": ["The team follows the owner: change "
                                                  "owner_id instead."]})
        if data["team_id"] is not None:
            with gateway().store.read() as session:
                if session.get(Team, data["team_id"]) is None:
                    raise validation_problem({"team_id": ["No such team."]})
    return rpc_call("sales", "update_opportunity", opportunity_id=opportunity_id,
                    data=_plain(data), scope=sales_scope())


@blp.route("/opportunities/<string:opportunity_id>/move", methods=["POST"])
@blp.arguments(sales.MoveSchema())
@blp.response(200, sales.OpportunitySchema)
@blp.alt_response(412, description="Exit criteria unmet: `missing` lists each field or "
                  "follow-up still needed, by stage.")
def move_opportunity(data: dict[str, Any], opportunity_id: str) -> Any:
    """Move to another stage (the kanban drag). Won and lost need a reason."""
    return rpc_call("sales", "move_opportunity", opportunity_id=opportunity_id,
                    stage_id=data["stage_id"], reason=data.get("reason"), scope=sales_scope())


# -- lead conversion -------------------------------------------------------------------------


@blp.route("/leads/<string:lead_id>/convert", methods=["POST"])
@blp.arguments(sales.ConversionOptionsSchema())
@blp.response(201, sales.ConversionSchema, description="Converted.")
@blp.alt_response(200, schema=sales.ConversionSchema,
                  description="Converted before: the first result (`replayed`).")
@blp.alt_response(412, description="The lead is not qualified.")
def convert_lead(options: dict[str, Any], lead_id: str) -> Any:
    """Convert a qualified lead: the customer is found (credit code, close name) or created,
    and a contact and an opportunity are created, keeping the lead's source and campaign."""
    # The sales service reads the lead from the leads service in the caller's scope (a hidden
    # lead answers like a missing one). The records follow their owner's team: the team is
    # resolved here for an owner named in the body; otherwise the owner is the lead's (in the
    # caller's view) or the caller, and sales gets the teams of those who may be it.
    principal = current_principal()
    owner_teams: dict[str, str | None] | None = None
    if options.get("owner_id"):
        owner = _check_assignable(options["owner_id"])
        options["team_id"] = _team_for(owner, options.get("team_id"))
    else:
        if options.get("team_id") and principal.role == "admin":
            _team_for(None, options["team_id"])  # an admin's choice must exist
        owner_teams = _teams_of(principal.leads_scope())
    try:
        result = rpc_call("sales", "convert_lead", lead_id=lead_id, options=_plain(options),
                          scope=principal.leads_scope(), owner_teams=owner_teams)
    except DependencyUnavailable as error:
        raise ServiceUnavailable(error.extra.get("service", "leads"),
                                 error.extra.get("reason", "no reply")) from error
    return result, 200 if result.get("replayed") else 201


def _teams_of(scope: dict[str, Any]) -> dict[str, str | None]:
    """The team of every user the caller sees (an admin: every user with a team)."""
    query = select(User.id, User.team_id)
    if scope.get("all"):
        query = query.where(User.team_id.is_not(None))
    else:
        query = query.where(User.id.in_(scope["owner_ids"]))
    with gateway().store.read() as session:
        return {user_id: team_id for user_id, team_id in session.execute(query)}
