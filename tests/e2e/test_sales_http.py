"""Sales end to end: the whole system as processes (leads, sales, the gateway), over HTTP.

Lead -> qualified -> converted (customer, contact, opportunity) -> refused moves that say what
is missing -> the follow-up that lets the move pass -> won with a reason; visibility per role;
the customer 360.
"""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.e2e


def tag() -> str:
    return uuid.uuid4().hex[:8]


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return response.json()


def stages(system) -> dict[str, str]:
    response = system.get("/pipelines", user="admin")
    assert response.status_code == 200, response.text
    default = next(p for p in response.json()["items"] if p["is_default"])
    names = ("qualification", "needs", "proposal", "negotiation", "won", "lost")
    return dict(zip(names, (s["id"] for s in default["stages"]), strict=True))


def qualified_lead(system, user: str) -> dict:
    t = tag()
    lead = system.post("/leads", user=user, json={
        "name": "李雷", "company": f"苏州{t}精工机械有限公司", "title": "采购总监",
        "email": f"li.lei.{t}@jinggong.cn", "source": "trade_show", "campaign": "工博会2026",
        "region": "华东", "industry": "制造业", "product_interest": ["MES"],
    })
    assert lead.status_code == 201, lead.text
    lead_id = lead.json()["id"]
    claimed = system.post(f"/leads/{lead_id}/claim", user=user)
    assert claimed.status_code == 200, claimed.text
    qualified = system.post(f"/leads/{lead_id}/status", user=user, json={"status": "qualified"})
    assert qualified.status_code == 200, qualified.text
    return qualified.json()


