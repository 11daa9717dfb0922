"""The customer rows of an import: duplicates by credit code or a similar name key, among
stored customers and the file's earlier rows; skip, update or create."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.sales.domain import accounts
from services.sales.models import Customer
from services.sales.numbers.domain.custom_fields import merge_custom
from services.sales.numbers.usecases.import_support import (
    Candidate,
    Write,
    insert_rows,
    utcnow,
)

# stored customers read as fuzzy-match candidates per (name block, key length); a block is
# read once per job
CANDIDATES_PER_BUCKET = 100
# a ratio of at least 90 needs the shorter key to be at least 9/11 of the longer one
LENGTH_SPREAD = 2 * 100 / accounts.NAME_MATCH_THRESHOLD - 1


class CustomerRows:
    """The customer half of `Importer` (importing.py), which holds the job's state."""

    def _customers(self, rows: list, counts: dict, bad: list, writes: list[Write]) -> None:
        for _, record, _ in rows:
            if "name" in record:
                record["_key"] = accounts.name_key(record["name"])
        codes = {r["credit_code"] for _, r, _ in rows if r.get("credit_code")}
        stored_by_code: dict[str, Candidate] = {}
        with self.db.read() as session:
            if codes:
                for row in session.execute(
                    select(Customer.id, Customer.name, Customer.credit_code, Customer.owner_id)
                    .where(Customer.credit_code.in_(codes), Customer.merged_into_id.is_(None))
                ):
                    stored_by_code[row.credit_code] = (row.id, row.name, row.credit_code)
                    self.owner_of[row.id] = row.owner_id
            self._load_blocks(session, {accounts.name_block(r["_key"]) for _, r, _ in rows
                                        if r.get("_key")})
        inserts: list[dict[str, Any]] = []
        pending: dict[str, dict[str, Any]] = {}
        now = utcnow()
        for number, record, errors in rows:
            self.pace()
            key = record.pop("_key", None)
            if errors:
                bad.append({"row": number, "errors": errors})
                counts["failed"] += 1
                continue
            code = record.get("credit_code")
            block = accounts.name_block(key) if key else None
            candidates: list[tuple[str, str, str | None]] = []
            for source in (stored_by_code, self.new_by_code):
                if code and code in source:
                    candidates.append(source[code])
            if block:
                candidates += self._similar_length(self.stored_by_block.get(block), key)
                candidates += self._similar_length(self.new_by_block.get(block), key)
            matches = self._matches(key, code, candidates)
            owner, team, owner_problems = self._owner(record)
            if owner_problems:
                errors["owner_id"] = owner_problems
            exact = next((m for m in matches if m.reason == "credit_code"), None)
            if matches and self.on_duplicate == "skip":
                counts["skipped"] += 1
                continue
            if matches and self.on_duplicate == "update":
                # only a record the importer may see is updated (a hidden one is not touched
                # and not named)
                visible = [m for m in matches if self._visible(self.owner_of.get(m.customer_id))]
                target = next((m for m in visible if m.reason == "credit_code"), None) or (
                    None if exact is not None else (visible[0] if visible else None))
                if target is None:
                    errors["credit_code" if exact else "name"] = [
                        "a matching customer exists that you cannot see; ask its owner or an "
                        "admin"]
                self._check_custom(record, errors, new=False)
                if errors:
                    bad.append({"row": number, "errors": errors})
                    counts["failed"] += 1
                    continue
                if not self.dry_run:
                    self._update_customer(writes, pending, target.customer_id, record, now)
                self._remember_unique(record)
                counts["updated"] += 1
                continue
            if exact is not None:  # create: a credit code is unique all the same
                errors["credit_code"] = [
                    f"customer {exact.customer_id} ({exact.name}) has this credit code; "
                    "use on_duplicate=update or skip"
                    if self._visible(self.owner_of.get(exact.customer_id)) else
                    "a customer you cannot see has this credit code"
                ]
            self._check_custom(record, errors, new=True)
            if errors:
                bad.append({"row": number, "errors": errors})
                counts["failed"] += 1
                continue
            new_id = str(uuid.uuid4())
            values = {
                "id": new_id, "name": record["name"], "name_key": key,
                "name_block": block, "credit_code": code, "tier": record.get("tier"),
                "lifecycle_stage": record.get("lifecycle_stage") or "prospect",
                "tags": record.get("tags") or [], "owner_id": owner, "team_id": team,
                "region": record.get("region"), "industry": record.get("industry"),
                "source": record.get("source"), "campaign": record.get("campaign"),
                "phone": record.get("phone"), "website": record.get("website"),
                "address": record.get("address"), "custom": record.get("custom") or {},
                "merged_into_id": None, "last_activity_at": None,
                "created_at": now, "updated_at": now,
            }
            inserts.append(values)
            pending[new_id] = values
            candidate = (new_id, record["name"], code)
            self.owner_of[new_id] = owner
            self.name_keys[record["name"]] = key
            if code:
                self.new_by_code[code] = candidate
            if block:
                self.new_by_block[block][len(key)].append(candidate)
            self._remember_unique(record)
            self.created_ids.append(new_id)
            counts["created"] += 1
        if inserts and not self.dry_run:
            writes.insert(0, lambda session: insert_rows(session, Customer.__table__, inserts))

    def _load_blocks(self, session: Session, blocks: set[str | None]) -> None:
        """Reads the stored customers of blocks not read yet in this job: at most
        CANDIDATES_PER_BUCKET of each key length, the newest first."""
        wanted = sorted(b for b in blocks if b and b not in self.stored_by_block)
        if not wanted:
            return
        length = func.length(Customer.name_key)
        ranked = (
            select(Customer.id, Customer.name, Customer.credit_code, Customer.name_block,
                   Customer.owner_id, length.label("length"),
                   func.row_number().over(partition_by=(Customer.name_block, length),
                                          order_by=Customer.created_at.desc()).label("rank"))
            .where(Customer.name_block.in_(wanted), Customer.merged_into_id.is_(None))
            .subquery()
        )
        for block in wanted:
            self.stored_by_block[block] = defaultdict(list)
        for row in session.execute(select(ranked).where(ranked.c.rank <= CANDIDATES_PER_BUCKET)):
            self.stored_by_block[row.name_block][row.length].append(
                (row.id, row.name, row.credit_code))
            self.owner_of[row.id] = row.owner_id

    @staticmethod
    def _similar_length(
        by_length: dict[int, list[Candidate]] | None, key: str
    ) -> list[Candidate]:
        """Candidates whose key is long enough and short enough to reach the threshold."""
        if not by_length:
            return []
        size = len(key)
        low, high = int(size / LENGTH_SPREAD), int(size * LENGTH_SPREAD) + 1
        return [c for n in range(max(low, 1), high + 1) for c in by_length.get(n, ())]

    def _matches(
        self, key: str | None, code: str | None, candidates: list[tuple[str, str, str | None]]
    ) -> list[accounts.CustomerMatch]:
        """accounts.find_matches with each candidate's name key computed once per import,
        the ratios computed by rapidfuzz in one call (not a Python loop per candidate)."""
        exact, keyed = [], []
        for customer_id, name, other_code in candidates:
            if code and other_code == code:
                exact.append(accounts.CustomerMatch(customer_id, name, "credit_code", 100.0))
                continue
            other_key = self.name_keys.get(name)
            if other_key is None:
                other_key = self.name_keys[name] = accounts.name_key(name)
            if other_key:
                keyed.append((customer_id, name, other_key))
        fuzzy = []
        if key and keyed:
            for _, score, index in process.extract(
                key, [k for *_, k in keyed], scorer=fuzz.ratio, limit=None,
                score_cutoff=accounts.NAME_MATCH_THRESHOLD,
            ):
                customer_id, name, _ = keyed[index]
                fuzzy.append(accounts.CustomerMatch(customer_id, name, "name",
                                                    round(float(score), 2)))
        fuzzy.sort(key=lambda m: -m.score)
        return exact + fuzzy

    @staticmethod
    def _update_customer(
        writes: list[Write], pending: dict[str, dict[str, Any]], customer_id: str,
        record: dict[str, Any], now: datetime,
    ) -> None:
        if customer_id in pending:  # created earlier in this batch, not inserted yet
            values = pending[customer_id]
            for name, value in record.items():
                values[name] = merge_custom(values["custom"], value) if name == "custom" \
                    else value
            return

        def write(session: Session) -> None:
            customer = session.get(Customer, customer_id)
            if customer is None:  # merged or removed since the batch read it
                return
            for name, value in record.items():
                if name == "custom":
                    customer.custom = merge_custom(customer.custom, value)
                elif name == "tags":
                    customer.tags = accounts.normalise_tags([*(customer.tags or []), *value])
                elif name == "name":
                    continue  # the stored name stays: the row matched it
                else:
                    setattr(customer, name, value)
            customer.updated_at = now

        writes.append(write)
