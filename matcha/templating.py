"""Jinja2 templates for steps (``generate`` prompts, ``map`` fields): sandboxed and bounded.

A template comes from a pipeline file and is rendered once per record, so a mistake in it (a loop
that never ends, ``'x' * 10**9``) must cost one quarantined record, not a hung or swapped-out run.
Templates run in Jinja2's ``ImmutableSandboxedEnvironment``: no Python internals, and no changing
the record's lists and dicts (``tags.append('x')`` fails). Rendering is bounded by :class:`Limits`:

* **time**: one second of wall clock per render, checked on every line of template code
  (``sys.settrace``, line events for template frames only) and on every call, operator and filter,
  so both template loops and slow Python code they call are stopped;
* **size**: output is streamed and stopped past 1,000,000 characters; operators (``*`` ``**`` ``%``
  ``+`` ``~``), filters and calls that would build a larger value are refused *before* they
  allocate it where the size can be foreseen (repetition, padding, ``replace``, ``join``,
  formatting), and checked right after otherwise;
* **numbers**: integers up to 100,000 bits (about 30,000 digits);
* **depth**: a macro calling itself, or a template nested too deeply to parse, is reported.

Every failure, limit or plain template mistake, raises one :class:`TemplateError` whose message
says what went wrong and how to fix the template.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
import string
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from types import FrameType
from typing import Any

import jinja2
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Concat
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

from matcha.errors import StepError

__all__ = ["LIMITS", "Limits", "TemplateError", "compile_template", "render"]


class TemplateError(StepError):
    """A template could not be compiled or rendered. ``hint`` says how to fix the template."""

    def __init__(self, message: str, hint: str = ""):
        self.message = message.rstrip(".")
        self.hint = hint
        super().__init__(f"{self.message}. {hint}" if hint else self.message)


@dataclass(frozen=True)
class Limits:
    """How much one render may take."""

    seconds: float = 1.0  # wall clock; normal templates render in well under a millisecond
    chars: int = 1_000_000  # the output, and any one value the template builds on the way
    int_bits: int = 100_000  # about 30,000 decimal digits


LIMITS = Limits()
_TEMPLATE_FILE = "<template>"  # co_filename of the code Environment.from_string compiles
_SHORTEN = "Shorten the input first, e.g. {{ text|truncate(10000) }}, or repeat or pad less"


# --- the render in progress (limits, deadline) -------------------------------------------------
# Rendering is traced, and tracing makes every Python call cost more: the hooks below keep their
# own calls few (one context-var lookup, a clock read, fast paths for plain strings).


class _Render:
    def __init__(self, limits: Limits, deadline: float):
        self.limits = limits
        self.deadline = deadline

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateError(
                f"template took longer than {self.limits.seconds:g} s to render, the limit",
                "A loop is probably too large or a macro keeps calling itself; loop over fewer items "
                "(e.g. {% for x in items[:100] %}) or simplify the template",
            )

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        """Global tracer, called as each frame starts: only template frames get line events."""
        if time.monotonic() > self.deadline:  # also stops slow Python code a template calls (textwrap)
            self.check_time()
        return self._trace_lines if frame.f_code.co_filename == _TEMPLATE_FILE else None

    def _trace_lines(self, frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > self.deadline:
            self.check_time()
        return self._trace_lines


# Outside render() (compile-time constant folding) the size limits apply, the clock does not.
_IDLE = _Render(LIMITS, math.inf)
_CURRENT: contextvars.ContextVar[_Render] = contextvars.ContextVar("matcha_template_render", default=_IDLE)


# --- sizes --------------------------------------------------------------------------------------


def _size(value: Any, budget: int) -> int:
    """Roughly how many characters ``value`` takes as text; counting stops once past ``budget``."""
    total, todo = 0, [value]
    while todo and total <= budget:
        item = todo.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            chunk = list(islice(item, max(budget - total + 1, 0)))
            if chunk and set(map(type, chunk)) == {str}:  # a list of strings (the usual bomb): counted in C
                total += sum(map(len, chunk))
            else:
                todo.extend(chunk)
        elif isinstance(item, dict | Mapping):  # dict first: the abc check is slower
            total += len(item)
            for key, val in islice(item.items(), max(budget - total + 1, 0)):
                todo += (key, val)
        elif isinstance(item, range):
            total += len(item)
        else:
            total += 1
    return total


def _too_big(size: int, what: str) -> TemplateError:
    return TemplateError(
        f"{what} would make a value of about {size:,} characters; a template may build at most "
        f"{_CURRENT.get().limits.chars:,}",
        _SHORTEN,
    )


def _refuse_big(size: int, what: str) -> None:
    if size > _CURRENT.get().limits.chars:
        raise _too_big(size, what)


def _checked(value: Any, what: str) -> Any:
    """``value``, unless it is larger than a template may build."""
    cap = _CURRENT.get().limits.chars
    size = len(value) if type(value) is str else _size(value, cap)
    if size > cap:
        raise _too_big(size, what)
    return value


def _refuse_big_int(bits: int, what: str) -> None:
    cap = _CURRENT.get().limits.int_bits
    if bits > cap:
        raise TemplateError(
            f"{what} would make a number of about {bits * 3 // 10:,} digits; a template may make at most "
            f"{cap * 3 // 10:,}",
            "Use smaller numbers or exponents",
        )


def _budget() -> int:
    return _CURRENT.get().limits.chars


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _digits(text: str) -> int:
    return int(text) if len(text) <= 9 else 10**9  # a width with 10+ digits is refused anyway


def _values(args: Any) -> list[Any]:
    if isinstance(args, Mapping):
        return list(args.values())
    return list(args) if isinstance(args, tuple) else [args]


_PERCENT = re.compile(r"%%|%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _percent_size(fmt: str, args: Any) -> int:
    """Upper bound of ``fmt % args``: each conversion as wide as its width or the largest value."""
    values = _values(args)
    biggest = max((_size(v, _budget()) for v in values), default=0)
    star = max((_int(v) for v in values), default=0)
    total = len(fmt)
    for match in _PERCENT.finditer(fmt):
        if match.group(0) != "%%":
            total += biggest + sum(star if g == "*" else _digits(g) for g in match.groups() if g)
    return total


def _format_size(fmt: str, values: list[Any]) -> int:
    """Upper bound of ``fmt.format(...)``: each field as wide as its width or the largest value."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return 0  # malformed: str.format reports it
    biggest = max((_size(v, _budget()) for v in values), default=0)
    widest = max((_int(v) for v in values), default=0)
    total = len(fmt)
    for _text, name, spec, _conversion in fields:
        if name is None:
            continue
        nested = spec is not None and "{" in spec  # "{:{w}}": the width is one of the values
        width = widest if nested else max((_digits(d) for d in re.findall(r"\d+", spec or "")), default=0)
        total += max(biggest, width)
    return total


