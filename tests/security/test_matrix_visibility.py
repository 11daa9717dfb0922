"""The visibility matrix: every operation of the live OpenAPI document that takes a record
reference, called by every role with records it must not see.

Records are made by `lina` (a rep of 华东, zhangwei's team), `chenjing` (a rep of 华南) and the
admin, plus a lead of the public pool. The callers and what is hidden from them
(`HIDDEN_PAIRS`): zhangwei (a rep of the same team as lina, another team than chenjing), the
manager of 华东 (chenjing is in the other team), chenjing (lina is in the other team). The
admin must see everything: that is the positive control that proves the records exist.

For each reference (a path id, a body `..._id`, a filter) the operation is called twice, with
the hidden record and with a random id: the answers must be the same (status, problem type,
and the problem's detail with the id put back), a hidden record is never written, and the body
never contains the hidden record's id, name, e-mail or phone. A filter on a hidden owner or team
answers what a filter on nobody answers.

`COVERAGE` is the explicit table: every operation of the document (method and path template:
flask-smorest documents no operationId) with the checks of each of its references. The
references are read from the document, so a new route, or a new `_id` parameter or body field
of an old one, fails `test_every_documented_operation_is_covered` until it gets its row.
"""

from __future__ import annotations

import copy
import json
import smtplib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from nameko.standalone.rpc import ClusterRpcProxy

from tests.e2e.system import System

pytestmark = pytest.mark.e2e

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
OWNERS = ("lina", "chenjing")
# (caller, owner of the records the caller must not see)
HIDDEN_PAIRS = (("zhangwei", "lina"), ("zhangwei", "chenjing"), ("manager", "chenjing"),
                ("chenjing", "lina"))
# the pairs whose owner is in another team than the caller (team filters, grants to others)
OTHER_TEAM_PAIRS = (("zhangwei", "chenjing"), ("manager", "chenjing"), ("chenjing", "lina"))
# organisation records the admin makes (webhooks, deliveries, an import job): no one else's
ADMIN_RECORD_CALLERS = ("zhangwei", "manager", "chenjing")
CALLERS = ("zhangwei", "manager", "chenjing")
# answer fields that differ between two calls whatever the record (timestamps, request ids,
# a problem's `instance`: the request path, with ids of the caller's own records)
VOLATILE_KEYS = {"correlation_id", "generated_at", "as_of", "computed_at", "now", "instance"}
MISSING = "00000000-0000-4000-8000-00000000dead"  # replaced by a fresh uuid per call


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Check:
    """One reference of an operation. `where` is path / query / body, `name` the parameter or
    (dotted) body field, `kind` what it refers to. `body`, `query` and `path` give the rest of
    a valid request: "{own.<kind>}" is the caller's own record, "{ref}" the reference under
    test, "{stage.<n>}" a stage of the default pipeline, "{qualified_lead}" a new lead of the
    caller's, qualified (only those convert; one per request, as a conversion is for good)."""

    where: str
    name: str
    kind: str
    body: Any = None
    query: dict[str, Any] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] | None = None  # a multipart upload instead of a JSON body


def path(name: str, kind: str, body: Any = None, **query: Any) -> Check:
    return Check("path", name, kind, body=body, query=query)


def body(name: str, kind: str, template: Any, **path_values: str) -> Check:
    return Check("body", name, kind, body=template, path=path_values)


def query(name: str, kind: str, path_values: dict[str, str] | None = None,
          **extra: Any) -> Check:
    return Check("query", name, kind, query=extra, path=path_values or {})


# Kinds of reference and how they are checked:
# - owned records (lead, customer, contact, opportunity, followup, task, notification, run,
#   api_key, event, approval: submitted by the owner, the admin its approver) of lina and
#   chenjing: hidden from the caller of each HIDDEN_PAIRS entry;
# - admin records (webhook, delivery, import): hidden from every caller but the admin;
# - user / team: a filter on a hidden owner (or their team) answers like a filter on nobody;
#   a body that gives a record to (or attributes it to) a user or team of another team fails;
# - org: organisation records everybody may know (pipelines, stages, custom fields, shipped
#   rules, report figures, export entities, snapshot runs): a random id is a 4xx, never a
#   5xx, and a non-admin cannot change them (`AUTHORITY`).
OWNED_KINDS = {"lead", "customer", "contact", "opportunity", "followup", "task", "notification",
               "run", "api_key", "event", "user_record", "record_key", "approval",
               "quote", "ticket", "contract", "attachment", "group_ticket"}
ADMIN_KINDS = {"webhook", "delivery", "import"}
GRANT_KINDS = {"user", "team"}
ORG_KINDS = {"org"}

