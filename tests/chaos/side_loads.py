"""Loads that run beside the lead load in every fault cycle, so the faults hit more consumers
than the lead pipeline:

- `ErpLoad`: the ERP's payments (`erp.payment_received` on `erp.events`) for one signed
  contract, consumed by the contracts service. Every payment is published twice with its
  message id (the ERP's outbox after a lost confirm), every third once more under a new id
  (the ERP sending it again): each reference must end as exactly one receipt.
- `RequesterLoad` (below): sales customers and contacts made and changed (tier, address, a
  merge) over HTTP, whose events feed the service desk's requesters projection: it must end
  equal to sales' rows.
- `DirectoryLoad`: users created (and every other one deactivated) over HTTP, whose
  `gateway.user_changed` events feed the directory projections of the contracts service
  (approvals) and of the rules service: each must hold every user in their final state.

Both publish or send as the lead load progresses (payment i when i / N of the leads are
answered), so the fault, injected at a third of the leads, falls in the middle of them. A
publish or request that fails is sent again until it is confirmed or answered, as a careful
integrator does. `poison_erp` sends ERP messages no handler can take: each must be dead-lettered
once, with nothing recorded.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import kombu
import requests
from sqlalchemy import text

if TYPE_CHECKING:
    from tests.chaos.harness import ChaosSystem, Load

ERP_EXCHANGE = "erp.events"
PAYMENTS = 30
USERS = 6


def _exchange() -> kombu.Exchange:
    return kombu.Exchange(ERP_EXCHANGE, type="topic", durable=True)


class ConfirmedErpPublisher:
    """Publishes with publisher confirms, reconnecting and publishing again until confirmed."""

    def __init__(self, uri: str, deadline_seconds: float = 300.0) -> None:
        self.uri = uri
        self.deadline_seconds = deadline_seconds
        self.connection: kombu.Connection | None = None

    def publish(self, body: bytes, routing_key: str = "payment_received") -> None:
        deadline = time.monotonic() + self.deadline_seconds
        while True:
            try:
                if self.connection is None:
                    self.connection = kombu.Connection(
                        self.uri, transport_options={"confirm_publish": True},
                        connect_timeout=5)
                    self.connection.ensure_connection(max_retries=1)
                self.connection.Producer().publish(
                    body, exchange=_exchange(), routing_key=routing_key,
                    content_type="application/json", content_encoding="utf-8",
                    delivery_mode=2, declare=[_exchange()], retry=False)
                return
            except Exception:  # noqa: BLE001 - the broker is away: publish again
                self.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self.connection = None


def _request(session: requests.Session, method: str, url: str, deadline: float,
             **kwargs: Any) -> requests.Response:
    """Send until a final answer (not a connection error, 5xx, 429 or 409 in progress)."""
    while True:
        try:
            response = session.request(method, url, timeout=30, **kwargs)
        except requests.RequestException:
            response = None
        if response is not None and response.status_code < 500 \
                and response.status_code != 429 and not (
                    response.status_code == 409 and "in-progress" in response.text):
            return response
        if time.monotonic() > deadline:
            raise RuntimeError(f"{method} {url}: no answer before the deadline")
        time.sleep(0.5)


def _paced(load: Load, index: int, total: int) -> None:
    """Wait until index / total of the lead load is answered (or the load is over)."""
    threshold = load.total * index // total
    while load.answered < threshold and load.answered < load.total:
        time.sleep(0.05)


# --------------------------------------------------------------------------- ERP


def erp_contract(chaos: ChaosSystem) -> dict[str, Any]:
    """One signed contract for every cycle's payments (made once per system)."""
    cached = getattr(chaos, "_erp_contract", None)
    if cached is not None:
        return cached
    system = chaos.system
    session = requests.Session()
    session.trust_env = False
    headers = {"Authorization": "Bearer " + system.keys["admin"]}
    deadline = time.monotonic() + 120
    customer = _request(session, "POST", system.url + "/customers", deadline, headers={
        **headers, "Idempotency-Key": str(uuid.uuid4())},
        json={"name": f"混沌ERP客户{uuid.uuid4().hex[:6]}"}).json()
    contract = _request(session, "POST", system.url + "/contracts", deadline, headers={
        **headers, "Idempotency-Key": str(uuid.uuid4())}, json={
        "title": "混沌ERP合同", "customer_id": customer["id"], "amount": "100000000"}).json()
    signed = _request(session, "POST", system.url + f"/contracts/{contract['id']}/sign",
                      deadline, headers=headers)
    assert signed.status_code == 200, signed.text
    session.close()
    chaos._erp_contract = contract  # type: ignore[attr-defined]
    return contract


