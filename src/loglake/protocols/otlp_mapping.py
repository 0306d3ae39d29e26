"""OTLP log records mapped onto loglake's, one LogRecord to one record, whichever encoding they came in
(otlp.py reads protobuf, otlp_json.py OTLP/JSON; both hand over messages with the proto's field names):
- `service`: the resource's `service.name` (service_name() makes it a valid name; the default service without one)
- `timestamp`: `time_unix_nano`, else `observed_time_unix_nano`, else the time received (ms)
- `severity`: `severity_number` by OpenTelemetry's ranges (TRACE, DEBUG: debug; INFO: info; WARN: warning;
  ERROR: error; FATAL: critical), else `severity_text` when it names one (an alias counts), else info. A
  number outside 1-24 has no meaning in the logs data model: it counts as unspecified (0), and is kept
  in the attributes as `severity_number`
- `message`: the body: a string as it is, any other value as JSON text; no body: the `event_name`
- `trace_id`, `span_id`: as lowercase hex; absent or all zeros: none. An invalid one (not 16 and 8 bytes; in
  OTLP/JSON, not hex) is none too, as the logs data model says a receiver SHOULD take it ("not associated
  with a trace"): the record is stored, and what was sent kept in its attributes as `trace_id` or `span_id`
- `attributes`: the resource's other attributes, the scope's, then the record's (the later win on a
  clash), plus `otel.scope.name`/`otel.scope.version`, `event.name`, `severity_text` when it says more
  than the severity and `severity_number` when it is outside 1-24; values as JSON (bytes as base64, as
  OTLP/JSON writes them).
"""

from __future__ import annotations

from collections.abc import Hashable
from itertools import repeat
from operator import attrgetter
from typing import Any, Protocol

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from loglake.model import SEVERITY_ALIASES, SEVERITY_NAMES, Problem, Severity, hex_id
from loglake.protocols.columns import RecordColumns
from loglake.protocols.mapping import ID_FIELDS, SMALLEST_PLAUSIBLE_NANOS, nanos_advice, service_name

# severity_number 1-24 in four steps per level: TRACE, DEBUG, INFO, WARN, ERROR, FATAL (logs data model).
_BY_NUMBER = [None, *(SEVERITY_NAMES[level] for level in (0, 0, 1, 2, 3, 4) for _ in range(4))]
_encode = msgspec.json.Encoder().encode
# Attributes made JSON, by encoding, the scope's common attributes (JSON) and the record's set (see _attribute_texts).
_MADE: dict[tuple[Encoding, bytes, Hashable], bytes] = {}
_MADE_MOST = 4_096
# Only sets this small are remembered (their JSON with the common part's): whatever a sender sends, the
# memo holds a few tens of MB at most (a key, the set as sent, is about as long as its JSON).
_MADE_BYTES_MOST = 2_048
# Each field of all of a scope's records in one call (map and attrgetter): a comprehension costs more.
_TIMES = attrgetter("time_unix_nano")
_NUMBERS = attrgetter("severity_number")


class MalformedRequest(ValueError):
    """The body is not an ExportLogsServiceRequest in the encoding its Content-Type names."""


class Encoding(Protocol):
    """What reading an ExportLogsServiceRequest takes beyond its field names, in one encoding."""

    def value(self, value: Any) -> Any:
        """An AnyValue as JSON's value (bytes as base64 text, none as None)."""

    def is_text(self, value: Any) -> bool:
        """Whether an AnyValue holds a string (maybe an empty one)."""

    def attribute_sets(self, logs: list[Any]) -> list[Hashable]:
        """Each record's attributes in a form that is equal for equal sets (read once per distinct set)."""

    def record_attributes(self, attribute_set: Hashable) -> dict[str, Any]:
        """The attributes of one of attribute_sets()' values."""

    def severity_number(self, number: Any) -> int:
        """A severity_number value as a number."""

    def id_texts(self, ids: list[Any]) -> list[str]:
        """The records' trace or span ids as hex text ("" for none), whatever they hold."""


def columns(request: Any, encoding: Encoding, merged: Any = None) -> RecordColumns:
    """Every LogRecord of the request as columns of records to check, in order (see the module's mapping).
    `merged`: the same request with each scope's records merged into one, whose repeated fields hold one
    value per record or none (otlp.py), for the fields _each() reads."""
    found = RecordColumns()
    nanos: list[int | None] = []  # each record's time (None: none), made ms at the end, for all scopes at once
    scopes_merged = (
        repeat(None) if merged is None else (s.log_records for r in merged.resource_logs for s in r.scope_logs)
    )
    for r, resource_logs in enumerate(request.resource_logs):
        resource = attributes(resource_logs.resource.attributes, encoding)
        named = resource.pop("service.name", None)
        service = service_name(named) if type(named) is str else None
        if service is not None and service != named:
            resource["service.name"] = named  # kept as sent: the service is only its nearest valid name
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            logs = list(scope_logs.log_records)  # a protobuf repeated field builds an object at each step
            logs_merged = next(scopes_merged)
            if not logs:
                continue
            scope = scope_logs.scope
            common = {**resource, **attributes(scope.attributes, encoding)}
            if scope.name:
                common["otel.scope.name"] = scope.name
            if scope.version:
                common["otel.scope.version"] = scope.version
            found.holders.append((len(found), f"resourceLogs[{r}].scopeLogs[{s}].logRecords"))
            _add_scope(found, nanos, logs, logs_merged, service, common, encoding)
    found.timestamps = _milliseconds(nanos)
    found.attributes = _distinct(found.attributes)
    return found


