"""msgspec's validation errors in words a sender reads: `Expected `str | null`, got `int` - at `$.host``
becomes `host: must be a string or null, not a number`. Pure, no I/O.

msgspec names the JSON types (`str`, `int`, `object`, `array`, `null`) and the place as a path from the
root (`$.streams[0].stream[...]`, where `[...]` is any value of an object); the protocols and routes that
decode with it say what was sent wrong in their answers, without either notation.
"""

from __future__ import annotations

import re

_TYPES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
    "object": "an object",
    "array": "an array",
}
_EXPECTED = re.compile(r"Expected `([^`]+)`(?:, got `([^`]+)`)?(.*)")
_FIELD = re.compile(r"Object (missing required|contains unknown) field `([^`]*)`")


def split_error(error: str) -> tuple[str, str]:
    """msgspec's message and the path it names (`$.a[0].b` as `a[0].b`, empty for the value itself)."""
    message, _, at = error.partition(" - at `$")
    return message[:1].lower() + message[1:], at.rstrip("`").removeprefix(".")


def in_words(error: Exception | str, root: str = "", whole: str = "the body") -> str:
    """A msgspec ValidationError as `<where>: <what is wrong>`, the path under `root` (the name of what was
    decoded, when it is not the body: "attributes"), or `<whole> <what is wrong>` when it is about the
    decoded value itself; a message it does not know stays msgspec's."""
    text = str(error)
    message, path = text.partition(" - at `$")[0], split_error(text)[1]
    each = path.endswith("[...]")
    path = path.removesuffix("[...]")
    expected = _EXPECTED.fullmatch(message)
    field = _FIELD.fullmatch(message)
    if expected:
        wanted, got, bounds = expected.groups()
        words = f"must be {' or '.join(_TYPES.get(name, name) for name in wanted.split(' | '))}{bounds}"
        if got:
            words += f", not {_TYPES.get(got, got)}"
        if each:
            words = f"each value {words}"
    elif field:
        kind, name = field.groups()
        missing = kind == "missing required"
        words = f"has no `{name}`, which is required" if missing else f"has an unknown field `{name}`"
    else:
        words = message
    where = f"{root}.{path}" if root and path and not path.startswith("[") else root + path
    if where:
        return f"{where}: {words}"
    return f"{whole} {words}" if expected or field else words


def not_json_reason(error: Exception, text: bytes) -> str:
    """Why msgspec could not read `text` as JSON in UTF-8, in the words every route answers. msgspec says
    "Input data was truncated" both for a text cut short and for a lone high surrogate escape (`\\ud800`, no
    character: Python's json and Elasticsearch's reader take it) at a string's end, and names the escape
    obscurely elsewhere; the text tells which."""
    if isinstance(error, UnicodeDecodeError):
        return "a string holds bytes that are not UTF-8"
    message = str(error)
    if any(word in message for word in _SURROGATE_WORDS) and _LONE_HIGH_SURROGATE.search(text):
        return "a string holds a lone surrogate escape such as \\ud800, which is no character"
    if "truncated" in message:
        return "it ends before the JSON does (was it cut short?)"
    return message


# What msgspec says of a lone high surrogate escape, by where it stands and which decoder reads it.
_SURROGATE_WORDS = ("truncated", "surrogate", "hex escape")
# A high surrogate escape not followed by a low one. The backslash must be an escape's own: after an even
# run of backslashes (escaped backslashes, text), not an odd one.
_LONE_HIGH_SURROGATE = re.compile(rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")


# A surrogate pair's escapes, or one surrogate escape alone, each after an even run of backslashes (escaped
# backslashes, text: the escape's own backslash follows them), the run kept in group 1.
_SURROGATE_ESCAPES = re.compile(
    rb"(?<!\\)((?:\\\\)*)(\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)
_PAIR_LENGTH = 12  # a high surrogate's escape and a low one's: a character


def lone_surrogates_replaced(text: bytes) -> bytes | None:
    """JSON text with each lone surrogate escape (a high one not followed by a low one, a low one not after a
    high one) made U+FFFD, as the OpenTelemetry Collector and Go's reader read them; None when it holds none.
    JavaScript's JSON.stringify writes one for a string cut in the middle of an emoji, and msgspec refuses it,
    which refused a whole OTLP/JSON export or Loki push, and failed a Splunk HEC batch (the Node.js trial)."""
    replaced = _SURROGATE_ESCAPES.sub(_kept_or_replaced, text)
    return None if replaced == text else replaced


def _kept_or_replaced(found: re.Match[bytes]) -> bytes:
    if len(found.group(2)) == _PAIR_LENGTH:
        return found.group(0)
    return found.group(1) + rb"\ufffd"
