"""nameko entrypoints of the contracts service: each loads its input with the contract's
schemas and calls one use case (services/contracts/usecases/), whose result is a plain dict."""

from __future__ import annotations

from typing import Any

from nameko.timer import timer

from services.contracts.contract import (
    EVENT_SCHEMAS,
    ApprovalAbsenceSchema,
    ApprovalDecisionSchema,
    ApprovalDelegateSchema,
    ApprovalFlowWriteSchema,
    ApprovalPageSchema,
    ApprovalSubmitSchema,
    AttachmentCreateSchema,
    ContractChangeSchema,
    ContractCreateSchema,
    ContractFiltersSchema,
    ContractTerminateSchema,
    ErpInvoiceIssued,
    ErpOrderShipped,
    ErpPaymentReceived,
    InvoiceCreateSchema,
    InvoiceVoidSchema,
    NumbersDrillParamsSchema,
    NumbersFiltersSchema,
    OverdueSweepSchema,
    PageSchema,
    PaymentPlanSchema,
    PriceBookChangeSchema,
    PriceBookFiltersSchema,
    PriceBookWriteSchema,
    PrintTemplateWriteSchema,
    ProductChangeSchema,
    ProductFiltersSchema,
    ProductWriteSchema,
    QuoteAcceptSchema,
    QuoteChangeSchema,
    QuoteCreateSchema,
    QuoteDecisionSchema,
    QuoteFiltersSchema,
    ReceiptCreateSchema,
    RenewalCreateSchema,
    ScopeSchema,
    StandardClausesSchema,
)
from services.contracts.models import inbox as approvals_inbox
from services.contracts.models import outbox
from services.contracts.usecases import approvals, contract_approval, erp, quotes
from services.contracts.usecases import attachments as attachments_uc
from services.contracts.usecases import contracts as contracts_uc
from services.contracts.usecases import invoices as invoices_uc
from services.contracts.usecases import numbers as numbers_uc
from services.contracts.usecases import overdue as overdue_uc
from services.contracts.usecases import pricing as catalog
from services.contracts.usecases import printing as print_usecases
from services.contracts.usecases import renewals as renewals_uc
from services.contracts.usecases.approvals import require_unlocked
from shared import config
from shared.consumer import event_handler
from shared.context import CallContext, Context
from shared.db import Database
from shared.errors import NotFound, ValidationFailed
from shared.inbox import first_delivery
from shared.logging import setup_logging
from shared.metrics import EntrypointMetrics
from shared.outbox import EventOutbox
from shared.payloads import load
from shared.platform import PlatformEndpoints
from shared.rpc import ask, rpc, rpc_proxy

approval_flow_schema = ApprovalFlowWriteSchema()
approval_submit_schema = ApprovalSubmitSchema()
approval_decision_schema = ApprovalDecisionSchema()
approval_delegate_schema = ApprovalDelegateSchema()
approval_absence_schema = ApprovalAbsenceSchema()
approval_page_schema = ApprovalPageSchema()
print_template_schema = PrintTemplateWriteSchema()
contract_create_schema = ContractCreateSchema()
quote_scope_schema = ScopeSchema()
quote_page_schema = PageSchema()
product_write_schema = ProductWriteSchema()
product_change_schema = ProductChangeSchema()
product_filters_schema = ProductFiltersSchema()
price_book_write_schema = PriceBookWriteSchema()
price_book_change_schema = PriceBookChangeSchema()
price_book_filters_schema = PriceBookFiltersSchema()
quote_create_schema = QuoteCreateSchema()
quote_change_schema = QuoteChangeSchema()
quote_filters_schema = QuoteFiltersSchema()
quote_decision_schema = QuoteDecisionSchema()
quote_accept_schema = QuoteAcceptSchema()
contract_filters_schema = ContractFiltersSchema()
contract_terminate_schema = ContractTerminateSchema()
payment_plan_schema = PaymentPlanSchema()
receipt_create_schema = ReceiptCreateSchema()
invoice_create_schema = InvoiceCreateSchema()
invoice_void_schema = InvoiceVoidSchema()
overdue_sweep_schema = OverdueSweepSchema()
renewal_create_schema = RenewalCreateSchema()
# attachments
attachment_create_schema = AttachmentCreateSchema()
# How often the overdue sweep runs (seconds; README "Configuration").
OVERDUE_INTERVAL = float(config.env("CONTRACTS_OVERDUE_INTERVAL", "3600"))
numbers_filters_schema = NumbersFiltersSchema()  # numbers
numbers_drill_schema = NumbersDrillParamsSchema()  # numbers
contract_change_schema = ContractChangeSchema()
standard_clauses_schema = StandardClausesSchema()


