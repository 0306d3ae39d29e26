"""A read's syslog messages as Arrow columns: the common case by Arrow kernels, the rest by syslog_parse.

The common case is a batch of RFC 5424 messages whose header is plain: PRI 0-191, HOSTNAME, PROCID and
MSGID without characters JSON must escape, no STRUCTURED-DATA, a MSG that fits the record. rsyslog forwards
most messages so. Such a batch is split into its fields and mapped onto the record by Arrow's C++ kernels,
a column at a time, with no Python object per message (Python works once per distinct APP-NAME). Any other
batch, or one with a time Arrow cannot read, goes through syslog_parse message by message, which gives the
same record for the same message (tests/protocols check both against the same expectations).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo

import pyarrow as pa
import pyarrow.compute as pc

from loglake.model import Limits, TimeBounds
from loglake.protocols.syslog_framing import TruncatedFrame, UnfinishedFrame
from loglake.protocols.syslog_parse import (
    HEAD_OF_PRI,
    LEADING,
    NEEDS_ESCAPE,
    NIL,
    SEVERITY_OF_PRI,
    SyslogColumns,
    json_text,
    parse_messages,
    service_name,
)
from loglake.protocols.syslog_times import rfc3339_ms
from loglake.times import SMALLEST_PLAUSIBLE_MS

# What Python's `\S` (syslog_parse's header fields) matches, for RE2: all but str.isspace()'s characters.
_SPACES = r"\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
_FIELD = f"[^{_SPACES}]+"
_NEEDS_ESCAPE = NEEDS_ESCAPE.pattern  # RE2 reads it as Python does
_PLAIN_FIELD = f"[^{_SPACES}{_NEEDS_ESCAPE[1:-1]}]+"  # one that goes into the attributes' JSON as it is
# A plain RFC 5424 header: PRI 0-191 without leading zeros, VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID
# and MSGID (those that go into the attributes as they are: with nothing to escape), "-" for STRUCTURED-DATA.
_PRI_AND_VERSION = r"<(?:1[0-8][0-9]|19[01]|[1-9]?[0-9])>[1-9][0-9]?"
_PLAIN_HEADER = f"^{_PRI_AND_VERSION} {_FIELD} {_PLAIN_FIELD} {_FIELD} {_PLAIN_FIELD} {_PLAIN_FIELD} - "
_BY_PRI = range(192)
_SEVERITIES = pa.array([SEVERITY_OF_PRI[str(pri)] for pri in _BY_PRI], pa.string())
_HEADS = pa.array([HEAD_OF_PRI[str(pri)] for pri in _BY_PRI], pa.string())


@dataclass
class SyslogBatch:
    """Syslog messages as the record's columns, in arrival order: epoch ms (int64), service, severity,
    message and attributes (JSON text) as Arrow arrays; `unparsed` of them kept whole with a parse_error;
    the trace and span ids that STRUCTURED-DATA gave (None: none did)."""

    timestamps: pa.Array
    services: pa.Array
    severities: pa.Array
    messages: pa.Array
    attributes: pa.Array
    unparsed: int = 0
    trace_ids: pa.Array | None = None
    span_ids: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.messages)

    @classmethod
    def of(cls, columns: SyslogColumns) -> SyslogBatch:
        return cls(
            pa.array(columns.timestamps, pa.int64()),
            pa.array(columns.services, pa.string()),
            pa.array(columns.severities, pa.string()),
            pa.array(columns.messages, pa.string()),
            pa.array(columns.attributes, pa.binary()).cast(pa.string()),
            columns.unparsed,
            None if columns.trace_ids is None else pa.array(columns.trace_ids, pa.string()),
            None if columns.span_ids is None else pa.array(columns.span_ids, pa.string()),
        )

    @classmethod
    def concat(cls, batches: list[SyslogBatch]) -> SyslogBatch:
        if len(batches) == 1:
            return batches[0]
        fields = ("timestamps", "services", "severities", "messages", "attributes")
        columns = [pa.concat_arrays([getattr(batch, name) for batch in batches]) for name in fields]
        ids = [_concat_ids([getattr(batch, name) for batch in batches], batches) for name in ("trace_ids", "span_ids")]
        return cls(*columns, sum(batch.unparsed for batch in batches), *ids)


def _concat_ids(columns: list[pa.Array | None], batches: list[SyslogBatch]) -> pa.Array | None:
    """The batches' trace (or span) ids as one column, nulls for a batch without; None when none has any."""
    if all(column is None for column in columns):
        return None
    filled = [pa.nulls(len(batch), pa.string()) if c is None else c for c, batch in zip(columns, batches, strict=True)]
    return pa.concat_arrays(filled)


