"""A protocol batch's records as columns, one list per record field, checked as POST /logs checks a bulk batch.

The protocol decoders map their records straight into these lists, with no object per record. A batch of
at least BULK_MIN_RECORDS records, on a server with a lake, is checked column by column into one Arrow
table (ingest_columns.valid_columns_table), as a native bulk batch is. Any other batch (a small one, or
one the column check cannot vouch for: a bad value anywhere, a client id) is made into records for the
record-by-record check (LogService.check, check_valid), which names every problem exactly as before. Records whose
attributes that check refuses for their depth, keys or size are fitted as `loglake send` fits them and checked again
(fit_refused_attributes): a shipper's document is kept, not refused, as POST /logs's client would have kept it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING

import msgspec
import pyarrow as pa

from loglake import record_fit
from loglake.ingest import BULK_MIN_RECORDS, IncomingRecord, ParsedBody
from loglake.ingest_columns import valid_columns_table
from loglake.model import InvalidRecords, TimeBounds
from loglake.times import SMALLEST_PLAUSIBLE_MS, parse_iso8601

if TYPE_CHECKING:
    from loglake.model import Limits, Problem
    from loglake.service import LogService


@dataclass(slots=True)
class RecordColumns:
    """The fields of a batch's records, each list in the records' order. Attributes are JSON object text
    (b"" for none); a timestamp is epoch ms, ISO-8601 text, or None for the time received. A decoder that maps
    column-wise may give a column as an Arrow array (epoch ms as int64, text as string, null for none), which
    the column check takes as it is: no Python object per value; and the attributes as a binary array (b""
    for none), or a dictionary array of their distinct texts (binary), each then checked once."""

    messages: list[str] | pa.Array = field(default_factory=list)
    timestamps: list[int | str | None] | pa.Array = field(default_factory=list)
    services: list[str | None] | pa.Array = field(default_factory=list)
    log_types: list[str | None] | pa.Array = field(default_factory=list)
    severities: list[str | None] | pa.Array = field(default_factory=list)
    attributes: list[bytes] | pa.Array = field(default_factory=list)
    trace_ids: list[str | None] | pa.Array = field(default_factory=list)
    span_ids: list[str | None] | pa.Array = field(default_factory=list)
    ids: list[str | None] | None = None  # the client ids, when the protocol has them
    # (deepest nesting, most keys) of any record's attributes, when the decoder knows them from the shape it read
    # (Arrow's schema): the column check then counts no brackets and no colons in their texts.
    attributes_within: tuple[int, int] | None = None
    # Rows the protocol's own rules refuse, said in its terms (a time in its unit, as sent), which the
    # records' check, reading the converted value, would misname: check_valid's (OTLP's partial success).
    refused: dict[int, Problem] = field(default_factory=dict)
    # Where runs of rows were in the request, for naming a record in an error: (first row, the list holding
    # it from there on), by first row; OTLP's `resourceLogs[0].scopeLogs[1].logRecords`. Empty: rows by number.
    holders: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.messages)

    def name(self, row: int) -> str:
        """A row as an error names it: counted from 1, as every protocol's errors count, and where it was."""
        number = f"record {row + 1}"
        at = bisect_right(self.holders, row, key=itemgetter(0)) - 1
        if at < 0:
            return number
        first, holder = self.holders[at]
        return f"{number} ({holder}[{row - first}])"

    def take(self, rows: Sequence[int]) -> RecordColumns:
        """The records at `rows` (ascending), in their order."""
        if rows and rows[-1] - rows[0] + 1 == len(rows):  # one run of rows, the usual case: slices

            def pick(column: list | pa.Array) -> list | pa.Array:
                return column[rows[0] : rows[-1] + 1]  # (of an Arrow array: a view, no copy)
        else:

            def pick(column: list | pa.Array) -> list:
                column = listed(column)
                return [column[row] for row in rows]

        return RecordColumns(
            pick(self.messages),
            pick(self.timestamps),
            pick(self.services),
            pick(self.log_types),
            pick(self.severities),
            pick(self.attributes),
            pick(self.trace_ids),
            pick(self.span_ids),
            None if self.ids is None else pick(self.ids),
            attributes_within=self.attributes_within,
        )

    def records(self) -> list[IncomingRecord]:
        """The same records one by one, for the record-by-record check."""
        ids = self.ids or [None] * len(self.messages)
        return [
            IncomingRecord(message, timestamp, service, log_type, severity, msgspec.Raw(attributes), id_, trace, span)
            for message, timestamp, service, log_type, severity, attributes, id_, trace, span in zip(
                listed(self.messages),
                listed(self.timestamps),
                listed(self.services),
                listed(self.log_types),
                listed(self.severities),
                listed(self.attributes),
                ids,
                listed(self.trace_ids),
                listed(self.span_ids),
                strict=True,
            )
        ]

    def table(self, service: LogService) -> pa.Table | None:
        """The batch as one checked Arrow table to write as lake parts, or None when it takes the
        record-by-record check (see the module)."""
        if service.lake is None or len(self.messages) < BULK_MIN_RECORDS:
            return None
        if self.ids is not None and self.ids.count(None) != len(self.ids):  # the store deduplicates client ids
            return None
        return valid_columns_table(
            self.timestamps,
            self.services,
            self.log_types,
            self.severities,
            self.messages,
            self.attributes,
            service.limits,
            service.now_ms(),
            trace_ids=self.trace_ids,
            span_ids=self.span_ids,
            attributes_within=self.attributes_within,
        )


