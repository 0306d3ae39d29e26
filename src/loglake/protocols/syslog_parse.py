"""Syslog messages (RFC 5424 and RFC 3164) to record columns, a whole batch at a time. Pure, no I/O.

The mapping onto the loglake record:
- PRI's severity to `severity` (emerg/alert/crit → critical, err → error, warning, notice/info → info,
  debug), its facility by name to `attributes.facility`, the syslog severity itself to `attributes.syslog_severity`;
- APP-NAME (RFC 5424) or the tag (RFC 3164) to `service`, its characters outside the record's name
  charset replaced by `_` (the name as sent is then kept in `attributes.app_name`); none: `default`;
- TIMESTAMP to `timestamp` (an RFC 3164 time has no year nor zone: taken in the syslog_timezone setting's zone,
  default UTC, in the year that puts it nearest before now; so is an RFC 3339 time without offset, see
  syslog_times); none, or one outside what the store accepts: the time received, the text kept in
  `attributes.syslog_timestamp`;
- HOSTNAME, PROCID (or the tag's `[pid]`), MSGID and STRUCTURED-DATA (`{SD-ID: {PARAM: value}}`; a
  repeated parameter gives a list) to `attributes`, with the sender's address as `attributes.peer`;
- the ids of the first SD element that gives one, in `trace_id` and `span_id` parameters
  (`[otel trace_id="..." span_id="..."]`: OpenTelemetry's names where a format has no place of its own,
  mapping.take_ids) or, failing those, in a W3C `traceparent`, to `trace_id` and `span_id`, taken out of the
  element (an element left empty goes); a value that is no id stays as sent;
- MSG to `message` (a leading BOM or space dropped; bytes that are not UTF-8 replaced by U+FFFD); no MSG: the
  whole syslog line.

A line that is neither (no `<PRI>`, or a 5424 header that does not parse) is kept whole as the message,
with `attributes.parse_error` saying why, never dropped; so is one whose STRUCTURED-DATA is not RFC 5424's (`[a x=1]`),
its header's fields read. Every record has log type `syslog`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

import msgspec

from loglake.model import DEFAULT_SERVICE, NAME_PATTERN, Limits, TimeBounds
from loglake.protocols.mapping import take_ids, traceparent_ids
from loglake.protocols.syslog_framing import TruncatedFrame, UnfinishedFrame
from loglake.protocols.syslog_times import rfc3164_time, rfc3339_times
from loglake.times import SMALLEST_PLAUSIBLE_MS

LOG_TYPE = "syslog"
SEVERITIES = ("critical", "critical", "critical", "error", "warning", "info", "info", "debug")  # by syslog severity
SYSLOG_SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FACILITIES = (
    *("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp"),
    *("ntp", "security", "console", "solaris-cron"),
    *(f"local{n}" for n in range(8)),
)
_NO_PRI = "13"  # user.notice, what RFC 3164 4.3.3 has a relay assume for a message without PRI
NIL = "-"

_RFC5424 = re.compile(
    r"<(\d{1,3})>[1-9]\d? (\S+) (\S+) (\S+) (\S+) (\S+) "
    r'(-|(?:\[[^\]"]*(?:"(?:[^"\\]|\\.)*"[^\]"]*)*\])+)(?: (.*))?\Z',
    re.DOTALL,
)
# The same, for one message per line of a text (MULTILINE; nothing of it may cross a newline).
_RFC5424_LINES = re.compile(
    r"^<(\d{1,3})>[1-9]\d? (\S+) (\S+) (\S+) (\S+) (\S+) "
    r'(-|(?:\[[^\]"\n]*(?:"(?:[^"\\\n]|\\[^\n])*"[^\]"\n]*)*\])+)(?: ([^\n]*))?$',
    re.MULTILINE,
)
_CLAIMS_5424 = re.compile(r"<\d{1,3}>[1-9]\d? ")
_RFC3164 = re.compile(
    r"<(\d{1,3})>(?:([A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d{1,9})?)|(\d{4}-\d\d-\d\dT\S+)) (.*)\Z",
    re.DOTALL,
)
_PRI_ONLY = re.compile(r"<(\d{1,3})>(.*)\Z", re.DOTALL)
_TAGGED = re.compile(r"(?:([^ :\[\]]+) )?([^ :\[\]]{1,48})(?:\[([^\]]{0,128})\])?: ?(.*)\Z", re.DOTALL)
# A tag with its process id that ends at a space, not a colon (`host app[42] msg`): rsyslog relays RFC 5424
# messages so. (A bare word is no tag without its colon: `host some words` is a host and its text, though
# rsyslog would take `some` for a tag.)
_TAGGED_NO_COLON = re.compile(r"(?:([^ :\[\]]+) )?([^ :\[\]]{1,48})\[([^\]]{0,128})\] (.*)\Z", re.DOTALL)
_HOST_ONLY = re.compile(r"([^ :\[\]]+) (.*)\Z", re.DOTALL)
_SD_ELEMENT = re.compile(r'\[([^ \]"=]+)((?:[^\]"]|"(?:[^"\\]|\\.)*")*)\]')
_SD_PARAM = re.compile(r' ([^ \]"=]+)="((?:[^"\\]|\\.)*)"')
_SD_ESCAPE = re.compile(r'\\(["\\\]])')
# STRUCTURED-DATA as RFC 5424 writes it: elements of an SD-ID and PARAM-NAME="PARAM-VALUE" pairs, each after a space
# (more spaces are taken, as _SD_PARAM takes them).
_SD_WELL_FORMED = re.compile(r'(?:\[[^ \]"=]+(?: +[^ \]"=]+="(?:[^"\\]|\\.)*")* *\])+', re.DOTALL)
_SD_FORM = '[SD-ID NAME="value" ...], the values quoted; see the message'
_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 128
NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')
# A BOM (RFC 5424 6.4) or a space (rsyslog relays RFC 3164 messages with the one after the tag's colon) at
# the start of MSG is not part of the text.
LEADING = ("\ufeff", " ")
_encode = msgspec.json.encode
# Per PRI as sent ("0" to "191"): the record's severity, and the attributes' start (facility, syslog severity).
SEVERITY_OF_PRI = {str(pri): SEVERITIES[pri & 7] for pri in range(192)}
HEAD_OF_PRI = {
    str(pri): f'{{"facility":"{FACILITIES[pri >> 3]}","syslog_severity":"{SYSLOG_SEVERITIES[pri & 7]}"'
    for pri in range(192)
}
_PRI_HEAD = re.compile(r'\{"facility":"[^"]*","syslog_severity":"[^"]*"')  # the start of every head above
_MAX_KNOWN_SERVICES = 10_000
_services: dict[str, str] = {NIL: DEFAULT_SERVICE}  # APP-NAMEs seen, as service names


@dataclass
class SyslogColumns:
    """A batch of syslog messages as the record's columns, in arrival order (attributes as JSON bytes)."""

    timestamps: list[int] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    severities: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    attributes: list[bytes] = field(default_factory=list)
    unparsed: int = 0  # messages kept whole with a parse_error
    trace_ids: list[str | None] | None = None  # None: no message gave one
    span_ids: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.messages)


