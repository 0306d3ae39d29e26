"""OTLP log records mapped onto loglake's, one LogRecord to one record, whichever encoding they came in
(otlp.py reads protobuf, otlp_json.py OTLP/JSON; both hand over messages with the proto's field names):
- `service`: the resource's `service.name` (service_name() makes it a valid name; the default service without one)
- `timestamp`: `time_unix_nano`, else `observed_time_unix_nano`, else the time received (ms)
- `severity`: `severity_number` by OpenTelemetry's ranges (TRACE, DEBUG: debug; INFO: info; WARN: warning;
  ERROR: error; FATAL: critical), else `severity_text` when it names one (an alias counts), else info. A
  number outside 1-24 has no meaning in the logs data model: it counts as unspecified (0), and is kept
  in the attributes as `severity_number`
- `message`: the body: a string as it is, any other value as JSON text; no body, or an empty string (both valid
  in the logs data model: an event may say all in its attributes): the `event_name`, else NO_BODY
- `trace_id`, `span_id`: as lowercase hex; absent or all zeros: none. An invalid one (not 16 and 8 bytes; in
  OTLP/JSON, not hex) is none too, as the logs data model says a receiver SHOULD take it ("not associated
  with a trace"): the record is stored, and what was sent kept in its attributes as `trace_id` or `span_id`
- `attributes`: the resource's other attributes, the scope's, then the record's (the later win on a
  clash), plus `otel.scope.name`/`otel.scope.version`, `event.name`, `severity_text` when it says more
  than the severity and `severity_number` when it is outside 1-24; values as JSON (bytes as base64, as
  OTLP/JSON writes them).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable
from itertools import repeat
from operator import attrgetter
from typing import Any, Protocol

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from loglake.model import SEVERITY_ALIASES, SEVERITY_NAMES, Severity, hex_id
from loglake.protocols.columns import RecordColumns
from loglake.protocols.mapping import (
    ID_FIELDS,
    SPAN_ID_FIELD,
    TRACE_ID_FIELD,
    service_name,
)
from loglake.protocols.names import OTEL_SEVERITIES

_BY_NUMBER = OTEL_SEVERITIES
_encode = msgspec.json.Encoder().encode
# Attributes made JSON, by encoding, the scope's common attributes (JSON) and the record's set (see _attribute_texts).
_MADE: dict[tuple[Encoding, bytes, Hashable], bytes] = {}
_MADE_MOST = 4_096
# Only sets this small are remembered (their JSON with the common part's): whatever a sender sends, the
# memo holds a few tens of MB at most (a key, the set as sent, is about as long as its JSON).
_MADE_BYTES_MOST = 2_048


class MalformedRequest(ValueError):
    """The body is not an ExportLogsServiceRequest in the encoding its Content-Type names."""


class Encoding(Protocol):
    """What reading an ExportLogsServiceRequest takes beyond its field names, in one encoding."""

    def value(self, value: Any) -> Any:
        """An AnyValue as JSON's value (bytes as base64 text, none as None)."""

    def is_text(self, value: Any) -> bool:
        """Whether an AnyValue holds a string (maybe an empty one)."""

    def record_attributes(self, attribute_set: Hashable) -> dict[str, Any]:
        """The attributes of a record, from their form in the attribute keys columns() is given."""

    def severity_number(self, number: Any) -> int:
        """A severity_number value as a number."""

    def id_texts(self, ids: list[Any]) -> list[str]:
        """The records' trace or span ids as hex text ("" for none), whatever they hold."""


def columns(
    request: Any,
    encoding: Encoding,
    attribute_keys: list[list[Hashable]],
    merged: Any = None,
    merged_fields: Collection[str] = (),
) -> RecordColumns:
    """Every LogRecord of the request as columns of records to check, in order (see the module's mapping).
    `attribute_keys`: for each scope (empty ones too), each record's attributes in a form that is equal for equal
    sets (Encoding.record_attributes reads one). `merged`: the same request with each scope's records merged into
    one, whose repeated fields hold one value per record or none (otlp.py), for the `merged_fields` _each() reads."""
    found = RecordColumns()
    export = _Export()
    scopes_merged = (
        repeat(None) if merged is None else (s.log_records for r in merged.resource_logs for s in r.scope_logs)
    )
    keys = iter(attribute_keys)
    for r, resource_logs in enumerate(request.resource_logs):
        resource = attributes(resource_logs.resource.attributes, encoding)
        named = resource.pop("service.name", None)
        service = service_name(named) if type(named) is str else None
        if service is not None and service != named:
            resource["service.name"] = named  # kept as sent: the service is only its nearest valid name
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            logs = _Records(scope_logs.log_records, next(scopes_merged), merged_fields)
            sets = next(keys)
            if not logs.count:
                continue
            scope = scope_logs.scope
            common = {**resource, **attributes(scope.attributes, encoding)}
            if scope.name:
                common["otel.scope.name"] = scope.name
            if scope.version:
                common["otel.scope.version"] = scope.version
            found.holders.append((len(found), f"resourceLogs[{r}].scopeLogs[{s}].logRecords"))
            _add_scope(found, export, logs, sets, service, common, encoding)
    if found:
        export.fill(found)
    return found


