"""Row-level visibility of the sales routes over HTTP, with the demo users of two teams
(华东销售部: manager, zhangwei, lina; 华南销售部: chenjing): a reference in a body to a record
the caller cannot see answers exactly like one to a missing record (422 naming the field), a
path id exactly like a missing one (404), a duplicate outside the view is reported without its
id or name; the pipelines show every exit criterion; the customer 360 keeps the open tasks of
the lead it was converted from.
"""

from __future__ import annotations

import random
import uuid

import pytest

from services.sales.domain import credit_code

pytestmark = pytest.mark.e2e

MISSING = "00000000-0000-4000-8000-00000000dead"
EAST, SOUTH = "华东销售部", "华南销售部"


def tag() -> str:
    return uuid.uuid4().hex[:8]


def new_credit_code() -> str:
    first = "91" + "".join(random.choices("0123456789", k=6)) + "".join(
        random.choices(credit_code.ALPHABET, k=9))
    return first + credit_code.check_character(first)


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return response.json()


def comparable(body: dict) -> dict:
    """A problem without what names the request itself (its path and correlation id)."""
    return {k: v for k, v in body.items() if k not in ("instance", "correlation_id", "detail")}


def same_answer(hidden, missing, status: int) -> dict:
    """The answers for a hidden and for a missing record are the same problem."""
    hidden_body, missing_body = problem(hidden, status), problem(missing, status)
    assert comparable(hidden_body) == comparable(missing_body)
    return hidden_body


