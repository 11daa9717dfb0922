"""Quote PDFs from print templates: Chinese text embedded with a CJK font, page numbers, sandbox."""

import io

import pytest
from pypdf import PdfReader

from services.contracts.printing import (
    DEFAULT_TEMPLATE,
    TemplateInvalid,
    render_html,
    render_pdf,
    sample_quote,
    validate_template,
)

COMPANY = {"name": "示例软件有限公司", "address": "上海市浦东新区世纪大道1号", "phone": "021-5555"}


def text_of(pdf: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def font_names(reader: PdfReader) -> set[str]:
    names = set()
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            names.add(str(font.get("/BaseFont")))
            for descendant in font.get("/DescendantFonts") or []:
                descriptor = descendant.get_object()["/FontDescriptor"].get_object()
                assert "/FontFile2" in descriptor or "/FontFile3" in descriptor  # embedded
                names.add(str(descriptor["/FontName"]))
    return names


def test_default_template_embeds_chinese_text_with_a_cjk_font():
    quote = sample_quote(3)
    reader, text = text_of(render_pdf(DEFAULT_TEMPLATE, quote, COMPANY))
    compact = text.replace(" ", "")
    for expected in ("报价单", "示例软件有限公司", "上海示例科技有限公司", "企业版软件许可",
                     "实施服务", "人天", "价税合计", "陆仟壹佰零贰元整", "BJ-2026-000001",
                     "6102.00", "软件与服务", "含一年维护"):
        assert expected in compact, expected
    names = font_names(reader)
    assert any("WenQuanYi" in n or "Noto" in n and "CJK" in n for n in names), names


def test_a_two_page_quote_numbers_its_pages():
    reader, _ = text_of(render_pdf(DEFAULT_TEMPLATE, sample_quote(40), COMPANY))
    assert len(reader.pages) == 2
    pages = [p.extract_text().replace(" ", "") for p in reader.pages]
    assert "第1页/共2页" in pages[0]
    assert "第2页/共2页" in pages[1]
    assert "大写金额" in pages[1] and "大写金额" not in pages[0]


@pytest.mark.parametrize("body", [
    "{{ quote.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ quote.lines.append.__self__ }}",
    "{% for x in range.__globals__ %}{% endfor %}",
])
def test_the_sandbox_refuses_unsafe_templates(body):
    with pytest.raises(TemplateInvalid) as err:
        validate_template(body, COMPANY)
    assert "SecurityError" in str(err.value) or "Undefined" in str(err.value)


def test_a_template_that_does_not_render_is_refused_with_the_error():
    with pytest.raises(TemplateInvalid, match="TemplateSyntaxError"):
        validate_template("<p>{% for l in quote.lines %}</p>", COMPANY)
    with pytest.raises(TemplateInvalid, match="no_such_field"):
        validate_template("<p>{{ quote.no_such_field }}</p>", COMPANY)


def test_values_are_html_escaped_and_external_resources_refused():
    quote = sample_quote(1) | {"customer_name": "<b>客户</b>"}
    assert "&lt;b&gt;客户&lt;/b&gt;" in render_html("{{ quote.customer_name }}", quote, COMPANY)
    pdf = render_pdf('<img src="file:///etc/passwd"><p>正文</p>', quote, COMPANY)
    assert "正文" in text_of(pdf)[1]
