"""Print templates end to end over HTTP: an admin creates one (others get 403), a template that
does not render is a 422 at `body`, the preview is an application/pdf whose text (parsed with
pypdf) holds the Chinese sample quote rendered with the template; update and list."""

from __future__ import annotations

import io
import uuid

import pytest
from pypdf import PdfReader

from tests.e2e.system import System

pytestmark = pytest.mark.e2e


def _ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def test_print_template_preview_over_http(system: System) -> None:
    name = f"报价模板-{uuid.uuid4().hex[:6]}"
    body = ("<h1>报价单 {{ quote.number }}</h1><p>{{ quote.customer_name }}</p>"
            "{% for l in quote.lines %}<p>{{ l.product_name }} {{ l.total }}</p>{% endfor %}"
            "<p>大写：{{ quote.amount_in_words }}</p>")
    template = {"name": name, "body": body}
    assert system.post("/print-templates", user="manager", json=template).status_code == 403
    assert system.get("/print-templates", user="manager").status_code == 403
    bad = system.post("/print-templates", user="admin",
                      json={"name": name, "body": "{{ ''.__class__ }}"})
    assert bad.status_code == 422 and "body" in bad.json()["errors"], bad.text
    created = _ok(system.post("/print-templates", user="admin", json=template), 201)
    assert created["name"] == name and created["version"] == 1 and created["body"] == body

    preview = system.post(f"/print-templates/{created['id']}/preview", user="admin")
    assert preview.status_code == 200, preview.text
    assert preview.headers["Content-Type"] == "application/pdf"
    assert preview.content.startswith(b"%PDF-")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(preview.content)).pages)
    text = text.replace(" ", "")
    for expected in ("报价单BJ-2026-000001", "上海示例科技有限公司", "企业版软件许可2034.00",
                     "大写：陆仟壹佰零贰元整"):
        assert expected in text, text
    assert system.post(f"/print-templates/{created['id']}/preview",
                       user="manager").status_code == 403
    assert system.post("/print-templates/nope/preview", user="admin").status_code == 404

    updated = _ok(system.put(f"/print-templates/{created['id']}", user="admin",
                             json={"name": name, "body": "<p>新版 {{ quote.number }}</p>",
                                   "is_default": True}))
    assert updated["version"] == 2 and updated["is_default"] is True
    assert _ok(system.get(f"/print-templates/{created['id']}", user="admin"))["version"] == 2
    listed = _ok(system.get("/print-templates?record_type=quote", user="admin"))["items"]
    assert [t["id"] for t in listed if t["is_default"]] == [created["id"]]
    bad_put = system.put(f"/print-templates/{created['id']}", user="admin",
                         json={"name": name, "body": "{% if %}"})
    assert bad_put.status_code == 422 and "body" in bad_put.json()["errors"]
    # Other tests print quotes with the shipped default: this one's stops being the default.
    restored = _ok(system.put(f"/print-templates/{created['id']}", user="admin",
                              json={"name": name, "body": "<p>新版 {{ quote.number }}</p>",
                                    "is_default": False}))
    assert restored["is_default"] is False