class _Records:
    """A scope's LogRecords, each field read for all of them at once (each()): from the merged reading's column of
    it where that has one, else from the records' Python objects, made only then (a protobuf message's object
    costs ~80 ns, and each field read from it as much again)."""

    def __init__(self, records: Any, merged: Any, merged_fields: Collection[str]) -> None:
        self.count = len(records)
        self._records = records
        self._merged = merged
        self._merged_fields = merged_fields
        self._listed: list[Any] | None = None

    def listed(self) -> list[Any]:
        if self._listed is None:
            self._listed = self._records[:]  # (one step: iterating a protobuf repeated field takes one per record)
        return self._listed

    def each(self, field: str) -> list[Any]:
        """Each record's `field` (a dotted path), in one step from the merged reading's column of it when that
        holds one value per record, or none (every record has the default); else read from each record."""
        read = attrgetter(field)
        if field in self._merged_fields:
            column = read(self._merged)
            if len(column) == self.count:
                return column[:]
            if not column:
                return [read(self._records[0])] * self.count
        return list(map(read, self.listed()))


class _Export:
    """What an export's scopes add to its columns beside RecordColumns' lists, made Arrow arrays once at the end
    (fill): a value that a scope's records share (service, severity, attributes) is then no Python object per
    record, and no Arrow call per scope lets another thread take the GIL."""

    def __init__(self) -> None:
        self.nanos: list[int | None] = []  # each record's time (None: none)
        self.services: list[str | None] = []  # each scope's
        self.scope_ends: list[int] = []  # the row after each scope's records
        self.severities: list[int] = []  # each record's, as its first number in _BY_NUMBER
        self.first_rows: list[int] = []  # each record's attribute key (_attribute_texts) as the row of its first record
        self.numbers: dict[int, int] = {}  # the number in `texts` of the text of each key (by its first row)
        self.texts: dict[bytes, int] = {}  # the distinct attribute texts, numbered
        self.own_texts: dict[int, bytes] = {}  # the texts of rows that keep an invalid id sent (see _add_scope)
        self.with_ids: set[str] = set()  # the id fields some record has

    def fill(self, found: RecordColumns) -> None:
        """found's columns from what the scopes added: the attributes as a dictionary array of the distinct
        texts, which the column check checks once each."""
        found.timestamps = _milliseconds(self.nanos)
        ends = pa.array(self.scope_ends, pa.int32())
        found.services = pc.run_end_decode(
            pa.RunEndEncodedArray.from_arrays(ends, pa.array(self.services, pa.string()))
        )
        found.log_types = pa.nulls(len(found), pa.string())
        found.severities = _SEVERITIES.take(pa.array(self.severities, pa.int8()))
        keys = pa.array(self.first_rows, pa.int32()).dictionary_encode().indices  # (numbered in self.numbers' order)
        numbers = pa.array(list(self.numbers.values()), pa.int32()).take(keys)
        if self.own_texts:
            numbers = numbers.to_pylist()
            for row, text in self.own_texts.items():
                numbers[row] = self.texts.setdefault(text, len(self.texts))
            numbers = pa.array(numbers, pa.int32())
        found.attributes = pa.DictionaryArray.from_arrays(numbers, pa.array(list(self.texts), pa.binary()))
        if TRACE_ID_FIELD not in self.with_ids:  # usually: no record has one
            found.trace_ids = pa.nulls(len(found), pa.string())
        if SPAN_ID_FIELD not in self.with_ids:
            found.span_ids = pa.nulls(len(found), pa.string())


_SEVERITIES = pa.array(_BY_NUMBER, pa.string())
_FIRST_NUMBER = {severity: _BY_NUMBER.index(severity) for severity in SEVERITY_NAMES}


