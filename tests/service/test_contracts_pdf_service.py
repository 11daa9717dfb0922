"""The print-template entrypoints of the contracts service (worker_factory, SQLite and PostgreSQL):
create/list/get/update, refusal at save with the error at `body`, one default per record type,
preview and quote PDFs as base64 with the Chinese text in them."""

from __future__ import annotations

import base64
import io

import pytest
from pypdf import PdfReader

from services.contracts.contract import EVENT_SCHEMAS
from services.contracts.models import outbox
from services.contracts.printing import sample_quote
from services.contracts.service import ContractsService
from shared.context import Context
from shared.db import get_engine
from shared.errors import NotFound, ValidationFailed
from tests.service.workers import migrated_database, service_worker

BODY = "<p>报价 {{ quote.number }} {{ company.name }} {{ quote.customer_name }}</p>"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    return migrated_database(request, tmp_path, "contracts")


@pytest.fixture
def service(database_url, monkeypatch):
    monkeypatch.setenv("CRM_COMPANY_NAME", "杭州测试公司")
    return service_worker(ContractsService, get_engine(database_url), outbox, EVENT_SCHEMAS,
                          Context(correlation_id="corr-1", actor="admin"))


def text(b64: str) -> str:
    reader = PdfReader(io.BytesIO(base64.b64decode(b64)))
    return "".join(p.extract_text() for p in reader.pages).replace(" ", "")


def test_create_list_get_update(service):
    row = service.create_print_template({"name": "简版", "body": BODY})
    assert row["record_type"] == "quote" and row["version"] == 1 and not row["is_default"]
    assert service.get_print_template(row["id"])["body"] == BODY
    assert [t["id"] for t in service.list_print_templates("quote")] == [row["id"]]
    updated = service.update_print_template(row["id"],
                                            {"name": "简版2", "body": BODY + "<p>新</p>"})
    assert updated["version"] == 2 and updated["name"] == "简版2"
    assert service.get_print_template(row["id"])["body"].endswith("<p>新</p>")
    with pytest.raises(NotFound):
        service.get_print_template("nope")


@pytest.mark.parametrize("body, message", [
    ("{% for l in quote.lines %}", "TemplateSyntaxError"),
    ("{{ quote.nothing_here }}", "nothing_here"),
    ("{{ ''.__class__.__mro__ }}", "SecurityError"),
])
def test_a_template_that_fails_to_render_is_refused_at_body(service, body, message):
    with pytest.raises(ValidationFailed) as err:
        service.create_print_template({"name": "坏", "body": body})
    assert message in " ".join(err.value.errors["body"])
    assert service.list_print_templates() == []
    row = service.create_print_template({"name": "好", "body": BODY})
    with pytest.raises(ValidationFailed) as err:
        service.update_print_template(row["id"], {"name": "好", "body": body})
    assert "body" in err.value.errors
    assert service.get_print_template(row["id"])["body"] == BODY


def test_unknown_fields_are_refused(service):
    with pytest.raises(ValidationFailed) as err:
        service.create_print_template({"name": "x", "body": BODY, "colour": "red"})
    assert "colour" in err.value.errors


def test_one_default_per_record_type_and_quote_pdfs_use_it(service):
    shipped = text(service.render_quote_pdf(sample_quote(3)))
    assert "报价单" in shipped and "陆仟壹佰零贰元整" in shipped and "杭州测试公司" in shipped
    first = service.create_print_template({"name": "一", "body": BODY, "is_default": True})
    second = service.create_print_template({"name": "二", "body": "<p>第二 {{ quote.number }}</p>",
                                            "is_default": True})
    defaults = [t["id"] for t in service.list_print_templates() if t["is_default"]]
    assert defaults == [second["id"]]
    assert "第二BJ-2026-000001" in text(service.render_quote_pdf(sample_quote(1)))
    assert "杭州测试公司" in text(service.render_quote_pdf(sample_quote(1), first["id"]))


def test_preview_renders_the_sample_quote(service):
    row = service.create_print_template({"name": "简版", "body": BODY})
    assert text(service.preview_print_template(row["id"])) == (
        "报价BJ-2026-000001杭州测试公司上海示例科技有限公司")