@dataclass
class _Parts:
    """Records in the making: each field per record, the attributes as JSON text without its closing brace
    (the peer and the rare extras come last), and those extras by record index."""

    times: list[str | None]  # the time as sent (None: none)
    services: list[str]
    severities: list[str]
    messages: list[str]
    heads: list[str]
    extra: dict[int, dict] = field(default_factory=dict)
    bsd: set[int] = field(default_factory=set)  # the records whose time is RFC 3164's
    ids: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)  # (trace, span) given in SD

    @classmethod
    def sized(cls, count: int) -> _Parts:
        return cls(*([None] * count for _ in range(5)))  # type: ignore[arg-type]

    def put(self, index: int, other: _Parts, at: int) -> None:
        self.times[index] = other.times[at]
        self.services[index] = other.services[at]
        self.severities[index] = other.severities[at]
        self.messages[index] = other.messages[at]
        self.heads[index] = other.heads[at]
        if at in other.extra:
            self.extra[index] = other.extra[at]
        if at in other.bsd:
            self.bsd.add(index)
        if at in other.ids:
            self.ids[index] = other.ids[at]


def parse_messages(
    frames: list[bytes], peer: str, bounds: TimeBounds, limits: Limits, zone: tzinfo = UTC
) -> SyslogColumns:
    """The records of a batch of syslog messages (one per frame or datagram) from the sender at `peer`,
    each within the record's limits (what does not fit is cut, and says so in attributes.parse_error);
    times without a zone read in `zone`.

    Built column by column. The common case, RFC 5424 messages without a newline inside, is decoded as one
    text and matched by one findall over it: the fields come out as tuples, with no Python call per
    message; what follows is a few list comprehensions over the batch. Anything else goes one by one."""
    blob = b"\n".join(frames).decode("utf-8", "replace")
    rows = _RFC5424_LINES.findall(blob) if blob.count("\n") == len(frames) - 1 else ()
    if len(rows) == len(frames):
        lines = functools.cache(lambda: blob.split("\n"))  # the whole text of a message, when one is needed
        parts = _from_5424(rows, lines)
    else:
        texts = [frame.decode("utf-8", "replace") for frame in frames]
        lines = functools.cache(lambda: texts)
        parts = _one_by_one(texts)
    for index, frame in enumerate(frames):
        if type(frame) is TruncatedFrame:
            _note(parts, index, "parse_error", f"the message was longer than {len(frame)} bytes and was cut to that")
        elif type(frame) is UnfinishedFrame:
            _note(parts, index, "parse_error", "the sender closed the connection before the end of this message")
    stamps = _times(parts, bounds, zone)
    _fit_messages(parts, limits.max_message_bytes)
    tail = ',"peer":' + json_text(peer) + "}"
    attributes = [head + tail for head in parts.heads]
    for index, extra in parts.extra.items():
        attributes[index] = parts.heads[index] + "," + _encode(extra)[1:-1].decode() + tail
    encoded = [text.encode() for text in attributes]
    if max(map(len, encoded)) > limits.max_attribute_bytes:
        _fit_attributes(parts, encoded, lines(), tail, limits)
    columns = SyslogColumns(stamps, parts.services, parts.severities, parts.messages, encoded, _unparsed(parts))  # type: ignore[arg-type]
    if parts.ids:
        given = [parts.ids.get(index, (None, None)) for index in range(len(frames))]
        columns.trace_ids, columns.span_ids = (list(ids) for ids in zip(*given, strict=True))
    return columns


