"""Gateway authentication, RBAC and lead visibility scopes (fake leads RPC, real SQLite)."""

from __future__ import annotations

import os
import stat
from typing import Any

from flask.testing import FlaskClient

from services.gateway.identity.principal import compute_scope
from tests.support.gateway import FakeRpc, assert_problem, auth, lead


def test_missing_and_invalid_credentials_are_401(client: FlaskClient, org: dict) -> None:
    body = assert_problem(client.get("/me"), 401)
    assert body["type"].endswith("unauthenticated")
    assert_problem(client.get("/me", headers={"Authorization": "Bearer crm_nope"}), 401)
    assert_problem(client.get("/me", headers={"X-API-Key": "crm_nope"}), 401)
    assert_problem(client.get("/me", headers={"Authorization": "Basic abc"}), 401)
    assert_problem(client.get("/me", headers={"Authorization": "Bearer not.a.token"}), 401)


def test_api_key_by_bearer_and_by_header(client: FlaskClient, org: dict) -> None:
    response = client.get("/me", headers=auth(org, "zhangwei"))
    assert response.status_code == 200
    assert response.json["username"] == "zhangwei"
    assert response.json["auth"] == "api_key"
    response = client.get("/me", headers={"X-API-Key": org["lina"]["api_key"]})
    assert response.json["username"] == "lina"


def test_token_flow(client: FlaskClient, org: dict, gateway_env: Any) -> None:
    wrong = client.post("/auth/tokens", json={"username": "lina", "password": "nope"})
    assert_problem(wrong, 401)
    unknown = client.post("/auth/tokens", json={"username": "ghost", "password": "x"})
    assert_problem(unknown, 401)

    response = client.post("/auth/tokens", json={"username": "lina", "password": "demo-password"})
    assert response.status_code == 201
    token = response.json["token"]
    assert response.json["expires_at"]
    me = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json["username"] == "lina" and me.json["auth"] == "token"

    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert_problem(client.get("/me", headers={"Authorization": f"Bearer {tampered}"}), 401)

    secret = gateway_env / "gateway-secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600


def test_expired_token_is_401(make_app: Any, org: dict) -> None:
    app = make_app(token_ttl_seconds=-1)
    client = app.test_client()
    seeded = client.post("/auth/tokens", json={"username": "lina", "password": "demo-password"})
    token = seeded.json["token"]
    assert_problem(client.get("/me", headers={"Authorization": f"Bearer {token}"}), 401)


