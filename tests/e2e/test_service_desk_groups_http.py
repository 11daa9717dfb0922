"""Service desk groups, routing and web forms over HTTP with the whole system running: a
routing rule by product sends new tickets to group G, where round-robin alternates its two
members (the rules service's shipped rule `ticket-route-new` calls service_desk.route_ticket
on `ticket_created`); a least-loaded group gives the next ticket to the member with fewer
open tickets; a group's members see its tickets and another group's agent does not; a web
form post with the right token (no API key) creates a ticket routed like API tickets, a
wrong token is a 403, a filled honeypot creates nothing, the per-address rate limit answers
429 with Retry-After, CORS answers the form's origins only.

No default group is set: the other tests' tickets (no product) stay unrouted."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.system import System

pytestmark = pytest.mark.e2e

SITE = "https://www.example.cn"


def _ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _routed(system: System, ticket_id: str) -> dict:
    return system.wait_for(
        lambda: (lambda t: t if t.get("assignee_id") else None)(
            system.get(f"/tickets/{ticket_id}", user="admin").json()),
        timeout=30, message=f"ticket {ticket_id} was not routed")


def _ticket(system: System, product: str, mark: str) -> dict:
    return _ok(system.post("/tickets", user="admin", json={
        "subject": f"路由器掉线 {mark}", "requester_email": "wang@example.cn",
        "product": product, "language": "zh"}), 201)


def test_groups_routing_and_visibility(system: System) -> None:
    mark = uuid.uuid4().hex[:8]
    users = system.users
    product = f"Router-{mark}"
    # agents read, only admins and managers write
    assert system.get("/ticket-groups", user="liuyang").status_code == 200
    r = system.post("/ticket-groups", user="liuyang", json={"name": f"x{mark}"})
    assert r.status_code == 403, r.text
    group = _ok(system.post("/ticket-groups", user="admin", json={
        "name": f"二线网络组 {mark}", "manager_id": users["manager"], "strategy": "round_robin",
        "members": [{"user_id": users["liuyang"], "skills": {"products": [product]}},
                    {"user_id": users["zhangwei"]}]}), 201)
    assert system.get(f"/ticket-groups/{group['id']}", user="chenjing").status_code == 200
    rule = _ok(system.post("/ticket-routing-rules", user="admin", json={
        "name": f"路由器 {mark}", "group_id": group["id"],
        "conditions": {"products": [product]}}), 201)
    assert rule["conditions"] == {"products": [product]}
    r = system.post("/ticket-routing-rules", user="chenjing", json={
        "name": f"y{mark}", "group_id": group["id"]})
    assert r.status_code == 403, r.text

    # round-robin within G: two tickets, one to each member
    first = _routed(system, _ticket(system, product, mark)["id"])
    second = _routed(system, _ticket(system, product, mark)["id"])
    assert first["group_id"] == second["group_id"] == group["id"]
    assert {first["assignee_id"], second["assignee_id"]} == {users["liuyang"], users["zhangwei"]}
    third = _routed(system, _ticket(system, product, mark)["id"])
    assert third["assignee_id"] == first["assignee_id"]

    # visibility: the group's members and manager see a member's ticket, others do not
    of_liuyang = next(t for t in (first, second) if t["assignee_id"] == users["liuyang"])
    for viewer in ("zhangwei", "manager", "liuyang"):
        assert system.get(f"/tickets/{of_liuyang['id']}", user=viewer).status_code == 200
    r = system.get(f"/tickets/{of_liuyang['id']}", user="chenjing")
    assert r.status_code == 404, r.text
    listed = _ok(system.get("/tickets", user="chenjing", params={"limit": 200}))["items"]
    assert of_liuyang["id"] not in {t["id"] for t in listed}
    listed = _ok(system.get("/tickets", user="zhangwei",
                            params={"group_id": group["id"], "limit": 200}))["items"]
    assert of_liuyang["id"] in {t["id"] for t in listed}

    # least loaded: the member with fewer open tickets gets the next one
    loaded = _ok(system.post("/ticket-groups", user="admin", json={
        "name": f"负载组 {mark}", "strategy": "least_loaded",
        "members": [{"user_id": users["liuyang"]}, {"user_id": users["lina"]}]}), 201)
    loads = {m["user_id"]: m["open_tickets"] for m in loaded["members"]}
    while loads[users["lina"]] <= loads[users["liuyang"]]:
        _ok(system.post("/tickets", user="admin", json={
            "subject": f"预先分配 {mark}", "requester_email": "a@example.cn",
            "assignee_id": users["lina"]}), 201)
        loads[users["lina"]] += 1
    busy = f"Switch-{mark}"
    _ok(system.post("/ticket-routing-rules", user="admin", json={
        "name": f"交换机 {mark}", "group_id": loaded["id"],
        "conditions": {"products": [busy]}}), 201)
    light = _routed(system, _ticket(system, busy, mark)["id"])
    assert (light["group_id"], light["assignee_id"]) == (loaded["id"], users["liuyang"])

    # the rule's run is in the rules' audit, with route_ticket called once
    runs = _ok(system.get("/rule-runs", user="admin", params={
        "record_key": f"ticket:{light['id']}", "matched": "true"}))["items"]
    assert [r["rule_id"] for r in runs] == ["ticket-route-new"]


def _form(system: System, mark: str, **fields) -> dict:
    return _ok(system.post("/ticket-forms", user="admin", json={
        "name": f"官网表单 {mark}", "allowed_origins": [SITE], **fields}), 201)


def _post(system: System, form: dict, body: dict, token: str | None = None, **headers):
    return system.post(f"/forms/{form['key']}/tickets", headers=headers,
                       json={"token": token or form["token"], **body})


def test_web_form_intake(system: System) -> None:
    mark = uuid.uuid4().hex[:8]
    users = system.users
    product = f"Modem-{mark}"
    group = _ok(system.post("/ticket-groups", user="admin", json={
        "name": f"表单组 {mark}", "members": [{"user_id": users["liuyang"]}]}), 201)
    _ok(system.post("/ticket-routing-rules", user="admin", json={
        "name": f"猫 {mark}", "group_id": group["id"], "conditions": {"products": [product]}}),
        201)
    r = system.post("/ticket-forms", user="manager", json={"name": "x"})
    assert r.status_code == 403, r.text
    form = _form(system, mark, min_fill_seconds=1, ip_rate_per_minute=100)
    assert form["token"] and "token" not in _ok(system.get(f"/ticket-forms/{form['id']}",
                                                           user="admin"))

    public = _ok(system.get(f"/forms/{form['key']}"))  # no API key
    assert public["honeypot_field"] == "website"
    time.sleep(1.2)  # a person takes a moment to fill in the form
    body = {"name": "王芳", "email": "Wang.Fang@Example.cn", "subject": f"猫不亮灯 {mark}",
            "body": "昨天开始", "product": product, "stamp": public["stamp"]}
    r = _post(system, form, body, Origin=SITE)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": True}
    assert r.headers["Access-Control-Allow-Origin"] == SITE

    def by_subject(subject: str) -> list[dict]:
        items = _ok(system.get("/tickets", user="admin", params={"limit": 200}))["items"]
        return [t for t in items if t["subject"] == subject]

    created = system.wait_for(lambda: next(iter(by_subject(f"猫不亮灯 {mark}")), None),
                              timeout=10, message="no ticket from the form")
    assert (created["channel"], created["requester_email"], created["requester_name"]) == \
        ("web", "wang.fang@example.cn", "王芳")
    routed = _routed(system, created["id"])
    assert (routed["group_id"], routed["assignee_id"]) == (group["id"], users["liuyang"])

    # a wrong token; an origin that is not the form's; bad input names the field
    r = _post(system, form, {**body, "subject": f"错令牌 {mark}"}, token="wrong-token")
    assert r.status_code == 403, r.text
    r = _post(system, form, {**body, "subject": f"外站 {mark}"}, Origin="https://evil.example")
    assert r.status_code == 403, r.text
    assert "Access-Control-Allow-Origin" not in r.headers

    # a bot: the honeypot filled, or posted at once without waiting: accepted, nothing made
    r = _post(system, form, {**body, "subject": f"机器人 {mark}", "website": "http://x.example"})
    assert r.status_code == 202 and r.json() == {"accepted": True}, r.text
    fresh = _ok(system.get(f"/forms/{form['key']}"))["stamp"]
    r = _post(system, form, {**body, "subject": f"太快 {mark}", "stamp": fresh})
    assert r.status_code == 202, r.text
    assert by_subject(f"机器人 {mark}") == [] and by_subject(f"太快 {mark}") == []
    assert by_subject(f"错令牌 {mark}") == [] and by_subject(f"外站 {mark}") == []

    # CORS preflight: the form's origin only
    r = system.request("OPTIONS", f"/forms/{form['key']}/tickets",
                       headers={"Origin": SITE, "Access-Control-Request-Method": "POST"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == SITE
    r = system.request("OPTIONS", f"/forms/{form['key']}/tickets",
                       headers={"Origin": "https://evil.example",
                                "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in r.headers

    # a rotated token: the old one stops working
    rotated = _ok(system.post(f"/ticket-forms/{form['id']}/token", user="admin"))
    r = _post(system, form, {**body, "subject": f"旧令牌 {mark}"})
    assert r.status_code == 403, r.text
    assert rotated["token"] != form["token"]


def test_web_form_rate_limit_and_validation(system: System) -> None:
    mark = uuid.uuid4().hex[:8]
    form = _form(system, mark, min_fill_seconds=0, ip_rate_per_minute=2)
    body = {"name": "李雷", "email": "li@example.cn", "subject": f"限流 {mark}", "body": "x"}
    r = _post(system, form, {**body, "email": "not-an-address"})
    assert r.status_code == 422 and "email" in r.json()["errors"], r.text
    r = _post(system, form, body)  # the 422 counted as the address's first post
    assert r.status_code == 202, r.text
    r = _post(system, form, body)
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    r = system.post("/forms/no-such-form/tickets", json={"token": "x", **body})
    assert r.status_code == 404, r.text


def test_merge_of_duplicate_tickets(system: System) -> None:
    mark = uuid.uuid4().hex[:8]
    rep = system.users["zhangwei"]
    target = _ok(system.post("/tickets", user="zhangwei", json={
        "subject": f"发票开错 {mark}", "requester_email": "wang@example.cn",
        "assignee_id": rep}), 201)
    source = _ok(system.post("/tickets", user="zhangwei", json={
        "subject": f"发票又错 {mark}", "requester_email": "li@example.cn",
        "description": f"重复报修 {mark}", "assignee_id": rep}), 201)
    other_team = _ok(system.post("/tickets", user="chenjing", json={
        "subject": f"别组的 {mark}", "requester_email": "c@example.cn",
        "assignee_id": system.users["chenjing"]}), 201)
    r = system.post(f"/tickets/{source['id']}/merge", user="zhangwei",
                    json={"into": other_team["id"]})
    assert r.status_code == 404, r.text  # a ticket out of sight is not found
    merged = _ok(system.post(f"/tickets/{source['id']}/merge", user="zhangwei",
                             json={"into": target["id"]}))
    assert merged["id"] == target["id"]
    closed = _ok(system.get(f"/tickets/{source['id']}", user="zhangwei"))
    assert (closed["status"], closed["merged_into_id"]) == ("closed", target["id"])
    assert closed["entries"][-2]["kind"] == "merged"
    note = _ok(system.get(f"/tickets/{target['id']}", user="zhangwei"))["entries"][-1]
    assert note["kind"] == "merged" and note["from"] == source["number"]
    assert "li@example.cn" in note["body"] and f"重复报修 {mark}" in note["body"]
    r = system.post(f"/tickets/{source['id']}/merge", user="zhangwei",
                    json={"into": other_team["id"]})
    assert r.status_code == 404, r.text
    r = system.post(f"/tickets/{target['id']}/merge", user="zhangwei",
                    json={"into": source["id"]})
    assert r.status_code == 412, r.text
    assert system.post(f"/tickets/{source['id']}/merge", user="zhangwei",
                       json={"into": target["id"]}).status_code == 200  # a repeat