def _one_by_one(texts: list[str]) -> _Parts:
    """Messages of any kind, in order: the RFC 5424 ones still column by column."""
    matches = [_RFC5424.match(text) for text in texts]
    parsed = [i for i, found in enumerate(matches) if found is not None]
    parts = _Parts.sized(len(texts))
    if parsed:
        rows = [matches[i].groups() for i in parsed]  # type: ignore[union-attr]
        rfc5424 = _from_5424(rows, functools.cache(lambda: [texts[i] for i in parsed]))
        for at, index in enumerate(parsed):
            parts.put(index, rfc5424, at)
    for index, found in enumerate(matches):
        if found is None:
            parts.put(index, _from_other(texts[index]), 0)
    return parts


def _from_5424(rows: Sequence[tuple], lines: Callable[[], list[str]]) -> _Parts:
    """RFC 5424 messages, column by column, from their regex groups; `lines()` gives their whole texts."""
    pris, stamps, hosts, apps, procids, msgids, data, messages = map(list, zip(*rows, strict=True))
    parts = _Parts(stamps, list(map(_services.get, apps)), list(map(SEVERITY_OF_PRI.get, pris)), messages, [])
    heads = list(map(HEAD_OF_PRI.get, pris))
    if None in heads:  # PRI above 191 (or with leading zeros): not syslog after all
        for index, head in enumerate(heads):
            if head is None:
                heads[index] = HEAD_OF_PRI[_NO_PRI]
                _note(parts, index, "parse_error", "PRI is not a number from 0 to 191")
                parts.severities[index] = SEVERITY_OF_PRI[_NO_PRI]
                messages[index], stamps[index], apps[index] = lines()[index], NIL, NIL
                hosts[index] = procids[index] = msgids[index] = data[index] = NIL
                parts.services[index] = DEFAULT_SERVICE
    if None in parts.services:
        for index, service in enumerate(parts.services):
            if service is None:
                parts.services[index] = service_name(apps[index])
    for index, (app, service) in enumerate(zip(apps, parts.services, strict=True)):
        if app != service and app != NIL:
            _note(parts, index, "app_name", app)
    if NIL in stamps:
        parts.times = [None if stamp == NIL else stamp for stamp in stamps]
    pieces = [heads]
    for name, column in (("hostname", hosts), ("procid", procids), ("msgid", msgids)):
        if NEEDS_ESCAPE.search("".join(column)):
            column = [value if value == NIL else json_text(value)[1:-1] for value in column]
        prefix = f',"{name}":"'
        pieces.append(["" if value == NIL else f'{prefix}{value}"' for value in column])
    malformed = []  # records whose STRUCTURED-DATA is not RFC 5424's: their whole line is the message
    if data.count(NIL) != len(data):
        for index, sd in enumerate(data):
            if sd != NIL and not _SD_WELL_FORMED.fullmatch(sd):
                malformed.append(index)
                data[index] = NIL
                _note(parts, index, "parse_error", f"STRUCTURED-DATA is not as RFC 5424 writes it ({_SD_FORM})")
        pieces.append([_structured_data_attribute(parts, i, sd) if sd != NIL else "" for i, sd in enumerate(data)])
    parts.heads = list(map("".join, zip(*pieces, strict=True)))
    parts.messages = [message[1:] if message[:1] in LEADING else message for message in messages if message]
    if len(parts.messages) != len(messages):  # no MSG (None from match, "" from findall): the whole line
        parts.messages = [
            (message[1:] if message[:1] in LEADING else message) if message else text
            for message, text in zip(messages, lines(), strict=True)
        ]
    elif "" in parts.messages:  # MSG was only a BOM or a space
        parts.messages = [message or text for message, text in zip(parts.messages, lines(), strict=True)]
    for index in malformed:  # (what it holds, `[a x=1]`, would otherwise be lost: an element without parameters)
        parts.messages[index] = lines()[index]
    return parts


