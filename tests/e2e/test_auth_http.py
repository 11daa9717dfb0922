"""Authentication over HTTP against the whole system under gunicorn: sign-in throttling and
unlock, bounded password hashing under a burst of bogus sign-ins, throttled invalid API keys,
token revocation on a password change and deactivation, the key limit, paged /users and /teams.

Every request comes from 127.0.0.1, so each test lifts the address's blocks afterwards: the
other e2e tests expect 401 for their deliberately wrong keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.gateway.identity.throttles import ACCOUNT_POLICY, CREDENTIAL_ADDRESS_POLICY

LOOPBACK = "127.0.0.1"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body


@pytest.fixture
def unblock(system) -> Iterator[None]:
    yield
    response = system.post("/auth/unblock", user="admin", json={"address": LOOPBACK})
    assert response.status_code == 204, response.text


def new_user(system, password: str = "first-password") -> dict:
    username = f"auth-{uuid.uuid4().hex[:10]}"
    created = system.post("/users", user="admin", json={
        "username": username, "display_name": "测试用户", "role": "sales_rep",
        "password": password})
    assert created.status_code == 201, created.text
    return created.json()


def login(system, username: str, password: str):
    return system.post("/auth/tokens", json={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_sign_in_is_throttled_per_account_alike_for_unknown_names_and_unlockable(
        system, unblock) -> None:
    user = new_user(system)
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    for _ in range(ACCOUNT_POLICY.throttle_after):
        assert_problem(login(system, user["username"], "wrong"), 401)
        assert_problem(login(system, ghost, "wrong"), 401)
    # Right after the failures even the right password waits; the unknown name gets the same.
    throttled = login(system, user["username"], "first-password")
    body = assert_problem(throttled, 429)
    assert body["type"].endswith("sign-in-blocked")
    assert int(throttled.headers["Retry-After"]) >= 1
    ghost_answer = login(system, ghost, "wrong")
    assert assert_problem(ghost_answer, 429)["detail"] == body["detail"]

    unlocked = system.post(f"/users/{user['id']}/unlock", user="admin")
    assert unlocked.status_code == 204
    assert login(system, user["username"], "first-password").status_code == 201


def test_bogus_sign_in_burst_does_not_starve_other_requests(system, unblock) -> None:
    def bogus(n: int):
        return login(system, f"bogus-{n}-{uuid.uuid4().hex[:6]}", "guess")

    with ThreadPoolExecutor(max_workers=17) as pool:
        logins = [pool.submit(bogus, n) for n in range(16)]
        others = [pool.submit(system.get, "/me", user="manager") for _ in range(8)]
        login_answers = [f.result() for f in logins]
        other_answers = [f.result() for f in others]
    assert [r.status_code for r in other_answers] == [200] * 8
    for answer in login_answers:
        assert answer.status_code in (401, 429, 503), answer.text
        if answer.status_code != 401:
            assert int(answer.headers["Retry-After"]) >= 1
    # Still serving sign-ins afterwards.
    assert login(system, "manager", "demo-password").status_code == 201


def test_invalid_api_keys_are_throttled(system, unblock) -> None:
    statuses = [
        system.get("/me", key=f"crm_{n:05d}{uuid.uuid4().hex}").status_code
        for n in range(CREDENTIAL_ADDRESS_POLICY.throttle_after + 1)
    ]
    assert statuses[0] == 401 and statuses[-1] == 429
    blocked = system.get("/me", key="crm_yet-another-guess")
    assert int(blocked.headers["Retry-After"]) >= 1
    assert_problem(blocked, 429)
    assert system.get("/me", user="lina").status_code == 200  # valid keys are not refused

    assert system.post("/auth/unblock", user="admin",
                       json={"address": LOOPBACK}).status_code == 204
    assert_problem(system.get("/me", key="crm_guess-after-unblock"), 401)


def test_password_change_and_deactivation_revoke_tokens(system) -> None:
    user = new_user(system)
    old = login(system, user["username"], "first-password").json()["token"]
    assert system.get("/me", headers=bearer(old)).json()["id"] == user["id"]

    changed = system.post("/me/password", headers=bearer(old), json={
        "current_password": "first-password", "new_password": "second-password"})
    assert changed.status_code == 200, changed.text
    new = changed.json()["token"]
    assert_problem(system.get("/me", headers=bearer(old)), 401)
    assert system.get("/me", headers=bearer(new)).status_code == 200

    reset = system.patch(f"/users/{user['id']}", user="admin",
                         json={"password": "third-password"})
    assert reset.status_code == 200
    assert_problem(system.get("/me", headers=bearer(new)), 401)

    latest = login(system, user["username"], "third-password").json()["token"]
    assert system.patch(f"/users/{user['id']}", user="admin",
                        json={"active": False}).status_code == 200
    assert system.patch(f"/users/{user['id']}", user="admin",
                        json={"active": True}).status_code == 200
    assert_problem(system.get("/me", headers=bearer(latest)), 401)


def test_active_api_keys_per_user_are_limited(system) -> None:
    user = new_user(system)
    created = [
        system.post("/api-keys", user="admin", json={"name": f"k{n}", "user_id": user["id"]})
        for n in range(10)
    ]
    assert [r.status_code for r in created] == [201] * 10
    own_key = created[0].json()["key"]
    refused = system.post("/api-keys", key=own_key, json={"name": "one more"})
    body = assert_problem(refused, 409)
    assert body["limit"] == 10 and "10" in body["detail"]
    assert system.delete(f"/api-keys/{created[1].json()['id']}",
                         key=own_key).status_code == 204
    assert system.post("/api-keys", key=own_key, json={"name": "one more"}).status_code == 201


def test_users_and_teams_answer_paged_lists(system) -> None:
    users = system.get("/users", user="admin", params={"limit": 2}).json()
    assert set(users) == {"items", "next_cursor"} and len(users["items"]) == 2
    following = system.get("/users", user="admin",
                           params={"limit": 2, "cursor": users["next_cursor"]}).json()
    assert following["items"][0]["username"] > users["items"][-1]["username"]
    teams = system.get("/teams", user="zhangwei").json()
    assert set(teams) == {"items", "next_cursor"}
    assert {"华东销售部", "华南销售部"} <= {team["name"] for team in teams["items"]}
