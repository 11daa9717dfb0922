"""Message templates written by administrators and managers: Jinja2 in its sandbox, on a budget.

Templates are user input, so they run in a `SandboxedEnvironment` (no access to dunder
attributes, no unsafe callables). Missing values render empty and so do attributes of missing
values (`{{ lead.owner.name }}` when the lead has no owner), because a notification with a blank
is better than no notification. Output is plain text: no HTML escaping.

The sandbox bounds what a template may reach, not what it may cost, so every render has a
budget (`BudgetExceeded`, a `TemplateError`, says which part ran out):
- the rendered text and every value built on the way (`'x' * n`, `~`, `+`, `%`, filters,
  string methods) at most `MAX_OUTPUT_CHARS` characters; numbers given to filters and
  methods (widths, counts) at most as large; integers at most `MAX_INT_BITS` bits;
- loop iterations and calls (macros, methods) at most `MAX_STEPS` in one render;
- at most `MAX_RENDER_SECONDS` of CPU time.
A value is refused before it is built where its size can be foreseen. `check_template` also
renders the template once with no data, so that what exceeds the budget whatever the record
(`{{ 'x' * 1000000 }}`, nested loops over large ranges) is refused when the rule is saved.
"""

from __future__ import annotations

import contextvars
import functools
import re
import string
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, nodes, pass_context
from jinja2.compiler import CodeGenerator
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

__all__ = ["BudgetExceeded", "TemplateError", "check_template", "render"]

MAX_TEMPLATE_LENGTH = 20_000
MAX_OUTPUT_CHARS = 20_000
MAX_STEPS = 10_000
MAX_RENDER_SECONDS = 0.25
MAX_INT_BITS = 4_096
# printf-style and format-spec widths and precisions ("%09999d", "{:>9999}")
_PRINTF_NUMBERS = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d+))?")
_DIGITS = re.compile(r"\d+")
_STRING_METHODS_REFUSED = frozenset({"expandtabs"})  # "\t" * n expands n-fold per tab


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered; the message says where and why."""


class BudgetExceeded(TemplateError):
    """A render that would cost more than its budget (size, steps or time)."""


class _Budget:
    """The time is the CPU time of this thread, not the wall clock: a render never yields, so
    that is the template's own cost, while a loaded machine that leaves the process waiting
    for a core (or another thread holding it) must not fail a trivial template for good (the
    fault suite saw "{{ lead.name }}" refused after 0.25 s, and its notification lost)."""

    __slots__ = ("deadline", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.thread_time() + MAX_RENDER_SECONDS

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > MAX_STEPS:
            raise BudgetExceeded(
                f"more than {MAX_STEPS} loop iterations and calls in one render")
        if time.thread_time() > self.deadline:
            raise BudgetExceeded(f"rendering took more than {MAX_RENDER_SECONDS:g} s")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # outside render(): constant folding while compiling
        budget = _Budget()
    return budget


def _size(length: int, what: str = "a value") -> None:
    if length > MAX_OUTPUT_CHARS:
        raise BudgetExceeded(
            f"{what} of {length} characters or items is more than {MAX_OUTPUT_CHARS}")


def _sized(value: Any, what: str = "a value") -> Any:
    if isinstance(value, str | list | tuple | dict | set | bytes):
        _size(len(value), what)
    elif isinstance(value, int) and not isinstance(value, bool) and (
            value.bit_length() > MAX_INT_BITS):
        raise BudgetExceeded(f"{what}: a number of more than {MAX_INT_BITS} bits")
    return value


def _number_argument(value: Any, what: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT_CHARS:
        raise BudgetExceeded(f"{what}: {value} is more than {MAX_OUTPUT_CHARS}")


def _printf_widths(text: str, what: str) -> None:
    for match in _PRINTF_NUMBERS.finditer(text):
        for number in match.groups():
            if number and int(number) > MAX_OUTPUT_CHARS:
                raise BudgetExceeded(f"{what}: a width of {number} is more than "
                                     f"{MAX_OUTPUT_CHARS}")


def _join_length(items: Any, separator: str) -> None:
    total = 0
    for index, item in enumerate(items):
        total += len(str(item)) + (len(separator) if index else 0)
        _size(total, "a joined text")


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose numeric arguments and result are within the budget; `join`, `replace`,
    `indent` and `format` are checked before they build their text."""
    skip = 2 if hasattr(func, "jinja_pass_arg") else 1  # (context,) subject, arguments...
    what = f"the filter {name!r}"

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _budget().step()
        for value in (*args[skip:], *kwargs.values()):
            _number_argument(value, what)
        subject = args[skip - 1] if len(args) >= skip else None
        if name == "join" and not isinstance(subject, str | bytes):
            separator = args[skip] if len(args) > skip else kwargs.get("d", "")
            items = list(subject) if subject is not None else []
            _size(len(items), what)
            _join_length(items, str(separator))
        elif name == "replace" and isinstance(subject, str):
            old = str(args[skip] if len(args) > skip else kwargs.get("old", ""))
            new = str(args[skip + 1] if len(args) > skip + 1 else kwargs.get("new", ""))
            times = len(subject) + 1 if not old else subject.count(old)
            _size(len(subject) + times * max(len(new) - len(old), 0), what)
        elif name == "indent" and isinstance(subject, str):
            width = args[skip] if len(args) > skip else kwargs.get("width", 4)
            _size(len(subject) + (subject.count("\n") + 1) * (
                len(width) if isinstance(width, str) else int(width or 0)), what)
        elif name == "format" and isinstance(subject, str):
            _printf_widths(subject, what)
        return _sized(func(*args, **kwargs), f"the result of {what}")

    return guarded


