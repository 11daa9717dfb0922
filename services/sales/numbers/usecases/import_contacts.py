"""The contact rows of an import: each row's customer (by id, credit code or name, visible
to the importer), duplicates by the same customer and phone, email or name."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.sales.domain import accounts
from services.sales.models import Contact, Customer
from services.sales.numbers.domain.custom_fields import merge_custom
from services.sales.numbers.usecases.import_support import Write, insert_rows, utcnow


class ContactRows:
    """The contact half of `Importer` (importing.py), which holds the job's state."""

    def _contacts(self, rows: list, counts: dict, bad: list, writes: list[Write]) -> None:
        ids = {r["customer_id"] for _, r, _ in rows if r.get("customer_id")}
        codes = {r["customer_credit_code"] for _, r, _ in rows if r.get("customer_credit_code")}
        keys = {accounts.name_key(r["customer_name"]) for _, r, _ in rows
                if r.get("customer_name")}
        by_id: dict[str, Any] = {}
        by_code: dict[str, Any] = {}
        by_key: dict[str, list[Any]] = defaultdict(list)
        conditions = []
        if ids:
            conditions.append(Customer.id.in_(ids))
        if codes:
            conditions.append(Customer.credit_code.in_(codes))
        if keys:
            conditions.append(Customer.name_key.in_(keys))
        with self.db.read() as session:
            if conditions:
                for row in session.execute(
                    select(Customer.id, Customer.credit_code, Customer.name_key,
                           Customer.owner_id)
                    .where(or_(*conditions), Customer.merged_into_id.is_(None))
                ):
                    by_id[row.id] = row
                    if row.credit_code:
                        by_code[row.credit_code] = row
                    if row.name_key:
                        by_key[row.name_key].append(row)
            resolved = self._resolve_customers(rows, by_id, by_code, by_key)
            customer_ids = {c for *_, c in resolved if c}
            existing: dict[tuple[str, str, str], str] = {}
            if customer_ids:
                for row in session.execute(
                    select(Contact.id, Contact.customer_id, Contact.name, Contact.phone,
                           Contact.email).where(Contact.customer_id.in_(customer_ids))
                ):
                    for kind in ("phone", "email", "name"):
                        value = getattr(row, kind)
                        if value:
                            existing[(row.customer_id, kind, value.casefold())] = row.id
        inserts: list[dict[str, Any]] = []
        pending: dict[str, dict[str, Any]] = {}
        now = utcnow()
        for number, record, errors, customer_id in resolved:
            self.pace()
            if errors:
                bad.append({"row": number, "errors": errors})
                counts["failed"] += 1
                continue
            match = None
            for kind in ("phone", "email", "name"):
                value = record.get(kind)
                if value:
                    key = (customer_id, kind, value.casefold())
                    match = existing.get(key) or self.new_contacts.get(key)
                    if match:
                        break
            owner, _team, owner_problems = self._owner(record)
            if owner_problems:
                errors["owner_id"] = owner_problems
            if match and self.on_duplicate == "skip":
                counts["skipped"] += 1
                continue
            self._check_custom(record, errors, new=not (match and self.on_duplicate == "update"))
            if errors:
                bad.append({"row": number, "errors": errors})
                counts["failed"] += 1
                continue
            if match and self.on_duplicate == "update":
                if not self.dry_run:
                    if match in pending:
                        pending[match].update(
                            {k: v for k, v in record.items() if k != "custom"})
                        pending[match]["custom"] = merge_custom(pending[match]["custom"],
                                                                record.get("custom") or {})
                    else:
                        writes.append(_contact_update(match, record, now))
                self._remember_unique(record)
                counts["updated"] += 1
                continue
            new_id = str(uuid.uuid4())
            values = {
                "id": new_id, "customer_id": customer_id, "name": record["name"],
                "title": record.get("title"), "role": record.get("role"),
                "phone": record.get("phone"), "email": record.get("email"),
                "wechat": record.get("wechat"),
                "preferred_channel": record.get("preferred_channel"),
                "birthday": record.get("birthday"), "consent": bool(record.get("consent")),
                "custom": record.get("custom") or {}, "owner_id": owner, "lead_id": None,
                "created_at": now, "updated_at": now,
            }
            inserts.append(values)
            pending[new_id] = values
            for kind in ("phone", "email", "name"):
                if record.get(kind):
                    self.new_contacts[(customer_id, kind, record[kind].casefold())] = new_id
            self._remember_unique(record)
            self.created_ids.append(new_id)
            counts["created"] += 1
        if inserts and not self.dry_run:
            writes.insert(0, lambda session: insert_rows(session, Contact.__table__, inserts))

    def _resolve_customers(
        self, rows: list, by_id: dict, by_code: dict, by_key: dict
    ) -> list[tuple[int, dict, dict, str | None]]:
        """Each row's customer (by id, credit code or name), visible to the importer."""
        resolved: list[tuple[int, dict, dict, str | None]] = []
        for number, record, errors in rows:
            customer_id = None
            given_id = record.pop("customer_id", None)
            code = record.pop("customer_credit_code", None)
            name = record.pop("customer_name", None)
            customer, problem = None, None
            if given_id:
                customer = by_id.get(given_id)
                problem = None if customer else f"no customer {given_id}"
            elif code:
                customer = by_code.get(code)
                problem = None if customer else f"no customer with credit code {code}"
            elif name:
                found = [c for c in by_key.get(accounts.name_key(name), [])
                         if self._visible(c.owner_id)]
                customer = found[0] if len(found) == 1 else None
                problem = (None if customer else f"no customer named {name}" if not found
                           else f"{len(found)} customers are named like {name}: "
                                "give the credit code or customer_id")
            else:
                problem = "a customer is required (name, credit code or id)"
            if customer is not None and not self._visible(customer.owner_id):
                customer, problem = None, f"no customer {given_id or code or name}"
            if problem:
                errors["customer"] = [problem]
            else:
                customer_id = customer.id
            resolved.append((number, record, errors, customer_id))
        return resolved


def _contact_update(contact_id: str, record: dict[str, Any], now: datetime) -> Write:
    def write(session: Session) -> None:
        contact = session.get(Contact, contact_id)
        if contact is None:
            return
        for name, value in record.items():
            if name == "custom":
                contact.custom = merge_custom(contact.custom, value)
            elif name != "name":
                setattr(contact, name, value)
        contact.updated_at = now

    return write