def _add_scope(
    found: RecordColumns,
    export: _Export,
    logs: _Records,
    attribute_sets: list[Hashable],
    service: str | None,
    common: dict,
    encoding: Encoding,
) -> None:
    """The log records of one scope, field by field: a read of a protobuf field builds a Python object, so each
    field is read once (as a column where it can be), and what a scope's records share is worked out once per
    distinct value."""
    start, count = len(found), logs.count
    nanos = logs.each("time_unix_nano")
    earliest = min(nanos)  # (the one look at every time that the usual batch takes: all there, all plausible)
    if not earliest:
        nanos = [n or observed for n, observed in zip(nanos, logs.each("observed_time_unix_nano"), strict=True)]
        earliest = min(nanos)
    export.nanos += nanos if earliest else [n or None for n in nanos]
    export.services.append(service)
    export.scope_ends.append(start + count)
    numbers = logs.each("severity_number")
    severity_texts = logs.each("severity_text")
    levels = set(zip(numbers, severity_texts, strict=True))
    known = {level: _severity(encoding.severity_number(level[0]), level[1]) for level in levels}
    if all(type(number) is int and 0 < number < len(_BY_NUMBER) for number, _ in known):
        export.severities += numbers  # (the number decides: no pair looked up per record)
    else:
        number_by_level = {level: _FIRST_NUMBER[severity] for level, (severity, _, _) in known.items()}
        export.severities += map(number_by_level.__getitem__, zip(numbers, severity_texts, strict=True))
    events = logs.each("event_name")
    messages = logs.each("body.string_value")
    if not all(messages):  # no body, an empty string, or a value that is not a string
        records = logs.listed()
        messages = [m or _message(log.body, e, encoding) for m, log, e in zip(messages, records, events, strict=True)]
    found.messages += messages
    kept_by_level = {level: (text, number) for level, (_, text, number) in known.items()}
    kept = None  # usually: nothing kept by any level, and no list made per record
    if any(extras != _NOTHING_KEPT for extras in kept_by_level.values()):
        kept = list(map(kept_by_level.__getitem__, zip(numbers, severity_texts, strict=True)))
    _attribute_texts(export, start, attribute_sets, events, kept, common, encoding)
    for (field, digits), column in zip(ID_FIELDS, (found.trace_ids, found.span_ids), strict=True):
        sent = logs.each(field)
        if not any(sent):  # usually: no record has one
            column += [None] * count
            continue
        ids, invalid = _ids(encoding.id_texts(sent), digits)
        column += ids
        export.with_ids.add(field)
        texts = list(export.texts)
        for at, sent_id in ((start + row, sent_id) for row, sent_id in invalid):  # kept in the attributes
            text = export.own_texts.get(at) or texts[export.numbers[export.first_rows[at]]]
            export.own_texts[at] = _encode({field: sent_id} | (msgspec.json.decode(text) if text else {}))


def _milliseconds(nanos: list[int | None]) -> pa.Array | list[int | None]:
    """Times in nanoseconds (None: none) as epoch ms, in Arrow: no Python int per record."""
    try:
        return pc.divide(pa.array(nanos, pa.uint64()), _MILLION).cast(pa.int64())
    except (OverflowError, pa.ArrowInvalid):  # past 2**64 ns (OTLP/JSON's numbers are unbounded): the check names it
        return [n // 1_000_000 if n else None for n in nanos]


_MILLION = pa.scalar(1_000_000, pa.uint64())


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
    export: _Export,
    start: int,
    sets: list[Hashable],
    events: list[str],
    kept: list[tuple[str, int | None]] | None,
    common: dict[str, Any],
    encoding: Encoding,
) -> None:
    """The attributes, as JSON text (b"" for none), of a scope's records from the export's row `start` on, added
    to `export`: a scope's records repeat a few sets of attributes and extras (`kept`: the severity's text and
    number kept, see _severity; None: nothing), and a sender's exports repeat them again, so each set is made
    JSON once (_MADE) and each record's looked up once."""
    plain = kept is None and not any(events)
    if plain:
        keys: list[Hashable] = sets
    else:
        keys = list(zip(sets, events, [_NOTHING_KEPT] * len(sets) if kept is None else kept, strict=True))
    common_json = _encode(common) if common else b""
    first: dict[Hashable, int] = {}
    export.first_rows += map(first.setdefault, keys, range(start, start + len(keys)))
    for key, row in first.items():
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
        export.numbers[row] = export.texts.setdefault(text, len(export.texts))


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
    return (Severity.INFO if found is None else found).label  # (not `or`: DEBUG is 0)


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


# The message of a record without a body nor an event name (a record needs one; its attributes are kept as sent).
NO_BODY = "(no body)"


def _message(body: Any, event_name: str, encoding: Encoding) -> str:
    """The message of a body that is not a non-empty string: JSON for a value; for none, or an empty string, the
    event name, else NO_BODY."""
    value = None if encoding.is_text(body) else encoding.value(body)
    return (event_name or NO_BODY) if value is None else _encode(value).decode()


def double(value: float) -> float | str:
    """A double AnyValue as JSON's value: NaN and the infinities, which JSON has no number for (encoded, they were
    null), as OTLP/JSON writes them."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def attributes(pairs: Any, encoding: Encoding) -> dict[str, Any]:
    """KeyValues as a dict of JSON values."""
    found = {}
    for pair in pairs:
        value = pair.value
        text = value.string_value  # the usual kind: when not empty, no need to ask which kind it is
        found[pair.key] = text if text else encoding.value(value)
    return found