FUNNEL = {"figure": "funnel"}
SLA_TARGETS = {"resolution": {"minutes": 60}}
COVERAGE: dict[str, tuple[Check, ...]] = {
    "GET /health": (),
    "GET /metrics": (),
    "POST /system/echo": (),
    "POST /auth/tokens": (),
    "GET /me": (),
    "POST /me/password": (),  # the caller's own password: no reference
    "GET /users": (),
    "POST /users": (body("team_id", "team", {"username": "{new}", "display_name": "x",
                                             "role": "sales_rep", "team_id": "{ref}"}),),
    "GET /users/{user_id}": (path("user_id", "user_record"),),
    "PATCH /users/{user_id}": (path("user_id", "user_record", {"display_name": "x"}),
                               body("team_id", "team", {"team_id": "{ref}"},
                                    user_id="{own.user}")),
    "GET /teams": (),
    "POST /teams": (body("manager_id", "user", {"name": "{new}", "manager_id": "{ref}"}),),
    "PATCH /teams/{team_id}": (path("team_id", "org", {"name": "{new}"}),
                               body("manager_id", "user", {"manager_id": "{ref}"},
                                    team_id="{own.team}")),
    "GET /api-keys": (query("user_id", "user"),),
    "POST /api-keys": (body("user_id", "user", {"name": "matrix", "user_id": "{ref}"}),),
    "DELETE /api-keys/{key_id}": (path("key_id", "api_key"),),
    "POST /leads": (),  # duplicates: test_duplicates_of_hidden_records_tell_nothing
    "GET /leads": (query("owner_id", "user"),),
    "GET /leads/{lead_id}": (path("lead_id", "lead"),),
    "POST /leads/{lead_id}/behaviours": (path("lead_id", "lead", {"type": "opened_email"}),),
    "POST /leads/{lead_id}/status": (path("lead_id", "lead", {"status": "contacted"}),),
    "POST /leads/{lead_id}/claim": (path("lead_id", "lead"),),
    "POST /leads/{lead_id}/release": (path("lead_id", "lead", {"reason": "matrix"}),),
    "POST /leads/{lead_id}/assign": (path("lead_id", "lead", {"owner_id": "{own.user}"}),
                                     body("owner_id", "user", {"owner_id": "{ref}"},
                                          lead_id="{own.lead}")),
    "POST /leads/{lead_id}/merge": (path("lead_id", "lead", {"source_id": "{own.lead2}"}),
                                    body("source_id", "lead", {"source_id": "{ref}"},
                                         lead_id="{own.lead}")),
    "GET /scoring-model": (),
    "PUT /scoring-model": (),
    "POST /customers": (body("owner_id", "user", {"name": "{new}", "owner_id": "{ref}"}),
                        body("team_id", "team", {"name": "{new}", "team_id": "{ref}"})),
    "GET /customers": (query("owner_id", "user"), query("team_id", "team")),
    "GET /customers/{customer_id}": (path("customer_id", "customer"),),
    "PATCH /customers/{customer_id}": (path("customer_id", "customer", {"region": "华北"}),),
    "POST /customers/{customer_id}/merge": (
        path("customer_id", "customer", {"source_id": "{own.customer2}"}),
        body("source_id", "customer", {"source_id": "{ref}"}, customer_id="{own.customer}")),
    "GET /customers/{customer_id}/duplicates": (path("customer_id", "customer"),),
    "POST /customers/{customer_id}/tags": (path("customer_id", "customer", {"add": ["m"]}),),
    "POST /customers/{customer_id}/assign": (
        path("customer_id", "customer", {"owner_id": "{own.user}"}),
        body("owner_id", "user", {"owner_id": "{ref}"}, customer_id="{own.customer}")),
    "GET /customers/{customer_id}/360": (path("customer_id", "customer"),),
    "POST /contacts": (body("customer_id", "customer", {"name": "x", "customer_id": "{ref}"}),
                       body("owner_id", "user", {"name": "x", "customer_id": "{own.customer}",
                                                 "owner_id": "{ref}"})),
    "GET /contacts": (query("customer_id", "customer"), query("owner_id", "user")),
    "GET /contacts/{contact_id}": (path("contact_id", "contact"),),
    "PATCH /contacts/{contact_id}": (path("contact_id", "contact", {"title": "x"}),),
    "POST /followups": (
        body("customer_id", "customer", {"kind": "call", "customer_id": "{ref}"}),
        body("contact_id", "contact", {"kind": "call", "contact_id": "{ref}"}),
        body("opportunity_id", "opportunity", {"kind": "call", "opportunity_id": "{ref}"}),
        body("lead_id", "lead", {"kind": "call", "lead_id": "{ref}"}),
        body("owner_id", "user", {"kind": "call", "customer_id": "{own.customer}",
                                  "owner_id": "{ref}"})),
    "GET /followups": (query("customer_id", "customer"), query("contact_id", "contact"),
                       query("opportunity_id", "opportunity"), query("lead_id", "lead"),
                       query("owner_id", "user")),
    "GET /pipelines": (),
    "POST /pipelines": (),
    "GET /pipelines/{pipeline_id}": (path("pipeline_id", "org"),),
    "PUT /pipelines/{pipeline_id}": (path("pipeline_id", "org", {"name": "x", "stages": []}),),
    "GET /business-calendars": (),
    "POST /business-calendars": (),
    "GET /business-calendars/{calendar_id}": (path("calendar_id", "org"),),
    "PATCH /business-calendars/{calendar_id}": (path("calendar_id", "org", {"name": "{new}"}),),
    "GET /sla-policies": (),
    "POST /sla-policies": (body("calendar_id", "org", {"name": "{new}", "calendar_id": "{ref}",
                                                      "targets": SLA_TARGETS}),),
    "PUT /sla-policies/order": (body("policy_ids", "org", {"policy_ids": ["{ref}"]}),),
    "POST /sla-policies/preview": (),
    "GET /sla-policies/{policy_id}": (path("policy_id", "org"),),
    "PATCH /sla-policies/{policy_id}": (path("policy_id", "org", {"name": "{new}"}),
                                        body("calendar_id", "org", {"calendar_id": "{ref}"},
                                             policy_id="{sla_policy}")),
    "POST /opportunities": (
        body("customer_id", "customer", {"name": "x", "customer_id": "{ref}"}),
        body("contact_id", "contact", {"name": "x", "customer_id": "{own.customer}",
                                       "contact_id": "{ref}"}),
        body("lead_id", "lead", {"name": "x", "customer_id": "{own.customer}",
                                 "lead_id": "{ref}"}),
        body("owner_id", "user", {"name": "x", "customer_id": "{own.customer}",
                                  "owner_id": "{ref}"}),
        body("team_id", "team", {"name": "x", "customer_id": "{own.customer}",
                                 "team_id": "{ref}"}),
        body("pipeline_id", "org", {"name": "x", "customer_id": "{own.customer}",
                                    "pipeline_id": "{ref}"}),
        body("stage_id", "org", {"name": "x", "customer_id": "{own.customer}",
                                 "stage_id": "{ref}"})),
    "GET /opportunities": (query("customer_id", "customer"), query("lead_id", "lead"),
                           query("owner_id", "user"), query("team_id", "team"),
                           query("pipeline_id", "org"), query("stage_id", "org")),
    "GET /opportunities/board": (query("customer_id", "customer"), query("owner_id", "user"),
                                 query("team_id", "team"), query("pipeline_id", "org")),
    "GET /opportunities/{opportunity_id}": (path("opportunity_id", "opportunity"),),
    "PATCH /opportunities/{opportunity_id}": (
        path("opportunity_id", "opportunity", {"name": "x"}),
        body("contact_id", "contact", {"contact_id": "{ref}"},
             opportunity_id="{own.opportunity}"),
        body("owner_id", "user", {"owner_id": "{ref}"}, opportunity_id="{own.opportunity}"),
        body("team_id", "team", {"team_id": "{ref}"}, opportunity_id="{own.opportunity}")),
    "POST /opportunities/{opportunity_id}/move": (
        path("opportunity_id", "opportunity", {"stage_id": "{stage.1}"}),
        body("stage_id", "org", {"stage_id": "{ref}"}, opportunity_id="{own.opportunity}")),
    "POST /leads/{lead_id}/convert": (
        path("lead_id", "lead", {}),
        body("customer_id", "customer", {"customer_id": "{ref}"}, lead_id="{qualified_lead}"),
        body("owner_id", "user", {"owner_id": "{ref}"}, lead_id="{qualified_lead}"),
        body("team_id", "team", {"team_id": "{ref}"}, lead_id="{qualified_lead}"),
        body("opportunity.pipeline_id", "org", {"opportunity": {"pipeline_id": "{ref}"}},
             lead_id="{qualified_lead}")),
    "GET /custom-fields": (),
    "POST /custom-fields": (),
    "PATCH /custom-fields/{field_id}": (path("field_id", "org", {"label": "x"}),),
    "GET /quotas": (query("user_id", "user"), query("team_id", "team")),
    "PUT /quotas": (
        body("user_id", "user", {"user_id": "{ref}", "period_kind": "month",
                                 "period_start": "2026-01-01", "amount": "1"}),
        body("team_id", "team", {"team_id": "{ref}", "period_kind": "month",
                                 "period_start": "2026-01-01", "amount": "1"})),
    **{f"GET /reports/{figure}": (query("owner_id", "user"), query("team_id", "team"),
                                  query("pipeline_id", "org"))
       for figure in ("funnel", "forecast", "forecast/accuracy", "quota-performance",
                      "channels", "dormant-customers")},
    "GET /reports/forecast/snapshots": (),
    "POST /reports/forecast/snapshots": (),
    "GET /reports/{figure}/records": (
        path("figure", "org"),
        query("owner_id", "user", FUNNEL), query("team_id", "team", FUNNEL),
        query("pipeline_id", "org", FUNNEL), query("stage_id", "org", FUNNEL),
        query("run_id", "org", {"figure": "forecast"})),
    "POST /imports": (),
    # a contract's files: as hidden as the contract
    "POST /contracts/{contract_id}/attachments": (
        Check("path", "contract_id", "contract",
              files={"file": ("matrix.txt", b"matrix", "text/plain")}),),
    "GET /contracts/{contract_id}/attachments": (path("contract_id", "contract"),),
    "GET /contracts/{contract_id}/attachments/{attachment_id}": (
        Check("path", "contract_id", "contract", path={"attachment_id": "x"}),
        Check("path", "attachment_id", "org", path={"contract_id": "{own.contract}"})),
    "DELETE /contracts/{contract_id}/attachments/{attachment_id}": (
        Check("path", "contract_id", "contract", path={"attachment_id": "x"}),
        Check("path", "attachment_id", "org", path={"contract_id": "{own.contract}"})),
    "GET /imports/{job_id}": (path("job_id", "import"),),
    "GET /exports/{entity}": (path("entity", "org"), *(
        query(name, kind, {"entity": "opportunities"}) for name, kind in (
            ("customer_id", "customer"), ("lead_id", "lead"), ("owner_id", "user"),
            ("team_id", "team"), ("pipeline_id", "org"), ("stage_id", "org")))),
    "GET /rules": (),
    "POST /rules": (),
    "GET /rules/{rule_id}": (path("rule_id", "org"),),
    "PUT /rules/{rule_id}": (path("rule_id", "org", {"name": "x", "trigger": {}, "actions": []}),),
    "POST /rules/{rule_id}/enable": (path("rule_id", "org"),),
    "POST /rules/{rule_id}/disable": (path("rule_id", "org"),),
    "POST /rules/{rule_id}/adopt-shipped": (path("rule_id", "org"),),
    "POST /rules/{rule_id}/dry-run": (path("rule_id", "org", {}),
                                      body("event_id", "event", {"event_id": "{ref}"},
                                           rule_id="{shipped_rule}")),
    "POST /rules/dry-run": (body("event_id", "event", {"event_id": "{ref}",
                                                       "definition": "{definition}"}),),
    "GET /rule-runs": (query("record_key", "record_key"), query("event_id", "event"),
                       query("rule_id", "org"), query("correlation_id", "org")),
    "GET /rule-runs/{run_id}": (path("run_id", "run"),),
    "GET /tasks": (query("record_id", "lead", record_type="lead"), query("assignee_id", "user")),
    "POST /tasks": (body("record_id", "lead", {"title": "x", "assignee_id": "{own.user}",
                                               "record_type": "lead", "record_id": "{ref}"}),
                    body("assignee_id", "user", {"title": "x", "assignee_id": "{ref}"})),
    "GET /tasks/{task_id}": (path("task_id", "task"),),
    "POST /tasks/{task_id}/complete": (path("task_id", "task"),),
    "POST /tasks/{task_id}/reassign": (
        path("task_id", "task", {"assignee_id": "{own.user}"}),
        body("assignee_id", "user", {"assignee_id": "{ref}"}, task_id="{own.task}")),
    "POST /tasks/{task_id}/snooze": (path("task_id", "task", {"until": "2030-01-01T00:00:00Z"}),),
    "GET /notifications": (),
    "POST /notifications/{notification_id}/read": (path("notification_id", "notification"),),
    "GET /webhooks": (),
    "POST /webhooks": (),
    "GET /webhooks/{subscription_id}": (path("subscription_id", "webhook"),),
    "PATCH /webhooks/{subscription_id}": (path("subscription_id", "webhook",
                                               {"description": "matrix"}),),
    "DELETE /webhooks/{subscription_id}": (path("subscription_id", "webhook"),),
    "GET /webhooks/{subscription_id}/deliveries": (path("subscription_id", "webhook"),),
    "POST /webhook-deliveries/{delivery_id}/replay": (path("delivery_id", "delivery"),),
    "GET /assignment/members/{user_id}": (path("user_id", "user_record"),),
    "PUT /assignment/members/{user_id}": (path("user_id", "user_record", {"capacity": 1}),),
    "GET /system/clock": (),
    "POST /system/clock": (),
    "POST /users/{user_id}/unlock": (path("user_id", "user_record"),),
    "POST /auth/unblock": (),  # an address, no record
    # approvals: an owner's submission (approver: the admin) is hidden from the others
    "GET /approval-flows": (),
    "POST /approval-flows": (),
    "GET /approval-flows/{flow_id}": (path("flow_id", "org"),),
    "PUT /approval-flows/{flow_id}": (path("flow_id", "org", {
        "record_type": "matrix", "name": "x",
        "steps": [{"approvers": [{"kind": "role", "role": "admin"}]}]}),),
    "GET /approvals": (),
    "GET /approvals/{approval_id}": (path("approval_id", "approval"),),
    "POST /approvals/{approval_id}/approve": (path("approval_id", "approval", {}),),
    "POST /approvals/{approval_id}/reject": (path("approval_id", "approval", {}),),
    "POST /approvals/{approval_id}/recall": (path("approval_id", "approval", {}),),
    "POST /approvals/{approval_id}/delegate": (path("approval_id", "approval",
                                                    {"to_user": "{own.user}"}),),
    # pdf: print templates are organisation settings (admins only)
    "GET /print-templates": (),
    "POST /print-templates": (),
    "GET /print-templates/{template_id}": (path("template_id", "org"),),
    "PUT /print-templates/{template_id}": (path("template_id", "org", {
        "name": "x", "body": "<p>{{ quote.number }}</p>"}),),
    "POST /print-templates/{template_id}/preview": (path("template_id", "org"),),
    # contracts: products and price books are organisation records, quotes are owned
    "POST /products": (),
    "GET /products": (),
    "GET /products/{product_id}": (path("product_id", "org"),),
    "PATCH /products/{product_id}": (path("product_id", "org", {"name": "x"}),),
    "POST /price-books": (),
    "GET /price-books": (),
    "GET /price-books/{price_book_id}": (path("price_book_id", "org"),),
    "PATCH /price-books/{price_book_id}": (path("price_book_id", "org", {"name": "x"}),),
    "POST /quotes": (body("opportunity_id", "opportunity",
                          {"opportunity_id": "{ref}", "lines": []}),),
    "GET /quotes": (query("opportunity_id", "opportunity"), query("customer_id", "customer"),
                    query("owner_id", "user")),
    "GET /quotes/{quote_id}": (path("quote_id", "quote"),),
    "PATCH /quotes/{quote_id}": (path("quote_id", "quote", {"title": "x"}),),
    "GET /quotes/{quote_id}/versions": (path("quote_id", "quote"),),
    "GET /quotes/{quote_id}/pdf": (path("quote_id", "quote"),
                                   query("template_id", "org", {"quote_id": "{own.quote}"})),
    "GET /quotes/{quote_id}/versions/{number}": (
        Check("path", "quote_id", "quote", path={"number": "1"}),
        Check("path", "number", "org", path={"quote_id": "{own.quote}"})),
    "POST /quotes/{quote_id}/revise": (path("quote_id", "quote"),),
    "POST /quotes/{quote_id}/submit": (path("quote_id", "quote"),),
    "POST /quotes/{quote_id}/send": (path("quote_id", "quote"),),
    "POST /quotes/{quote_id}/accept": (path("quote_id", "quote", {}),
                                       body("stage_id", "org", {"stage_id": "{ref}"},
                                            quote_id="{own.quote}")),
    "POST /quotes/{quote_id}/reject": (path("quote_id", "quote", {}),),
    # contracts: owned like their customer (or opportunity)
    "POST /contracts": (body("customer_id", "customer",
                             {"customer_id": "{ref}", "title": "x", "amount": "1"}),
                        body("opportunity_id", "opportunity",
                             {"customer_id": "{own.customer}", "opportunity_id": "{ref}",
                              "title": "x", "amount": "1"}),
                        # a contract made from a hidden quote: 422 like a
                        # random id (the quote is checked before the customer's match)
                        body("quote_id", "quote",
                             {"customer_id": "{own.customer}", "quote_id": "{ref}",
                              "title": "x", "amount": "1"})),
    "GET /contracts": (query("customer_id", "customer"), query("opportunity_id", "opportunity"),
                       query("owner_id", "user")),
    "GET /contracts/{contract_id}": (path("contract_id", "contract"),),
    "POST /contracts/{contract_id}/sign": (path("contract_id", "contract"),),
    "POST /contracts/{contract_id}/terminate": (path("contract_id", "contract",
                                                     {"reason": "x"}),),
    "PUT /contracts/{contract_id}/payment-plan": (path("contract_id", "contract",
                                                       {"instalments": []}),),
    "POST /contracts/{contract_id}/receipts": (
        path("contract_id", "contract", {"amount": "1", "received_on": "2027-01-01"}),
        body("instalment_id", "org", {"amount": "1", "received_on": "2027-01-01",
                                      "instalment_id": "{ref}"},
             contract_id="{own.contract}")),
    "GET /contracts/{contract_id}/receipts": (path("contract_id", "contract"),),
    "GET /contracts/{contract_id}/receivables": (path("contract_id", "contract"),),
    # contracts (erp): invoices (开票) and the ERP order, owned like their contract
    "POST /contracts/{contract_id}/invoices": (
        path("contract_id", "contract", {"title": "x", "type": "normal", "number": "m1",
                                         "issued_on": "2027-01-01", "amount": "1"}),
        body("receipt_id", "org", {"title": "x", "type": "normal", "number": "m2",
                                   "issued_on": "2027-01-01", "amount": "1",
                                   "receipt_id": "{ref}"}, contract_id="{own.contract}"),
        body("instalment_id", "org", {"title": "x", "type": "normal", "number": "m3",
                                      "issued_on": "2027-01-01", "amount": "1",
                                      "instalment_id": "{ref}"}, contract_id="{own.contract}")),
    "GET /contracts/{contract_id}/invoices": (path("contract_id", "contract"),),
    "POST /contracts/{contract_id}/invoices/{invoice_id}/void": (
        Check("path", "contract_id", "contract", body={"reason": "x"},
              path={"invoice_id": "matrix-missing-invoice"}),
        Check("path", "invoice_id", "org", body={"reason": "x"},
              path={"contract_id": "{own.contract}"})),
    "GET /contracts/{contract_id}/order": (path("contract_id", "contract"),),
    # contracts: overdue and renewals (a renewal is made for a contract the caller sees; the
    # sweep is the admins', see AUTHORITY)
    "POST /contracts/{contract_id}/renewals": (path("contract_id", "contract", {}),),
    "GET /contracts/{contract_id}/payment-plan": (path("contract_id", "contract"),),
    "POST /contracts/overdue-sweeps": (),
    # contract approval: submit and edit are the contract's own (owned); the standard
    # clauses are an organisation setting (admins change them)
    "POST /contracts/{contract_id}/submit": (path("contract_id", "contract"),),
    "PATCH /contracts/{contract_id}": (path("contract_id", "contract", {"title": "x"}),),
    "GET /contracts/{contract_id}/approval-terms": (path("contract_id", "contract"),),
    "GET /contract-clauses/standard": (),
    "PUT /contract-clauses/standard": (),
    # knowledge base: articles are the organisation's, seen by role (drafts for agents and
    # above), not owned rows; a rep's writes are refused (tests/e2e/test_service_desk_kb_http.py)
    "GET /kb/categories": (),
    "POST /kb/categories": (),
    "POST /kb/articles": (body("category_id", "org", {"title": "x", "body": "y",
                                                      "category_id": "{ref}"}),),
    "GET /kb/articles": (query("category_id", "org"),),
    "GET /kb/articles/{article_id}": (path("article_id", "org"),),
    "PATCH /kb/articles/{article_id}": (path("article_id", "org", {"title": "x"}),
                                        body("category_id", "org", {"category_id": "{ref}"},
                                             article_id="matrix-missing-article")),
    "POST /kb/articles/{article_id}/publish": (path("article_id", "org"),),
    "POST /kb/articles/{article_id}/archive": (path("article_id", "org"),),
    "GET /kb/articles/{article_id}/versions": (path("article_id", "org"),),
    "GET /kb/articles/{article_id}/versions/{version}": (
        Check("path", "article_id", "org", path={"version": "1"}),
        Check("path", "version", "org", path={"article_id": "matrix-missing-article"})),
    "POST /kb/articles/{article_id}/feedback": (path("article_id", "org", {"helpful": True}),),
    "GET /kb/search": (query("category_id", "org", q="退款"),),
    "POST /kb/suggestions": (),
    # service desk tickets: owned by their assignee (unassigned ones are everybody's)
    "POST /tickets": (body("assignee_id", "user", {"subject": "x", "requester_email": "a@b.cn",
                                                   "assignee_id": "{ref}"}),
                      body("customer_id", "customer", {"subject": "x",
                                                       "requester_email": "a@b.cn",
                                                       "customer_id": "{ref}"})),
    "GET /tickets": (query("assignee_id", "user"), query("group_id", "org")),
    # a group_ticket: unassigned in a group whose only member is its owner (groups part)
    "GET /tickets/{ticket_id}": (path("ticket_id", "ticket"), path("ticket_id", "group_ticket")),
    "PATCH /tickets/{ticket_id}": (path("ticket_id", "ticket", {"priority": "high"}),
                                   path("ticket_id", "group_ticket", {"priority": "high"}),
                                   body("assignee_id", "user", {"assignee_id": "{ref}"},
                                        ticket_id="{own.ticket}")),
    # moving a hidden ticket to a group: not found, not moved (the group an org record: a
    # random one is a 422 on `group_id`, never a 5xx)
    "POST /tickets/{ticket_id}/group": (
        path("ticket_id", "ticket", {"group_id": "matrix-missing-group"}),
        path("ticket_id", "group_ticket", {"group_id": "matrix-missing-group"}),
        body("group_id", "org", {"group_id": "{ref}"}, ticket_id="{own.ticket}")),
    "POST /tickets/{ticket_id}/replies": (path("ticket_id", "ticket", {"body": "x"}),
                                          path("ticket_id", "group_ticket", {"body": "x"})),
    # a hidden duplicate into the caller's own ticket: not found, nothing merged
    "POST /tickets/{ticket_id}/merge": (path("ticket_id", "ticket", {"into": "{own.ticket}"}),
                                        path("ticket_id", "group_ticket",
                                             {"into": "{own.ticket}"})),
    # service desk groups, routing rules and web forms: the organisation's (everybody reads
    # groups and rules; admins and a group's manager write; forms are the admins'); a
    # manager cannot make another team's user a group's manager
    "GET /ticket-groups": (),
    "POST /ticket-groups": (body("manager_id", "user", {"name": "{new}", "manager_id": "{ref}"}),),
    "GET /ticket-groups/{group_id}": (path("group_id", "org"),),
    "PATCH /ticket-groups/{group_id}": (path("group_id", "org", {"name": "x"}),
                                        body("manager_id", "user", {"manager_id": "{ref}"},
                                             group_id="matrix-missing-group")),
    "DELETE /ticket-groups/{group_id}": (path("group_id", "org"),),
    "GET /ticket-routing-rules": (),
    "POST /ticket-routing-rules": (body("group_id", "org", {"name": "{new}",
                                                            "group_id": "{ref}"}),),
    "PUT /ticket-routing-rules/order": (body("rule_ids", "org", {"rule_ids": ["{ref}"]}),),
    "GET /ticket-routing-rules/{rule_id}": (path("rule_id", "org"),),
    "PATCH /ticket-routing-rules/{rule_id}": (path("rule_id", "org", {"enabled": False}),
                                              body("group_id", "org", {"group_id": "{ref}"},
                                                   rule_id="matrix-missing-rule")),
    "DELETE /ticket-routing-rules/{rule_id}": (path("rule_id", "org"),),
    "GET /ticket-forms": (),
    "POST /ticket-forms": (body("default_group_id", "org", {"name": "x",
                                                            "default_group_id": "{ref}"}),),
    "GET /ticket-forms/{form_id}": (path("form_id", "org"),),
    "PATCH /ticket-forms/{form_id}": (path("form_id", "org", {"name": "x"}),
                                      body("default_group_id", "org",
                                           {"default_group_id": "{ref}"},
                                           form_id="matrix-missing-form")),
    "POST /ticket-forms/{form_id}/token": (path("form_id", "org"),),
    # the public side: no credentials, an unknown form is a 404 for everybody
    "GET /forms/{form_key}": (path("form_key", "org"),),
    "POST /forms/{form_key}/tickets": (path("form_key", "org", {
        "token": "x", "name": "x", "email": "a@b.cn", "subject": "x", "body": "x"}),),
    # service desk e-mail: a ticket's attachments and outgoing mail are seen with the ticket
    "GET /tickets/{ticket_id}/attachments": (path("ticket_id", "ticket"),),
    "GET /tickets/{ticket_id}/attachments/{attachment_id}": (
        Check("path", "ticket_id", "ticket", path={"attachment_id": "matrix-missing-file"}),
        Check("path", "attachment_id", "attachment", path={"ticket_id": "{own.ticket}"})),
    "GET /tickets/{ticket_id}/mail": (path("ticket_id", "ticket"),),
    "GET /tickets/{ticket_id}/sla": (path("ticket_id", "ticket"),
                                     path("ticket_id", "group_ticket")),
    # satisfaction surveys: the link's token is the credential; figures and the drill-down by
    # the tickets' assignees
    "GET /surveys/{token}": (path("token", "org"),),
    "POST /surveys/{token}/answer": (path("token", "org", {"rating": "good"}),),
    "GET /reports/csat": (query("assignee_id", "user"), query("group_id", "org")),
    "GET /csat-surveys": (query("assignee_id", "user"), query("group_id", "org")),
    # contracts numbers: figures of the caller's scope; a filter on a hidden owner, team or
    # customer answers the figures of nobody
    **{f"GET /reports/{figure}": (query("owner_id", "user"), query("team_id", "team"),
                                  query("customer_id", "customer"))
       for figure in ("collection", "aging", "dso", "quote-win-rate")},
    "GET /reports/approval-cycle-times": (query("owner_id", "user"), query("team_id", "team")),
    **{f"GET /reports/{figure}/records": tuple(
        query(name, kind, **extra) for name, kind in (
            ("owner_id", "user"), ("team_id", "team"), ("customer_id", "customer")))
       for figure, extra in (("collection", {"month": "2026-01"}),
                             ("aging", {"bucket": ">90"}), ("dso", {}))},
    "GET /reports/quote-win-rate/records": tuple(
        query(name, kind) for name, kind in (
            ("owner_id", "user"), ("team_id", "team"), ("customer_id", "customer"),
            ("row_owner_id", "user"), ("row_team_id", "team"))),
    "GET /reports/approval-cycle-times/records": (
        query("owner_id", "user", flow_id="matrix-flow", step=0),
        query("team_id", "team", flow_id="matrix-flow", step=0),
        query("flow_id", "org", step=0)),
    "GET /rule-events": (),  # admins only: every other caller gets 403 (LISTS checks no leak)
    # the service desk's numbers: the tickets the caller sees (as GET
    # /tickets); a filter on a hidden agent answers the figures of nobody
    "GET /reports/tickets": (),
    **{f"GET /reports/tickets/{figure}{part}": (query("assignee_id", "user"),
                                                query("group_id", "org"))
       for figure in ("volume", "backlog", "first-reply-time", "resolution-time",
                      "reopen-rate")
       for part in ("", "/records")},
    "GET /reports/tickets/sla-attainment": (query("assignee_id", "user"),
                                            query("group_id", "org")),
    "GET /reports/tickets/sla-attainment/records": (
        query("assignee_id", "user"), query("group_id", "org"), query("policy_id", "org")),
    # the agents' desk: the queue, a ticket's clocks, a draft article
    "GET /desk/queue": (query("group_id", "org"),),
    "POST /tickets/{ticket_id}/kb-draft": (path("ticket_id", "ticket", {}),
                                           path("ticket_id", "group_ticket", {})),
}