def test_api_keys_are_listed_a_page_at_a_time(client: FlaskClient, org: dict) -> None:
    made = [client.post("/api-keys", json={"name": f"script {i}"},
                        headers=auth(org, "zhangwei")).json["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api-keys", query_string=query, headers=auth(org, "zhangwei"))
        assert response.status_code == 200
        assert len(response.json["items"]) <= 2
        seen += [k["id"] for k in response.json["items"]]
        cursor = response.json["next_cursor"]
        if cursor is None:
            break
    assert [i for i in seen if i in made] == made  # oldest first, each once
    assert len(seen) == len(set(seen))
    bad = client.get("/api-keys", query_string={"cursor": "bm90LWEtY3Vyc29y"},
                     headers=auth(org, "zhangwei"))
    assert bad.status_code == 422 and "cursor" in bad.json["errors"]
    assert client.get("/api-keys", query_string={"limit": 0},
                      headers=auth(org, "zhangwei")).status_code == 422


def test_revoked_key_and_deactivated_user_stop_at_once(client: FlaskClient, org: dict) -> None:
    created = client.post("/api-keys", json={"name": "script"}, headers=auth(org, "zhangwei"))
    assert created.status_code == 201
    key = created.json["key"]
    assert key.startswith("crm_") and created.json["prefix"] == key[:12]
    assert client.get("/me", headers={"X-API-Key": key}).status_code == 200

    listed = client.get("/api-keys", headers=auth(org, "zhangwei")).json
    assert {k["id"] for k in listed["items"]} >= {created.json["id"]}
    assert all("key" not in k for k in listed["items"])

    key_url = f"/api-keys/{created.json['id']}"
    assert client.delete(key_url, headers=auth(org, "lina")).status_code == 404
    assert client.delete(key_url, headers=auth(org, "zhangwei")).status_code == 204
    assert_problem(client.get("/me", headers={"X-API-Key": key}), 401)

    patched = client.patch(
        f"/users/{org['lina']['id']}", json={"active": False}, headers=auth(org, "admin")
    )
    assert patched.status_code == 200 and patched.json["active"] is False
    assert_problem(client.get("/me", headers=auth(org, "lina")), 401)


def test_admin_endpoints_need_admin(client: FlaskClient, org: dict) -> None:
    new_user = {"username": "wangfang", "display_name": "王芳", "role": "sales_rep",
                "email": "wf@example.cn", "password": "long-enough-pw"}
    assert_problem(client.post("/users", json=new_user, headers=auth(org, "zhangwei")), 403)
    assert_problem(client.get("/users", headers=auth(org, "zhangwei")), 403)
    assert_problem(client.post("/teams", json={"name": "x"}, headers=auth(org, "manager")), 403)

    created = client.post("/users", json=new_user, headers=auth(org, "admin"))
    assert created.status_code == 201, created.json
    assert "password" not in created.json and "password_hash" not in created.json
    dup = client.post("/users", json=new_user, headers=auth(org, "admin"))
    assert_problem(dup, 409)

    team = client.post("/teams", json={"name": "华北销售部", "manager_id": org["manager"]["id"]},
                       headers=auth(org, "admin"))
    assert team.status_code == 201
    moved = client.patch(f"/users/{created.json['id']}", json={"team_id": team.json["id"]},
                         headers=auth(org, "admin"))
    assert moved.status_code == 200
    manager_view = client.get("/users", headers=auth(org, "manager")).json["items"]
    assert "wangfang" in {u["username"] for u in manager_view}
    assert "chenjing" not in {u["username"] for u in manager_view}

    # Admin may create a key for someone else; a rep may not.
    assert client.post("/api-keys", json={"name": "k", "user_id": org["lina"]["id"]},
                       headers=auth(org, "admin")).status_code == 201
    assert_problem(client.post("/api-keys", json={"name": "k", "user_id": org["lina"]["id"]},
                               headers=auth(org, "zhangwei")), 403)


def test_scope_computation_per_role(client: FlaskClient, org: dict) -> None:
    assert compute_scope("admin", "a") == {"all": True}
    assert compute_scope("sales_rep", "r") == {"owner_ids": ["r"], "include_pool": True}
    assert compute_scope("service_agent", "s") == {"owner_ids": ["s"], "include_pool": True}

    def scope_of(username: str) -> dict:
        return client.get("/me", headers=auth(org, username)).json["scope"]

    assert scope_of("admin") == {"all": True}
    assert scope_of("zhangwei") == {"owner_ids": [org["zhangwei"]["id"]], "include_pool": True}
    assert scope_of("liuyang") == {"owner_ids": [org["liuyang"]["id"]], "include_pool": True}
    manager_scope = scope_of("manager")
    assert manager_scope["include_pool"] is True
    assert sorted(manager_scope["owner_ids"]) == sorted(
        [org["manager"]["id"], org["zhangwei"]["id"], org["lina"]["id"]]
    )


def test_scope_travels_to_the_leads_rpc(client: FlaskClient, org: dict, fake_rpc: FakeRpc) -> None:
    fake_rpc.on("leads", "list_leads", {"items": [lead()], "next_cursor": None})
    response = client.get("/leads?status=new&limit=10", headers=auth(org, "manager"))
    assert response.status_code == 200
    call = fake_rpc.last
    assert call["method"] == "list_leads"
    assert call["actor"] == org["manager"]["id"]
    assert call["kwargs"]["filters"] == {"status": "new"}
    assert call["kwargs"]["limit"] == 10
    assert set(call["kwargs"]["scope"]["owner_ids"]) == {
        org["manager"]["id"], org["zhangwei"]["id"], org["lina"]["id"]}

    client.get("/leads", headers=auth(org, "chenjing"))
    assert fake_rpc.last["kwargs"]["scope"] == {
        "owner_ids": [org["chenjing"]["id"]], "include_pool": True}


def test_rep_cannot_put_scoring_model(client: FlaskClient, org: dict, fake_rpc: FakeRpc) -> None:
    fake_rpc.on("leads", "set_scoring_model", lambda model: {**model, "version": 2})
    model = {"rules": [{"field": "industry", "equals": "制造业", "points": 10}]}
    body = assert_problem(client.put("/scoring-model", json=model, headers=auth(org, "lina")), 403)
    assert "manager" in body["detail"]
    assert not fake_rpc.calls
    ok = client.put("/scoring-model", json=model, headers=auth(org, "manager"))
    assert ok.status_code == 200 and ok.json["version"] == 2
    assert fake_rpc.last["kwargs"] == {"model": model}


def test_assign_rules(client: FlaskClient, org: dict, fake_rpc: FakeRpc) -> None:
    fake_rpc.on("leads", "assign_lead", lambda lead_id, owner_id, scope: lead(owner_id=owner_id))
    url = "/leads/lead-1/assign"
    rep = client.post(url, json={"owner_id": org["lina"]["id"]}, headers=auth(org, "zhangwei"))
    assert_problem(rep, 403)
    other_team = client.post(url, json={"owner_id": org["chenjing"]["id"]},
                             headers=auth(org, "manager"))
    assert_problem(other_team, 403)
    missing = client.post(url, json={"owner_id": "no-such-user"}, headers=auth(org, "admin"))
    assert "owner_id" in assert_problem(missing, 422)["errors"]
    assert not fake_rpc.calls

    ok = client.post(url, json={"owner_id": org["lina"]["id"]}, headers=auth(org, "manager"))
    assert ok.status_code == 200 and ok.json["owner_id"] == org["lina"]["id"]
    assert client.post(url, json={"owner_id": org["chenjing"]["id"]},
                       headers=auth(org, "admin")).status_code == 200


def test_claim_is_always_for_the_caller(client: FlaskClient, org: dict, fake_rpc: FakeRpc) -> None:
    fake_rpc.on("leads", "claim_lead",
                lambda lead_id, user_id, scope: lead(owner_id=user_id))
    response = client.post("/leads/lead-1/claim", headers=auth(org, "zhangwei"))
    assert response.status_code == 200
    assert fake_rpc.last["kwargs"] == {"lead_id": "lead-1", "user_id": org["zhangwei"]["id"],
                                       "scope": compute_scope("sales_rep", org["zhangwei"]["id"])}