def _replace_size(text: str, old: str, new: str, count: int = -1) -> int:
    hits = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _line_count(text: str) -> int:
    return text.count("\n") + 1


# Filters whose result can be much larger than their inputs, and how large (arguments as the filter
# gets them, after any context argument). Everything else is checked after it runs.
_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": lambda value, width=80: max(len(str(value)), _int(width)),
    "indent": lambda value, width=4, *a, **k: len(str(value))
    + _line_count(str(value)) * (len(width) if isinstance(width, str) else _int(width)),
    "wordwrap": lambda value, width=79, brk=True, wrapstring=None, *a, **k: len(str(value))
    + (len(str(value)) // max(_int(width), 1) + 1) * len(wrapstring or "\n"),
    "replace": lambda value, old, new, count=None: _replace_size(str(value), str(old), str(new), count),
    "format": lambda value, *args, **kwargs: _percent_size(str(value), kwargs or args),
    "batch": lambda value, linecount, fill_with=None: _size(value, _budget()) + _int(linecount),
    "slice": lambda value, slices, fill_with=None: _size(value, _budget()) + _int(slices),
}
# The same for methods of str, e.g. {{ text.center(80) }}.
_STR_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "center": lambda s, width, fillchar=" ": max(len(s), _int(width)),
    "ljust": lambda s, width, fillchar=" ": max(len(s), _int(width)),
    "rjust": lambda s, width, fillchar=" ": max(len(s), _int(width)),
    "zfill": lambda s, width: max(len(s), _int(width)),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count("\t") * max(_int(tabsize), 0),
    "replace": _replace_size,
    "translate": lambda s, table: len(s) * max((_size(v, _budget()) for v in _values(table)), default=1),
}
# Filters that only pass items along lazily: an iterator given to them is counted by whoever consumes it.
_LAZY_FILTERS = frozenset({"map", "select", "reject", "selectattr", "rejectattr", "first"})


