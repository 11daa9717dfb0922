"""Tables of the contracts service (its own database)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from services.contracts.domain.money import round_money
from shared.db import UTCDateTime
from shared.inbox import inbox_table
from shared.kernel.naming import service_metadata
from shared.outbox import outbox_table

metadata = service_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class Money(TypeDecorator):
    """An amount of money, exact in the database and summable there without a conversion:
    NUMERIC(20, 2) on PostgreSQL, integer cents (fen) on SQLite, whose NUMERIC is a float.
    In Python a Decimal with two places; a str, int or Decimal is taken (rounded half-up to
    the fen, as `round_money`), a float is refused. SUM() and differences of Money columns
    read back as Money (migration 0010r converted the decimal strings stored before)."""

    impl = Numeric(20, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, 2, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = round_money(value)
        return int(amount.scaleb(2)) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-2)
        return round_money(value)


outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


# -- approvals ----
class ApprovalFlow(Base):
    """An approval flow for one record type (services/contracts/domain/approvals.py)."""

    __tablename__ = "approval_flows"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    record_type: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    condition: Mapped[str | None] = mapped_column(Text)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    cc: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    fallback_approver: Mapped[str | None] = mapped_column(String(36))
    allow_self_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApprovalInstance(Base):
    """One submission of a record's terms; `state` is the domain's instance dict (steps,
    answers, trail). `open_key` is "<record_type>:<record_id>" while pending, else NULL: the
    unique index allows one pending instance per record, also under concurrent submissions."""

    __tablename__ = "approval_instances"
    __table_args__ = (Index("ix_approval_instances_record", "record_type", "record_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    record_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    open_key: Mapped[str | None] = mapped_column(String(140), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    flow_id: Mapped[str | None] = mapped_column(String(36))
    submitter_id: Mapped[str] = mapped_column(String(36), index=True)
    terms_hash: Mapped[str] = mapped_column(String(64))
    terms_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApprovalTask(Base):
    """Who is to answer a pending instance now (the inbox), rebuilt at every change."""

    __tablename__ = "approval_tasks"

    instance_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    step: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime] = mapped_column(UTCDateTime())


class ApprovalViewer(Base):
    """Who may see an instance (submitter, CC, approvers so far, actors)."""

    __tablename__ = "approval_viewers"

    instance_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)


class ApprovalDirectoryUser(Base):
    """Projection of the gateway's users (`gateway.user_changed`) for approver resolution."""

    __tablename__ = "approval_directory_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    team_id: Mapped[str | None] = mapped_column(String(36), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The `occurred_at` of the event that wrote the row: a late older event changes nothing.
    changed_at: Mapped[str | None] = mapped_column(String(40))


class ApprovalDirectoryTeam(Base):
    """Projection of the gateway's teams (`gateway.team_changed`)."""

    __tablename__ = "approval_directory_teams"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    manager_id: Mapped[str | None] = mapped_column(String(36))
    changed_at: Mapped[str | None] = mapped_column(String(40))  # as the users'


class ApprovalAbsence(Base):
    """A user's out-of-office delegation: until `until`, `delegate_id` answers for them."""

    __tablename__ = "approval_absences"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    delegate_id: Mapped[str] = mapped_column(String(36))
    until: Mapped[datetime] = mapped_column(UTCDateTime())