# Writes of organisation settings that only an admin may make (a rep or a manager gets 403 or
# 404): {operation: (path values, body)}. The scoring model is the managers' too (README).
AUTHORITY: dict[str, tuple[dict[str, str], Any]] = {
    "PUT /scoring-model": ({}, "{scoring_model}"),
    "POST /users": ({}, {"username": "{new}", "display_name": "x", "role": "admin"}),
    "PATCH /users/{user_id}": ({"user_id": "{own.user}"}, {"role": "admin"}),
    "POST /teams": ({}, {"name": "{new}"}),
    "PATCH /teams/{team_id}": ({"team_id": "{own.team}"}, {"name": "{new}"}),
    "POST /pipelines": ({}, {"name": "{new}", "stages": "{stages}"}),
    "PUT /pipelines/{pipeline_id}": ({"pipeline_id": "{pipeline}"},
                                     {"name": "{new}", "stages": "{stages}"}),
    "POST /custom-fields": ({}, {"entity": "customer", "key": "{new_key}", "label": "x",
                                 "type": "text"}),
    "PUT /rules/{rule_id}": ({"rule_id": "{shipped_rule}"}, "{shipped_rule_definition}"),
    "POST /rules/{rule_id}/disable": ({"rule_id": "{shipped_rule}"}, None),
    "POST /rules/{rule_id}/enable": ({"rule_id": "{shipped_rule}"}, None),
    "POST /rules/{rule_id}/adopt-shipped": ({"rule_id": "{shipped_rule}"}, None),
    "PUT /assignment/members/{user_id}": ({"user_id": "{other_user}"}, {"capacity": 1}),
    "POST /system/clock": ({}, {"advance_seconds": 1}),
    "POST /users/{user_id}/unlock": ({"user_id": "{other_user}"}, None),
    "POST /auth/unblock": ({}, {"address": "192.0.2.1"}),
    "POST /business-calendars": ({}, {"name": "{new}"}),
    "PATCH /business-calendars/{calendar_id}": ({"calendar_id": "{business_calendar}"},
                                                {"holidays": ["2027-01-01"]}),
    "POST /sla-policies": ({}, {"name": "{new}", "calendar_id": "{business_calendar}",
                                "targets": SLA_TARGETS}),
    "PATCH /sla-policies/{policy_id}": ({"policy_id": "{sla_policy}"}, {"name": "{new}"}),
    "PUT /sla-policies/order": ({}, {"policy_ids": ["{sla_policy}"]}),
    "POST /approval-flows": ({}, {"record_type": "matrix_authority", "name": "x", "steps": [
        {"approvers": [{"kind": "role", "role": "admin"}]}]}),
    "POST /print-templates": ({}, {"name": "{new}", "body": "<p>{{ quote.number }}</p>"}),
    "POST /products": ({}, {"code": "{new}", "name": "x", "unit": "套", "tax_rate": "13"}),
    "PATCH /products/{product_id}": ({"product_id": "{own.product}"}, {"name": "x"}),
    "POST /price-books": ({}, {"name": "{new}"}),
    "POST /ticket-forms": ({}, {"name": "{new}"}),
    "POST /ticket-groups": ({}, {"name": "{new}"}),  # a manager may: their own group
    "POST /contracts/overdue-sweeps": ({}, {}),
    "PUT /contract-clauses/standard": ({}, {"clauses": []}),  # contract approval
}
AUTHORITY_OF_MANAGERS = {"PUT /scoring-model", "POST /products", "PATCH /products/{product_id}",
                         "POST /price-books", "POST /ticket-groups"}


