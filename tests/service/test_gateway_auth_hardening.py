"""Authentication hardening (OWASP API2): lockout and throttling per account, address and key
prefix, bounded password hashing, per-user and organisation rate limits, a key limit per user,
token revocation, and the paged shape of /users and /teams. Flask client, real SQLite."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from services.gateway.identity.models import User
from services.gateway.identity.throttles import CREDENTIAL_ADDRESS_POLICY
from tests.support.gateway import assert_problem, auth

KEY_FAILURES = CREDENTIAL_ADDRESS_POLICY.throttle_after  # per address before the first block

PASSWORD = "demo-password"
# A cheap hash for the demo users, so that dozens of sign-ins stay fast; the policy's method
# is tested on its own below.
CHEAP_METHOD = "pbkdf2:sha256:1000"


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_PASSWORD_METHOD", CHEAP_METHOD)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app: Flask) -> FakeClock:
    fake = FakeClock()
    app.extensions["crm_gateway"].throttle.clock = fake
    return fake


def login(client: FlaskClient, username: str, password: str, address: str = "10.0.0.1") -> Any:
    return client.post("/auth/tokens", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- sign-in lockout -----------------------------------------------------------------------


def _ten_failures(client: FlaskClient, clock: FakeClock, username: str) -> list[int]:
    """Ten wrong passwords, each from its own address and far enough apart in time that only
    the account counts (the short delays between the 5th and the 10th have passed)."""
    statuses = []
    for attempt in range(10):
        clock.now += 100
        statuses.append(login(client, username, "wrong-password", f"10.1.0.{attempt}")
                        .status_code)
    return statuses


def test_account_locks_after_ten_failures_and_the_right_password_waits(
        client: FlaskClient, org: dict, clock: FakeClock) -> None:
    assert _ten_failures(client, clock, "lina") == [401] * 10
    locked = login(client, "lina", PASSWORD, "10.2.0.1")
    body = assert_problem(locked, 429)
    assert body["type"].endswith("sign-in-blocked")
    assert 800 <= int(locked.headers["Retry-After"]) <= 900

    # Another account is not affected; after the lock period the right password works.
    assert login(client, "zhangwei", PASSWORD, "10.2.0.2").status_code == 201
    clock.now += 901
    assert login(client, "lina", PASSWORD, "10.2.0.3").status_code == 201


def test_unknown_username_answers_exactly_like_a_known_one(
        client: FlaskClient, org: dict, clock: FakeClock) -> None:
    answers: dict[str, list[tuple[int, str]]] = {"lina": [], "no-such-user": []}
    for attempt in range(12):
        clock.now += 100
        for n, username in enumerate(answers):
            response = login(client, username, "wrong-password", f"10.3.{n}.{attempt}")
            answers[username].append((response.status_code, response.json["detail"]))
    assert answers["lina"] == answers["no-such-user"]
    assert [status for status, _ in answers["lina"]] == [401] * 10 + [429] * 2
    known_locked = login(client, "lina", "x", "10.3.9.1")
    unknown_locked = login(client, "no-such-user", "x", "10.3.9.2")
    assert known_locked.headers["Retry-After"] == unknown_locked.headers["Retry-After"]


def test_throttling_starts_before_the_lock(client: FlaskClient, org: dict,
                                           clock: FakeClock) -> None:
    for attempt in range(5):
        assert login(client, "lina", "wrong", f"10.4.0.{attempt}").status_code == 401
    # The 5th failure blocks for a second: even the right password waits, without a hash.
    throttled = login(client, "lina", PASSWORD, "10.4.1.1")
    assert_problem(throttled, 429)
    assert throttled.headers["Retry-After"] == "1"
    clock.now += 2
    assert login(client, "lina", PASSWORD, "10.4.1.2").status_code == 201
    # A success resets the count: five more failures are needed to throttle again.
    for attempt in range(4):
        assert login(client, "lina", "wrong", f"10.4.2.{attempt}").status_code == 401
    assert login(client, "lina", PASSWORD, "10.4.2.9").status_code == 201


def test_blocked_sign_in_costs_no_password_hash(app: Flask, client: FlaskClient, org: dict,
                                               clock: FakeClock, monkeypatch: Any) -> None:
    _ten_failures(client, clock, "lina")

    def no_hashing(*_: Any) -> bool:
        raise AssertionError("a blocked sign-in hashed a password")

    monkeypatch.setattr(app.extensions["crm_gateway"].passwords, "verify", no_hashing)
    assert_problem(login(client, "lina", PASSWORD), 429)


def test_admin_unlocks_an_account(client: FlaskClient, org: dict, clock: FakeClock) -> None:
    _ten_failures(client, clock, "lina")
    assert_problem(login(client, "lina", PASSWORD), 429)
    url = f"/users/{org['lina']['id']}/unlock"
    assert_problem(client.post(url, headers=auth(org, "manager")), 403)
    assert_problem(client.post("/users/nobody/unlock", headers=auth(org, "admin")), 404)
    assert client.post(url, headers=auth(org, "admin")).status_code == 204
    assert login(client, "lina", PASSWORD).status_code == 201


def test_address_spraying_many_accounts_is_blocked(make_app: Any, org: dict) -> None:
    app = make_app(login_burst=1000)  # only the database-backed address throttle counts
    client = app.test_client()
    app.extensions["crm_gateway"].throttle.clock = FakeClock()
    for n in range(20):  # a different name each time: no account reaches its threshold
        assert login(client, f"user{n}", "guess", "10.9.9.9").status_code == 401
    sprayed = login(client, "zhangwei", PASSWORD, "10.9.9.9")
    assert assert_problem(sprayed, 429)["type"].endswith("sign-in-blocked")
    assert login(client, "zhangwei", PASSWORD, "10.9.9.10").status_code == 201


def test_admin_unblocks_an_address(client: FlaskClient, org: dict, clock: FakeClock) -> None:
    for n in range(KEY_FAILURES + 1):
        client.get("/me", headers={"X-API-Key": f"crm_{n:04d}badbadbad"},
                   environ_base={"REMOTE_ADDR": "10.9.8.7"})
    for n in range(21):
        login(client, f"sprayed{n}", "guess", "10.9.8.7")
    assert_problem(client.get("/me", headers={"X-API-Key": "crm_x"},
                              environ_base={"REMOTE_ADDR": "10.9.8.7"}), 429)
    assert_problem(login(client, "lina", PASSWORD, "10.9.8.7"), 429)
    rep = client.post("/auth/unblock", json={"address": "10.9.8.7"}, headers=auth(org, "lina"))
    assert_problem(rep, 403)
    missing = client.post("/auth/unblock", json={}, headers=auth(org, "admin"))
    assert "address" in assert_problem(missing, 422)["errors"]
    done = client.post("/auth/unblock", json={"address": "10.9.8.7"}, headers=auth(org, "admin"))
    assert done.status_code == 204
    assert_problem(client.get("/me", headers={"X-API-Key": "crm_x"},
                              environ_base={"REMOTE_ADDR": "10.9.8.7"}), 401)
    assert login(client, "lina", PASSWORD, "10.9.8.7").status_code == 201


def test_lockout_is_shared_by_every_worker(make_app: Any, org: dict) -> None:
    first, second = make_app(), make_app()  # two gunicorn workers on one database
    clock = FakeClock()
    first.extensions["crm_gateway"].throttle.clock = clock
    second.extensions["crm_gateway"].throttle.clock = clock
    _ten_failures(first.test_client(), clock, "lina")
    assert_problem(login(second.test_client(), "lina", PASSWORD), 429)


# -- password hashing ----------------------------------------------------------------------


def test_busy_hashing_fails_fast_with_503(make_app: Any, org: dict) -> None:
    app = make_app(hash_concurrency=1, hash_wait_seconds=0)
    client = app.test_client()
    slots = app.extensions["crm_gateway"].passwords.slots
    assert slots.acquire(timeout=1)  # another request is hashing
    try:
        busy = login(client, "lina", PASSWORD)
        assert assert_problem(busy, 503)["type"].endswith("busy")
        assert busy.headers["Retry-After"] == "1"
    finally:
        slots.release()
    assert login(client, "lina", PASSWORD).status_code == 201


def test_default_policy_and_rehash_of_old_hashes(make_app: Any, org: dict,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_PASSWORD_METHOD")
    app = make_app()
    gw = app.extensions["crm_gateway"]
    assert gw.passwords.method == "pbkdf2:sha256:600000"
    with gw.store.begin() as session:
        user = session.scalar(select(User).where(User.username == "lina"))
        user.password_hash = generate_password_hash(PASSWORD, method="scrypt:16384:8:1")
    assert login(app.test_client(), "lina", PASSWORD).status_code == 201
    with gw.store.read() as session:
        stored = session.scalar(select(User.password_hash).where(User.username == "lina"))
    assert stored.startswith("pbkdf2:sha256:600000$")


# -- invalid API keys and tokens -----------------------------------------------------------


def test_invalid_keys_are_throttled_per_address(client: FlaskClient, org: dict,
                                                clock: FakeClock) -> None:
    address = {"REMOTE_ADDR": "10.5.0.1"}
    statuses = [
        client.get("/me", headers={"X-API-Key": f"crm_{n:04d}guessxxxxxxxx"},
                   environ_base=address).status_code
        for n in range(KEY_FAILURES + 1)
    ]
    assert statuses[:-2] == [401] * (KEY_FAILURES - 1)
    assert statuses[-1] == 429
    blocked = client.get("/me", headers={"X-API-Key": "crm_another-guess"}, environ_base=address)
    assert int(assert_problem(blocked, 429)["status"]) == 429
    assert int(blocked.headers["Retry-After"]) >= 1
    # A valid key from the same address still works, and other addresses are not blocked.
    valid = client.get("/me", headers=auth(org, "lina"), environ_base=address)
    assert valid.status_code == 200
    other = client.get("/me", headers={"X-API-Key": "crm_guess"},
                       environ_base={"REMOTE_ADDR": "10.5.0.2"})
    assert_problem(other, 401)


def test_one_key_hammered_from_many_addresses_is_throttled(client: FlaskClient, org: dict,
                                                           clock: FakeClock) -> None:
    leaked = "crm_Revoked0123456789"
    statuses = [
        client.get("/me", headers=bearer(leaked),
                   environ_base={"REMOTE_ADDR": f"10.6.0.{n}"}).status_code
        for n in range(11)
    ]
    assert statuses[:9] == [401] * 9 and statuses[-1] == 429


def test_bad_tokens_count_as_failures_too(client: FlaskClient, org: dict,
                                          clock: FakeClock) -> None:
    # Tokens all begin alike (their payload): no prefix throttle, so expired tokens of many
    # clients do not block one another and each still gets the 401 that sends it to sign in.
    expired = login(client, "lina", PASSWORD).json["token"][:-3] + "xyz"
    spread = [client.get("/me", headers=bearer(expired),
                         environ_base={"REMOTE_ADDR": f"10.7.1.{n}"}).status_code
              for n in range(15)]
    assert spread == [401] * 15
    address = {"REMOTE_ADDR": "10.7.0.1"}
    statuses = [client.get("/me", headers=bearer(f"forged.token.{n}"),
                           environ_base=address).status_code for n in range(KEY_FAILURES + 1)]
    assert statuses[-1] == 429


# -- rate limits ---------------------------------------------------------------------------


def test_rate_limit_is_per_user_across_keys_and_tokens(make_app: Any, org: dict) -> None:
    app = make_app(rate_limit=0.001, rate_burst=3)
    client = app.test_client()
    second_key = client.post("/api-keys", json={"name": "second"},
                             headers=auth(org, "lina")).json["key"]  # request 1
    token = login(client, "lina", PASSWORD).json["token"]  # sign-in is not rate-limited
    assert client.get("/me", headers={"X-API-Key": second_key}).status_code == 200  # 2
    assert client.get("/me", headers=bearer(token)).status_code == 200  # 3
    assert_problem(client.get("/me", headers=auth(org, "lina")), 429)
    assert_problem(client.get("/me", headers={"X-API-Key": second_key}), 429)
    assert_problem(client.get("/me", headers=bearer(token)), 429)
    assert client.get("/me", headers=auth(org, "zhangwei")).status_code == 200


def test_organisation_ceiling(make_app: Any, org: dict) -> None:
    client = make_app(org_rate_limit=0.001, org_rate_burst=3).test_client()
    for username in ("lina", "zhangwei", "chenjing"):
        assert client.get("/me", headers=auth(org, username)).status_code == 200
    limited = client.get("/me", headers=auth(org, "manager"))
    assert_problem(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1


def test_active_keys_per_user_are_limited(make_app: Any, org: dict) -> None:
    client = make_app(max_api_keys_per_user=3).test_client()
    headers = auth(org, "lina")  # the seed gave lina one key
    created = [client.post("/api-keys", json={"name": f"k{n}"}, headers=headers)
               for n in range(2)]
    assert [r.status_code for r in created] == [201, 201]
    refused = client.post("/api-keys", json={"name": "k3"}, headers=headers)
    body = assert_problem(refused, 409)
    assert body["limit"] == 3 and "3" in body["detail"]
    # Admins creating keys for her meet the same limit.
    for_her = client.post("/api-keys", json={"name": "k3", "user_id": org["lina"]["id"]},
                          headers=auth(org, "admin"))
    assert_problem(for_her, 409)
    assert client.delete(f"/api-keys/{created[0].json['id']}", headers=headers).status_code == 204
    assert client.post("/api-keys", json={"name": "k3"}, headers=headers).status_code == 201


# -- token revocation ----------------------------------------------------------------------


def test_password_change_by_admin_revokes_tokens(client: FlaskClient, org: dict) -> None:
    token = login(client, "lina", PASSWORD).json["token"]
    assert client.get("/me", headers=bearer(token)).status_code == 200
    changed = client.patch(f"/users/{org['lina']['id']}", json={"password": "a-new-password"},
                           headers=auth(org, "admin"))
    assert changed.status_code == 200
    assert_problem(client.get("/me", headers=bearer(token)), 401)
    assert_problem(login(client, "lina", PASSWORD), 401)
    fresh = login(client, "lina", "a-new-password", "10.8.0.1").json["token"]
    assert client.get("/me", headers=bearer(fresh)).status_code == 200
    # API keys belong to systems and survive a password change.
    assert client.get("/me", headers=auth(org, "lina")).status_code == 200


def test_password_change_reaches_another_worker_after_its_cache(make_app: Any,
                                                                org: dict) -> None:
    changer = make_app()
    other = make_app(auth_cache_seconds=0)  # a worker whose cache time has passed
    token = login(changer.test_client(), "lina", PASSWORD).json["token"]
    assert other.test_client().get("/me", headers=bearer(token)).status_code == 200
    changer.test_client().patch(f"/users/{org['lina']['id']}", json={"password": "new-pass-1"},
                                headers=auth(org, "admin"))
    assert_problem(other.test_client().get("/me", headers=bearer(token)), 401)


def test_deactivation_revokes_tokens_for_good(client: FlaskClient, org: dict) -> None:
    token = login(client, "lina", PASSWORD).json["token"]
    url = f"/users/{org['lina']['id']}"
    assert client.patch(url, json={"active": False}, headers=auth(org, "admin")).status_code == 200
    assert_problem(client.get("/me", headers=bearer(token)), 401)
    assert client.patch(url, json={"active": True}, headers=auth(org, "admin")).status_code == 200
    assert_problem(client.get("/me", headers=bearer(token)), 401)
    assert client.get("/me", headers=auth(org, "lina")).status_code == 200


def test_own_password_change(client: FlaskClient, org: dict) -> None:
    old = login(client, "lina", PASSWORD).json["token"]
    wrong = client.post("/me/password", headers=bearer(old),
                        json={"current_password": "nope", "new_password": "another-pass"})
    assert "current_password" in assert_problem(wrong, 422)["errors"]
    short = client.post("/me/password", headers=bearer(old),
                        json={"current_password": PASSWORD, "new_password": "short"})
    assert "new_password" in assert_problem(short, 422)["errors"]
    changed = client.post("/me/password", headers=bearer(old),
                          json={"current_password": PASSWORD, "new_password": "another-pass"})
    assert changed.status_code == 200, changed.json
    assert client.get("/me", headers=bearer(changed.json["token"])).json["username"] == "lina"
    assert_problem(client.get("/me", headers=bearer(old)), 401)
    assert login(client, "lina", "another-pass", "10.8.1.1").status_code == 201


# -- list shapes ---------------------------------------------------------------------------


def test_users_and_teams_are_paged_lists(client: FlaskClient, org: dict) -> None:
    admin = auth(org, "admin")
    first = client.get("/users?limit=4", headers=admin).json
    assert set(first) == {"items", "next_cursor"} and len(first["items"]) == 4
    rest = client.get(f"/users?limit=4&cursor={first['next_cursor']}", headers=admin).json
    assert rest["next_cursor"] is None
    names = [u["username"] for u in first["items"] + rest["items"]]
    assert names == sorted(org) == sorted(set(names))

    teams = client.get("/teams", headers=auth(org, "lina")).json
    assert set(teams) == {"items", "next_cursor"} and teams["next_cursor"] is None
    assert {t["name"] for t in teams["items"]} == {"华东销售部", "华南销售部"}
    one = client.get("/teams?limit=1", headers=auth(org, "lina")).json
    two = client.get(f"/teams?limit=1&cursor={one['next_cursor']}",
                     headers=auth(org, "lina")).json
    assert [t["name"] for t in one["items"] + two["items"]] == sorted(
        t["name"] for t in teams["items"])

    bad = client.get("/users?cursor=%%%", headers=admin)
    assert "cursor" in assert_problem(bad, 422)["errors"]
    assert "limit" in assert_problem(client.get("/teams?limit=0", headers=admin), 422)["errors"]


def test_user_list_shows_the_sign_in_lockout(client: FlaskClient, org: dict,
                                             clock: FakeClock) -> None:
    def listed() -> dict[str, dict]:
        answer = client.get("/users", query_string={"limit": 200}, headers=auth(org, "admin"))
        assert answer.status_code == 200
        return {user["username"]: user for user in answer.get_json()["items"]}

    before = listed()
    assert before["lina"]["locked"] is False and before["lina"]["locked_until"] is None
    for attempt in range(6):  # throttled (short delays), not locked
        clock.now += 100
        login(client, "zhangwei", "wrong-password", f"10.2.0.{attempt}")
    _ten_failures(client, clock, "lina")
    after = listed()
    assert after["lina"]["locked"] is True
    assert after["lina"]["locked_until"].startswith("2027-")  # the fake clock's now + 15 min
    assert after["zhangwei"]["locked"] is False
    one = client.get(f"/users/{org['lina']['id']}", headers=auth(org, "admin"))
    assert one.status_code == 200 and one.get_json()["locked"] is True
    assert client.post(f"/users/{org['lina']['id']}/unlock",
                       headers=auth(org, "admin")).status_code == 204
    assert listed()["lina"]["locked"] is False
    clock.now += 1000  # zhangwei's throttle delays are over; lina's lockout would be too
    assert listed()["zhangwei"]["locked"] is False