def _from_other(text: str) -> _Parts:
    """One message that is not RFC 5424: RFC 3164 (with or without hostname and tag, with a BSD or an
    RFC 3339 time), `<PRI>` and text, or a line that is not syslog."""
    if _CLAIMS_5424.match(text):
        return _unparsed_one(text, "the RFC 5424 header does not parse")
    found = _RFC3164.match(text)
    if found is not None:
        pri_text, bsd_time, iso_time, rest = found.groups()
    else:
        only = _PRI_ONLY.match(text)
        if only is None:
            return _unparsed_one(text, "no <PRI> at the start: not a syslog message")
        pri_text, rest = only.groups()
        bsd_time = iso_time = None
    head = HEAD_OF_PRI.get(pri_text)
    if head is None:
        return _unparsed_one(text, "PRI is not a number from 0 to 191")
    attributes: dict = {}
    service = DEFAULT_SERVICE
    message = rest
    if found is not None:
        tagged = _TAGGED.match(rest) or _TAGGED_NO_COLON.match(rest)
        if tagged is not None:
            host, tag, procid, message = tagged.groups()
            service = service_name(tag)
            if service != tag:
                attributes["app_name"] = tag
            if procid:
                attributes["procid"] = procid
        else:
            host_only = _HOST_ONLY.match(rest)
            host, message = host_only.groups() if host_only is not None else (None, rest)
        if host is not None:
            attributes["hostname"] = host
    if attributes:
        head += "," + _encode(attributes)[1:-1].decode()
    parts = _Parts([bsd_time or iso_time], [service], [SEVERITY_OF_PRI[pri_text]], [message or text], [head])
    if bsd_time is not None:
        parts.bsd.add(0)
    return parts


def _unparsed_one(text: str, reason: str) -> _Parts:
    """A line kept whole as the message of a user.notice record, saying why it did not parse."""
    parts = _Parts([None], [DEFAULT_SERVICE], [SEVERITY_OF_PRI[_NO_PRI]], [text], [HEAD_OF_PRI[_NO_PRI]])
    _note(parts, 0, "parse_error", reason)
    return parts


def _note(parts: _Parts, index: int, name: str, value: str) -> None:
    """An attribute of one record beyond the usual ones; a second parse_error adds to the first."""
    extra = parts.extra.setdefault(index, {})
    extra[name] = f"{extra[name]}; {value}" if name in extra else value


def _unparsed(parts: _Parts) -> int:
    return sum("parse_error" in extra for extra in parts.extra.values())


