"""Notification templates run on a budget: output size, loop iterations and calls, time. What
exceeds it whatever the record is refused when the rule is saved; what exceeds it on a record
fails that render with a `BudgetExceeded` that says which part ran out (nothing is built first:
each case here would take gigabytes or minutes without the budget)."""

from __future__ import annotations

import time

import pytest

from services.rules.notify.templates import (
    MAX_OUTPUT_CHARS,
    MAX_RENDER_SECONDS,
    BudgetExceeded,
    TemplateError,
    check_template,
    render,
)

# refused at save time: they exceed the budget with no data at all
WHATEVER_THE_RECORD = [
    "{{ 'x' * 1000000 }}",
    "{{ 1000000 * 'x' }}",
    "{{ ['x'] * 10000000 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(20000) %}{% for j in range(20000) %}{% endfor %}{% endfor %}",
    "{% set ns = namespace(s='xxxxxxxxxx') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(s='xxxxxxxxxx') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "{% set ns = namespace(x=3) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}"
    "{% endfor %}{{ ns.x }}",
    "{{ 7 ** 100000 }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ 'x'.ljust(1000000000) }}",
    "{{ '%0999999999d'|format(1) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ ('x' * 20000)|list|join('y' * 20000) }}",
    "{{ ('x' * 20000)|replace('', 'yyyyyyyy') }}",
    "{{ lipsum(n=1000000) }}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% else %}x{% endif %}{% endmacro %}"
    "{{ f(40) }}",
    "{% for i in range(20000) %}{{ 'x' * 19999 }}{% endfor %}",
]


@pytest.mark.parametrize("template", WHATEVER_THE_RECORD)
def test_what_exceeds_the_budget_whatever_the_record_is_refused_at_save_time(template) -> None:
    problem = check_template(template)
    assert problem is not None and "budget" in problem, problem
    with pytest.raises(BudgetExceeded):
        render(template, {"lead": {"name": "张三"}})


def test_what_only_a_record_makes_too_large_fails_that_render_with_the_reason() -> None:
    template = "{{ lead.name * 100000 }}"
    assert check_template(template) is None  # an empty record renders nothing
    with pytest.raises(BudgetExceeded) as raised:
        render(template, {"lead": {"name": "张三"}})
    assert "over the template budget" in str(raised.value)
    assert str(MAX_OUTPUT_CHARS) in str(raised.value)


def test_the_budget_is_per_render() -> None:
    template = "{% for i in range(9000) %}{% endfor %}ok"
    for _ in range(3):  # 27,000 iterations in all, 9,000 in each render
        assert render(template, {}) == "ok"


def test_ordinary_templates_render_as_before() -> None:
    template = ("{{ lead.name }}{% if lead.company %}（{{ lead.company }}）{% endif %}"
                "{% for tag in lead.tags %}#{{ tag ~ '!' }}{% endfor %} {{ '%05d' % 42 }} "
                "{{ '{:>4}'.format(7) }} {{ lead.tags|join(',') }} {{ (lead.name ~ 'a') * 2 }}")
    assert render(template, {"lead": {"name": "张三", "company": "无锡精密",
                                      "tags": ["a", "b"]}}) == (
        "张三（无锡精密）#a!#b! 00042    7 a,b 张三a张三a")


def test_expandtabs_is_not_allowed() -> None:
    with pytest.raises(TemplateError):
        render("{{ ('\t' * 10000).expandtabs(10000) }}", {})


class _Descheduled:
    """A value whose rendering waits without using the CPU, as a render does when a loaded
    machine leaves the process without a core for a while."""

    def __init__(self, text: str, wait: float) -> None:
        self.text = text
        self.wait = wait

    def __str__(self) -> str:
        time.sleep(self.wait)
        return self.text


def test_the_time_budget_counts_the_renders_cpu_not_the_wall_clock() -> None:
    lead = {"name": _Descheduled("王芳", MAX_RENDER_SECONDS * 1.5)}
    rendered = render("新线索：{{ lead.name }}，请立即致电", {"lead": lead})
    assert rendered == "新线索：王芳，请立即致电"
