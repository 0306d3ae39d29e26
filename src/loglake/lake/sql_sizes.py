"""Functions whose answer is as large as a number they are given, bounded in users' SQL (sql_guard refuses a
function call that `unbounded` says why of).

DuckDB's memory_limit counts the buffers of its operators (a hash table, a sort, a list aggregate: a query
needing more is refused), not the values an expression makes: `SELECT length(repeat('x', 3000000000))` took
a server to 6 GB, `SELECT len(range(200000000))` (a list) to 14 GB, and four such queries at once would take
any host's memory. So these sizes must be numbers written in the query, at most MAX_MADE: an expression is
evaluated 2,048 rows at a time, and 2,048 values of MAX_MADE characters (or list items) stay under 100 MB.
"""

from __future__ import annotations

import re
from typing import Any

MAX_MADE = 10_000
# The (0-based) arguments that size each function's answer.
_SIZES = {
    "repeat": (1,),
    "lpad": (1,),
    "rpad": (1,),
    "list_resize": (1,),
    "array_resize": (1,),
    "bitstring": (1,),
}
# As scalar functions these make a list; as table functions (FROM range(...)) their rows stream, unbounded.
_LISTS = ("range", "generate_series")
# A printf conversion's flags, width and precision; a `*` takes them from an argument.
_PRINTF_SPEC = re.compile(r"%%|%[-+ #0']*(\*|\d*)(?:\.(\*|\d*))?")
# A format (fmt) field's spec after its `:`; a `{` in it takes the width from an argument.
_FORMAT_FIELD = re.compile(r"\{[^{}:]*:([^}]*)")


def unbounded(node: dict[str, Any]) -> str | None:
    """Why a function call's answer could be larger than MAX_MADE characters or items (None: it cannot)."""
    name = node.get("function_name", "").lower()
    arguments = [argument.get("expression", {}) for argument in node.get("arguments", [])]
    if name in _SIZES or name in _LISTS or name in ("printf", "format"):
        inner = next(filter(None, map(_size_making_call, arguments)), None)
        if inner is not None:  # (repeat(repeat('x', 1000), 1000) made 1 GB from sizes of 1,000: a trial)
            return (
                f"{name}() of what {inner}() makes multiplies their sizes: make the value with one call, its size a"
                f" number written in the query, at most {MAX_MADE:,} {_WHY}"
            )
    if name == "repeat" and arguments:
        text = string_constant(arguments[0])
        count = _number(arguments[1]) if len(arguments) > 1 else None
        if text is None or count is None or not _within(len(text) * count):
            # (repeat(message, 2,000) took a server past 2 GB: a column's values are as long as a record allows)
            return (
                f"repeat() repeats text written in the query, as many times as a number written there: at most"
                f" {MAX_MADE:,} characters in all {_WHY}"
            )
    if name in _SIZES:
        for index in _SIZES[name]:
            if index < len(arguments) and not _within(_number(arguments[index])):
                return _refused(f"{name}() makes a value as long as its argument {index + 1}")
    elif name in _LISTS:
        numbers = [_number(argument) for argument in arguments]
        if not _within(_list_length(numbers)):
            return _refused(f"{name}() as a value makes a list of its items (as a table, FROM {name}(...), none)")
    elif name in ("printf", "format") and arguments:
        text = string_constant(arguments[0])
        widths = None if text is None else (_printf_widths(text) if name == "printf" else _format_widths(text))
        if widths is None or not all(_within(width) for width in widths):
            return _refused(f"{name}() makes a value as wide as the widths of its format (written in it, not *)")
    return None


def _size_making_call(expression: Any) -> str | None:
    """The name of a function of these sizes called anywhere inside a parsed expression; None if none is."""
    if isinstance(expression, dict):
        name = expression.get("function_name", "")
        if expression.get("class") == "FUNCTION" and (name.lower() in _SIZES or name.lower() in _LISTS):
            return name.lower()
        return next(filter(None, map(_size_making_call, expression.values())), None)
    if isinstance(expression, list):
        return next(filter(None, map(_size_making_call, expression)), None)
    return None


_WHY = "(a query's memory is bounded, and the engine does not count what an expression makes)"


def _refused(what: str) -> str:
    return f"{what}: here that must be a number written in the query, at most {MAX_MADE:,} {_WHY}"


def _within(number: float | None) -> bool:
    return number is not None and abs(number) <= MAX_MADE


def _number(expression: dict[str, Any]) -> float | None:
    """The value of a number written in the query (a literal), else None."""
    literal = expression.get("literal") if expression.get("class") == "CONSTANT" else None
    if not literal or literal.get("kind") not in ("INTEGER", "BIGINT", "HUGEINT", "DECIMAL", "DOUBLE", "FLOAT"):
        return None
    try:
        return float(literal["text"])
    except (KeyError, ValueError):
        return None


def string_constant(expression: dict[str, Any]) -> str | None:
    """A parsed expression's text when it is a string written in the query; else None."""
    literal = expression.get("literal", {}) if expression.get("class") == "CONSTANT" else {}
    return literal.get("text") if literal.get("kind") == "STRING" else None


def _list_length(numbers: list[float | None]) -> float | None:
    """How many items range(stop), range(start, stop) or range(start, stop, step) makes (generate_series one more:
    close enough)."""
    if not numbers or None in numbers or len(numbers) > 3:
        return None
    start, stop, step = [0.0, *numbers, 1.0][:3] if len(numbers) == 1 else [*numbers, 1.0][:3]
    return None if step == 0 else abs(stop - start) / abs(step)  # type: ignore[operator]


def _printf_widths(text: str) -> list[float] | None:
    found: list[float] = []
    for match in _PRINTF_SPEC.finditer(text):
        for part in match.groups():
            if part == "*":
                return None
            if part:
                found.append(float(part))
    return found


def _format_widths(text: str) -> list[float] | None:
    found: list[float] = []
    for spec in _FORMAT_FIELD.findall(text.replace("{{", "").replace("}}", "")):
        if "{" in spec:
            return None
        found += [float(digits) for digits in re.findall(r"\d+", spec)]
    return found