def parse_batch(frames: list[bytes], peer: str, bounds: TimeBounds, limits: Limits, zone: tzinfo = UTC) -> SyslogBatch:
    """The records of a read's syslog messages (one per frame or datagram) from the sender at `peer`; times
    without a zone read in `zone` (the syslog_timezone setting)."""
    batch = _plain_rfc5424(frames, peer, bounds, limits)
    return batch if batch is not None else SyslogBatch.of(parse_messages(frames, peer, bounds, limits, zone))


def _plain_rfc5424(frames: list[bytes], peer: str, bounds: TimeBounds, limits: Limits) -> SyslogBatch | None:
    """The batch by Arrow kernels when every message is plain RFC 5424 (see the module's docstring), else None."""
    if not set(map(type, frames)).isdisjoint((TruncatedFrame, UnfinishedFrame)):
        return None
    try:
        lines = pa.array(frames, pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:  # not UTF-8: syslog_parse replaces what is not
        return None
    if not pc.all(pc.match_substring_regex(lines, _PLAIN_HEADER)).as_py():
        return None
    parts = pc.split_pattern(lines, " ", max_splits=7)
    pri_text, stamps, hosts, apps, procids, msgids, _, messages = (pc.list_element(parts, i) for i in range(8))
    times = _times(stamps, bounds)
    if times is None:
        return None
    stamps_ms, noted_times = times
    messages = _messages(messages, lines)
    if pc.max(pc.binary_length(messages)).as_py() > limits.max_message_bytes:
        return None
    pri = pc.replace_substring_regex(pri_text, r"^<([0-9]+)>.*$", r"\1").cast(pa.int16())
    services, app_names = _services(apps)
    pieces = [pc.take(_HEADS, pri)]
    for name, column in (("hostname", hosts), ("procid", procids), ("msgid", msgids)):
        pieces.append(
            pc.if_else(pc.equal(column, NIL), "", pc.binary_join_element_wise(f',"{name}":"', column, '"', ""))
        )
    pieces += [app_names, noted_times, ',"peer":' + json_text(peer) + "}"]
    attributes = pc.binary_join_element_wise(*pieces, "")
    if pc.max(pc.binary_length(attributes)).as_py() > limits.max_attribute_bytes:
        return None
    return SyslogBatch(stamps_ms, services, pc.take(_SEVERITIES, pri), messages, attributes)


def _times(stamps: pa.Array, bounds: TimeBounds) -> tuple[pa.Array, pa.Array] | None:
    """Epoch ms per message (the time received for none, or for one the store would refuse), and the
    attribute noting the time as sent then; None when Arrow cannot read one of them."""
    nil = pc.equal(stamps, NIL)
    try:
        given = rfc3339_ms(pc.if_else(nil, pa.scalar(None, pa.string()), stamps))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    earliest = max(bounds.earliest_ms, SMALLEST_PLAUSIBLE_MS)
    outside = pc.or_kleene(pc.less(given, earliest), pc.greater(given, bounds.latest_ms))
    refused = pc.fill_null(outside, True)
    stamps_ms = pc.if_else(refused, bounds.now_ms, given)
    noted = pc.and_(refused, pc.invert(nil))  # a time was sent, and it is not the record's
    if not pc.any(noted).as_py():
        return stamps_ms, pa.scalar("")
    if pc.any(pc.match_substring_regex(stamps, _NEEDS_ESCAPE)).as_py():
        return None
    note = pc.binary_join_element_wise(',"syslog_timestamp":"', stamps, '"', "")
    return stamps_ms, pc.if_else(noted, note, "")


def _messages(messages: pa.Array, lines: pa.Array) -> pa.Array:
    """MSG without a leading BOM or space; the whole line when there is no more."""
    leading = pc.or_(pc.starts_with(messages, LEADING[0]), pc.starts_with(messages, LEADING[1]))
    if pc.any(leading).as_py():
        messages = pc.if_else(leading, pc.utf8_slice_codeunits(messages, 1), messages)
    empty = pc.equal(messages, "")
    return pc.if_else(empty, lines, messages) if pc.any(empty).as_py() else messages


def _services(apps: pa.Array) -> tuple[pa.Array, pa.Array | pa.Scalar]:
    """APP-NAME as service names, worked out once per distinct name; and the app_name attribute for those
    whose name had to change."""
    encoded = pc.dictionary_encode(apps)
    names = encoded.dictionary.to_pylist()
    services = [service_name(app) for app in names]
    notes = [
        "" if app in (service, NIL) else ',"app_name":' + json_text(app)
        for app, service in zip(names, services, strict=True)
    ]
    indices = encoded.indices
    app_names = pc.take(pa.array(notes, pa.string()), indices) if any(notes) else pa.scalar("")
    return pc.take(pa.array(services, pa.string()), indices), app_names