def _user(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 36:
        raise ValidationFailed.for_fields({name: ["a user id is required"]})
    return value


setup_logging("contracts")


class ContractsService(PlatformEndpoints):
    name = "contracts"

    db = Database("contracts")
    events = EventOutbox("contracts", outbox, EVENT_SCHEMAS)
    context: Context = CallContext()
    sales = rpc_proxy("sales")
    entrypoint_metrics = EntrypointMetrics()

    # -- approvals ----
    # Approval flows and instances (services/contracts/usecases/approvals.py).

    @rpc
    def define_approval_flow(self, data: dict) -> dict[str, Any]:
        return approvals.define_flow(self, load(approval_flow_schema, data))

    @rpc
    def update_approval_flow(self, flow_id: str, data: dict) -> dict[str, Any]:
        return approvals.update_flow(self, flow_id, load(approval_flow_schema, data))

    @rpc
    def get_approval_flow(self, flow_id: str) -> dict[str, Any]:
        return approvals.get_flow(self, flow_id)

    @rpc
    def list_approval_flows(self, record_type: str | None = None) -> list[dict[str, Any]]:
        return approvals.list_flows(self, record_type)

    @rpc
    def submit_for_approval(self, data: dict, submitter: str) -> dict[str, Any]:
        return approvals.submit_for_approval(self, load(approval_submit_schema, data),
                                             _user(submitter, "submitter"))

    @rpc
    def decide_approval(self, approval_id: str, user_id: str, data: dict) -> dict[str, Any]:
        return approvals.decide(self, approval_id, _user(user_id, "user_id"),
                                load(approval_decision_schema, data))

    @rpc
    def recall_approval(self, approval_id: str, user_id: str,
                        comment: str | None = None) -> dict[str, Any]:
        return approvals.recall(self, approval_id, _user(user_id, "user_id"), comment)

    @rpc
    def delegate_approval(self, approval_id: str, user_id: str, data: dict) -> dict[str, Any]:
        return approvals.delegate(self, approval_id, _user(user_id, "user_id"),
                                  load(approval_delegate_schema, data))

    @rpc
    def get_approval(self, approval_id: str, user_id: str | None = None,
                     see_all: bool = False) -> dict[str, Any]:
        return approvals.get_instance(self, approval_id, user_id, see_all)

    @rpc
    def list_my_approvals(self, user_id: str, cursor: str | None = None,
                          limit: int = 50, box: str = "inbox") -> dict[str, Any]:
        return approvals.inbox(self, _user(user_id, "user_id"),
                               load(approval_page_schema,
                                    {"cursor": cursor, "limit": limit, "box": box}))

    @rpc
    def current_approval(self, record_type: str, record_id: str) -> dict[str, Any] | None:
        return approvals.current_approval(self, record_type, record_id)

    @rpc
    def verify_approval(self, record_type: str, record_id: str,
                        current_terms: dict) -> dict[str, Any]:
        return approvals.verify(self, record_type, record_id, current_terms)

    @rpc
    def set_approval_absence(self, user_id: str, data: dict | None) -> dict[str, Any]:
        return approvals.set_absence(self, _user(user_id, "user_id"),
                                     None if data is None else load(approval_absence_schema,
                                                                    data))

    @event_handler("gateway", "user_changed")
    def on_gateway_user_changed(self, envelope: dict[str, Any]) -> None:
        self._project_directory(envelope, "contracts.approvals.user_changed")

    @event_handler("gateway", "team_changed")
    def on_gateway_team_changed(self, envelope: dict[str, Any]) -> None:
        self._project_directory(envelope, "contracts.approvals.team_changed")

    def _project_directory(self, envelope: dict[str, Any], handler: str) -> None:
        with self.db.begin() as session:
            if first_delivery(session, approvals_inbox, envelope["event_id"], handler):
                approvals.project_directory(session, envelope["event_type"],
                                            envelope.get("data") or {},
                                            envelope.get("occurred_at"))

    # -- pdf ----
    # Print templates (打印模板) and quote PDFs (services/contracts/usecases/printing.py).

    @rpc
    def create_print_template(self, data: dict) -> dict[str, Any]:
        return print_usecases.create_template(self, load(print_template_schema, data))

    @rpc
    def update_print_template(self, template_id: str, data: dict) -> dict[str, Any]:
        return print_usecases.update_template(self, template_id,
                                              load(print_template_schema, data))

    @rpc
    def get_print_template(self, template_id: str) -> dict[str, Any]:
        return print_usecases.get_template(self, template_id)

    @rpc
    def list_print_templates(self, record_type: str | None = None) -> list[dict[str, Any]]:
        return print_usecases.list_templates(self, record_type)

    @rpc
    def preview_print_template(self, template_id: str) -> str:
        return print_usecases.preview_template(self, template_id)

    @rpc
    def render_quote_pdf(self, quote: dict, template_id: str | None = None) -> str:
        return print_usecases.render_quote_pdf(self, quote, template_id)

    @rpc
    def quote_pdf(self, quote_id: str, scope: dict | None = None,
                  version: int | None = None, template_id: str | None = None) -> str:
        """A quote the caller sees (a version of it, default the current one) as a PDF
        (base64), with the customer's name as sales gives it to the caller."""
        scope = load(quote_scope_schema, scope)
        quote = quotes.read(self.quote_ports, quote_id, scope, version)
        customer = self._ask_sales("get_customer", customer_id=quote["customer_id"],
                                   scope=scope, include_contacts=False)
        return print_usecases.render_quote_pdf(
            self, print_usecases.printable_quote(quote, customer["name"]), template_id)

    # -- quotes: products, price books, quotes ----

    @property
    def catalog_ports(self) -> catalog.CatalogPorts:
        return catalog.CatalogPorts(self.db, self.context.actor)

    @property
    def quote_ports(self) -> quotes.QuotePorts:
        return quotes.QuotePorts(self.db, self.events, self.context.actor, catalog.today,
                                 self._ask_sales)

    def _ask_sales(self, command: str, **kwargs: Any) -> Any:
        return ask("sales", self.sales, command, **kwargs)

    # products

    @rpc
    def create_product(self, data: dict) -> dict[str, Any]:
        return catalog.create_product(self.catalog_ports, load(product_write_schema, data))

    @rpc
    def update_product(self, product_id: str, data: dict) -> dict[str, Any]:
        return catalog.change_product(self.catalog_ports, product_id,
                                      load(product_change_schema, data))

    @rpc
    def get_product(self, product_id: str, include_inactive: bool = False) -> dict[str, Any]:
        return catalog.read_product(self.catalog_ports, product_id, bool(include_inactive))

    @rpc
    def list_products(self, filters: dict | None = None, cursor: str | None = None,
                      limit: int = 50) -> dict[str, Any]:
        return catalog.list_products(self.catalog_ports, load(product_filters_schema, filters),
                                     load(quote_page_schema, {"cursor": cursor, "limit": limit}))

    # price books

    @rpc
    def create_price_book(self, data: dict) -> dict[str, Any]:
        return catalog.create_price_book(self.catalog_ports,
                                         load(price_book_write_schema, data))

    @rpc
    def update_price_book(self, price_book_id: str, data: dict) -> dict[str, Any]:
        return catalog.change_price_book(self.catalog_ports, price_book_id,
                                         load(price_book_change_schema, data))

    @rpc
    def get_price_book(self, price_book_id: str, include_inactive: bool = False
                       ) -> dict[str, Any]:
        return catalog.read_price_book(self.catalog_ports, price_book_id,
                                       bool(include_inactive))

    @rpc
    def list_price_books(self, filters: dict | None = None, cursor: str | None = None,
                         limit: int = 50) -> dict[str, Any]:
        return catalog.list_price_books(
            self.catalog_ports, load(price_book_filters_schema, filters),
            load(quote_page_schema, {"cursor": cursor, "limit": limit}))

    # quotes

    @rpc
    def create_quote(self, data: dict, scope: dict | None = None) -> dict[str, Any]:
        """A draft quote (version 1) for an opportunity the caller sees (sales'
        get_opportunity with the caller's scope); owner and team are the opportunity's."""
        scope = load(quote_scope_schema, scope)
        return quotes.create(self.quote_ports, load(quote_create_schema, data), scope)

    @rpc
    def update_quote(self, quote_id: str, data: dict, scope: dict | None = None
                     ) -> dict[str, Any]:
        """Change the current version's terms while the quote is a draft (else 409)."""
        scope = load(quote_scope_schema, scope)
        return quotes.change(self.quote_ports, quote_id, load(quote_change_schema, data), scope)

    @rpc
    def get_quote(self, quote_id: str, scope: dict | None = None,
                  version: int | None = None) -> dict[str, Any]:
        """The quote with its current version's terms, or those of `version`."""
        if version is not None and (not isinstance(version, int) or version < 1):
            raise ValidationFailed.for_fields({"version": ["a version number (1, 2, ...)"]})
        return quotes.read(self.quote_ports, quote_id, load(quote_scope_schema, scope), version)

    @rpc
    def list_quote_versions(self, quote_id: str, scope: dict | None = None) -> dict[str, Any]:
        return quotes.list_versions(self.quote_ports, quote_id,
                                    load(quote_scope_schema, scope))

    @rpc
    def list_quotes(self, filters: dict | None = None, scope: dict | None = None,
                    cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        return quotes.list_page(self.quote_ports, load(quote_filters_schema, filters),
                                load(quote_scope_schema, scope),
                                load(quote_page_schema, {"cursor": cursor, "limit": limit}))

    @rpc
    def revise_quote(self, quote_id: str, scope: dict | None = None) -> dict[str, Any]:
        return quotes.revise(self.quote_ports, quote_id, load(quote_scope_schema, scope))

    @rpc
    def submit_quote(self, quote_id: str, scope: dict | None = None) -> dict[str, Any]:
        """draft -> in_approval; with no approval flow for the quote, draft -> approved."""
        return quotes.command(self.quote_ports, quote_id, "submit",
                              load(quote_scope_schema, scope))

    @rpc
    def mark_quote_sent(self, quote_id: str, scope: dict | None = None) -> dict[str, Any]:
        return quotes.command(self.quote_ports, quote_id, "mark_sent",
                              load(quote_scope_schema, scope))

    @rpc
    def reject_quote(self, quote_id: str, data: dict | None = None,
                     scope: dict | None = None) -> dict[str, Any]:
        decision = load(quote_decision_schema, data)
        return quotes.command(self.quote_ports, quote_id, "reject",
                              load(quote_scope_schema, scope), decision["reason"])

    @rpc
    def accept_quote(self, quote_id: str, data: dict | None = None,
                     scope: dict | None = None) -> dict[str, Any]:
        """Accept an approved or sent quote: its opportunity takes the grand total and moves
        (default: to the won stage) through sales; sales' refusal is the answer."""
        decision = load(quote_accept_schema, data)
        return quotes.accept(self.quote_ports, quote_id, load(quote_scope_schema, scope),
                             decision["reason"], decision["stage_id"])

    # -- contracts ----
    # Create, read, sign, terminate, payment plan, receipts, receivables (usecases/contracts.py).

    @rpc
    def create_contract(self, data: dict, scope: dict | None = None) -> dict[str, Any]:
        """A draft contract for a customer (and optional opportunity of that customer) the
        caller sees through sales with the caller's scope; hidden or missing: 422 naming the
        field. The owner is the opportunity's, else the customer's."""
        return contracts_uc.create_for_caller(
            self, load(contract_create_schema, data), load(quote_scope_schema, scope),
            self._ask_sales)

    @rpc
    def get_contract(self, contract_id: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(quote_scope_schema, scope)
        with self.db.read() as session:
            return contracts_uc.contract_view(
                contracts_uc.visible_contract(session, contract_id, scope))

    @rpc
    def list_contracts(self, filters: dict | None = None, scope: dict | None = None,
                       cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        filters = load(contract_filters_schema, filters)
        scope = load(quote_scope_schema, scope)
        page = load(quote_page_schema, {"cursor": cursor, "limit": limit})
        with self.db.read() as session:
            return contracts_uc.list_page(session, filters, scope, page)

    @rpc
    def sign_contract(self, contract_id: str, scope: dict | None = None) -> dict[str, Any]:
        """draft -> active; publishes contract_signed and order_created (the ERP order)."""
        scope = load(quote_scope_schema, scope)
        # contract approval: the lock and the approval re-verified against the stored terms
        checked_hash = contract_approval.verify_for_signing(self, contract_id, scope)
        with self.db.begin() as session:
            contract = contracts_uc.visible_contract(session, contract_id, scope, lock=True)
            contract_approval.require_signable(session, contract, checked_hash)
            contracts_uc.transition(contract, "active")
            session.flush()
            renewals_uc.on_signed(session, self.events, contract)  # the old one: renewed
            self.events.record(session, "contract_signed",
                               {"contract": contracts_uc.snapshot(contract)})
            erp.create_order(session, self.events, contract)  # with its lines (erp part)
            return contracts_uc.contract_view(contract)

    @rpc
    def terminate_contract(self, contract_id: str, data: dict | None = None,
                           scope: dict | None = None) -> dict[str, Any]:
        """active -> terminated, with a `reason` (required)."""
        reason = load(contract_terminate_schema, data)["reason"]
        scope = load(quote_scope_schema, scope)
        with self.db.begin() as session:
            contract = contracts_uc.visible_contract(session, contract_id, scope, lock=True)
            require_unlocked(session, "contract", contract.id)  # contract approval
            contracts_uc.transition(contract, "terminated")
            session.flush()
            self.events.record(session, "contract_terminated",
                               {"contract": contracts_uc.snapshot(contract), "reason": reason})
            return contracts_uc.contract_view(contract)

    @rpc
    def set_payment_plan(self, contract_id: str, data: dict,
                         scope: dict | None = None) -> dict[str, Any]:
        """Replace the plan (no receipts yet, else 409); the sum never exceeds the amount."""
        loaded = load(payment_plan_schema, data)
        scope = load(quote_scope_schema, scope)
        with self.db.begin() as session:
            contracts_uc.visible_contract(session, contract_id, scope)
            require_unlocked(session, "contract", contract_id)  # contract approval
            items = contracts_uc.put_payment_plan(session, contract_id,
                                                  loaded["instalments"], catalog.today())
            return {"items": items}

    @rpc
    def get_payment_plan(self, contract_id: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(quote_scope_schema, scope)
        with self.db.read() as session:
            contracts_uc.visible_contract(session, contract_id, scope)
            return {"items": contracts_uc.plan(session, contract_id)}

    @rpc
    def record_receipt(self, contract_id: str, data: dict,
                       scope: dict | None = None) -> dict[str, Any]:
        """Money received: matched to `instalment_id` first when given, then oldest due."""
        loaded = load(receipt_create_schema, data)
        scope = load(quote_scope_schema, scope)
        with self.db.begin() as session:
            contract = contracts_uc.visible_contract(session, contract_id, scope)
            require_unlocked(session, "contract", contract_id)  # contract approval
            receipt = contracts_uc.record_receipt(session, contract_id, loaded,
                                                  catalog.today(), events=self.events,
                                                  source="user")
            payer = (loaded.get("payer") or {}).get("name")
            return erp.receipt_recorded(session, self.events, contract, receipt["id"], "user",
                                        payer)

    @rpc
    def list_receipts(self, contract_id: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(quote_scope_schema, scope)
        with self.db.read() as session:
            contracts_uc.visible_contract(session, contract_id, scope)
            return contracts_uc.list_receipts(session, contract_id)

    @rpc
    def contract_receivables(self, contract_id: str,
                             scope: dict | None = None) -> dict[str, Any]:
        """contract_amount, received, outstanding, overdue (as of today)."""
        scope = load(quote_scope_schema, scope)
        with self.db.read() as session:
            contracts_uc.visible_contract(session, contract_id, scope)
            return {**contracts_uc.receivables(session, contract_id, catalog.today()),
                    **invoices_uc.invoiced_amounts(session, contract_id)}  # erp part

    # -- erp: invoices (开票), orders, the ERP's inbound events ----
    # services/contracts/usecases/invoices.py and usecases/erp.py.

    @rpc
    def record_invoice(self, contract_id: str, data: dict,
                       scope: dict | None = None) -> dict[str, Any]:
        """An issued invoice of a signed contract, for a receipt or an instalment (or the
        contract); 422 naming the field, 409 on a number already used for its type."""
        loaded = load(invoice_create_schema, data)
        scope = load(quote_scope_schema, scope)
        with self.db.begin() as session:
            contract = contracts_uc.visible_contract(session, contract_id, scope, lock=True)
            invoice = invoices_uc.record_invoice(session, contract, loaded)
            return erp.invoice_event(session, self.events, "invoice_recorded", contract,
                                     invoice)

    @rpc
    def list_invoices(self, contract_id: str, scope: dict | None = None) -> dict[str, Any]:
        scope = load(quote_scope_schema, scope)
        with self.db.read() as session:
            contracts_uc.visible_contract(session, contract_id, scope)
            return invoices_uc.list_invoices(session, contract_id)

    @rpc
    def void_invoice(self, contract_id: str, invoice_id: str, data: dict | None = None,
                     scope: dict | None = None) -> dict[str, Any]:
        """issued -> void with a `reason`; its amount no longer counts (its number stays
        used)."""
        reason = load(invoice_void_schema, data)["reason"]
        scope = load(quote_scope_schema, scope)
        with self.db.begin() as session:
            contract = contracts_uc.visible_contract(session, contract_id, scope, lock=True)
            invoice = invoices_uc.void_invoice(session, contract, invoice_id, reason)
            return erp.invoice_event(session, self.events, "invoice_voided", contract,
                                     invoice)

    @rpc
    def get_contract_order(self, contract_id: str,
                           scope: dict | None = None) -> dict[str, Any]:
        """The ERP order of a signed contract (404 before it is signed)."""
        scope = load(quote_scope_schema, scope)
        with self.db.read() as session:
            contract = contracts_uc.visible_contract(session, contract_id, scope)
            order = erp.get_order(session, contract)
            if order is None:
                raise NotFound(f"contract {contract_id} has no order yet")
            return order

    @event_handler("erp", "payment_received")
    def on_erp_payment_received(self, envelope: dict[str, Any]) -> None:
        erp.handle_inbound(self, "payment_received", envelope, ErpPaymentReceived)

    @event_handler("erp", "invoice_issued")
    def on_erp_invoice_issued(self, envelope: dict[str, Any]) -> None:
        erp.handle_inbound(self, "invoice_issued", envelope, ErpInvoiceIssued)

    @event_handler("erp", "order_shipped")
    def on_erp_order_shipped(self, envelope: dict[str, Any]) -> None:
        erp.handle_inbound(self, "order_shipped", envelope, ErpOrderShipped)

    # -- overdue and renewals ----
    # The overdue sweep (timer + RPC, usecases/overdue.py) and renewals (usecases/renewals.py).

    @timer(interval=OVERDUE_INTERVAL)
    def mark_overdue_timer(self) -> None:
        """Every CONTRACTS_OVERDUE_INTERVAL seconds: today's overdue instalments marked."""
        overdue_uc.mark_overdue(self.db, self.events, catalog.today())

    @rpc
    def mark_overdue(self, as_of: str | None = None) -> dict[str, Any]:
        """Mark the instalments overdue on `as_of` (default today): each once, with one
        `instalment_overdue`; returns what this call marked."""
        day = load(overdue_sweep_schema, {"as_of": as_of})["as_of"] or catalog.today()
        return overdue_uc.mark_overdue(self.db, self.events, day)

    @rpc
    def renew_contract(self, contract_id: str, data: dict | None = None,
                       scope: dict | None = None) -> dict[str, Any]:
        """A draft renewal of a contract the caller sees; signing it renews the old one."""
        return renewals_uc.renew_contract(self.db, self.events, contract_id,
                                          load(renewal_create_schema, data or {}),
                                          load(quote_scope_schema, scope))

    # -- attachments ----
    # A contract's files (services/contracts/usecases/attachments.py).

    @rpc
    def add_contract_attachment(self, contract_id: str, data: dict,
                                scope: dict | None = None) -> dict[str, Any]:
        """A file for a contract the caller sees (content base64); refused in approval."""
        return attachments_uc.add(self, contract_id, load(attachment_create_schema, data),
                                  load(quote_scope_schema, scope))

    @rpc
    def list_contract_attachments(self, contract_id: str,
                                  scope: dict | None = None) -> dict[str, Any]:
        return attachments_uc.list_for(self, contract_id, load(quote_scope_schema, scope))

    @rpc
    def get_contract_attachment(self, contract_id: str, attachment_id: str,
                                scope: dict | None = None) -> dict[str, Any]:
        """The file with its content (base64)."""
        return attachments_uc.get(self, contract_id, attachment_id,
                                  load(quote_scope_schema, scope))

    @rpc
    def remove_contract_attachment(self, contract_id: str, attachment_id: str,
                                   scope: dict | None = None) -> dict[str, Any]:
        """Remove a file from a draft contract (412 once signed, 409 in approval)."""
        return attachments_uc.remove(self, contract_id, attachment_id,
                                     load(quote_scope_schema, scope))

    # -- numbers ----
    # Collection, aging, DSO, win rate, approval cycle times, drill-down, the customer 360's
    # part (services/contracts/usecases/numbers.py). Every one takes the caller's scope.

    def _report(self, report: Any, filters: dict | None, scope: dict | None) -> Any:
        loaded = load(numbers_filters_schema, filters)
        scope = load(quote_scope_schema, scope)
        with self.db.read() as session:
            return report(session, loaded, scope)

    @rpc
    def collection_report(self, filters: dict | None = None,
                          scope: dict | None = None) -> dict[str, Any]:
        """Per month of the period: planned (instalments due) vs received (receipts)."""
        return self._report(numbers_uc.collection, filters, scope)

    @rpc
    def aging_report(self, filters: dict | None = None,
                     scope: dict | None = None) -> dict[str, Any]:
        """Outstanding of overdue instalments as of `as_of` in 0-30 / 31-60 / 61-90 / >90."""
        return self._report(numbers_uc.aging, filters, scope)

    @rpc
    def dso_report(self, filters: dict | None = None,
                   scope: dict | None = None) -> dict[str, Any]:
        """Days sales outstanding over the period (formula in domain/numbers.py)."""
        return self._report(numbers_uc.dso, filters, scope)

    @rpc
    def quote_win_rate(self, filters: dict | None = None,
                       scope: dict | None = None) -> dict[str, Any]:
        """Win rate and average discount by owner, by team and in total."""
        return self._report(numbers_uc.win_rate, filters, scope)

    @rpc
    def approval_cycle_times(self, filters: dict | None = None,
                             scope: dict | None = None) -> dict[str, Any]:
        """Median and p90 hours per flow step from its start to its decision."""
        return self._report(numbers_uc.approval_cycle_times, filters, scope)

    @rpc
    def numbers_drill_down(self, figure: str, filters: dict | None = None,
                           scope: dict | None = None, params: dict | None = None,
                           cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        """The records behind a figure (collection, aging, dso, win_rate, approval_cycle)."""
        loaded = load(numbers_filters_schema, filters)
        scope = load(quote_scope_schema, scope)
        part = load(numbers_drill_schema, params)
        page = load(quote_page_schema, {"cursor": cursor, "limit": limit})
        with self.db.read() as session:
            return numbers_uc.drill_down(session, figure, loaded, scope, part, page)

    @rpc
    def customer_summary(self, customer_id: str, scope: dict | None = None,
                         quotes_limit: int = 10) -> dict[str, Any]:
        """The customer 360's part: recent quotes, contracts and their receivables."""
        if not isinstance(customer_id, str) or not customer_id or len(customer_id) > 36:
            raise ValidationFailed.for_fields({"customer_id": ["a customer id is required"]})
        if not isinstance(quotes_limit, int) or not 1 <= quotes_limit <= 100:
            raise ValidationFailed.for_fields({"quotes_limit": ["1 to 100"]})
        scope = load(quote_scope_schema, scope)
        with self.db.read() as session:
            return numbers_uc.customer_summary(session, customer_id, scope, quotes_limit)

    # -- contract approval ----
    # Contracts through approvals, the standard clauses, and the escalation of undecided
    # approval steps (services/contracts/usecases/contract_approval.py).

    @rpc
    def submit_contract(self, contract_id: str, scope: dict | None = None) -> dict[str, Any]:
        """draft -> in_approval (a contract flow matches its terms) or approved (none does)."""
        return contract_approval.submit(self, contract_id, load(quote_scope_schema, scope))

    @rpc
    def update_contract(self, contract_id: str, data: dict,
                        scope: dict | None = None) -> dict[str, Any]:
        """Change a draft's terms (409 while in approval or once past draft)."""
        return contract_approval.change(self, contract_id, load(contract_change_schema, data),
                                        load(quote_scope_schema, scope))

    @rpc
    def contract_approval_terms(self, contract_id: str,
                                scope: dict | None = None) -> dict[str, Any]:
        """The terms an approval of the contract decides on, and their hash."""
        return contract_approval.terms_of(self, contract_id, load(quote_scope_schema, scope))

    @rpc
    def set_standard_clauses(self, data: dict) -> dict[str, Any]:
        return contract_approval.set_standard_clauses(
            self, load(standard_clauses_schema, data)["clauses"])

    @rpc
    def get_standard_clauses(self) -> dict[str, Any]:
        return contract_approval.get_standard_clauses(self)

    @rpc
    def escalate_approval_step(self, approval_id: str, step: Any = None,
                               scope: dict | None = None,
                               command_id: str | None = None) -> dict[str, Any]:
        """The rules service's timer: escalate the approval's step `step` if still undecided
        (idempotent by `command_id` and by step). `scope` (the rule's) is not needed: the
        approval engine decides who is escalated to."""
        return contract_approval.escalate_step(self, approval_id, step, command_id)
