"""Configuration files as msgspec Structs: the rules are declared on the types (`Meta(pattern=...,
ge=..., description=...)`, `forbid_unknown_fields`), and a document that breaks them gets every
problem at once, each with its path: `applications[0].appId: ...; timeChunkSize.days: ...`.

msgspec stops at the first problem, so when a document does not convert, `problems_of` converts its
parts one by one (each field of a Struct, each item of a list or dict) to find them all. A field
whose `Meta` has a `description` is reported as "`<value>` is not <description>", so describe what
a good value is ("an AWS region such as eu-west-1"). Rules across fields (two apps with one name)
are hand-written by the caller, or raised as ValueError from a Struct's `__post_init__`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec

from loglake.decode_errors import split_error
from loglake.spelling import alike

T = TypeVar("T")
ROOT = "the configuration"


class ConfigProblems(ValueError):
    """Everything wrong with a configuration document, each problem with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def whole(regex: str) -> str:
    """A Meta pattern that must match the whole text (msgspec searches; `$` would allow a final newline)."""
    return rf"\A(?:{regex})\Z"


def one_of(words: Sequence[str]) -> msgspec.Meta:
    """The Meta of a text that must be one of `words`, as written: `Annotated[str, one_of(LEVELS)]`."""
    return msgspec.Meta(pattern=whole("|".join(map(re.escape, words))), description=f"one of {', '.join(words)}")


def convert(document: Any, kind: type[T]) -> T:
    """The document as `kind`, or ConfigProblems naming every problem."""
    try:
        return msgspec.convert(document, kind)
    except msgspec.ValidationError:
        raise ConfigProblems(problems_of(document, kind)) from None


def problems_of(value: Any, kind: Any, path: str = "") -> list[str]:
    """Every problem of `value` as `kind` (none if it converts), each prefixed with its path."""
    try:
        msgspec.convert(value, kind)
        return []
    except msgspec.ValidationError as e:
        error = str(e)
    kind = _present(kind, value)
    base, description = _unannotated(kind)
    found: list[str] = []
    if isinstance(base, type) and issubclass(base, msgspec.Struct) and isinstance(value, dict):
        found = _struct_problems(value, base, path)
    elif get_origin(base) in (list, tuple) and isinstance(value, list) and get_args(base):
        found = [p for i, item in enumerate(value) for p in problems_of(item, get_args(base)[0], f"{path}[{i}]")]
    elif get_origin(base) is dict and isinstance(value, dict):
        found = [p for k, item in value.items() for p in problems_of(item, get_args(base)[1], _join(path, str(k)))]
    if found:
        return found
    message, inner = split_error(error)
    where = _join(path, inner) if inner else path
    if get_origin(base) in (list, tuple) and get_args(base) and _is_a(value, get_args(base)[0]):
        # One value where a list of them is due: its own problems too, or putting it in a list brings up more.
        return [f"{where or ROOT}: {message}", *problems_of(value, get_args(base)[0], path)]
    if description and not inner:
        return [f"{where or ROOT}: {value!r} is not {description}"]
    return [f"{where or ROOT}: {message}"]


def readable_part(value: dict[str, Any], kind: type[T], problem_fields: list[str], path: str = "") -> T | None:
    """`kind` made of the fields of `value` that no problem is about (`problem_fields`: where problems_of
    put them, under `path`), the others left at their defaults; None when that makes none (a required field
    has a problem). So that the checks beyond the types (a schedule's syntax, a URL's scheme) still run on
    what reads, in the same pass as the types' problems."""
    prefix = f"{path}." if path else ""
    names = {f.encode_name for f in msgspec.structs.fields(kind)}  # type: ignore[arg-type]
    kept = {
        k: v
        for k, v in value.items()
        if k in names
        and not any(w == prefix + k or w.startswith((f"{prefix}{k}.", f"{prefix}{k}[")) for w in problem_fields)
    }
    try:
        return msgspec.convert(kept, kind)
    except msgspec.ValidationError:
        return None


def _with_likely_name(name: str, names: list[str]) -> str:
    """An unknown field's name, told the one meant when it is a misspelt one (as the records' fields and the Sigma
    modifiers are)."""
    likely = alike(name, names)
    return f"{name!r} (did you mean {likely[0]!r}?)" if likely else name


def _struct_problems(value: dict, kind: type[msgspec.Struct], path: str) -> list[str]:
    fields = msgspec.structs.fields(kind)
    names = sorted(f.encode_name for f in fields)
    found = []
    unknown = sorted(value.keys() - set(names))
    if unknown and kind.__struct_config__.forbid_unknown_fields:
        said = ", ".join(_with_likely_name(str(name), names) for name in unknown)
        found.append(f"{path or ROOT}: unknown field {said} (allowed: {', '.join(names)})")
    for f in fields:  # each at its own path, as every other problem is (a good value's description said)
        if f.required and f.encode_name not in value:
            description = _unannotated(f.type)[1]
            found.append(f"{_join(path, f.encode_name)}: missing" + (f" ({description})" if description else ""))
    for f in fields:
        if f.encode_name in value:
            found += problems_of(value[f.encode_name], f.type, _join(path, f.encode_name))
    return found


def _is_a(value: Any, kind: Any) -> bool:
    """Whether `value` is of `kind`'s type, whatever the rules of its Meta."""
    try:
        msgspec.convert(value, _unannotated(kind)[0])
        return True
    except msgspec.ValidationError:
        return False


def _present(kind: Any, value: Any) -> Any:
    """For a value that is there, an optional type (`T | None`) is T: its rules and description apply."""
    args = get_args(kind)
    if value is not None and get_origin(kind) in (Union, UnionType) and type(None) in args:
        present = [a for a in args if a is not type(None)]
        return present[0] if len(present) == 1 else kind
    return kind


def _unannotated(kind: Any) -> tuple[Any, str | None]:
    """The type without Annotated, and the description of its Meta, if any."""
    if get_origin(kind) is Annotated:
        base, *extras = get_args(kind)
        descriptions = [m.description for m in extras if isinstance(m, msgspec.Meta) and m.description]
        return base, descriptions[-1] if descriptions else None
    return kind, None


def _join(path: str, name: str) -> str:
    if name.startswith("["):
        return path + name
    return f"{path}.{name}" if path else name