# --------------------------------------------------------------------------- the document


def operations(spec: dict) -> dict[str, dict]:
    return {f"{method.upper()} {route}": {**operation,
                                          "parameters": item.get("parameters", [])
                                          + operation.get("parameters", [])}
            for route, item in spec["paths"].items()
            for method, operation in item.items() if method in HTTP_METHODS}


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _body_references(spec: dict, schema: dict, prefix: str = "", depth: int = 0) -> set[str]:
    schema = _resolve(spec, schema)
    found: set[str] = set()
    for name, prop in schema.get("properties", {}).items():
        prop = _resolve(spec, prop)
        if name.endswith(("_id", "_ids")):
            found.add(prefix + name)
        if depth < 3 and ("properties" in prop or "$ref" in prop):
            found |= _body_references(spec, prop, f"{prefix}{name}.", depth + 1)
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            found |= _body_references(spec, part, prefix, depth + 1)
    return found


def references(spec: dict, operation: dict) -> set[tuple[str, str]]:
    """What of an operation names a record: path parameters, query parameters that end in
    `_id` (or `record_key`), body fields that end in `_id` (nested ones dotted)."""
    found: set[tuple[str, str]] = set()
    for param in operation["parameters"]:
        if param["in"] == "path":
            found.add(("path", param["name"]))
        elif param["name"].endswith("_id") or param["name"] == "record_key":
            found.add((param["in"], param["name"]))
    for content in operation.get("requestBody", {}).get("content", {}).values():
        found |= {("body", name) for name in _body_references(spec, content.get("schema", {}))}
    return found