def _envelope(data: dict[str, Any], event_id: str | None = None) -> bytes:
    return json.dumps({"event_id": event_id or str(uuid.uuid4()),
                       "event_type": "payment_received", "version": 1,
                       "occurred_at": "2026-12-03T00:00:00+00:00", "producer": "erp",
                       "data": data}, ensure_ascii=False).encode()


class ErpLoad:
    def __init__(self, chaos: ChaosSystem, cycle: str, load: Load,
                 payments: int = PAYMENTS) -> None:
        self.chaos = chaos
        self.load = load
        self.contract = erp_contract(chaos)
        self.prefix = f"chaos-{cycle}-{uuid.uuid4().hex[:6]}-"
        self.references = [f"{self.prefix}{i}" for i in range(payments)]
        self.published = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ErpLoad:
        self.thread.start()
        return self

    def _run(self) -> None:
        publisher = ConfirmedErpPublisher(self.chaos.node.uri)
        try:
            for index, reference in enumerate(self.references):
                _paced(self.load, index, len(self.references))
                data = {"contract_number": self.contract["number"], "amount": "1.00",
                        "paid_at": "2026-12-03T10:00:00+08:00", "reference": reference}
                message_id = str(uuid.uuid4())
                publisher.publish(_envelope(data, message_id))
                publisher.publish(_envelope(data, message_id))
                if index % 3 == 0:
                    publisher.publish(_envelope(data))
                self.published += 1
        finally:
            publisher.close()

    def join(self) -> None:
        self.thread.join()

    def receipts(self) -> dict[str, int]:
        with self.chaos.engines["contracts"].connect() as connection:
            rows = connection.execute(text(
                "SELECT reference, count(*) FROM contract_receipts WHERE contract_id = :c "
                "AND reference LIKE :prefix GROUP BY reference"),
                {"c": self.contract["id"], "prefix": self.prefix + "%"}).all()
        return {reference: count for reference, count in rows}

    def progress(self) -> int:
        return sum(self.receipts().values())

    def complete(self) -> bool:
        return self.published == len(self.references) and \
            len(self.receipts()) == len(self.references)

    def problems(self) -> tuple[int, int, list[str]]:
        """(lost, doubled, details)."""
        found = self.receipts()
        lost = [r for r in self.references if r not in found]
        doubled = {r: n for r, n in found.items() if n > 1}
        details = [f"erp payment lost: {r}" for r in lost[:10]]
        details += [f"erp payment doubled: {r} x{n}" for r, n in list(doubled.items())[:10]]
        return len(lost), len(doubled), details


def poison_erp(chaos: ChaosSystem) -> int:
    """ERP messages no handler can take: not JSON, a float amount, an unknown contract."""
    contract = erp_contract(chaos)
    base = {"contract_number": contract["number"], "amount": "1.00",
            "paid_at": "2026-12-03T10:00:00+08:00"}
    bodies = [b"{not json",
              _envelope({**base, "amount": 1.5, "reference": f"poison-{uuid.uuid4()}"}),
              _envelope({**base, "contract_number": "HT-1999-000001",
                         "reference": f"poison-{uuid.uuid4()}"})]
    publisher = ConfirmedErpPublisher(chaos.node.uri)
    try:
        for body in bodies:
            publisher.publish(body)
    finally:
        publisher.close()
    return len(bodies)


# --------------------------------------------------------------------------- directory