def _safe_range(*args: int) -> range:
    for value in args:
        _number_argument(value, "range()")
    numbers = range(*args)
    _size(len(numbers), "range()")
    return numbers


@pass_context
def _budget_loop(context: Any, iterable: Any) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


@pass_context
def _budget_concat(context: Any, parts: tuple[Any, ...]) -> str:
    _join_length(parts, "")
    return "".join(str(part) for part in parts)


class _BudgetCodeGenerator(CodeGenerator):
    """Compiles every `{% for %}` to iterate through `_budget_loop` and every `~` through
    `_budget_concat`, which count and size what the template does."""

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        for loop in node.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_budget_loop", [], [], None, None,
                                     lineno=loop.lineno)
        for concat in list(node.find_all(nodes.Concat)):
            replacement = nodes.Filter(nodes.Tuple(concat.nodes, "load", lineno=concat.lineno),
                                       "_budget_concat", [], [], None, None,
                                       lineno=concat.lineno)
            _replace(node, concat, replacement)
        super().visit_Template(node, frame)


def _replace(tree: nodes.Node, old: nodes.Node, new: nodes.Node) -> None:
    for parent in tree.find_all(nodes.Node):
        for name in parent.fields:
            value = getattr(parent, name, None)
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list) and any(item is old for item in value):
                setattr(parent, name, [new if item is old else item for item in value])
                return