# -- pdf ----
class PrintTemplate(Base):
    """A print template (打印模板): HTML+CSS in a Jinja2 sandbox, rendered to PDF
    (services/contracts/printing.py). At most one default per record type."""

    __tablename__ = "print_templates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    record_type: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# -- quotes (products, price books, quotes) ----


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(100))
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))  # percent: 13, 9, 6 or 0
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PriceBookRecord(Base):
    """A price book; `tiers` is a list of {product_id, min_quantity, unit_price} (strings)."""

    __tablename__ = "price_books"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(64))
    customer_tier: Mapped[str | None] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Quote(Base):
    """A quote; its terms (lines, discount, totals) are in its versions, `version` is the
    current one. Owner and team come from the opportunity (row-level visibility)."""

    __tablename__ = "quotes"
    __table_args__ = (Index("ix_quotes_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    opportunity_id: Mapped[str] = mapped_column(String(36), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    owner_id: Mapped[str | None] = mapped_column(String(36), index=True)
    team_id: Mapped[str | None] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str | None] = mapped_column(String(36))
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class QuoteVersion(Base):
    """One version's terms: title, currency, valid_until, price context, discount, notes,
    lines and totals. Versions other than the quote's current one never change."""

    __tablename__ = "quote_versions"

    quote_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_until: Mapped[date | None] = mapped_column(Date)
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- contracts ----
class ContractCounter(Base):
    """The contract number sequence of one year: locked and incremented in the transaction
    that inserts the contract, so numbers have no gaps and no duplicates."""

    __tablename__ = "contract_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Contract(Base):
    __tablename__ = "contracts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    title: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    opportunity_id: Mapped[str | None] = mapped_column(String(36))
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    amount: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    parties: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    clauses: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    start_date: Mapped[str | None] = mapped_column(String(10))
    end_date: Mapped[str | None] = mapped_column(String(10))
    renews_id: Mapped[str | None] = mapped_column(String(36))
    # -- overdue and renewals (migration 0007o) --
    renewed_by_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # -- c-receipts (migration 0012p) --
    # The accepted quote the contract was made from (null: a direct contract).
    quote_id: Mapped[str | None] = mapped_column(String(36))
    # The clauses as stored before 0012p made them {code, title, text}, when that changed
    # them (kept so nothing stored is lost; the downgrade puts them back).
    clauses_original: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class Instalment(Base):
    """One instalment of a contract's payment plan; `paid` is the sum of its allocations."""

    __tablename__ = "contract_instalments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contract_id: Mapped[str] = mapped_column(String(36), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[str] = mapped_column(String(10))
    amount: Mapped[Decimal] = mapped_column(Money())
    paid: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    status: Mapped[str] = mapped_column(String(20))
    # -- overdue and renewals (migration 0007o) --
    # When the sweep marked it overdue (and published `instalment_overdue`): once.
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_contract_instalments_overdue_sweep", "overdue_at", "due_date"),)


class Receipt(Base):
    """Money received for a contract (by a user or from the ERP) and how it was allocated."""

    __tablename__ = "contract_receipts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contract_id: Mapped[str] = mapped_column(String(36), index=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    received_on: Mapped[str] = mapped_column(String(10))
    method: Mapped[str | None] = mapped_column(String(40))
    reference: Mapped[str | None] = mapped_column(String(100))
    allocations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # -- c-receipts (migration 0012p): who recorded it (user / erp) and who paid --
    source: Mapped[str] = mapped_column(String(8), default="user", server_default="user")
    payer_name: Mapped[str | None] = mapped_column(String(200))
    payer_account: Mapped[str | None] = mapped_column(String(64))
    payer_reference: Mapped[str | None] = mapped_column(String(100))


# -- attachments: a contract's files (migration 0011f) ----


class ContractAttachment(Base):
    """A file of a contract (the signed scan, annexes), kept in this service's database."""

    __tablename__ = "contract_attachments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- numbers ----
# Indexes of the reports (services/contracts/usecases/numbers.py), migration 0009n: each
# covers its report's columns, so collection and aging read the index alone on PostgreSQL.
Index("ix_contract_instalments_due_report", Instalment.due_date, Instalment.status,
      Instalment.contract_id, Instalment.amount, Instalment.paid)
Index("ix_contract_receipts_received_report", Receipt.received_on, Receipt.contract_id,
      Receipt.amount)
# The open instalments (migration 0010r): the aging reads only these, not the paid ones.
OPEN_INSTALMENT = Instalment.status.notin_(("paid", "void"))
Index("ix_contract_instalments_open_due", Instalment.due_date, Instalment.contract_id,
      Instalment.amount, Instalment.paid, postgresql_where=OPEN_INSTALMENT,
      sqlite_where=OPEN_INSTALMENT)
Index("ix_contracts_status_owner", Contract.status, Contract.owner_id)
# The unsigned contracts' ids, read from the index alone (migration 0010r): the reports'
# anti-join of "not of an unsigned contract".
Index("ix_contracts_status_id", Contract.status, Contract.id)
Index("ix_approval_instances_submitted", ApprovalInstance.submitted_at)


# -- erp: orders to the ERP, invoices (开票) ----


class Order(Base):
    """The ERP's order of a signed contract (`order_created`), with the lines it was booked
    with; the ERP reports it shipped (`erp.order_shipped`)."""

    __tablename__ = "contract_orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    contract_id: Mapped[str] = mapped_column(String(36), unique=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    amount: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # quote or contract
    status: Mapped[str] = mapped_column(String(20))  # created, shipped
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    erp_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Invoice(Base):
    """An invoice (发票) of a contract, for a receipt or an instalment (or the contract);
    numbers are unique per invoice type, void ones included (a number is used once)."""

    __tablename__ = "contract_invoices"
    __table_args__ = (Index("uq_contract_invoices_type_number", "type", "number", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    contract_id: Mapped[str] = mapped_column(String(36), index=True)
    receipt_id: Mapped[str | None] = mapped_column(String(36), index=True)
    instalment_id: Mapped[str | None] = mapped_column(String(36), index=True)
    title: Mapped[str] = mapped_column(String(200))
    tax_number: Mapped[str | None] = mapped_column(String(18))
    type: Mapped[str] = mapped_column(String(20))  # special, normal, electronic
    number: Mapped[str] = mapped_column(String(40))
    issued_on: Mapped[str] = mapped_column(String(10))
    amount: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(10))  # issued, void
    source: Mapped[str] = mapped_column(String(10))  # user, erp
    void_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- contract approval ----
class StandardClause(Base):
    """A standard contract clause (标准条款): a contract whose clauses differ from these (by
    code and text, in order) has `clauses_changed` true in its approval terms."""

    __tablename__ = "contract_standard_clauses"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
