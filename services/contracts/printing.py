"""Quote PDFs from print templates (打印模板): HTML+CSS in a Jinja2 sandbox, rendered by WeasyPrint.

A template is user input (an admin edits it), so it renders in a `SandboxedEnvironment`:
no dunder attributes, no unsafe callables; `validate_template` renders it against the sample
quote and refuses it (TemplateInvalid with the message) when that fails.

Fonts: the CSS asks for CJK families from the OS packages (WenQuanYi Zen Hei, Noto Sans CJK;
deploy/devctl.py installs them). WeasyPrint subsets the embedded font with HarfBuzz's
libharfbuzz-subset when it is present (milliseconds); without it fontTools subsets a 17 MB CJK
font in pure Python (seconds per document).
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

CJK_FONTS = '"WenQuanYi Zen Hei", "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif'

DEFAULT_TEMPLATE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><style>
@page { size: A4; margin: 22mm 15mm 18mm 15mm;
  @top-center { content: "{{ company.name }}"; font-size: 9pt; color: #555; }
  @bottom-center { content: "第 " counter(page) " 页 / 共 " counter(pages) " 页";
    font-size: 9pt; } }
body { font-family: FONTS; font-size: 10pt; }
h1 { font-size: 16pt; text-align: center; margin: 0 0 4mm; }
.head td { padding: 1mm 2mm; }
table.lines { width: 100%; border-collapse: collapse; margin-top: 4mm; }
table.lines th, table.lines td { border: 0.5pt solid #999; padding: 1mm 1.5mm; }
table.lines thead { display: table-header-group; }
td.n { text-align: right; }
tr.section td { background: #eee; font-weight: bold; }
.totals { margin-top: 4mm; width: 60%; margin-left: 40%; }
.totals td { padding: 1mm 2mm; } .totals td.n { text-align: right; }
</style></head><body>
<div class="company">{{ company.name }}{% if company.address %} · {{ company.address }}{% endif %}
{% if company.phone %} · 电话 {{ company.phone }}{% endif %}</div>
<h1>报价单</h1>
<table class="head">
<tr><td>报价单号：{{ quote.number }}（第 {{ quote.version }} 版）</td>
<td>客户：{{ quote.customer_name }}</td></tr>
<tr><td>有效期至：{{ quote.valid_until }}</td><td>币种：人民币（元）</td></tr>
</table>
<table class="lines"><thead><tr><th>序号</th><th>产品编码</th><th>产品名称</th><th>单位</th>
<th>数量</th><th>单价</th><th>折扣</th><th>税率</th><th>金额</th><th>税额</th><th>价税合计</th></tr></thead>
<tbody>{% for line in quote.lines %}
{% if line.section %}<tr class="section"><td colspan="11">{{ line.section }}</td></tr>{% endif %}
<tr><td>{{ loop.index }}</td><td>{{ line.product_code }}</td><td>{{ line.product_name }}
{% if line.note %}<br><small>{{ line.note }}</small>{% endif %}</td><td>{{ line.unit }}</td>
<td class="n">{{ line.quantity }}</td><td class="n">{{ line.unit_price }}</td>
<td class="n">{{ line.discount }}</td><td class="n">{{ line.tax_rate }}</td>
<td class="n">{{ line.net }}</td><td class="n">{{ line.tax }}</td>
<td class="n">{{ line.total }}</td></tr>
{% endfor %}</tbody></table>
<table class="totals">
<tr><td>不含税金额</td><td class="n">¥{{ quote.totals.net }}</td></tr>
<tr><td>税额</td><td class="n">¥{{ quote.totals.tax }}</td></tr>
<tr><td>价税合计</td><td class="n">¥{{ quote.totals.total }}</td></tr>
<tr><td>大写金额</td><td class="n">{{ quote.amount_in_words }}</td></tr>
</table>
</body></html>
""".replace("FONTS", CJK_FONTS)


class TemplateInvalid(ValueError):
    """The template does not render; str() is the message for the `body` field."""


_env = SandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


def render_html(body: str, quote: dict[str, Any], company: dict[str, Any]) -> str:
    try:
        company = {"name": "", "address": "", "phone": "", "tax_number": "", **company}
        return _env.from_string(body).render(quote=quote, company=company)
    except TemplateError as exc:  # SecurityError, UndefinedError, TemplateSyntaxError ...
        raise TemplateInvalid(f"{type(exc).__name__}: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateInvalid(f"{type(exc).__name__}: {exc}") from exc


def html_to_pdf(html: str) -> bytes:
    from weasyprint import HTML  # imported late: loads pango through cffi

    # no base_url and a fetcher that refuses everything: a template cannot read files or URLs
    return HTML(string=html, url_fetcher=_refuse_fetch).write_pdf()


def _refuse_fetch(url: str, *args: Any, **kwargs: Any) -> dict:
    raise ValueError(f"templates may not load external resources ({url})")


def render_pdf(body: str, quote: dict[str, Any], company: dict[str, Any]) -> bytes:
    return html_to_pdf(render_html(body, quote, company))


def validate_template(body: str, company: dict[str, Any]) -> None:
    """Refuse a template that does not render against the sample quote (TemplateInvalid)."""
    render_pdf(body, sample_quote(), company)


def sample_quote(lines: int = 3) -> dict[str, Any]:
    products = [("P-1001", "企业版软件许可", "套", "13%"), ("S-2001", "实施服务", "人天", "6%"),
                ("H-3001", "服务器硬件", "台", "13%")]
    rows = []
    for i in range(lines):
        code, name, unit, rate = products[i % len(products)]
        rows.append({"product_code": f"{code}-{i + 1}", "product_name": name, "unit": unit,
                     "quantity": "2", "unit_price": "1000.00", "discount": "10%",
                     "tax_rate": rate, "net": "1800.00", "tax": "234.00", "total": "2034.00",
                     "section": "软件与服务" if i == 0 else None,
                     "note": "含一年维护" if i == 0 else None})
    total = 2034 * lines
    return {"id": "sample", "number": "BJ-2026-000001", "version": 1,
            "customer_name": "上海示例科技有限公司", "lines": rows,
            "totals": {"net": f"{1800 * lines}.00", "tax": f"{234 * lines}.00",
                       "total": f"{total}.00"},
            "amount_in_words": "陆仟壹佰零贰元整" if lines == 3 else "（示例）",
            "valid_until": "2026-12-31"}