class BudgetedEnvironment(SandboxedEnvironment):
    code_generator_class = _BudgetCodeGenerator
    # Also keeps them from being folded while compiling: `'x' * 10**9` is not built then.
    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _budget().step()
        what = f"the operator {operator!r}"
        sequences = str | list | tuple | bytes
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, sequences) and isinstance(times, int):
                    _size(len(seq) * max(times, 0), f"the result of {what}")
            if isinstance(left, int) and isinstance(right, int):
                _sized(1 << min(left.bit_length() + right.bit_length(), MAX_INT_BITS + 1), what)
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(left.bit_length() - 1, 0) * right > MAX_INT_BITS or right > MAX_INT_BITS:
                if abs(left) > 1:
                    raise BudgetExceeded(f"{what}: a number of more than {MAX_INT_BITS} bits")
        elif operator == "+" and isinstance(left, sequences) and isinstance(right, sequences):
            _size(len(left) + len(right), f"the result of {what}")
        elif operator == "%" and isinstance(left, str):
            _printf_widths(left, what)
            for value in right if isinstance(right, tuple) else (right,):
                _number_argument(value, what)
        return _sized(super().call_binop(context, operator, left, right),
                      f"the result of {what}")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _budget().step()
        name = getattr(__obj, "__name__", "a call")
        what = f"{name}()"
        for value in (*args, *kwargs.values()):
            _number_argument(value, what)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            if name in _STRING_METHODS_REFUSED:
                raise SecurityError(f"str.{name} is not allowed in a template")
            if name == "join" and args:
                _join_length(list(args[0]), owner)
            elif name == "replace" and len(args) >= 2:
                old, new = str(args[0]), str(args[1])
                times = len(owner) + 1 if not old else owner.count(old)
                _size(len(owner) + times * max(len(new) - len(old), 0), what)
        return _sized(super().call(__context, __obj, *args, **kwargs), f"the result of {what}")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map`, with their widths checked before they run."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text = value.__self__

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            try:
                parsed = list(string.Formatter().parse(text))
            except ValueError as error:
                raise TemplateError(f"cannot format: {error}") from None
            for _, _, spec, _ in parsed:
                for number in _DIGITS.findall(spec or ""):
                    if int(number) > MAX_OUTPUT_CHARS:
                        raise BudgetExceeded(f"str.format: a width of {number} is more "
                                             f"than {MAX_OUTPUT_CHARS}")
            return _sized(wrapped(*args, **kwargs), "str.format()")

        return checked


_environment = BudgetedEnvironment(
    autoescape=False,
    undefined=ChainableUndefined,
    keep_trailing_newline=True,
)
_environment.filters = {name: _guard_filter(name, func) for name, func in DEFAULT_FILTERS.items()}
_environment.filters["_budget_loop"] = _budget_loop
_environment.filters["_budget_concat"] = _budget_concat
_environment.globals["range"] = _safe_range


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
    "line 2: unexpected '}'"). Unknown filters and tests count as errors, and so does a
    template that exceeds its budget even with no data (a render with an empty record)."""
    try:
        _compile(template)
    except TemplateError as error:
        return str(error)
    try:
        render(template, {})
    except BudgetExceeded as error:
        return str(error)
    except TemplateError:
        pass  # other failures depend on the record (a filter given an empty value)
    return None


def render(template: str, context: dict[str, Any]) -> str:
    """The template rendered with `context`; `TemplateError` when it cannot be compiled or
    rendered (a syntax error, a forbidden attribute, a failing filter), `BudgetExceeded` when
    it would cost more than its budget. The text is streamed and counted as it is made."""
    compiled = _compile(template)
    budget = _Budget()
    token = _BUDGET.set(budget)
    try:
        parts: list[str] = []
        length = 0
        for chunk in compiled.generate(context or {}):
            length += len(chunk)
            _size(length, "the rendered text")
            budget.step(0)
            parts.append(chunk)
        return "".join(parts)
    except BudgetExceeded as error:
        line = _error_line(error)
        raise BudgetExceeded(f"{line}over the template budget: {error}") from None
    except SecurityError as error:
        raise TemplateError(f"not allowed in a template: {error}") from None
    except TemplateSyntaxError as error:
        raise TemplateError(_syntax_message(error)) from None
    except (JinjaTemplateError, ArithmeticError, TypeError, ValueError, LookupError,
            RecursionError, MemoryError) as error:
        line = _error_line(error)
        raise TemplateError(f"{line}cannot render: {error}") from None
    finally:
        _BUDGET.reset(token)


def _error_line(error: BaseException) -> str:
    """"line N: " of the template's frame in the traceback, when Jinja left one."""
    traceback = error.__traceback__
    lineno = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            lineno = traceback.tb_lineno
        traceback = traceback.tb_next
    return f"line {lineno}: " if lineno else ""