def _add_scope(
    found: RecordColumns,
    times: list[int | None],
    logs: list[Any],
    merged: Any,
    service: str | None,
    common: dict,
    encoding: Encoding,
) -> None:
    """The log records of one scope (`merged`: as one record, see columns()), field by field: a read of a protobuf
    field builds a Python object, so each field is read once (as a column where it can be), and what a scope's
    records share is worked out once per distinct value. Their times in nanoseconds go to `times`."""
    count = len(logs)
    nanos = list(map(_TIMES, logs))
    earliest = min(nanos)  # (the one look at every time that the usual batch takes: all there, all plausible)
    if not earliest:
        nanos = [n or log.observed_time_unix_nano for n, log in zip(nanos, logs, strict=True)]
        earliest = min(nanos)
    if earliest < SMALLEST_PLAUSIBLE_NANOS:
        _refuse_implausible_times(found, nanos)
    times += nanos if earliest else [n or None for n in nanos]
    found.services += [service] * count
    found.log_types += [None] * count
    numbers = list(map(_NUMBERS, logs))
    severity_texts = _each(logs, merged, "severity_text")
    levels = set(zip(numbers, severity_texts, strict=True))
    known = {level: _severity(encoding.severity_number(level[0]), level[1]) for level in levels}
    if all(type(number) is int and 0 < number < len(_BY_NUMBER) for number, _ in known):
        found.severities += map(_BY_NUMBER.__getitem__, numbers)  # (the number decides: no pair looked up per record)
    else:
        severity_by_level = {level: severity for level, (severity, _, _) in known.items()}
        found.severities += map(severity_by_level.__getitem__, zip(numbers, severity_texts, strict=True))
    events = _each(logs, merged, "event_name")
    messages = _each(logs, merged, "body.string_value")
    if not all(messages):  # no body, an empty string, or a value that is not a string
        messages = [m or _message(log.body, e, encoding) for m, log, e in zip(messages, logs, events, strict=True)]
    found.messages += messages
    kept_by_level = {level: (text, number) for level, (_, text, number) in known.items()}
    kept = None  # usually: nothing kept by any level, and no list made per record
    if any(extras != _NOTHING_KEPT for extras in kept_by_level.values()):
        kept = list(map(kept_by_level.__getitem__, zip(numbers, severity_texts, strict=True)))
    texts = _attribute_texts(encoding.attribute_sets(logs), events, kept, common, encoding)
    for (field, digits), column in zip(ID_FIELDS, (found.trace_ids, found.span_ids), strict=True):
        sent = _each(logs, merged, field)
        if not any(sent):  # usually: no record has one
            column += [None] * count
            continue
        ids, invalid = _ids(encoding.id_texts(sent), digits)
        column += ids
        for row, sent_id in invalid:  # kept in the attributes (the record's own of that name wins)
            texts[row] = _encode({field: sent_id} | (msgspec.json.decode(texts[row]) if texts[row] else {}))
    found.attributes += texts


def _distinct(texts: list[bytes]) -> pa.DictionaryArray:
    """The records' attribute texts as a dictionary array: a few sets repeat over an export's records
    (_attribute_texts), and the column check then checks each distinct text once, not every record's."""
    numbered = {text: number for number, text in enumerate(dict.fromkeys(texts))}
    indices = pa.array(list(map(numbered.__getitem__, texts)), pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(numbered), pa.binary()))