def listed(column: list | pa.Array) -> list:
    """A column as a list of its values (Python's, of an Arrow array)."""
    return column.to_pylist() if isinstance(column, pa.Array) else column


def check(service: LogService, columns: RecordColumns, restamp: bool = False) -> ParsedBody:
    """The batch checked all or nothing: ingest.InvalidBody, or model.InvalidRecords naming every problem.
    Attributes beyond the limits are fitted first (fit_refused_attributes), and with `restamp` times no clock
    could mean are the time received (restamp_refused_times)."""
    table = columns.table(service)
    if table is not None:
        return ParsedBody(False, table=table)
    records = columns.records()
    try:
        return service.check(records)
    except InvalidRecords as e:
        if not _mended(service, records, e.problems, restamp):
            raise
    return service.check(records)


def check_valid(
    service: LogService, columns: RecordColumns, restamp: bool = False
) -> tuple[ParsedBody | None, list[Problem]]:
    """The batch's valid records (None if none is) and the problems of the others (OTLP's partial success),
    those the protocol refused itself (`refused`) among them. Attributes beyond the limits are fitted first
    (fit_refused_attributes), and with `restamp` times no clock could mean are the time received
    (restamp_refused_times)."""
    if columns.refused:
        rest = [row for row in range(len(columns)) if row not in columns.refused]
        parsed, problems = check_valid(service, columns.take(rest), restamp) if rest else (None, [])
        problems = [replace(problem, index=rest[problem.index]) for problem in problems]
        return parsed, sorted([*problems, *columns.refused.values()], key=attrgetter("index"))
    table = columns.table(service)
    if table is not None:
        return ParsedBody(False, table=table), []
    records = columns.records()
    parsed, problems = service.check_valid(records)
    if _mended(service, records, problems, restamp):
        parsed, problems = service.check_valid(records)
    return parsed, problems


def _mended(service: LogService, records: list[IncomingRecord], problems: list[Problem], restamp: bool) -> bool:
    """Whether any refused record was mended, to be checked again (each mending runs, whatever the other did)."""
    fitted = fit_refused_attributes(records, problems, service.limits)
    restamped = restamp and restamp_refused_times(records, problems, service.limits, service.now_ms())
    return fitted or restamped


TIME_SENT = "time_sent"  # the attribute keeping a time a shipper sent that no clock could mean


def restamp_refused_times(records: list[IncomingRecord], problems: list[Problem], limits: Limits, now_ms: int) -> bool:
    """Give the records refused for a time no clock could mean (more than limits.max_future_ms ahead, or before
    1973: a clock or a unit gone wrong) the time received, the time as sent kept as attribute TIME_SENT, in place;
    whether any was. The shippers' own servers store such records (Elasticsearch, an OpenTelemetry Collector,
    Splunk), and Fluent Bit takes an item refused for it for delivered and says nothing: the syslog listener and
    `loglake send` keep them so too. A time before the retention is a real one, still refused (it would be
    deleted at the next maintenance); so is a text that is no time."""
    latest = TimeBounds.of(limits, now_ms).latest_ms
    restamped = False
    for row in {problem.index for problem in problems if problem.field == "timestamp"}:
        record = records[row]
        sent = _ms_or_none(record.timestamp)
        text = bytes(record.attributes).strip()
        if sent is None or SMALLEST_PLAUSIBLE_MS <= sent <= latest or not (text == b"" or text.endswith(b"}")):
            continue  # (attributes not an object are refused as they are)
        note = b"%s:%s" % (_encode(TIME_SENT), _encode(record.timestamp))
        record.attributes = msgspec.Raw(b"{%s}" % note if text in (b"", b"{}") else text[:-1] + b",%s}" % note)
        record.timestamp = None  # (the time received)
        restamped = True
    return restamped


def _ms_or_none(value: object) -> int | None:
    """A record's time as epoch ms; None for none, or for text that is no time (the check names it)."""
    if type(value) is int:
        return value
    if type(value) is str:
        try:
            return parse_iso8601(value)
        except ValueError:
            return None
    return None


def fit_refused_attributes(records: list[IncomingRecord], problems: list[Problem], limits: Limits) -> bool:
    """Fit the attributes of the records whose attributes the limits refuse (nested too deep, too many keys, too
    large) as `loglake send` fits a line's (record_fit), in place; whether any was. A shipper's document is kept
    so, not refused: Elasticsearch takes objects nested 20 deep and Beats drop an event it refuses, OTLP's
    attribute values and Splunk's events nest as deep as their senders make them."""
    rows = {problem.index for problem in problems if problem.field == "attributes"}
    fitted = False
    for row in rows:
        attributes = _decode(records[row].attributes)
        if type(attributes) is dict:  # (a protocol's attributes are an object: what else is refused stays so)
            records[row].attributes = msgspec.Raw(_encode(record_fit.fit_attributes(attributes, {}, limits, [])))
            fitted = True
    return fitted


_decode = msgspec.json.decode
_encode = msgspec.json.Encoder().encode
