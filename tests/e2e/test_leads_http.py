"""Lead capture end to end: the whole system as processes, driven over HTTP."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e


def unique_lead(**overrides):
    tag = uuid.uuid4().hex[:8]
    lead = {
        "name": "王芳",
        "company": f"苏州{tag}精密机械有限公司",
        "title": "采购总监",
        "email": f"Wang.Fang.{tag}@Example.CN",
        "phone": f"+86 139{int(tag, 16) % 10**8:08d}",
        # Not "website": a shipped rule assigns website leads at once, and these tests
        # exercise the public pool (tests/e2e/test_rules_http.py covers the rule).
        "source": "referral",
        "region": "华东",
        "industry": "制造业",
        "product_interest": ["MES", "ERP 集成"],
        "attributes": {"employees": 800, "wechat": f"wf{tag}"},
    }
    lead.update(overrides)
    return lead


def assert_problem(response, status: int):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


def test_capture_normalises_scores_and_is_readable(system):
    data = unique_lead()
    created = system.post("/leads", user="admin", json=data)
    assert created.status_code == 201, created.text
    lead = created.json()
    assert lead["email"] == data["email"].lower()
    assert lead["phone"].startswith("+86139")
    assert lead["score"] > 0 and lead["status"] == "new" and lead["in_pool"] is True
    assert created.headers["Location"] == f"/leads/{lead['id']}"

    detail = system.get(f"/leads/{lead['id']}", user="admin").json()
    assert detail["score_breakdown"]["total"] == lead["score"]
    assert [entry["kind"] for entry in detail["history"]][-1] == "created"

    found = system.get("/leads", user="admin", params={"q": data["company"][2:8]}).json()
    assert [item["id"] for item in found["items"]] == [lead["id"]]


def test_duplicates_conflict_merge_or_create(system):
    data = unique_lead()
    first = system.post("/leads", user="admin", json=data).json()
    again = {**data, "email": data["email"].upper(), "name": "王芳 (展会)"}
    body = assert_problem(system.post("/leads", user="admin", json=again), 409)
    assert body["existing_id"] == first["id"]
    assert body["matches"][0]["exact"] is True

    merged = system.post("/leads", user="admin", params={"on_duplicate": "merge"},
                         json={**again, "attributes": {"budget": "80万"}})
    assert merged.status_code == 200, merged.text
    assert merged.json()["id"] == first["id"]
    assert merged.json()["attributes"]["budget"] == "80万"

    created = system.post("/leads", user="admin", params={"on_duplicate": "create"}, json=again)
    assert created.status_code == 201 and created.json()["id"] != first["id"]


def test_behaviours_rescore_and_qualify(system):
    lead = system.post("/leads", user="admin",
                       json=unique_lead(title="工程师", industry="零售")).json()
    for behaviour in ("requested_demo", "attended_webinar", "downloaded_whitepaper",
                      "visited_pricing_page"):
        response = system.post(f"/leads/{lead['id']}/behaviours", user="admin",
                               json={"type": behaviour})
        assert response.status_code == 201, response.text
    after = response.json()
    assert after["score"] > lead["score"]
    assert after["qualification"] in ("mql", "sql")
    detail = system.get(f"/leads/{lead['id']}", user="admin").json()
    assert {"scored", "qualified"} <= {entry["kind"] for entry in detail["history"]}


def test_scoring_model_is_configurable_and_explainable(system):
    model = system.get("/scoring-model", user="admin").json()
    tag = uuid.uuid4().hex[:6]
    model["attribute_rules"].append({"id": f"kw-{tag}", "field": "attributes.segment",
                                     "operator": "equals", "value": f"seg-{tag}",
                                     "points": 17, "group": None})
    assert system.put("/scoring-model", user="zhangwei", json=model).status_code == 403
    saved = system.put("/scoring-model", user="admin", json=model)
    assert saved.status_code == 200, saved.text
    lead = system.post("/leads", user="admin",
                       json=unique_lead(attributes={"segment": f"seg-{tag}"})).json()
    lines = system.get(f"/leads/{lead['id']}", user="admin").json()["score_breakdown"]["lines"]
    assert {"rule_id": f"kw-{tag}", "points": 17} .items() <= next(
        line for line in lines if line["rule_id"] == f"kw-{tag}").items()

    bad = {**model, "thresholds": {"mql": 90, "sql": 10}}
    body = assert_problem(system.put("/scoring-model", user="admin", json=bad), 422)
    assert any("thresholds" in field for field in body["errors"])


def test_public_pool_claim_release_and_visibility(system):
    lead = system.post("/leads", user="admin", json=unique_lead()).json()
    lead_id = lead["id"]
    assert system.get(f"/leads/{lead_id}", user="lina").status_code == 200, "pool is visible"

    claimed = system.post(f"/leads/{lead_id}/claim", user="zhangwei")
    assert claimed.status_code == 200 and claimed.json()["owner_id"] == system.users["zhangwei"]
    # Claimed by someone lina cannot see: hidden, so the same 404 as a missing lead.
    assert_problem(system.post(f"/leads/{lead_id}/claim", user="lina"), 404)
    assert_problem(system.get(f"/leads/{lead_id}", user="lina"), 404)
    assert_problem(system.get(f"/leads/{lead_id}", user="chenjing"), 404)
    assert system.get(f"/leads/{lead_id}", user="manager").status_code == 200, "team's lead"
    mine = system.get("/leads", user="zhangwei", params={"owner_id": system.users["zhangwei"]})
    assert lead_id in [item["id"] for item in mine.json()["items"]]
    theirs = system.get("/leads", user="lina", params={"in_pool": "false"}).json()["items"]
    assert lead_id not in [item["id"] for item in theirs]

    contacted = system.post(f"/leads/{lead_id}/status", user="zhangwei",
                            json={"status": "contacted"})
    assert contacted.json()["status"] == "contacted"
    released = system.post(f"/leads/{lead_id}/release", user="zhangwei",
                           json={"reason": "客户在华南"})
    assert released.status_code == 200 and released.json()["in_pool"] is True
    assert system.get(f"/leads/{lead_id}", user="chenjing").status_code == 200

    assigned = system.post(f"/leads/{lead_id}/assign", user="manager",
                           json={"owner_id": system.users["lina"]})
    assert assigned.status_code == 200 and assigned.json()["owner_id"] == system.users["lina"]
    assert_problem(system.post(f"/leads/{lead_id}/assign", user="zhangwei",
                               json={"owner_id": system.users["zhangwei"]}), 403)
    history = system.get(f"/leads/{lead_id}", user="admin").json()["history"]
    assert {"claimed", "status_changed", "released", "assigned"} <= {h["kind"] for h in history}


def test_status_rules_and_disqualification(system):
    lead = system.post("/leads", user="admin", json=unique_lead()).json()
    body = assert_problem(system.post(f"/leads/{lead['id']}/status", user="admin",
                                      json={"status": "disqualified"}), 422)
    assert "reason" in body["errors"]
    done = system.post(f"/leads/{lead['id']}/status", user="admin",
                       json={"status": "disqualified", "reason": "无预算"})
    assert done.json()["disqualify_reason"] == "无预算"
    assert_problem(system.post(f"/leads/{lead['id']}/status", user="admin",
                               json={"status": "disqualified", "reason": "again"}), 412)


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"name": 42, "source": "web", "email": "a@b.cn"}, {"name"}),
        ({"source": "web", "email": "a@b.cn"}, {"name"}),
        ({"name": "赵", "source": "web", "email": "not-an-email"}, {"email"}),
        ({"name": "赵", "source": "web", "phone": "12ab34"}, {"phone"}),
        ({"name": "赵", "source": "web", "email": "a@b.cn", "favourite": "red"}, {"favourite"}),
        ({"name": "赵", "source": "web"}, {"email"}),
    ],
)
def test_bad_input_is_a_422_naming_the_field(system, payload, fields):
    body = assert_problem(system.post("/leads", user="admin", json=payload), 422)
    assert fields <= set(body["errors"]), body


def test_malformed_and_oversize_bodies(system):
    response = system.post("/leads", user="admin", data="{not json",
                           headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    huge = unique_lead(attributes={"notes": "很" * 600_000})
    # The server answers before reading such a body and drops the connection: don't pool it.
    assert_problem(system.post("/leads", user="admin", json=huge,
                               headers={"Connection": "close"}), 413)


def test_authentication_and_idempotency(system):
    assert_problem(system.get("/leads"), 401)
    assert_problem(system.get("/leads", key="crm_not-a-key"), 401)
    data = unique_lead()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = system.post("/leads", user="admin", json=data, headers=key)
    again = system.post("/leads", user="admin", json=data, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = system.post("/leads", user="admin", json=unique_lead(), headers=key)
    assert_problem(other, 422)


def test_cursor_pagination_walks_every_lead_once(system):
    tag = uuid.uuid4().hex[:6]
    ids = {system.post("/leads", user="admin", params={"on_duplicate": "create"},
                       json=unique_lead(company=f"分页测试{tag}公司{index}号")).json()["id"]
           for index in range(5)}
    seen, cursor = [], None
    while True:
        params = {"q": f"分页测试{tag}", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = system.get("/leads", user="admin", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)


def test_docs_metrics_and_health(system):
    spec = system.get("/openapi.json").json()
    assert "/leads" in spec["paths"] and "/leads/{lead_id}/claim" in spec["paths"]
    assert system.get("/docs").status_code == 200
    assert system.get("/health").json()["status"] == "ok"
    gateway_families = scrape_metrics(system, "/metrics")
    assert "crm_gateway_http_requests" in gateway_families
    for name in system.services:
        address = system.info.spec(name).address
        health = system.get(f"http://{address}/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        families = scrape_metrics(system, f"http://{address}/metrics")
        # every service answered /health and ping RPCs by now, so the histogram has samples
        latency = families["crm_entrypoint_seconds"]
        assert latency.type == "histogram"
        assert {s.labels["service"] for s in latency.samples} == {name}, name


def scrape_metrics(system, url: str) -> dict:
    """The parsed Prometheus exposition at `url` by family name; fails unless it is a 200 in
    the text format (an error page that merely contains a metric's name does not pass)."""
    response = system.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def test_broker_unavailable_is_a_503_with_retry_after(system):
    with system.broker_unavailable():
        response = system.post("/leads", user="admin", json=unique_lead(), timeout=30)
        body = assert_problem(response, 503)
        assert int(response.headers["Retry-After"]) > 0
        assert body["detail"]
    recovered = system.wait_for(
        lambda: system.post("/leads", user="admin", json=unique_lead()).status_code == 201,
        timeout=30, interval=0.5, message="the gateway did not recover after the broker returned",
    )
    assert recovered


def test_service_down_is_a_503_and_nothing_runs_later(system):
    data = unique_lead()
    system.stop_service("leads")
    response = system.post("/leads", user="admin", json=data, timeout=30)
    assert_problem(response, 503)
    system.start_service("leads")
    # /health can answer a moment before the RPC consumer is up: until then, still a 503.
    listing = system.wait_for(
        lambda: (answer := system.get("/leads", user="admin", params={"q": data["company"]})
                 ).status_code == 200 and answer,
        timeout=30, interval=0.2, message="the leads service did not answer after its restart")
    assert listing.json()["items"] == [], "a request answered 503 must not run later"


def test_changes_reach_the_event_stream_once_with_the_request_correlation_id(system):
    """An integrator bound to `leads.events` sees each change once, in the envelope, carrying
    the correlation id of the HTTP request that caused it."""
    from kombu import Connection, Exchange, Queue

    queue = Queue(f"e2e-tap-{uuid.uuid4().hex}", Exchange("leads.events", type="topic",
                                                          durable=True),
                  routing_key="#", durable=False, auto_delete=False)
    with Connection(system.amqp_uri) as conn:
        queue.bind(conn.default_channel).declare()
        correlation_id = f"e2e-{uuid.uuid4()}"
        created = system.post("/leads", user="zhangwei", json=unique_lead(),
                              headers={"X-Correlation-ID": correlation_id})
        assert created.headers["X-Correlation-ID"] == correlation_id
        lead_id = created.json()["id"]
        system.post(f"/leads/{lead_id}/claim", user="zhangwei",
                    headers={"X-Correlation-ID": correlation_id})

        events = []
        simple = conn.SimpleQueue(queue)
        try:
            while True:
                try:
                    message = simple.get(block=True, timeout=3)
                except simple.Empty:
                    break
                events.append(message.payload)
                message.ack()
        finally:
            simple.close()
            queue.bind(conn.default_channel).delete()

    mine = [e for e in events if e["data"].get("lead", {}).get("id") == lead_id]
    assert [e["event_type"] for e in mine] == ["lead_created", "lead_claimed"]
    assert {e["correlation_id"] for e in mine} == {correlation_id}
    assert all(e["producer"] == "leads" and e["actor"] == system.users["zhangwei"] for e in mine)
    history = system.get(f"/leads/{lead_id}", user="zhangwei").json()["history"]
    assert {entry["correlation_id"] for entry in history} == {correlation_id}


def test_user_token_login_and_merge_of_two_stored_leads(system):
    login = system.post("/auth/tokens", json={"username": "manager", "password": "demo-password"})
    assert login.status_code == 201, login.text
    token = login.json()["token"]
    assert_problem(system.post("/auth/tokens",
                               json={"username": "manager", "password": "wrong"}), 401)

    first = system.post("/leads", key=token, json=unique_lead()).json()
    second = system.post("/leads", key=token, params={"on_duplicate": "create"},
                         json=unique_lead(attributes={"wechat": "wf-second"})).json()
    system.post(f"/leads/{second['id']}/behaviours", key=token, json={"type": "attended_webinar"})
    merged = system.post(f"/leads/{first['id']}/merge", key=token,
                         json={"source_id": second["id"]})
    assert merged.status_code == 200, merged.text
    assert merged.json()["attributes"]["wechat"] == first["attributes"]["wechat"], "kept"
    source = system.get(f"/leads/{second['id']}", key=token).json()
    assert source["merged_into_id"] == first["id"]
    target = system.get(f"/leads/{first['id']}", key=token).json()
    assert "attended_webinar" in {b["type"] for b in target["behaviours"]}
    assert_problem(system.post(f"/leads/{first['id']}/merge", key=token,
                               json={"source_id": second["id"]}), 409)
    assert_problem(system.get("/leads/no-such-lead", key=token), 404)