def test_lead_to_customer_to_won_opportunity(system):
    ids = stages(system)
    lead = qualified_lead(system, "zhangwei")

    converted = system.post(f"/leads/{lead['id']}/convert", user="zhangwei", json={})
    assert converted.status_code == 201, converted.text
    result = converted.json()
    customer, contact, opportunity = result["customer"], result["contact"], result["opportunity"]
    assert customer["name"] == lead["company"] and customer["owner_id"] == system.users["zhangwei"]
    assert contact["name"] == "李雷" and contact["customer_id"] == customer["id"]
    assert opportunity["source"] == "trade_show" and opportunity["campaign"] == "工博会2026"
    assert opportunity["stage_id"] == ids["qualification"]

    again = system.post(f"/leads/{lead['id']}/convert", user="zhangwei", json={})
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] is True
    assert again.json()["opportunity_id"] == opportunity["id"]
    system.wait_for(
        lambda: system.get(f"/leads/{lead['id']}", user="zhangwei").json()["status"]
        == "converted",
        message="the leads service marks the lead converted",
    )

    refused = system.post(f"/opportunities/{opportunity['id']}/move", user="zhangwei",
                          json={"stage_id": ids["proposal"]})
    body = assert_problem(refused, 412)
    missing = {(m["type"], m.get("field") or m.get("tag")) for m in body["missing"]}
    assert missing == {("field", "amount"), ("field", "expected_close_date"),
                       ("activity", "needs_analysis")}
    assert "needs_analysis" in body["detail"] and "amount" in body["detail"]

    patched = system.patch(f"/opportunities/{opportunity['id']}", user="zhangwei",
                           json={"amount": "1280000.00", "expected_close_date": "2026-12-31"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["amount"] == "1280000.00" and patched.json()["currency"] == "CNY"
    body = assert_problem(system.post(f"/opportunities/{opportunity['id']}/move",
                                      user="zhangwei", json={"stage_id": ids["proposal"]}), 412)
    assert [m["tag"] for m in body["missing"]] == ["needs_analysis"]

    followup = system.post("/followups", user="zhangwei", json={
        "kind": "meeting", "opportunity_id": opportunity["id"], "contact_id": contact["id"],
        "subject": "需求调研会", "tags": ["needs_analysis"],
        "key_points": {"pain_points": ["排产靠人工"], "competitors": ["用友"],
                       "objections": ["实施周期"]},
        "next_followup_at": "2099-01-05T02:00:00+00:00",
    })
    assert followup.status_code == 201, followup.text
    assert followup.json()["customer_id"] == customer["id"]

    moved = system.post(f"/opportunities/{opportunity['id']}/move", user="zhangwei",
                        json={"stage_id": ids["proposal"]})
    assert moved.status_code == 200, moved.text
    assert moved.json()["probability"] == 50

    no_reason = system.post(f"/opportunities/{opportunity['id']}/move", user="zhangwei",
                            json={"stage_id": ids["won"]})
    assert "reason" in assert_problem(no_reason, 422)["errors"]
    won = system.post(f"/opportunities/{opportunity['id']}/move", user="zhangwei",
                      json={"stage_id": ids["won"], "reason": "方案契合，价格有优势"})
    assert won.status_code == 200, won.text
    assert won.json()["status"] == "won" and won.json()["won_lost_reason"] == "方案契合，价格有优势"

    detail = system.get(f"/opportunities/{opportunity['id']}", user="zhangwei").json()
    assert [h["stage_id"] for h in detail["history"]] == [ids["qualification"], ids["proposal"],
                                                         ids["won"]]
    assert detail["history"][-1]["left_at"] is None
    assert system.get(f"/customers/{customer['id']}", user="zhangwei").json()[
        "lifecycle_stage"] == "customer"

    board = system.get("/opportunities/board", user="zhangwei").json()
    won_column = next(c for c in board["columns"] if c["stage"]["id"] == ids["won"])
    assert opportunity["id"] in [o["id"] for o in won_column["items"]]


def test_customer_input_errors_and_duplicates(system):
    t = tag()
    bad = system.post("/customers", user="lina", json={"name": f"杭州{t}科技有限公司",
                                                       "credit_code": "91350100M000100Y44",
                                                       "tier": "D"})
    errors = assert_problem(bad, 422)["errors"]
    assert "tier" in errors
    bad = system.post("/customers", user="lina", json={"name": f"杭州{t}科技有限公司",
                                                       "credit_code": "91350100M000100Y44"})
    assert "check digit" in assert_problem(bad, 422)["errors"]["credit_code"][0]
    first = system.post("/customers", user="lina", json={"name": f"杭州{t}科技有限公司"})
    assert first.status_code == 201, first.text
    duplicate = system.post("/customers", user="lina", json={"name": f"{t}科技（杭州）"})
    assert assert_problem(duplicate, 409)["existing_id"] == first.json()["id"]
    found = system.get("/customers", user="lina", params={"q": f"{t}科技"}).json()["items"]
    assert [c["id"] for c in found] == [first.json()["id"]]


def test_visibility_per_role(system):
    t = tag()
    mine = system.post("/customers", user="zhangwei", json={"name": f"无锡{t}电子有限公司"})
    assert mine.status_code == 201, mine.text
    customer_id = mine.json()["id"]
    south = system.post("/customers", user="chenjing", json={"name": f"广州{t}贸易有限公司"})
    assert south.status_code == 201, south.text

    # Another rep, even in the same team, gets 404 (no existence leak).
    assert_problem(system.get(f"/customers/{customer_id}", user="lina"), 404)
    assert_problem(system.patch(f"/customers/{customer_id}", user="lina",
                                json={"tier": "A"}), 404)
    # A body's reference to a hidden customer answers like one to a missing customer: 422.
    assert list(assert_problem(system.post("/contacts", user="lina", json={
        "customer_id": customer_id, "name": "x"}), 422)["errors"]) == ["customer_id"]
    listed = system.get("/customers", user="lina", params={"q": t}).json()["items"]
    assert listed == []
    # The manager of 华东销售部 sees the team's customer, not 华南's; the admin sees both.
    assert system.get(f"/customers/{customer_id}", user="manager").status_code == 200
    assert_problem(system.get(f"/customers/{south.json()['id']}", user="manager"), 404)
    assert len(system.get("/customers", user="admin", params={"q": t}).json()["items"]) == 2
    # Reps cannot assign; the manager assigns within the team.
    assert_problem(system.post(f"/customers/{customer_id}/assign", user="zhangwei",
                               json={"owner_id": system.users["lina"]}), 403)
    # Another team's rep is not a user the manager may name: answered like a missing user.
    assert list(assert_problem(system.post(f"/customers/{customer_id}/assign", user="manager",
                                           json={"owner_id": system.users["chenjing"]}),
                               422)["errors"]) == ["owner_id"]
    assigned = system.post(f"/customers/{customer_id}/assign", user="manager",
                           json={"owner_id": system.users["lina"]})
    assert assigned.status_code == 200, assigned.text
    assert system.get(f"/customers/{customer_id}", user="lina").status_code == 200
    assert_problem(system.get(f"/customers/{customer_id}", user="zhangwei"), 404)
    # Only admins change pipelines.
    assert_problem(system.post("/pipelines", user="manager", json={"name": "x", "stages": []}),
                   403)


def test_customer_360(system):
    t = tag()
    customer = system.post("/customers", user="zhangwei", json={
        "name": f"宁波{t}模具有限公司", "tier": "A", "tags": ["重点客户"]}).json()
    contact = system.post("/contacts", user="zhangwei", json={
        "customer_id": customer["id"], "name": "王芳", "role": "decision_maker",
        "phone": "139 1234 5678", "preferred_channel": "wechat", "birthday": "1988-08-08",
        "consent": True})
    assert contact.status_code == 201, contact.text
    visit = system.post("/followups", user="zhangwei", json={
        "kind": "visit", "customer_id": customer["id"], "subject": "上门拜访",
        "check_in": {"lat": 29.87, "lng": 121.54, "address": "宁波市鄞州区"}})
    assert visit.status_code == 201, visit.text
    opportunity = system.post("/opportunities", user="zhangwei", json={
        "customer_id": customer["id"], "name": "模具 MES", "amount": 300000})
    assert opportunity.status_code == 201, opportunity.text

    response = system.get(f"/customers/{customer['id']}/360", user="zhangwei")
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["customer"]["id"] == customer["id"]
    assert [c["id"] for c in view["customer"]["contacts"]] == [contact.json()["id"]]
    assert [f["id"] for f in view["recent_followups"]] == [visit.json()["id"]]
    assert [o["id"] for o in view["open_opportunities"]] == [opportunity.json()["id"]]
    assert view["closed_opportunities"] == []
    assert view["owner"]["id"] == system.users["zhangwei"]
    if "rules" in system.processes():
        assert isinstance(view["tasks"], list) and view["partial"] == []
    else:  # the rules service is not part of this run: the rest still answers
        assert view["tasks"] is None and view["partial"] == ["tasks"]
    assert_problem(system.get(f"/customers/{customer['id']}/360", user="lina"), 404)


def test_find_and_merge_duplicate_customers(system):
    t = tag()
    target = system.post("/customers", user="lina", json={
        "name": f"合肥{t}新材料股份有限公司", "tags": ["新能源"]}).json()
    source = system.post("/customers", user="lina", json={
        "name": f"{t}新材料", "on_duplicate": "create", "tags": ["重点"]})
    assert source.status_code == 201, source.text
    source = source.json()
    contact = system.post("/contacts", user="lina", json={"customer_id": source["id"],
                                                         "name": "赵敏"}).json()
    found = system.get(f"/customers/{target['id']}/duplicates", user="lina").json()["items"]
    assert [d["customer_id"] for d in found] == [source["id"]]
    merged = system.post(f"/customers/{target['id']}/merge", user="lina",
                         json={"source_id": source["id"]})
    assert merged.status_code == 200, merged.text
    assert merged.json()["tags"] == ["新能源", "重点"]
    assert system.get(f"/contacts/{contact['id']}", user="lina").json()["customer_id"] == \
        target["id"]
    assert system.get(f"/customers/{source['id']}", user="lina").json()["merged_into_id"] == \
        target["id"]
    assert_problem(system.post(f"/customers/{target['id']}/merge", user="lina",
                               json={"source_id": source["id"]}), 409)