# --------------------------------------------------------------------------- the records


def _tag() -> str:
    return uuid.uuid4().hex[:10]


def _ok(response, *statuses: int) -> dict:
    assert response.status_code in (statuses or (200, 201)), (
        f"{response.request.method} {response.request.url}: {response.status_code} "
        f"{response.text[:500]}")
    return response.json() if response.content else {}


@dataclass
class Record:
    kind: str
    id: str
    owner: str
    markers: tuple[str, ...]  # strings that only this record's answer can contain


@dataclass
class World:
    system: System
    records: dict[tuple[str, str], Record]  # (kind, owner) -> record
    own: dict[str, dict[str, str]]  # caller -> {kind: id}
    teams: dict[str, str]  # username -> team id
    pool_lead: Record
    values: dict[str, Any]  # shared placeholders: stages, pipeline, shipped rule...

    def owned_by(self, owner: str) -> list[Record]:
        return [r for (_, who), r in self.records.items() if who == owner]


def _capture_lead(system: System, user: str, tag: str, source: str = "referral") -> dict:
    phone = f"+86139{int(tag[:8], 16) % 10**8:08d}"
    return _ok(system.post("/leads", user=user, json={
        "name": f"机密线索{tag}", "company": f"机密{tag}有限公司",
        "email": f"secret.{tag}@matrix.cn", "phone": phone, "source": source,
        "region": "华东"}), 201)


def _lead_markers(lead: dict) -> tuple[str, ...]:
    return (lead["id"], lead["name"], lead["email"], lead["phone"])


def _own_records(system: System, user: str) -> dict[str, str]:
    """A lead (claimed), a second lead, a customer, a second customer, a contact, an
    opportunity and a task of `user`, for the requests whose path must be the caller's own."""
    own: dict[str, str] = {"user": system.users[user]}
    for slot in ("lead", "lead2"):
        lead = _capture_lead(system, user, _tag())
        _ok(system.post(f"/leads/{lead['id']}/claim", user=user))
        own[slot] = lead["id"]
    for slot in ("customer", "customer2"):
        own[slot] = _ok(system.post("/customers", user=user,
                                    json={"name": f"自有客户{_tag()}"}), 201)["id"]
    own["opportunity"] = _ok(system.post("/opportunities", user=user, json={
        "name": f"自有商机{_tag()}", "customer_id": own["customer"]}), 201)["id"]
    own["task"] = _ok(system.post("/tasks", user=user, json={
        "title": f"自有任务{_tag()}", "assignee_id": system.users[user]}), 201)["id"]
    own["product"] = _product(system)
    own["quote"] = _ok(system.post("/quotes", user=user, json={
        "opportunity_id": own["opportunity"], "title": f"自有报价{_tag()}",
        "lines": [{"product_id": own["product"], "quantity": "1", "unit_price": "100"}]}),
        201)["id"]
    own["ticket"] = _ok(system.post("/tickets", user=user, json={
        "subject": f"自有工单{_tag()}", "requester_email": "own@matrix.cn",
        "assignee_id": system.users[user]}), 201)["id"]
    own["contract"] = _ok(system.post("/contracts", user=user, json={
        "customer_id": own["customer"], "title": f"自有合同{_tag()}", "amount": "100"}),
        201)["id"]
    return own


def _mailed_attachment(system: System, owner: str, ticket: dict, tag: str) -> Record:
    message = EmailMessage()
    message["From"] = ticket["requester_email"]
    message["To"] = "support@matrix.cn"
    message["Subject"] = f"[{ticket['number']}] 附件"
    message.set_content("见附件")
    message.add_attachment(f"机密附件{tag}".encode(), maintype="application", subtype="pdf",
                           filename=f"机密附件{tag}.pdf")
    host, _, port = system.info.spec("service_desk").env["SERVICE_DESK_SMTP_LISTEN"].rpartition(":")
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:
        smtp.send_message(message)
    [attachment] = _ok(system.get(f"/tickets/{ticket['id']}/attachments", user=owner))["items"]
    return Record("attachment", attachment["id"], owner,
                  (attachment["id"], attachment["filename"]))


def _product(system: System) -> str:
    return _ok(system.post("/products", user="admin", json={
        "code": f"M-{_tag()}", "name": "矩阵产品", "unit": "套", "tax_rate": "13"}), 201)["id"]


def _group_ticket(system: System, owner: str, tag: str) -> Record:
    """An unassigned ticket in a group whose only member is `owner` (at capacity 0, so the
    routing rule puts it in the group and nobody gets it): only the group sees it."""
    group = _ok(system.post("/ticket-groups", user="admin", json={
        "name": f"矩阵组{tag}", "members": [{"user_id": system.users[owner], "capacity": 0}]}),
        201)
    _ok(system.post("/ticket-routing-rules", user="admin", json={
        "name": f"矩阵路由{tag}", "group_id": group["id"],
        "conditions": {"products": [f"matrix-{tag}"]}}), 201)
    ticket = _ok(system.post("/tickets", user=owner, json={
        "subject": f"机密组工单{tag}", "requester_email": f"group.{tag}@matrix.cn",
        "product": f"matrix-{tag}"}), 201)
    system.wait_for(lambda: _ok(system.get(f"/tickets/{ticket['id']}", user="admin")
                                ).get("group_id") == group["id"],
                    timeout=30, message=f"{owner}'s group ticket was not routed")
    return Record("group_ticket", ticket["id"], owner,
                  (ticket["id"], ticket["subject"], ticket["requester_email"]))


