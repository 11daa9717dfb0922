"""Message templates written by administrators: Jinja2 in its sandbox.

Templates are user input, so they run in `SandboxedEnvironment` (no access to dunder attributes,
no unsafe callables). Missing values render empty and so do attributes of missing values
(`{{ lead.owner.name }}` when the lead has no owner), because a notification with a blank is
better than no notification. Output is plain text: no HTML escaping.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

__all__ = ["TemplateError", "check_template", "render"]

MAX_TEMPLATE_LENGTH = 20_000

_environment = SandboxedEnvironment(
    autoescape=False,
    undefined=ChainableUndefined,
    keep_trailing_newline=True,
)


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered; the message says where and why."""


def _syntax_message(error: TemplateSyntaxError) -> str:
    # Jinja reports lines, not columns.
    where = f"line {error.lineno}" if error.lineno else "template"
    return f"{where}: {error.message or error}"


@lru_cache(maxsize=512)
def _compiled(template: str) -> Template:
    return _environment.from_string(template)


def _compile(template: object) -> Template:
    if not isinstance(template, str):
        raise TemplateError(f"a template must be a string, not {type(template).__name__}")
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"a template is at most {MAX_TEMPLATE_LENGTH} characters long")
    try:
        return _compiled(template)
    except TemplateSyntaxError as error:
        raise TemplateError(_syntax_message(error)) from None


def check_template(template: str) -> str | None:
    """None for a template that compiles, else what is wrong and on which line (e.g.
    "line 2: unexpected '}'"). Unknown filters and tests count as errors."""
    try:
        _compile(template)
    except TemplateError as error:
        return str(error)
    return None


def render(template: str, context: dict[str, Any]) -> str:
    """The template rendered with `context`; `TemplateError` when it cannot be compiled or
    rendered (a syntax error, a forbidden attribute, a failing filter)."""
    compiled = _compile(template)
    try:
        return compiled.render(context or {})
    except SecurityError as error:
        raise TemplateError(f"not allowed in a template: {error}") from None
    except TemplateSyntaxError as error:
        raise TemplateError(_syntax_message(error)) from None
    except (JinjaTemplateError, ArithmeticError, TypeError, ValueError, LookupError) as error:
        line = _error_line(error)
        raise TemplateError(f"{line}cannot render: {error}") from None


def _error_line(error: BaseException) -> str:
    """"line N: " of the template's frame in the traceback, when Jinja left one."""
    traceback = error.__traceback__
    lineno = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            lineno = traceback.tb_lineno
        traceback = traceback.tb_next
    return f"line {lineno}: " if lineno else ""