def _estimate(sizes: Callable[..., int], args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    try:
        return sizes(*args, **kwargs)
    except (TypeError, ValueError, AttributeError):
        return 0  # wrong arguments: the call itself reports them


class _NotRendering(Exception):
    """A filter was called outside :func:`render` (while compiling, Jinja then leaves it for render time)."""

    def __init__(self, name: str):
        super().__init__(f"filter '{name}' ran outside matcha.templating.render(); render templates with render()")


def _tick() -> None:
    if time.monotonic() > _CURRENT.get().deadline:
        _CURRENT.get().check_time()


class _Counted(Iterator[Any]):
    """Passes items through, refusing once their total size (plus ``extra`` per item) passes the limit.

    An iterator (e.g. ``range(9)|map('center', 999999)``) makes values nothing has checked yet, so
    whatever collects them into a list or a string counts them as they come.
    """

    def __init__(self, items: Iterator[Any], what: str, extra: int = 0):
        self._items = items
        self._what = what
        self._extra = extra
        self._total = 0

    def __next__(self) -> Any:
        item = next(self._items)
        _tick()
        self._total += _size(item, _budget()) + self._extra
        _refuse_big(self._total, self._what)
        return item


def _count_iterators(args: tuple[Any, ...], what: str) -> tuple[Any, ...]:
    # hasattr on the type, not isinstance(Iterator): the abc check is a traced Python call
    if not any([hasattr(type(a), "__next__") and type(a) is not _Counted for a in args]):
        return args
    return tuple([_Counted(a, what) if hasattr(type(a), "__next__") and type(a) is not _Counted else a for a in args])


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    what = f"filter '{name}'"
    sizes = _FILTER_SIZES.get(name)
    lead = 1 if hasattr(func, "jinja_pass_arg") else 0  # pass_context & co. get that argument first
    lazy = name in _LAZY_FILTERS

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja still passes the context
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _CURRENT.get() is _IDLE:
            # Jinja folds filters over constants while compiling, where no deadline applies
            # ('x'|center(400000)|wordwrap(1) would stall loading); refusing makes it leave them for render().
            raise _NotRendering(name)
        _tick()
        if not lazy:
            args = _count_iterators(args, what)
        if sizes is not None:
            _refuse_big(_estimate(sizes, args[lead:], kwargs), what)
        return _checked(func(*args, **kwargs), what)

    return guarded


def _bounded_join(join: Callable[..., str]) -> Callable[..., str]:
    @jinja2.pass_eval_context
    def bounded(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
        if isinstance(value, list | tuple):
            _refuse_big(_size(value, _budget()) + len(str(d)) * len(value), "filter 'join'")
        else:
            value = list(_Counted(iter(value), "filter 'join'", extra=len(str(d))))
        return join(eval_ctx, value, d, attribute)  # type: ignore[no-any-return]

    return bounded


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # Jinja's parameter names
    if n > 100 or max > 1000:
        raise TemplateError(
            f"lipsum({n}, max={max}) is too long", "lipsum() makes at most 100 paragraphs of at most 1000 words"
        )
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


# --- the environment ----------------------------------------------------------------------------


class _CodeGenerator(CodeGenerator):
    """Sends ``a ~ b`` through the environment, so joined text is size-checked like ``a + b``."""

    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("environment.checked_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox plus the size and time checks described in the module docstring."""

    code_generator_class = _CodeGenerator
    # Intercepted operators are also never folded at compile time, so `{{ 'x' * 10**9 }}` cannot
    # stall compiling either.
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["join"] = _guard_filter("join", _bounded_join(self.filters["join"]))
        self.globals["lipsum"] = _lipsum

    @staticmethod
    def concat(parts: Any) -> str:  # type: ignore[override]  # Jinja joins block and macro output here
        return _checked("".join(parts), "a block or macro")  # type: ignore[no-any-return]

    @staticmethod
    def checked_concat(text: str) -> str:
        _tick()
        return _checked(text, "`~`")  # type: ignore[no-any-return]

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        what = f"`{operator}`"
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            _refuse_big_int(left.bit_length() * right, what)
        elif operator == "*" and isinstance(left, int) and isinstance(right, int):
            _refuse_big_int(left.bit_length() + right.bit_length(), what)
        elif operator == "*" and (isinstance(left, int) or isinstance(right, int)):
            seq, times = (left, right) if isinstance(right, int) else (right, left)
            _refuse_big(_size(seq, _budget()) * max(times, 0), what)
        elif operator == "%" and isinstance(left, str):
            _refuse_big(_percent_size(left, right), what)
        return _checked(super().call_binop(context, operator, left, right), what)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
        name = getattr(obj, "__name__", "a function")
        what = f"{name}()"
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str) and name == "join" and len(args) == 1:
            args = (list(_Counted(iter(args[0]), what, extra=len(owner))),)
        else:
            args = _count_iterators(args, what)
        sizes = _STR_METHOD_SIZES.get(name) if isinstance(owner, str) else None
        if sizes is not None:
            _refuse_big(_estimate(sizes, (owner, *args), kwargs), what)
        return _checked(super().call(context, obj, *args, **kwargs), what)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt: str = value.__self__
        what = f"str.{value.__name__}()"

        def bounded(*args: Any, **kwargs: Any) -> str:
            mapped = value.__name__ == "format_map" and len(args) == 1 and isinstance(args[0], Mapping)
            values = list(args[0].values()) if mapped else [*args, *kwargs.values()]
            _refuse_big(_format_size(fmt, values), what)
            return wrapper(*args, **kwargs)

        return bounded


@functools.cache
def _environment(strict: bool, keep_trailing_newline: bool) -> BoundedEnvironment:
    undefined = jinja2.StrictUndefined if strict else jinja2.Undefined
    return BoundedEnvironment(undefined=undefined, autoescape=False, keep_trailing_newline=keep_trailing_newline)


# --- public API ---------------------------------------------------------------------------------


def compile_template(source: str, *, strict: bool = False, keep_trailing_newline: bool = False) -> jinja2.Template:
    """Compile ``source`` in the bounded sandbox; a mistake raises :class:`TemplateError`.

    ``strict`` makes a missing field an error instead of empty text. Render the result with
    :func:`render` (``Template.render`` would run without the limits, so its filters refuse to).
    """
    try:
        return _environment(strict, keep_trailing_newline).from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template error on template line {exc.lineno}: {exc.message}",
            "Fix the Jinja2 syntax ({{ field }}, {% if %}...{% endif %})",
        ) from exc
    except (RecursionError, SyntaxError, MemoryError) as exc:
        # A deeply nested expression overflows the parser, or Python's compiler on Jinja's output.
        raise TemplateError(
            f"template is nested too deeply to compile ({type(exc).__name__})",
            "Split the expression into steps with {% set part = ... %}",
        ) from exc
    except (ValueError, OverflowError) as exc:  # e.g. a 5,000-digit number literal
        raise TemplateError(f"template has a value that cannot be compiled: {str(exc)[:120]}",
                            "Use smaller numbers in the template") from exc


def render(template: jinja2.Template, context: Mapping[str, Any], limits: Limits = LIMITS) -> str:
    """Render ``template`` over ``context`` within ``limits``; any failure raises :class:`TemplateError`."""
    current = _Render(limits, time.monotonic() + limits.seconds)
    token = _CURRENT.set(current)
    previous = sys.gettrace()
    sys.settrace(current.trace)
    try:
        return _collect(template.generate(context), limits.chars)
    except TemplateError:
        raise
    except Exception as exc:
        raise _explain(exc) from exc
    finally:
        sys.settrace(previous)
        _CURRENT.reset(token)


def _collect(chunks: Iterator[str], cap: int) -> str:
    parts: list[str] = []
    total = 0
    try:
        for chunk in chunks:
            total += len(chunk)
            if total > cap:
                raise TemplateError(
                    f"template output passed {cap:,} characters, the limit",
                    "A loop or a long field makes too much text; loop over fewer items or shorten fields, "
                    "e.g. {{ text|truncate(10000) }}",
                )
            parts.append(chunk)
    finally:
        chunks.close()  # type: ignore[attr-defined]  # a generator: stop the template now
    return "".join(parts)


def _explain(exc: Exception) -> TemplateError:
    if isinstance(exc, RecursionError):
        return TemplateError(
            "template recursion went too deep", "A macro probably calls itself without stopping; give it an end case"
        )
    if isinstance(exc, MemoryError):
        return TemplateError("template ran out of memory", _SHORTEN)
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(
            exc.message or str(exc),
            "Check the field name, or give a fallback: {{ field | default('') }}",
        )
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return TemplateError(
            exc.message or str(exc),
            "Templates may read record fields but not Python internals, and may not change lists or dicts; "
            "build new values instead, e.g. {{ tags + ['x'] }}",
        )
    if isinstance(exc, OverflowError) and "MAX_RANGE" in str(exc):
        return TemplateError(str(exc).rstrip("."), "Loop over fewer items")
    return TemplateError(f"template failed: {type(exc).__name__}: {exc}")