def _milliseconds(nanos: list[int | None]) -> pa.Array | list[int | None]:
    """Times in nanoseconds (None: none) as epoch ms, in Arrow: no Python int per record."""
    try:
        return pc.divide(pa.array(nanos, pa.uint64()), _MILLION).cast(pa.int64())
    except (OverflowError, pa.ArrowInvalid):  # past 2**64 ns (OTLP/JSON's numbers are unbounded): the check names it
        return [n // 1_000_000 if n else None for n in nanos]


_MILLION = pa.scalar(1_000_000, pa.uint64())


def _each(logs: list[Any], merged: Any, field: str) -> list[Any]:
    """Each record's `field` (a dotted path), in one step from `merged`'s column of it when that holds one value
    per record, or none (every record has the default); else read from each record."""
    read = attrgetter(field)
    if merged is not None:
        column = read(merged)
        if len(column) == len(logs):
            return column[:]
        if not column:
            return [read(logs[0])] * len(logs)
    return list(map(read, logs))


def _ids(sent: list[str], digits: int) -> tuple[list[str | None], list[tuple[int, str]]]:
    """Trace or span ids as hex text ("" for none) as the records keep them (model.hex_id), and the rows of the
    invalid ones with what was sent (all zeros is none, as exporters write it, not an invalid id). One check of
    them all when each is `digits` lowercase hex digits, as exporters send them."""
    present = [text for text in sent if text]
    if not present:
        return [None] * len(sent), []
    if {*map(len, present)} == {digits} and _lower_hex("".join(present)):
        zero = "0" * digits
        return [text if text and text != zero else None for text in sent], []
    ids = [hex_id(text, digits) if text else None for text in sent]
    invalid = [(row, text) for row, (text, taken) in enumerate(zip(sent, ids, strict=True)) if text and not taken]
    return ids, [(row, text) for row, text in invalid if text.strip("0")]


def _lower_hex(text: str) -> bool:
    """Whether text is lowercase hex digits (bytes.fromhex, in C: a regex took 4 ns a character)."""
    try:
        return len(bytes.fromhex(text)) * 2 == len(text) and text.lower() == text  # (fromhex skips spaces)
    except ValueError:
        return False


def _attribute_texts(
    sets: list[Hashable],
    events: list[str],
    kept: list[tuple[str, int | None]] | None,
    common: dict[str, Any],
    encoding: Encoding,
) -> list[bytes]:
    """The records' attributes as JSON text (b"" for none): a scope's records repeat a few sets of
    attributes and extras (`kept`: the severity's text and number kept, see _severity; None: nothing), and a sender's
    exports repeat them again, so each set is made JSON once (_MADE)."""
    plain = kept is None and not any(events)
    if plain:
        keys: list[Hashable] = sets
    else:
        keys = list(zip(sets, events, [_NOTHING_KEPT] * len(sets) if kept is None else kept, strict=True))
    common_json = _encode(common) if common else b""
    made = dict.fromkeys(keys)
    for key in made:
        remembered = (encoding, common_json, key)
        text = _MADE.get(remembered)
        if text is None:
            pairs, event, severity = (key, "", _NOTHING_KEPT) if plain else key
            own = encoding.record_attributes(pairs) if pairs else {}
            extra = event or severity != _NOTHING_KEPT
            text = _encode(_own(common, own, event, *severity)) if own or extra else common_json
            if len(text) + len(common_json) <= _MADE_BYTES_MOST:
                if len(_MADE) >= _MADE_MOST:
                    _MADE.clear()  # (exports from threads at once: a lost entry is only made again)
                _MADE[remembered] = text
        made[key] = text
    return list(map(made.__getitem__, keys))


_NOTHING_KEPT = ("", None)


def _severity(number: int, text: str) -> tuple[str, str, int | None]:
    """The severity of a record's number and text; the text when it says more than that, and a number outside
    the data model's (unspecified: 0, or 1-24), which the mapping would lose: both then kept."""
    in_range = 0 <= number < len(_BY_NUMBER)
    severity = _BY_NUMBER[number] if number and in_range else _severity_of_text(text)
    says_more = bool(text) and SEVERITY_ALIASES.get(text.lower()) != SEVERITY_ALIASES[severity]
    return severity, text if says_more else "", None if in_range else number


def _severity_of_text(text: str) -> str:
    found = SEVERITY_ALIASES.get(text.lower()) if text else None
    return (found or Severity.INFO).label


def _own(common: dict[str, Any], own: dict[str, Any], event: str, text: str, number: int | None) -> dict[str, Any]:
    """A record's attributes: the resource's and scope's, its own (which win a clash), and the extras
    (`text`: a severity_text that says more than the severity; `number`: a severity_number out of range)."""
    attributes = {**common, **own}
    if text:
        attributes["severity_text"] = text
    if number is not None:
        attributes["severity_number"] = number
    if event:
        attributes["event.name"] = event
    return attributes


def _message(body: Any, event_name: str, encoding: Encoding) -> str:
    """The message of a body that is not a non-empty string: the event name for none, JSON for a value."""
    if encoding.is_text(body):
        return ""  # an empty string: the check names it
    value = encoding.value(body)
    return event_name if value is None else _encode(value).decode()


def attributes(pairs: Any, encoding: Encoding) -> dict[str, Any]:
    """KeyValues as a dict of JSON values."""
    found = {}
    for pair in pairs:
        value = pair.value
        text = value.string_value  # the usual kind: when not empty, no need to ask which kind it is
        found[pair.key] = text if text else encoding.value(value)
    return found


def _refuse_implausible_times(found: RecordColumns, nanos: list[int]) -> None:
    """Records whose time is too small to be Unix nanoseconds (a sender's milliseconds or seconds), refused
    with the time as sent and what it looks like: the records' check would name it in milliseconds."""
    for row, sent in enumerate(nanos, len(found)):
        if 0 < sent < SMALLEST_PLAUSIBLE_NANOS:
            found.refused[row] = Problem(row, "timeUnixNano", f"{sent} is before 1973-03-03: {nanos_advice(sent)}")