def _times(parts: _Parts, bounds: TimeBounds, zone: tzinfo) -> list[int]:
    """Epoch ms per record; the time received for none, or for one the store would refuse (the time as
    sent then kept in attributes.syslog_timestamp)."""
    times = parts.times
    stamps = rfc3339_times([None if i in parts.bsd else t for i, t in enumerate(times)] if parts.bsd else times, zone)
    known: dict[str, int | None] = {}
    for index in parts.bsd:
        text = times[index]
        assert text is not None
        if text not in known:
            known[text] = rfc3164_time(text, bounds.now_ms, zone)
        stamps[index] = known[text]
    earliest, latest = max(bounds.earliest_ms, SMALLEST_PLAUSIBLE_MS), bounds.latest_ms
    fine = None not in stamps and earliest <= min(stamps) and max(stamps) <= latest  # type: ignore[type-var]
    if not fine:
        for index, stamp in enumerate(stamps):
            if stamp is None or not earliest <= stamp <= latest:
                if times[index] is not None:
                    _note(parts, index, "syslog_timestamp", times[index])  # type: ignore[arg-type]
                stamps[index] = bounds.now_ms
    return stamps  # type: ignore[return-value]


def _fit_messages(parts: _Parts, limit: int) -> None:
    """Cut a message over `limit` UTF-8 bytes to it (bytes that were not UTF-8 grew into U+FFFD's three)."""
    messages = parts.messages
    quarter = limit // 4
    if max(map(len, messages)) <= quarter:
        return
    for index, message in enumerate(messages):
        if len(message) > quarter:
            data = message.encode()
            if len(data) > limit:
                messages[index] = data[:limit].decode("utf-8", "ignore")
                _note(parts, index, "parse_error", f"the message was longer than {limit} bytes and was cut to that")


def _fit_attributes(parts: _Parts, encoded: list[bytes], texts: list[str], tail: str, limits: Limits) -> None:
    """A huge STRUCTURED-DATA: dropped from the attributes, the whole line becomes the message. When that is not
    enough (a huge HOSTNAME, APP-NAME, tag, ...), the attributes keep PRI's fields alone: the line holds the rest."""
    limit = limits.max_attribute_bytes
    for index, attributes in enumerate(encoded):
        if len(attributes) > limit:
            head = parts.heads[index].split(',"structured_data":', 1)[0]
            extra = parts.extra.setdefault(index, {})
            extra["parse_error"] = f"STRUCTURED-DATA over {limit} bytes; see the message"
            parts.messages[index] = texts[index]
            encoded[index] = (head + "," + _encode(extra)[1:-1].decode() + tail).encode()
            if len(encoded[index]) > limit:
                error = {"parse_error": f"the header's fields over {limit} bytes as attributes; see the message"}
                parts.extra[index] = error
                pri = _PRI_HEAD.match(head)  # (every head begins with PRI's fields; "{" alone were there none)
                opening = pri.group() + "," if pri else "{"
                encoded[index] = (opening + _encode(error)[1:-1].decode() + tail).encode()
    _fit_messages(parts, limits.max_message_bytes)


def service_name(app: str) -> str:
    """APP-NAME or tag as a service name: characters outside the record's name charset become `_`."""
    if app == NIL:
        return DEFAULT_SERVICE
    service = app if NAME_PATTERN.fullmatch(app) else _NOT_NAME.sub("_", app)[:_MAX_NAME]
    if len(_services) < _MAX_KNOWN_SERVICES:
        _services[app] = service
    return service


def json_text(value: str) -> str:
    return _encode(value).decode()


def _structured_data_attribute(parts: _Parts, index: int, text: str) -> str:
    """The record's structured_data attribute (JSON text after a comma; none when no element is left), its
    trace and span ids taken into parts.ids."""
    elements = _structured_data(text)
    ids = _take_ids(elements)
    if ids != (None, None):
        parts.ids[index] = ids
    return ',"structured_data":' + _encode(elements).decode() if elements else ""


def _take_ids(elements: dict) -> tuple[str | None, str | None]:
    """The trace and span ids of the first SD element that gives one (see the module's docstring)."""
    for sd_id, params in elements.items():
        trace_id, span_id = take_ids(params)
        if trace_id is None and span_id is None and (both := traceparent_ids(params.get("traceparent"))):
            trace_id, span_id = both
            del params["traceparent"]
        if trace_id is not None or span_id is not None:
            if not params:
                del elements[sd_id]
            return trace_id, span_id
    return None, None


def _structured_data(text: str) -> dict:
    elements: dict = {}
    for element in _SD_ELEMENT.finditer(text):
        params: dict = elements.setdefault(element.group(1), {})
        for param in _SD_PARAM.finditer(element.group(2)):
            name, value = param.group(1), _SD_ESCAPE.sub(r"\1", param.group(2))
            before = params.get(name)
            if before is None:
                params[name] = value
            elif type(before) is list:
                before.append(value)
            else:
                params[name] = [before, value]
    return elements