def customer(system, user: str, **fields) -> dict:
    response = system.post("/customers", user=user, json={
        "name": f"测试{tag()}客户有限公司", "on_duplicate": "create", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def owned_lead(system, user: str, qualified: bool = False) -> dict:
    t = tag()
    lead = system.post("/leads", user=user, json={
        "name": f"韩梅梅{t}", "company": f"杭州{t}仪表有限公司", "source": "referral",
        "email": f"han.{t}@yibiao.cn", "region": "华东", "product_interest": ["SCADA"]})
    assert lead.status_code == 201, lead.text
    lead = lead.json()
    if lead.get("owner_id") is None:
        claimed = system.post(f"/leads/{lead['id']}/claim", user=user)
        assert claimed.status_code == 200, claimed.text
        lead = claimed.json()
    assert lead["owner_id"] == system.users[user]
    if qualified:
        response = system.post(f"/leads/{lead['id']}/status", user=user,
                               json={"status": "qualified"})
        assert response.status_code == 200, response.text
        lead = response.json()
    return lead


def pool_lead(system, user: str) -> dict:
    t = tag()
    lead = system.post("/leads", user=user, json={
        "name": f"池{t}", "company": f"池塘{t}有限公司", "source": "referral",
        "email": f"pool.{t}@chi.cn"})
    assert lead.status_code == 201, lead.text
    lead = lead.json()
    if lead.get("owner_id") is not None:
        pytest.skip("a rule assigned the new lead: no pool lead to try")
    return lead


def team_ids(system) -> dict[str, str]:
    response = system.get("/teams", user="admin")
    assert response.status_code == 200, response.text
    body = response.json()
    items = body["items"] if isinstance(body, dict) else body
    return {team["name"]: team["id"] for team in items}


# -- references in bodies ----------------------------------------------------------------------


def test_followups_and_opportunities_only_on_leads_the_caller_works(system):
    lead = owned_lead(system, "zhangwei")
    south_customer = customer(system, "chenjing")
    for user in ("chenjing", "lina"):  # another team's rep, a teammate
        body = same_answer(
            system.post("/followups", user=user, json={"kind": "call", "lead_id": lead["id"]}),
            system.post("/followups", user=user, json={"kind": "call", "lead_id": MISSING}),
            422)
        assert list(body["errors"]) == ["lead_id"]
    same_answer(
        system.post("/opportunities", user="chenjing", json={
            "customer_id": south_customer["id"], "name": "x", "lead_id": lead["id"]}),
        system.post("/opportunities", user="chenjing", json={
            "customer_id": south_customer["id"], "name": "x", "lead_id": MISSING}),
        422)
    # Nothing was recorded on the lead (no follow-up that would restart its pool timers).
    logged = system.get("/followups", user="admin", params={"lead_id": lead["id"]})
    assert logged.status_code == 200 and logged.json()["items"] == []

    # The owner and their manager work it.
    mine = system.post("/followups", user="zhangwei", json={"kind": "call",
                                                           "lead_id": lead["id"]})
    assert mine.status_code == 201, mine.text
    managers = system.post("/followups", user="manager", json={
        "kind": "note", "lead_id": lead["id"], "owner_id": system.users["zhangwei"]})
    assert managers.status_code == 201, managers.text
    assert managers.json()["owner_id"] == system.users["zhangwei"]

    # A pool lead is claimed before it is worked: visible, so the answer may say why.
    in_pool = pool_lead(system, "zhangwei")
    body = problem(system.post("/followups", user="zhangwei", json={
        "kind": "call", "lead_id": in_pool["id"]}), 422)
    assert "pool" in body["errors"]["lead_id"][0]


def test_references_to_hidden_customers_contacts_and_opportunities(system):
    east = customer(system, "zhangwei")
    contact = system.post("/contacts", user="zhangwei", json={"customer_id": east["id"],
                                                             "name": "王强"}).json()
    opportunity = system.post("/opportunities", user="zhangwei", json={
        "customer_id": east["id"], "name": "SCADA"}).json()
    south = customer(system, "chenjing")
    for field, hidden in (("customer_id", east["id"]), ("contact_id", contact["id"]),
                          ("opportunity_id", opportunity["id"])):
        body = same_answer(
            system.post("/followups", user="chenjing", json={"kind": "call", field: hidden}),
            system.post("/followups", user="chenjing", json={"kind": "call", field: MISSING}),
            422)
        assert list(body["errors"]) == [field]
    body = same_answer(
        system.post("/contacts", user="chenjing", json={"customer_id": east["id"], "name": "x"}),
        system.post("/contacts", user="chenjing", json={"customer_id": MISSING, "name": "x"}),
        422)
    assert list(body["errors"]) == ["customer_id"]
    same_answer(
        system.post("/opportunities", user="chenjing", json={"customer_id": east["id"],
                                                             "name": "x"}),
        system.post("/opportunities", user="chenjing", json={"customer_id": MISSING,
                                                             "name": "x"}),
        422)
    body = same_answer(
        system.post(f"/customers/{south['id']}/merge", user="chenjing",
                    json={"source_id": east["id"]}),
        system.post(f"/customers/{south['id']}/merge", user="chenjing",
                    json={"source_id": MISSING}),
        422)
    assert list(body["errors"]) == ["source_id"]
    assert system.get(f"/customers/{east['id']}", user="zhangwei").json()["merged_into_id"] \
        is None


def test_owner_and_team_references(system):
    teams = team_ids(system)
    mine = customer(system, "zhangwei")
    # A rep gives records to no one else; another team's user answers like a missing one.
    body = {"kind": "call", "customer_id": mine["id"]}
    same_answer(
        system.post("/followups", user="zhangwei",
                    json={**body, "owner_id": system.users["chenjing"]}),
        system.post("/followups", user="zhangwei", json={**body, "owner_id": MISSING}),
        422)
    same_answer(
        system.post("/followups", user="zhangwei",
                    json={**body, "owner_id": system.users["lina"]}),
        system.post("/followups", user="zhangwei", json={**body, "owner_id": MISSING}),
        422)
    same_answer(
        system.post("/contacts", user="zhangwei", json={
            "customer_id": mine["id"], "name": "x", "owner_id": system.users["chenjing"]}),
        system.post("/contacts", user="zhangwei", json={
            "customer_id": mine["id"], "name": "x", "owner_id": MISSING}),
        422)
    # The manager assigns within the team; another team's rep is not theirs to name.
    body = same_answer(
        system.post(f"/customers/{mine['id']}/assign", user="manager",
                    json={"owner_id": system.users["chenjing"]}),
        system.post(f"/customers/{mine['id']}/assign", user="manager",
                    json={"owner_id": MISSING}),
        422)
    assert list(body["errors"]) == ["owner_id"]
    # The team follows the owner.
    errors = problem(system.post("/opportunities", user="zhangwei", json={
        "customer_id": mine["id"], "name": "x", "team_id": teams[SOUTH]}), 422)["errors"]
    assert list(errors) == ["team_id"]
    errors = problem(system.post("/customers", user="zhangwei", json={
        "name": f"错队{tag()}", "team_id": teams[SOUTH]}), 422)["errors"]
    assert list(errors) == ["team_id"]
    opportunity = system.post("/opportunities", user="zhangwei", json={
        "customer_id": mine["id"], "name": "x", "team_id": teams[EAST]})
    assert opportunity.status_code == 201, opportunity.text
    assert opportunity.json()["team_id"] == teams[EAST]
    errors = problem(system.patch(f"/opportunities/{opportunity.json()['id']}", user="zhangwei",
                                  json={"team_id": teams[SOUTH]}), 422)["errors"]
    assert list(errors) == ["team_id"]
    # An admin may file a record under another existing team.
    errors = problem(system.post("/opportunities", user="admin", json={
        "customer_id": mine["id"], "name": "x", "owner_id": system.users["zhangwei"],
        "team_id": MISSING}), 422)["errors"]
    assert errors == {"team_id": ["No such team."]}
    filed = system.post("/opportunities", user="admin", json={
        "customer_id": mine["id"], "name": "x", "owner_id": system.users["zhangwei"],
        "team_id": teams[SOUTH]})
    assert filed.status_code == 201, filed.text
    assert filed.json()["team_id"] == teams[SOUTH]
    lead = owned_lead(system, "zhangwei", qualified=True)
    errors = problem(system.post(f"/leads/{lead['id']}/convert", user="zhangwei",
                                 json={"team_id": teams[SOUTH]}), 422)["errors"]
    assert list(errors) == ["team_id"]
    assert system.get(f"/opportunities/{opportunity.json()['id']}", user="zhangwei").json()[
        "team_id"] == teams[EAST]


# -- duplicates and path ids -----------------------------------------------------------------


def test_duplicates_outside_the_view_are_reported_without_id_or_name(system):
    code = new_credit_code()
    t = tag()
    east = customer(system, "zhangwei", name=f"南京{t}光电科技有限公司", credit_code=code)
    same_code = problem(system.post("/customers", user="chenjing", json={
        "name": f"别名{t}", "credit_code": code}), 409)
    assert same_code["field"] == "credit_code" and "existing_id" not in same_code
    assert east["id"] not in str(same_code) and east["name"] not in str(same_code)
    similar = problem(system.post("/customers", user="chenjing", json={
        "name": f"{t}光电科技（南京）"}), 409)
    assert similar["matches"] == [] and "existing_id" not in similar
    assert east["id"] not in str(similar)
    south = system.post("/customers", user="chenjing", json={
        "name": f"{t}光电科技（南京）", "on_duplicate": "create"})
    assert south.status_code == 201, south.text
    patched = problem(system.patch(f"/customers/{south.json()['id']}", user="chenjing",
                                   json={"credit_code": code}), 409)
    assert "existing_id" not in patched and east["id"] not in str(patched)
    # The owner's manager sees the match and its id.
    seen = problem(system.post("/customers", user="manager", json={
        "name": f"别名{t}", "credit_code": code}), 409)
    assert seen["existing_id"] == east["id"]
    # Converting a lead with that credit code does not hand the hidden customer over.
    lead = owned_lead(system, "chenjing", qualified=True)
    refused = problem(system.post(f"/leads/{lead['id']}/convert", user="chenjing",
                                  json={"customer": {"credit_code": code}}), 409)
    assert east["id"] not in str(refused)


def test_path_ids_of_hidden_records_answer_like_missing_ones(system):
    east = customer(system, "zhangwei")
    contact = system.post("/contacts", user="zhangwei", json={"customer_id": east["id"],
                                                             "name": "李强"}).json()
    opportunity = system.post("/opportunities", user="zhangwei", json={
        "customer_id": east["id"], "name": "MES"}).json()
    lead = owned_lead(system, "zhangwei", qualified=True)
    stage_id = system.get("/pipelines", user="admin").json()["items"][0]["stages"][1]["id"]
    routes = [
        ("GET", "/customers/{}", None, east["id"]),
        ("PATCH", "/customers/{}", {"tier": "A"}, east["id"]),
        ("POST", "/customers/{}/tags", {"add": ["x"]}, east["id"]),
        ("POST", "/customers/{}/merge", {"source_id": MISSING.replace("dead", "beef")},
         east["id"]),
        ("GET", "/customers/{}/duplicates", None, east["id"]),
        ("GET", "/customers/{}/360", None, east["id"]),
        ("GET", "/contacts/{}", None, contact["id"]),
        ("PATCH", "/contacts/{}", {"title": "x"}, contact["id"]),
        ("GET", "/opportunities/{}", None, opportunity["id"]),
        ("PATCH", "/opportunities/{}", {"name": "x"}, opportunity["id"]),
        ("POST", "/opportunities/{}/move", {"stage_id": stage_id}, opportunity["id"]),
        ("POST", "/leads/{}/convert", {}, lead["id"]),
    ]
    for method, path, body, record_id in routes:
        for user in ("chenjing", "lina"):
            hidden = system.request(method, path.format(record_id), user=user, json=body)
            missing = system.request(method, path.format(MISSING), user=user, json=body)
            assert hidden.status_code == missing.status_code == 404, (method, path, user,
                                                                     hidden.text)
            assert comparable(hidden.json()) == comparable(missing.json())
            assert hidden.json()["detail"] == missing.json()["detail"].replace(
                MISSING, record_id)  # the id asked for, nothing more
    # Assigning another team's customer: the manager gets what a missing one gets.
    south = customer(system, "chenjing")
    assign = {"owner_id": system.users["lina"]}
    same_answer(system.post(f"/customers/{south['id']}/assign", user="manager", json=assign),
                system.post(f"/customers/{MISSING}/assign", user="manager", json=assign), 404)
    # Nothing changed under the refused writes.
    east_now = system.get(f"/customers/{east['id']}", user="admin").json()
    assert east_now["tier"] is None and east_now["tags"] == []
    assert system.get(f"/customers/{south['id']}", user="admin").json()["owner_id"] == \
        system.users["chenjing"]


# -- pipelines -------------------------------------------------------------------------------


def test_pipelines_show_every_exit_criterion_and_refuse_undefined_custom_fields(system):
    response = system.get("/pipelines", user="zhangwei")
    assert response.status_code == 200, response.text
    default = next(p for p in response.json()["items"] if p["is_default"])
    needs = default["stages"][1]
    assert needs["exit_criteria"] == {
        "fields": ["amount", "expected_close_date"],
        "activities": [{"kind": "meeting", "tag": "needs_analysis", "min_count": 1}]}
    assert default["stages"][0]["exit_criteria"]["fields"] == ["contact_id"]
    one = system.get(f"/pipelines/{default['id']}", user="chenjing")
    assert one.status_code == 200 and one.json()["stages"][1] == needs

    t = tag()
    stages = [
        {"name": "初访", "probability": 10, "kind": "open",
         "exit_criteria": {"fields": ["amount", f"custom.undefined_{t}"]}},
        {"name": "成交", "probability": 100, "kind": "won"},
        {"name": "丢单", "probability": 0, "kind": "lost"},
    ]
    body = problem(system.post("/pipelines", user="admin",
                               json={"name": f"渠道{t}", "stages": stages}), 422)
    assert list(body["errors"]) == ["stages.0.exit_criteria.fields.1"]
    stages[0]["exit_criteria"]["fields"].pop()
    created = system.post("/pipelines", user="admin", json={"name": f"渠道{t}", "stages": stages})
    assert created.status_code == 201, created.text
    assert created.json()["stages"][0]["exit_criteria"] == {"fields": ["amount"],
                                                           "activities": []}


# -- the customer 360 ------------------------------------------------------------------------


def test_customer_360_keeps_the_open_tasks_of_the_converted_lead(system):
    if "rules" not in system.processes():
        pytest.skip("the rules service is not part of this run")
    lead = owned_lead(system, "zhangwei", qualified=True)
    task = system.post("/tasks", user="zhangwei", json={
        "title": f"回访{tag()}", "record_type": "lead", "record_id": lead["id"],
        "assignee_id": system.users["zhangwei"], "due_at": "2099-01-01T01:00:00+00:00"})
    assert task.status_code == 201, task.text
    converted = system.post(f"/leads/{lead['id']}/convert", user="zhangwei", json={})
    assert converted.status_code == 201, converted.text
    result = converted.json()
    on_opportunity = system.post("/tasks", user="zhangwei", json={
        "title": f"报价{tag()}", "record_type": "opportunity",
        "record_id": result["opportunity_id"], "assignee_id": system.users["zhangwei"]})
    assert on_opportunity.status_code == 201, on_opportunity.text

    view = system.get(f"/customers/{result['customer_id']}/360", user="zhangwei")
    assert view.status_code == 200, view.text
    view = view.json()
    assert view["partial"] == []
    assert view["customer"]["converted_lead_ids"] == [lead["id"]]
    ids = [t["id"] for t in view["tasks"]]
    assert ids == [task.json()["id"], on_opportunity.json()["id"]]  # due first
    # The manager sees the team's tasks too; once done, a task leaves the view.
    managers = system.get(f"/customers/{result['customer_id']}/360", user="manager").json()
    assert {t["id"] for t in managers["tasks"]} == set(ids)
    done = system.post(f"/tasks/{task.json()['id']}/complete", user="zhangwei")
    assert done.status_code == 200, done.text
    view = system.get(f"/customers/{result['customer_id']}/360", user="zhangwei").json()
    assert [t["id"] for t in view["tasks"]] == [on_opportunity.json()["id"]]
    problem(system.get(f"/customers/{result['customer_id']}/360", user="chenjing"), 404)