class DirectoryLoad:
    def __init__(self, chaos: ChaosSystem, cycle: str, load: Load, users: int = USERS) -> None:
        self.chaos = chaos
        self.load = load
        stamp = uuid.uuid4().hex[:6]
        self.usernames = [f"chaos-{cycle}-{stamp}-{i}"[:64] for i in range(users)]
        self.expected: dict[str, bool] = {}  # user id -> active
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> DirectoryLoad:
        self.thread.start()
        return self

    def _run(self) -> None:
        system = self.chaos.system
        session = requests.Session()
        session.trust_env = False
        headers = {"Authorization": "Bearer " + system.keys["admin"]}
        deadline = time.monotonic() + 300
        try:
            for index, username in enumerate(self.usernames):
                _paced(self.load, index + 1, len(self.usernames) + 1)
                # a service agent of no team: never a lead's owner
                created = _request(session, "POST", system.url + "/users", deadline, headers={
                    **headers, "Idempotency-Key": str(uuid.uuid4())}, json={
                    "username": username, "display_name": f"混沌目录{index}",
                    "email": f"{username}@chaos.crm.local", "role": "service_agent"})
                if created.status_code != 201:
                    self.errors.append(f"POST /users {username}: {created.status_code} "
                                       f"{created.text[:200]}")
                    continue
                user_id = created.json()["id"]
                active = index % 2 == 1
                if not active:
                    patched = _request(session, "PATCH", system.url + f"/users/{user_id}",
                                       deadline, headers=headers, json={"active": False})
                    if patched.status_code != 200:
                        self.errors.append(f"PATCH /users/{user_id}: {patched.status_code}")
                self.expected[user_id] = active
        except RuntimeError as exc:
            self.errors.append(str(exc))
        finally:
            session.close()

    def join(self) -> None:
        self.thread.join()

    def _rows(self, database: str, table: str) -> dict[str, bool]:
        if not self.expected:
            return {}
        with self.chaos.engines[database].connect() as connection:
            rows = connection.execute(
                text(f"SELECT id, active FROM {table} WHERE id IN :ids").bindparams(
                    _expanding("ids")), {"ids": list(self.expected)}).all()
        return {user_id: bool(active) for user_id, active in rows}

    def projections(self) -> dict[str, dict[str, bool]]:
        return {"contracts": self._rows("contracts", "approval_directory_users"),
                "rules": self._rows("rules", "directory_users")}

    def progress(self) -> int:
        return sum(sum(1 for user_id, active in rows.items()
                       if self.expected.get(user_id) == active)
                   for rows in self.projections().values())

    def complete(self) -> bool:
        return not self.thread.is_alive() and len(self.expected) == len(self.usernames) \
            and self.progress() == 2 * len(self.expected)

    def problems(self) -> tuple[int, list[str]]:
        """(users missing or stale in a projection, details)."""
        details = list(self.errors)
        missing = len(self.usernames) - len(self.expected)
        for name, rows in self.projections().items():
            for user_id, active in self.expected.items():
                if rows.get(user_id) != active:
                    missing += 1
                    details.append(f"directory: {name} has {user_id} as "
                                   f"{rows.get(user_id, 'missing')}, not active={active}")
        return missing, details


def _expanding(name: str):
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


# --------------------------------------------------------------------------- requesters

CUSTOMERS = 4