def _records_of(system: System, owner: str, admin_rule: dict) -> dict[str, Record]:
    """One record of every owned kind, made by `owner` as the API lets a rep make them."""
    tag = _tag()
    lead = _capture_lead(system, owner, tag, source=admin_rule["source"])
    _ok(system.post(f"/leads/{lead['id']}/claim", user=owner))
    records = {"lead": Record("lead", lead["id"], owner, _lead_markers(lead))}
    customer = _ok(system.post("/customers", user=owner, json={
        "name": f"机密客户{tag}", "phone": lead["phone"], "region": "华东"}), 201)
    records["customer"] = Record("customer", customer["id"], owner,
                                 (customer["id"], customer["name"]))
    contact = _ok(system.post("/contacts", user=owner, json={
        "customer_id": customer["id"], "name": f"机密联系人{tag}",
        "email": f"contact.{tag}@matrix.cn"}), 201)
    records["contact"] = Record("contact", contact["id"], owner,
                                (contact["id"], contact["name"], contact["email"]))
    opportunity = _ok(system.post("/opportunities", user=owner, json={
        "name": f"机密商机{tag}", "customer_id": customer["id"]}), 201)
    records["opportunity"] = Record("opportunity", opportunity["id"], owner,
                                    (opportunity["id"], opportunity["name"]))
    followup = _ok(system.post("/followups", user=owner, json={
        "kind": "call", "customer_id": customer["id"], "subject": f"机密跟进{tag}"}), 201)
    records["followup"] = Record("followup", followup["id"], owner,
                                 (followup["id"], f"机密跟进{tag}"))
    task = _ok(system.post("/tasks", user=owner, json={
        "title": f"机密任务{tag}", "assignee_id": system.users[owner], "record_type": "lead",
        "record_id": lead["id"]}), 201)
    records["task"] = Record("task", task["id"], owner, (task["id"], task["title"]))
    quote = _ok(system.post("/quotes", user=owner, json={
        "opportunity_id": opportunity["id"], "title": f"机密报价{tag}",
        "lines": [{"product_id": _product(system), "quantity": "1", "unit_price": "100",
                   "note": f"机密行{tag}"}]}), 201)
    records["quote"] = Record("quote", quote["id"], owner,
                              (quote["id"], quote["title"], f"机密行{tag}"))
    ticket = _ok(system.post("/tickets", user=owner, json={
        "subject": f"机密工单{tag}", "requester_email": f"ticket.{tag}@matrix.cn",
        "assignee_id": system.users[owner]}), 201)
    records["ticket"] = Record("ticket", ticket["id"], owner,
                               (ticket["id"], ticket["subject"], ticket["requester_email"]))
    records["group_ticket"] = _group_ticket(system, owner, tag)
    # the requester mails a file into the ticket (its tag in the subject) through the listener
    records["attachment"] = _mailed_attachment(system, owner, ticket, tag)
    # solved: its satisfaction survey (by the ticket's id and requester) is as hidden as it is
    _ok(system.patch(f"/tickets/{ticket['id']}", user=owner, json={"status": "solved"}))
    contract = _ok(system.post("/contracts", user=owner, json={
        "customer_id": customer["id"], "opportunity_id": opportunity["id"],
        "title": f"机密合同{tag}", "amount": "100"}), 201)
    records["contract"] = Record("contract", contract["id"], owner,
                                 (contract["id"], contract["title"], contract["number"]))
    key = _ok(system.post("/api-keys", user=owner, json={"name": f"matrix{tag}"}), 201)
    records["api_key"] = Record("api_key", key["id"], owner, (key["id"], key["name"]))
    user_id = system.users[owner]
    records["user_record"] = Record("user_record", user_id, owner,
                                    (f"{owner}@demo.crm.local",))
    # the admin's rule notifies the owner of their lead (its name in the title), and the rule
    # engine records a run (with the lead's event) for it
    notification = system.wait_for(lambda: next(
        (n for n in _ok(system.get("/notifications", user=owner))["items"]
         if tag in json.dumps(n, ensure_ascii=False)), None),
        timeout=30, message=f"no notification for {owner}'s lead")
    records["notification"] = Record("notification", notification["id"], owner,
                                     (notification["id"], lead["name"]))
    run = system.wait_for(lambda: next(iter(_ok(system.get(
        "/rule-runs", user="admin", params={"record_key": f"lead:{lead['id']}",
                                            "matched": "true"}))["items"]), None),
        timeout=30, message=f"no rule run for {owner}'s lead")
    records["run"] = Record("run", run["id"], owner, (run["id"], lead["id"], lead["name"]))
    records["event"] = Record("event", run["event_id"], owner, _lead_markers(lead))
    records["record_key"] = Record("record_key", f"lead:{lead['id']}", owner,
                                   (run["id"], lead["name"]))
    return records


@pytest.fixture(scope="module")
def world(system: System, webhook_receiver_module) -> World:
    teams = {name: _ok(system.get(f"/users/{user_id}", user="admin")).get("team_id")
             for name, user_id in system.users.items()}
    records: dict[tuple[str, str], Record] = {}
    for owner in OWNERS:
        source = f"matrix-{_tag()}"
        rule = _ok(system.post("/rules", user="admin", json={
            "name": f"matrix notify {owner} {source}",
            "trigger": {"type": "event", "event": "leads.lead_created"},
            "conditions": f'source == "{source}"',
            "actions": [{"type": "notify", "to": [f"user:{system.users[owner]}"],
                         "channels": ["in_app"], "title": "线索 {{ lead.name }}"}]}), 201)
        for kind, record in _records_of(system, owner, {**rule, "source": source}).items():
            records[(kind, owner)] = record
    # the admin's records: a webhook with a delivery, an import job
    tag = _tag()
    hook = _ok(system.post("/webhooks", user="admin", json={
        "url": webhook_receiver_module.url, "event_types": ["leads.lead_created"],
        "description": f"机密回调{tag}"}), 201)
    records[("webhook", "admin")] = Record("webhook", hook["id"], "admin",
                                           (hook["id"], f"机密回调{tag}", hook["secret"]))
    pool = _capture_lead(system, "admin", _tag())
    delivery = system.wait_for(lambda: next(iter(_ok(system.get(
        f"/webhooks/{hook['id']}/deliveries", user="admin"))["items"]), None),
        timeout=30, message="no webhook delivery")
    records[("delivery", "admin")] = Record("delivery", delivery["id"], "admin",
                                            (delivery["id"],))
    csv = f"name,region\n机密导入{tag},华东\n".encode()
    job = _ok(system.post("/imports", user="admin", data={"entity": "customer",
                                                          "dry_run": "true"},
                          files={"file": ("customers.csv", csv, "text/csv")}), 201, 202)
    records[("import", "admin")] = Record("import", job["id"], "admin",
                                          (job["id"], f"机密导入{tag}"))
    # an approval submitted (over RPC, by the service owning the record) by each owner, which
    # only the owner and the admin (the approver) may see
    flow_type = f"matrix_{_tag()}"
    _ok(system.post("/approval-flows", user="admin", json={
        "record_type": flow_type, "name": "matrix",
        "steps": [{"approvers": [{"kind": "user", "id": system.users["admin"]}]}]}), 201)
    with ClusterRpcProxy({"AMQP_URI": system.amqp_uri}) as rpc:
        for owner in OWNERS:
            secret = f"机密审批{_tag()}"
            approval = rpc.contracts.submit_for_approval(
                data={"record_type": flow_type, "record_id": secret,
                      "terms": {"title": secret}}, submitter=system.users[owner])
            records[("approval", owner)] = Record("approval", approval["id"], owner,
                                                  (approval["id"], secret))
    own = {caller: _own_records(system, caller) for caller in (*CALLERS, "admin")}
    for caller in own:
        own[caller]["team"] = teams[caller]
    pipelines = _ok(system.get("/pipelines", user="admin"))["items"]
    default = next(p for p in pipelines if p["is_default"])
    business_calendar = _ok(system.post("/business-calendars", user="admin",
                                        json={"name": f"矩阵日历{_tag()}"}), 201)
    sla_policy = _ok(system.post("/sla-policies", user="admin", json={
        "name": f"矩阵SLA{_tag()}", "calendar_id": business_calendar["id"],
        "targets": SLA_TARGETS}), 201)
    shipped = next(r for r in _ok(system.get("/rules", user="admin"))["items"]
                   if r.get("key"))
    values = {
        "pipeline": default["id"],
        "stages": [{k: v for k, v in s.items() if k != "id"} for s in default["stages"]],
        **{f"stage.{i}": s["id"] for i, s in enumerate(default["stages"])},
        "shipped_rule": shipped["id"],
        "shipped_rule_definition": {k: shipped[k] for k in
                                    ("name", "trigger", "conditions", "actions") if k in shipped},
        "definition": {"name": "matrix dry run",
                       "trigger": {"type": "event", "event": "leads.lead_created"},
                       "actions": [{"type": "notify", "to": ["actor"], "channels": ["in_app"],
                                    "title": "{{ lead.name }} {{ lead.email }} {{ lead.phone }}"}]},
        "scoring_model": _ok(system.get("/scoring-model", user="admin")),
        "other_user": system.users["chenjing"],
        "business_calendar": business_calendar["id"],
        "sla_policy": sla_policy["id"],
        # a team without members: what a team filter on "nobody" answers
        "empty_team": _ok(system.post("/teams", user="admin",
                                      json={"name": f"空团队{_tag()}"}), 201)["id"],
    }
    return World(system, records, own, teams,
                 Record("lead", pool["id"], "pool", _lead_markers(pool)), values)


@pytest.fixture(scope="module")
def webhook_receiver_module():
    from tests.support.webhook_receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver


# --------------------------------------------------------------------------- the checks


def _fill(template: Any, world: World, caller: str, ref: str | None) -> Any:
    """Put the placeholders of a request template in."""
    if isinstance(template, dict):
        return {k: _fill(v, world, caller, ref) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, world, caller, ref) for v in template]
    if not isinstance(template, str) or not template.startswith("{"):
        return template
    name = template[1:-1]
    if name == "ref":
        return ref
    if name == "new":
        return f"matrix-{_tag()}"
    if name == "new_key":
        return f"m{_tag()}"
    if name == "qualified_lead":
        lead = _capture_lead(world.system, caller, _tag())
        _ok(world.system.post(f"/leads/{lead['id']}/claim", user=caller))
        _ok(world.system.post(f"/leads/{lead['id']}/status", user=caller,
                              json={"status": "qualified"}))
        return lead["id"]
    if name.startswith("own."):
        return world.own[caller][name[4:]]
    return copy.deepcopy(world.values[name])


def _request(world: World, caller: str, operation: str, check: Check | None, ref: str | None,
             path_values: dict[str, str], body: Any, extra_query: dict[str, Any]):
    method, route = operation.split(" ", 1)
    values = {k: _fill(v, world, caller, ref) for k, v in path_values.items()}
    if check is not None and check.where == "path":
        values[check.name] = ref
    for name in list(values):
        route = route.replace("{" + name + "}", str(values[name]))
    assert "{" not in route, f"{operation}: no value for a path parameter of {route}"
    params = {k: _fill(v, world, caller, ref) for k, v in extra_query.items()}
    if check is not None and check.where == "query":
        params[check.name] = ref
    payload = _fill(body, world, caller, ref) if body is not None else None
    if check is not None and check.files:
        return world.system.request(method, route, user=caller, params=params or None,
                                    files=check.files)
    return world.system.request(method, route, user=caller, params=params or None,
                                json=payload)


def _normalised(response, *ids: str) -> Any:
    """The answer with the referenced id put back as <ID> and volatile keys dropped, so two
    answers can be compared."""
    text = response.text
    for value in ids:
        if value:
            text = text.replace(value, "<ID>")
    try:
        return _strip_volatile(json.loads(text))
    except ValueError:
        return text


def _strip_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def _leaks(response, markers: Iterable[str], echoed: str | None) -> list[str]:
    """Markers of the hidden record in the answer; the referenced id itself may be echoed in a
    problem's `instance` and `detail` (the caller sent it), nowhere else."""
    text = response.text
    if echoed and response.headers.get("Content-Type", "").startswith("application/problem"):
        try:
            problem = response.json()
            for key in ("instance", "detail"):
                problem.pop(key, None)
            text = json.dumps(problem, ensure_ascii=False)
        except ValueError:
            pass
    return [marker for marker in markers if marker and marker in text]


def _target_records(world: World, kind: str) -> list[tuple[str, Record]]:
    """(caller, record) pairs where the caller must not see the record."""
    if kind in ADMIN_KINDS:
        return [(caller, world.records[(kind, "admin")]) for caller in ADMIN_RECORD_CALLERS]
    return [(caller, world.records[(kind, owner)]) for caller, owner in HIDDEN_PAIRS]


def _check_hidden_reference(world: World, operation: str, check: Check) -> list[str]:
    failures = []
    method = operation.split(" ", 1)[0]
    for caller, record in _target_records(world, check.kind):
        before = _admin_view(world, record)
        missing = str(uuid.uuid4())
        if check.kind == "record_key":
            missing = f"lead:{missing}"
        hidden = _request(world, caller, operation, check, record.id, check.path, check.body,
                          check.query)
        absent = _request(world, caller, operation, check, missing, check.path, check.body,
                          check.query)
        where = f"{operation} {check.where}:{check.name}={record.kind} of {record.owner} " \
                f"as {caller}"
        if hidden.status_code >= 500:
            failures.append(f"{where}: {hidden.status_code} {hidden.text[:200]}")
            continue
        if hidden.status_code != absent.status_code:
            failures.append(f"{where}: {hidden.status_code} for the hidden record, "
                            f"{absent.status_code} for a missing one: {hidden.text[:200]}")
        elif _normalised(hidden, record.id) != _normalised(absent, missing):
            failures.append(f"{where}: another answer than for a missing record: "
                            f"{hidden.text[:200]} / {absent.text[:200]}")
        leaked = _leaks(hidden, record.markers, record.id)
        if leaked:
            failures.append(f"{where}: the answer ({hidden.status_code}) contains {leaked}")
        if method != "GET" and _admin_view(world, record) != before:
            failures.append(f"{where}: the hidden record was changed ({hidden.status_code})")
    return failures


def _admin_view(world: World, record: Record) -> Any:
    """What the admin reads of a record, to tell whether a refused write changed it."""
    routes = {"lead": "/leads/{}", "customer": "/customers/{}", "contact": "/contacts/{}",
              "opportunity": "/opportunities/{}", "task": "/tasks/{}",
              "webhook": "/webhooks/{}", "approval": "/approvals/{}",
              "quote": "/quotes/{}", "ticket": "/tickets/{}", "contract": "/contracts/{}",
              "group_ticket": "/tickets/{}"}
    if record.kind not in routes:
        return None
    body = world.system.get(routes[record.kind].format(record.id), user="admin").json()
    if isinstance(body, dict):
        for key in ("updated_at", "history", "behaviours", "score_breakdown", "last_activity_at",
                    "insights"):
            body.pop(key, None)
    return _strip_volatile(body)


def _check_filter(world: World, operation: str, check: Check) -> list[str]:
    """A filter on a hidden owner or team answers as a filter on nobody does (a random user,
    a team without members): the same status, no field of the owner's records, and for
    figures (reports, quotas) the same numbers."""
    failures = []
    pairs = HIDDEN_PAIRS if check.kind == "user" else OTHER_TEAM_PAIRS
    figures = operation.startswith(("GET /reports/", "GET /quotas"))
    for caller, owner in pairs:
        ref = world.system.users[owner] if check.kind == "user" else world.teams[owner]
        missing = str(uuid.uuid4()) if check.kind == "user" else world.values["empty_team"]
        hidden = _request(world, caller, operation, check, ref, check.path, check.body,
                          check.query)
        absent = _request(world, caller, operation, check, missing, check.path, check.body,
                          check.query)
        where = f"{operation} ?{check.name}=<{check.kind} {owner}> as {caller}"
        if hidden.status_code >= 500:
            failures.append(f"{where}: {hidden.status_code} {hidden.text[:200]}")
            continue
        if hidden.status_code != absent.status_code:
            failures.append(f"{where}: {hidden.status_code} for {owner}, {absent.status_code} "
                            f"for nobody: {hidden.text[:200]}")
        elif figures and _normalised(hidden, ref) != _normalised(absent, missing):
            failures.append(f"{where}: other figures than for nobody: {hidden.text[:300]} / "
                            f"{absent.text[:300]}")
        markers = [m for r in world.owned_by(owner) if r.kind != "user_record"
                   for m in r.markers]
        leaked = _leaks(hidden, markers, None)
        if leaked:
            failures.append(f"{where}: the answer contains {leaked[:4]}")
    return failures


def _check_grant(world: World, operation: str, check: Check) -> list[str]:
    """A body that gives a record to, or attributes it to, a user or team of another team
    than the caller's is refused (never 2xx), and says nothing of that user's records."""
    failures = []
    for caller, owner in OTHER_TEAM_PAIRS:
        ref = world.system.users[owner] if check.kind == "user" else world.teams[owner]
        response = _request(world, caller, operation, check, ref, check.path, check.body,
                            check.query)
        where = f"{operation} body {check.name}=<{check.kind} of {owner}> as {caller}"
        if response.status_code >= 500 or response.status_code < 400:
            failures.append(f"{where}: {response.status_code} {response.text[:200]}")
        markers = [m for r in world.owned_by(owner) if r.kind != "user_record"
                   for m in r.markers]
        leaked = _leaks(response, markers, None)
        if leaked:
            failures.append(f"{where}: the answer contains {leaked[:4]}")
    return failures