class RequesterLoad:
    """Sales customers and contacts made and changed over HTTP as the lead load progresses:
    each customer is created (tier B) with a contact (its address in capitals), then its tier
    changes (A or C) and its contact's address changes; at the end the second customer is
    merged into the first. Their `sales.customer_*` / `sales.contact_*` events feed the
    service desk's requesters projection, which must end equal to sales' own rows (name, tier,
    owner, merged into; a contact's customer, name and address in lower case)."""

    def __init__(self, chaos: ChaosSystem, cycle: str, load: Load,
                 customers: int = CUSTOMERS) -> None:
        self.chaos = chaos
        self.load = load
        self.total = customers
        self.stamp = uuid.uuid4().hex[:8]
        self.cycle = cycle
        self.customer_ids: list[str] = []
        self.contact_ids: list[str] = []
        self.errors: list[str] = []
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RequesterLoad:
        self.thread.start()
        return self

    def _ok(self, response: requests.Response, status: int, what: str) -> dict[str, Any] | None:
        if response.status_code != status:
            self.errors.append(f"{what}: {response.status_code} {response.text[:200]}")
            return None
        return response.json()

    def _run(self) -> None:
        system = self.chaos.system
        session = requests.Session()
        session.trust_env = False
        headers = {"Authorization": "Bearer " + system.keys["admin"]}
        deadline = time.monotonic() + 300

        def post(path: str, body: dict[str, Any]) -> requests.Response:
            return _request(session, "POST", system.url + path, deadline, json=body,
                            headers={**headers, "Idempotency-Key": str(uuid.uuid4())})

        def patch(path: str, body: dict[str, Any]) -> requests.Response:
            return _request(session, "PATCH", system.url + path, deadline, json=body,
                            headers=headers)

        try:
            for index in range(self.total):
                _paced(self.load, index + 1, self.total + 1)
                customer = self._ok(post("/customers", {
                    "name": f"混沌请求方{self.stamp}{index}号有限公司", "tier": "B",
                    "on_duplicate": "create"}), 201, "POST /customers")
                if customer is None:
                    continue
                self.customer_ids.append(customer["id"])
                contact = self._ok(post("/contacts", {
                    "customer_id": customer["id"], "name": f"联系人{index}",
                    "email": f"Buyer{index}.{self.stamp}@Chaos.Example.cn"}), 201,
                    "POST /contacts")
                self._ok(patch(f"/customers/{customer['id']}",
                               {"tier": "A" if index % 2 else "C"}), 200, "PATCH /customers")
                if contact is not None:
                    self.contact_ids.append(contact["id"])
                    self._ok(patch(f"/contacts/{contact['id']}", {
                        "email": f"new{index}.{self.stamp}@chaos.example.cn"}), 200,
                        "PATCH /contacts")
            if len(self.customer_ids) >= 2:
                keep, gone = self.customer_ids[:2]
                self._ok(post(f"/customers/{keep}/merge", {"source_id": gone}), 200,
                         "POST /customers/merge")
        except RuntimeError as exc:
            self.errors.append(str(exc))
        finally:
            self.done = True
            session.close()

    def join(self) -> None:
        self.thread.join()

    def _select(self, database: str, query: str, ids: list[str]) -> dict[str, tuple]:
        if not ids:
            return {}
        with self.chaos.engines[database].connect() as connection:
            rows = connection.execute(text(query).bindparams(_expanding("ids")),
                                      {"ids": ids}).all()
        return {row[0]: tuple(row[1:]) for row in rows}

    def customers(self) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """(sales', the service desk's) id -> (name, tier, owner, merged into)."""
        return (self._select("sales", "SELECT id, name, tier, owner_id, merged_into_id "
                             "FROM customers WHERE id IN :ids", self.customer_ids),
                self._select("service_desk", "SELECT id, name, tier, owner_id, merged_into_id "
                             "FROM desk_customers WHERE id IN :ids", self.customer_ids))

    def contacts(self) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """(sales', the service desk's) id -> (customer, name, address in lower case)."""
        sales = self._select("sales", "SELECT id, customer_id, name, email FROM contacts "
                             "WHERE id IN :ids", self.contact_ids)
        sales = {k: (c, n, e.strip().lower() if e else None) for k, (c, n, e) in sales.items()}
        return sales, self._select("service_desk", "SELECT id, customer_id, name, email "
                                   "FROM desk_contacts WHERE id IN :ids", self.contact_ids)

    def _differences(self) -> list[str]:
        found: list[str] = []
        for kind, (sales, desk) in (("customer", self.customers()),
                                    ("contact", self.contacts())):
            for record_id, row in sales.items():
                if desk.get(record_id) != row:
                    found.append(f"requesters: {kind} {record_id} is {desk.get(record_id)} in "
                                 f"the service desk, {row} in sales")
        return found

    def progress(self) -> int:
        return len(self.customer_ids) + len(self.contact_ids) - len(self._differences())

    def complete(self) -> bool:
        return self.done and not self.thread.is_alive() and not self._differences()

    def problems(self) -> tuple[int, list[str]]:
        """(records missing or different in the projection, details)."""
        differences = self._differences()
        missing = self.total - len(self.customer_ids) + self.total - len(self.contact_ids)
        return missing + len(differences), [*self.errors, *differences]