def _check_org(world: World, operation: str, check: Check) -> list[str]:
    """An unknown organisation record (or enum value) is a 4xx problem, for every caller."""
    failures = []
    for caller in (*CALLERS, "admin"):
        ref = f"matrix-{uuid.uuid4().hex[:8]}" if check.where == "path" else str(uuid.uuid4())
        response = _request(world, caller, operation, check, ref, check.path, check.body,
                            check.query)
        if response.status_code >= 500:
            failures.append(f"{operation} {check.where}:{check.name}=<unknown> as {caller}: "
                            f"{response.status_code} {response.text[:200]}")
    return failures


def run_check(world: World, operation: str, check: Check) -> list[str]:
    if check.kind in ORG_KINDS:
        return _check_org(world, operation, check)
    if check.kind in GRANT_KINDS:
        if check.where == "query":
            return _check_filter(world, operation, check)
        return _check_grant(world, operation, check)
    assert check.kind in OWNED_KINDS | ADMIN_KINDS, f"{operation}: unknown kind {check.kind}"
    return _check_hidden_reference(world, operation, check)


# --------------------------------------------------------------------------- the tests


def test_every_documented_operation_is_covered(system: System):
    """The table names exactly the documented operations and, for each, every reference the
    document gives it: a new route or a new `_id` parameter fails here until it is covered."""
    spec = _ok(system.get("/openapi.json"))
    documented = operations(spec)
    unknown = sorted(set(documented) - set(COVERAGE))
    assert not unknown, f"operations without a row in COVERAGE: {unknown}"
    stale = sorted(set(COVERAGE) - set(documented))
    assert not stale, f"rows of COVERAGE for operations no longer documented: {stale}"
    problems = []
    for operation, spec_operation in documented.items():
        needed = references(spec, spec_operation)
        covered = {(check.where, check.name) for check in COVERAGE[operation]}
        if needed - covered:
            problems.append(f"{operation}: uncovered {sorted(needed - covered)}")
        if covered - needed:
            problems.append(f"{operation}: covers undocumented {sorted(covered - needed)}")
    assert not problems, "\n".join(problems)
    assert set(AUTHORITY) <= set(documented)


def test_records_exist_and_their_owners_and_the_admin_see_them(world: World):
    """The positive control: the records the matrix hides are there for whoever may see
    them, so a 404 in the matrix is visibility and not a broken fixture."""
    system = world.system
    routes = {"lead": "/leads/{}", "customer": "/customers/{}", "contact": "/contacts/{}",
              "opportunity": "/opportunities/{}", "task": "/tasks/{}",
              "run": "/rule-runs/{}", "webhook": "/webhooks/{}", "import": "/imports/{}",
              "approval": "/approvals/{}",
              "quote": "/quotes/{}", "ticket": "/tickets/{}", "contract": "/contracts/{}",
              "group_ticket": "/tickets/{}"}
    for (kind, owner), record in world.records.items():
        if kind not in routes:
            continue
        for viewer in sorted({"admin", owner}):
            if kind == "run" and viewer != "admin":
                continue
            response = system.get(routes[kind].format(record.id), user=viewer)
            assert response.status_code == 200, (kind, owner, viewer, response.text)
            assert response.json()["id"] == record.id
    lina_lead = world.records[("lead", "lina")]
    assert system.get(f"/leads/{lina_lead.id}", user="manager").status_code == 200
    for rep in ("zhangwei", "chenjing"):  # the public pool is everybody's
        assert system.get(f"/leads/{world.pool_lead.id}", user=rep).status_code == 200
    listed = _ok(system.get("/leads", user="admin",
                            params={"owner_id": system.users["lina"]}))["items"]
    assert lina_lead.id in {lead["id"] for lead in listed}


LISTS = {
    "GET /leads": {}, "GET /customers": {}, "GET /contacts": {}, "GET /followups": {},
    "GET /opportunities": {}, "GET /opportunities/board": {}, "GET /tasks": {},
    "GET /notifications": {}, "GET /rule-runs": {}, "GET /api-keys": {},
    "GET /users": {}, "GET /webhooks": {}, "GET /approvals": {},
    "GET /quotes": {}, "GET /tickets": {}, "GET /contracts": {}, "GET /csat-surveys": {},
    "GET /exports/{entity}": {"entity": "customers"},
    "GET /leads?in_pool=true": {},
    "GET /approvals?box=submitted": {},  # others' submissions never in my 我提交的
    "GET /rule-events": {},  # console-sales: the event log is for admins only
    # the tickets behind the service desk's figures
    "GET /reports/tickets/volume/records": {}, "GET /reports/tickets/backlog/records": {},
    "GET /reports/tickets/sla-attainment": {},
    "GET /desk/queue": {},
}


@pytest.mark.parametrize("operation", sorted(LISTS))
def test_lists_show_nothing_hidden(world: World, operation: str):
    """Unfiltered lists (and the pool's) show a caller none of the records hidden from them."""
    route, _, raw_query = operation.partition("?")
    params = dict(part.split("=") for part in raw_query.split("&") if part)
    failures = []
    for caller in CALLERS:
        response = _request(world, caller, route, None, None, LISTS[operation], None, params)
        if response.status_code >= 500:
            failures.append(f"{operation} as {caller}: {response.status_code}")
            continue
        hidden = [r for c, owner in HIDDEN_PAIRS if c == caller for r in world.owned_by(owner)]
        hidden += [world.records[(k, "admin")] for k in ADMIN_KINDS]
        for record in hidden:
            if record.kind == "user_record" and operation != "GET /users":
                continue
            leaked = _leaks(response, record.markers, None)
            if leaked:
                failures.append(f"{operation} as {caller}: {record.kind} of {record.owner}: "
                                f"{leaked[:3]}")
    if operation == "GET /leads?in_pool=true":
        pool = _ok(world.system.get("/leads", user="zhangwei",
                                    params={"in_pool": "true", "q": world.pool_lead.markers[1]}))
        assert world.pool_lead.id in {lead["id"] for lead in pool["items"]}
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("operation", [op for op, checks in COVERAGE.items() if checks])
def test_matrix(world: World, operation: str):
    failures = [failure for check in COVERAGE[operation]
                for failure in run_check(world, operation, check)]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("operation", sorted(AUTHORITY))
def test_only_an_admin_changes_organisation_settings(world: World, operation: str):
    path_values, template = AUTHORITY[operation]
    failures = []
    refused = [c for c in CALLERS
               if operation not in AUTHORITY_OF_MANAGERS or world.system.roles[c] != "manager"]
    for caller in refused:
        response = _request(world, caller, operation, None, None, path_values, template, {})
        if not 400 <= response.status_code < 500 or response.status_code in (409, 412, 422):
            failures.append(f"{operation} as {caller}: {response.status_code} "
                            f"{response.text[:200]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("on_duplicate", ["reject", "merge"])
def test_duplicates_of_hidden_leads_tell_nothing(world: World, on_duplicate: str):
    """A lead with the phone or e-mail of a lead the caller cannot see: no id, name or field
    of it in the answer, never merged into it, and the answer the same as for a visible one
    would be less its details."""
    system = world.system
    failures = []
    for caller, owner in HIDDEN_PAIRS:
        hidden = world.records[("lead", owner)]
        before = _admin_view(world, hidden)
        _, name, email, phone = hidden.markers
        for field_name, value in (("phone", phone), ("email", email)):
            response = system.post("/leads", user=caller, params={"on_duplicate": on_duplicate},
                                   json={"name": f"撞单{_tag()}", "source": "referral",
                                         "company": "撞单公司", field_name: value})
            where = f"POST /leads?on_duplicate={on_duplicate} {field_name} of {owner}'s lead " \
                    f"as {caller}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.status_code}")
                continue
            if response.status_code in (200, 201) and response.json().get("id") == hidden.id:
                failures.append(f"{where}: merged into the hidden lead")
            others = [m for m in hidden.markers if m != value]
            leaked = _leaks(response, others, None)
            if leaked:
                failures.append(f"{where}: {response.status_code} contains {leaked}")
        if _admin_view(world, hidden) != before:
            failures.append(f"{on_duplicate} as {caller}: {owner}'s lead was changed")
    assert not failures, "\n".join(failures)


def test_duplicates_of_hidden_customers_tell_nothing(world: World):
    system = world.system
    failures = []
    for caller, owner in HIDDEN_PAIRS:
        hidden = world.records[("customer", owner)]
        response = system.post("/customers", user=caller,
                               json={"name": hidden.markers[1], "region": "华东"})
        if response.status_code >= 500:
            failures.append(f"customer duplicate as {caller}: {response.status_code}")
        leaked = _leaks(response, [hidden.id], None)
        if leaked:
            failures.append(f"POST /customers with the name of {owner}'s customer as {caller}: "
                            f"{response.status_code} contains its id")
    assert not failures, "\n".join(failures)
