"""Every syslog mapping rule onto the loglake record, RFC 5424 and RFC 3164, and lines that do not parse."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loglake.model import Limits, TimeBounds
from loglake.protocols import syslog_batches
from loglake.protocols.syslog_batches import parse_batch
from loglake.protocols.syslog_framing import TruncatedFrame
from loglake.protocols.syslog_parse import parse_messages
from loglake.protocols.syslog_times import rfc3164_time


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


NOW = ms("2026-12-04T12:00:00Z")
LIMITS = Limits(retention_days=365)
BOUNDS = TimeBounds.of(LIMITS, NOW)


def parse(*frames: bytes, limits: Limits = LIMITS) -> list[dict]:
    """The records of a batch as the listeners make them (syslog_batches: Arrow kernels for a plain RFC 5424
    batch), which must be those syslog_parse makes message by message."""
    bounds = TimeBounds.of(limits, NOW)
    batch = parse_batch(list(frames), "192.0.2.7", bounds, limits)
    records = as_records(batch.timestamps, batch.services, batch.severities, batch.messages, batch.attributes)
    columns = parse_messages(list(frames), "192.0.2.7", bounds, limits)
    one_by_one = (columns.timestamps, columns.services, columns.severities, columns.messages, columns.attributes)
    assert as_records(*one_by_one) == records
    assert columns.unparsed == batch.unparsed
    return records


def as_records(*columns: Any) -> list[dict]:
    lists = [column.to_pylist() if isinstance(column, pa.Array) else column for column in columns]
    return [
        {"timestamp": t, "service": s, "severity": v, "message": m, "attributes": json.loads(a)}
        for t, s, v, m, a in zip(*lists, strict=True)
    ]


def test_rfc5424_every_field() -> None:
    (record,) = parse(
        b"<165>1 2026-12-04T11:14:15.003Z mymachine.example.com evntslog 8710 ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="Application"][examplePriority@32473 class="high"] '
        b"\xef\xbb\xbfAn application event log entry"
    )
    assert record == {
        "timestamp": ms("2026-12-04T11:14:15.003Z"),
        "service": "evntslog",
        "severity": "info",  # notice
        "message": "An application event log entry",  # the BOM dropped
        "attributes": {
            "facility": "local4",
            "syslog_severity": "notice",
            "hostname": "mymachine.example.com",
            "procid": "8710",
            "msgid": "ID47",
            "structured_data": {
                "exampleSDID@32473": {"iut": "3", "eventSource": "Application"},
                "examplePriority@32473": {"class": "high"},
            },
            "peer": "192.0.2.7",
        },
    }


@pytest.mark.parametrize(
    ("pri", "severity", "facility", "syslog_severity"),
    [
        (0, "critical", "kern", "emerg"),
        (9, "critical", "user", "alert"),
        (34, "critical", "auth", "crit"),
        (27, "error", "daemon", "err"),
        (12, "warning", "user", "warning"),
        (13, "info", "user", "notice"),
        (86, "info", "authpriv", "info"),
        (191, "debug", "local7", "debug"),
    ],
)
def test_pri_gives_severity_and_facility(pri: int, severity: str, facility: str, syslog_severity: str) -> None:
    for frame in (b"<%d>1 - h app - - - text" % pri, b"<%d>Dec  4 11:00:00 h app: text" % pri):
        (record,) = parse(frame)
        assert record["severity"] == severity
        assert record["attributes"]["facility"] == facility
        assert record["attributes"]["syslog_severity"] == syslog_severity


def test_rfc5424_nil_values_leave_fields_out_and_take_the_time_received() -> None:
    (record,) = parse(b"<14>1 - - - - - - just text")
    assert record == {
        "timestamp": NOW,
        "service": "default",
        "severity": "info",
        "message": "just text",
        "attributes": {"facility": "user", "syslog_severity": "info", "peer": "192.0.2.7"},
    }


def test_rfc5424_time_offsets_and_fractions() -> None:
    records = parse(
        b"<14>1 2026-12-04T04:14:15.000003-07:00 h a - - - x",
        b"<14>1 2026-12-04T11:14:15+00:00 h a - - - x",
    )
    assert [r["timestamp"] for r in records] == [ms("2026-12-04T11:14:15Z"), ms("2026-12-04T11:14:15Z")]


def test_structured_data_escapes_and_repeated_parameters() -> None:
    (record,) = parse(b'<14>1 - h a - - [id@1 p="say \\"hi\\" \\\\ \\]" p="two" q=""] msg')
    assert record["attributes"]["structured_data"] == {"id@1": {"p": ['say "hi" \\ ]', "two"], "q": ""}}
    assert record["message"] == "msg"


@pytest.mark.parametrize("data", ["[a x=1]", '[a x="1"][ b]', '[a x="1"junk]'])
def test_structured_data_not_as_rfc5424_writes_it_keeps_the_line_and_says_so(data: str) -> None:
    """`[a x=1]` (a value not quoted) was stored as {"a": {}} and nothing said so: `x=1` was lost."""
    line = f"<14>1 - h app - - {data} msg"
    fine, (record,) = parse(b'<14>1 - h app - - [a x="1"] msg'), parse(line.encode())
    assert fine[0]["attributes"]["structured_data"] == {"a": {"x": "1"}} and "parse_error" not in fine[0]["attributes"]
    assert (record["message"], record["service"], record["attributes"]["hostname"]) == (line, "app", "h")
    assert "structured_data" not in record["attributes"]
    assert record["attributes"]["parse_error"].startswith("STRUCTURED-DATA is not as RFC 5424 writes it")


TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def ids_of(*frames: bytes) -> list[tuple[str | None, str | None]]:
    batch = parse_batch(list(frames), "192.0.2.7", BOUNDS, LIMITS)
    if batch.trace_ids is None:
        return [(None, None)] * len(frames)
    return list(zip(batch.trace_ids.to_pylist(), batch.span_ids.to_pylist(), strict=True))


@pytest.mark.parametrize(
    ("data", "kept"),
    [
        (f'[otel trace_id="{TRACE.upper()}" span_id="{SPAN}"]', None),  # an element left empty goes
        (
            f'[otel trace_id="{TRACE}" span_id="{SPAN}" flags="01"][x@1 a="b"]',
            {"otel": {"flags": "01"}, "x@1": {"a": "b"}},
        ),
        (f'[x@1 a="b"][tracecontext traceparent="00-{TRACE}-{SPAN}-01"]', {"x@1": {"a": "b"}}),
    ],
)
def test_trace_context_in_structured_data_gives_the_records_ids(data: str, kept: dict | None) -> None:
    frame = f"<14>1 - h a - - {data} msg".encode()
    (record,) = parse(frame)
    assert record["attributes"].get("structured_data") == kept
    assert ids_of(frame) == [(TRACE, SPAN)]


@pytest.mark.parametrize(
    "data",
    [
        '[otel trace_id="not-an-id" span_id="00000000000000000"]',
        f'[otel trace_id="{TRACE}" trace_id="{TRACE}"]',  # given twice: a list, which is no id
        f'[otel trace_id="{"0" * 32}" span_id="{"0" * 16}"]',  # all zeros: no id, as W3C says
        f'[tc traceparent="ff-{TRACE}-{SPAN}-01"]',  # version ff is invalid
        f'[tc traceparent="00-{TRACE}-{SPAN}-01-more"]',  # version 00 has nothing after the flags
        f'[tc traceparent="00-{TRACE.upper()}-{SPAN}-01"]',  # traceparent is lowercase
        f'[tc traceparent="00-{"0" * 32}-{SPAN}-01"]',
    ],
)
def test_values_in_structured_data_that_are_no_ids_stay_as_sent(data: str) -> None:
    frame = f"<14>1 - h a - - {data} msg".encode()
    (record,) = parse(frame)
    sd_id = data[1 : data.index(" ")]
    assert list(record["attributes"]["structured_data"]) == [sd_id]
    assert ids_of(frame) == [(None, None)]


def test_the_first_element_giving_ids_gives_them_and_a_later_traceparent_of_a_future_version_counts() -> None:
    other = "a" * 32
    first = f'<14>1 - h a - - [one span_id="{SPAN}"][two trace_id="{other}"] msg'.encode()
    later = f'<14>1 - h a - - [tc traceparent="01-{TRACE}-{SPAN}-01-extra"] msg'.encode()
    plain = b"<14>1 - h a - - - msg"
    assert ids_of(first, later, plain) == [(None, SPAN), (TRACE, SPAN), (None, None)]
    assert parse(first)[0]["attributes"]["structured_data"] == {"two": {"trace_id": other}}


def test_app_name_outside_the_name_charset_becomes_a_valid_service_and_is_kept() -> None:
    (record,) = parse(b"<14>1 - h my/app:x - - - msg")
    assert record["service"] == "my_app_x"
    assert record["attributes"]["app_name"] == "my/app:x"


def test_header_values_are_json_escaped() -> None:
    (record,) = parse(b'<14>1 - ho"st\\x a 1\x01 - - msg')
    assert record["attributes"]["hostname"] == 'ho"st\\x'
    assert record["attributes"]["procid"] == "1\x01"


def test_no_msg_keeps_the_whole_line() -> None:
    (record,) = parse(b'<14>1 - h a - - [x@1 k="v"]')
    assert record["message"] == '<14>1 - h a - - [x@1 k="v"]'


def test_rfc3164_with_host_tag_and_pid() -> None:
    (record,) = parse(b"<38>Dec  4 11:30:00 myhost sshd[123]: Accepted password for root")
    assert record == {
        "timestamp": NOW - 30 * 60_000,
        "service": "sshd",
        "severity": "info",
        "message": "Accepted password for root",
        "attributes": {
            "facility": "auth",
            "syslog_severity": "info",
            "hostname": "myhost",
            "procid": "123",
            "peer": "192.0.2.7",
        },
    }


def test_rfc3164_without_host_and_with_an_rfc3339_time() -> None:
    records = parse(b"<13>Dec  4 11:30:00 cron: job done", b"<13>2026-12-04T11:30:00Z h cron[7]: job done")
    assert [(r["service"], r["message"], r["timestamp"]) for r in records] == [
        ("cron", "job done", NOW - 30 * 60_000),
        ("cron", "job done", NOW - 30 * 60_000),
    ]
    assert "hostname" not in records[0]["attributes"]
    assert records[1]["attributes"]["hostname"] == "h"


def test_rfc3164_time_without_a_year_is_the_last_such_time() -> None:
    (record,) = parse(b"<13>Dec 31 23:00:00 h app: from last year")
    assert record["timestamp"] == ms("2025-12-31T23:00:00Z")


@pytest.mark.parametrize(
    ("now", "sent", "read"),
    [
        ("2029-01-15T12:00:00Z", "Feb 29 10:00:00", "2028-02-29T10:00:00Z"),  # last year's leap day: it was None
        ("2028-03-01T12:00:00Z", "Feb 29 10:00:00", "2028-02-29T10:00:00Z"),
        ("2026-12-31T23:00:00Z", "Jan  1 00:30:00", "2027-01-01T00:30:00Z"),  # a clock ahead at the new year
        ("2026-12-31T23:00:00Z", "Dec 31 22:00:00", "2026-12-31T22:00:00Z"),
        ("2027-06-01T12:00:00Z", "Feb 29 10:00:00", None),  # none in the last year
        ("2027-06-01T12:00:00Z", "Apr 31 10:00:00", None),
    ],
)
def test_rfc3164_time_is_in_the_latest_year_that_puts_it_at_most_a_day_after_now(
    now: str, sent: str, read: str | None
) -> None:
    """The next year was never tried (`Jan  1 00:30:00` half an hour before the new year was a year back), nor the
    year before for 29 Feb in a year without one (stored at its arrival)."""
    assert rfc3164_time(sent, ms(now)) == (None if read is None else ms(read))


def test_rfc3164_without_a_tag_has_host_and_message() -> None:
    (record,) = parse(b"<13>Dec  4 11:30:00 myhost some words without a tag")
    assert (record["service"], record["message"]) == ("default", "some words without a tag")
    assert record["attributes"]["hostname"] == "myhost"


def test_rfc3164_tag_with_its_pid_may_end_at_a_space_as_rsyslog_relays_rfc5424_messages() -> None:
    records = parse(b"<14>Dec  4 11:30:00 h myapp[12] started, pid 12", b"<14>Dec  4 11:30:00 myapp[7] hello")
    assert [(r["service"], r["message"], r["attributes"]["procid"]) for r in records] == [
        ("myapp", "started, pid 12", "12"),
        ("myapp", "hello", "7"),
    ]
    assert records[0]["attributes"]["hostname"] == "h" and "hostname" not in records[1]["attributes"]


def test_rfc3164_time_with_a_fraction_of_a_second() -> None:
    # syslog-ng's frac-digits(3): the line was kept whole, its host and tag lost, and stamped at its arrival
    records = parse(b"<14>Dec  4 11:30:00.765 shiphost app[42]: x", b"<14>Dec  4 11:30:00.5 h app: y")
    assert [(r["service"], r["message"], r["timestamp"]) for r in records] == [
        ("app", "x", NOW - 30 * 60_000 + 765),
        ("app", "y", NOW - 30 * 60_000 + 500),
    ]
    assert records[0]["attributes"]["hostname"] == "shiphost" and "parse_error" not in records[0]["attributes"]


def test_pri_and_text_only() -> None:
    (record,) = parse(b"<11>disk failing")
    assert (record["severity"], record["message"], record["timestamp"]) == ("error", "disk failing", NOW)
    assert "parse_error" not in record["attributes"]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"no pri at all", "no <PRI> at the start: not a syslog message"),
        (b"<13>1 2026-12-04T11:30:00Z too short", "the RFC 5424 header does not parse"),
        (b"<192>1 - h a - - - x", "PRI is not a number from 0 to 191"),
        (b"<999>Dec  4 11:30:00 h a: x", "PRI is not a number from 0 to 191"),
    ],
)
def test_lines_that_do_not_parse_are_kept_whole_and_say_why(frame: bytes, reason: str) -> None:
    columns = parse_messages([frame, b"<14>1 - h ok - - - fine"], "192.0.2.7", BOUNDS, LIMITS)
    assert columns.unparsed == 1
    record, fine = parse(frame, b"<14>1 - h ok - - - fine")
    assert record["message"] == frame.decode()
    assert record["attributes"] == {
        "facility": "user",
        "syslog_severity": "notice",
        "parse_error": reason,
        "peer": "192.0.2.7",
    }
    assert (record["service"], record["severity"], record["timestamp"]) == ("default", "info", NOW)
    assert fine["service"] == "ok" and "parse_error" not in fine["attributes"]


def test_a_time_the_store_would_refuse_becomes_the_time_received() -> None:
    records = parse(b"<14>1 2003-10-11T22:14:15.003Z h a - - - old", b"<14>1 2027-01-01T00:00:00Z h a - - - ahead")
    assert [r["timestamp"] for r in records] == [NOW, NOW]
    assert records[0]["attributes"]["syslog_timestamp"] == "2003-10-11T22:14:15.003Z"
    assert records[1]["attributes"]["syslog_timestamp"] == "2027-01-01T00:00:00Z"


def test_bytes_that_are_not_utf8_are_replaced() -> None:
    (record,) = parse(b"<14>1 - h a - - - caf\xe9")
    assert record["message"] == "caf\ufffd"


def test_a_truncated_frame_says_so() -> None:
    (record,) = parse(TruncatedFrame(b"<14>1 - h a - - - begin"))
    assert record["message"] == "begin"
    assert record["attributes"]["parse_error"] == "the message was longer than 23 bytes and was cut to that"


def test_a_message_over_the_limit_is_cut_to_it() -> None:
    limits = Limits(max_message_bytes=16, retention_days=365)
    (record,) = parse(b"<14>1 - h a - - - " + "é".encode() * 20, limits=limits)
    assert record["message"] == "é" * 8
    assert record["attributes"]["parse_error"] == "the message was longer than 16 bytes and was cut to that"


def test_structured_data_over_the_attribute_limit_is_dropped_and_the_line_kept() -> None:
    limits = Limits(max_attribute_bytes=200, retention_days=365)
    line = b'<14>1 - h a - - [big@1 v="' + b"z" * 300 + b'"] text'
    columns = parse_messages([line], "192.0.2.7", TimeBounds.of(limits, NOW), limits)
    (record,) = parse(line, limits=limits)
    assert record["message"] == line.decode()
    assert "structured_data" not in record["attributes"]
    assert record["attributes"]["parse_error"] == "STRUCTURED-DATA over 200 bytes; see the message"
    assert columns.unparsed == 1 and len(columns.attributes[0]) <= 200


def test_order_is_kept_when_formats_mix() -> None:
    records = parse(b"<14>1 - h one - - - 1", b"<14>Dec  4 11:00:00 h two: 2", b"junk 3", b"<14>1 - h four - - - 4")
    assert [r["message"] for r in records] == ["1", "2", "junk 3", "4"]
    assert [r["service"] for r in records] == ["one", "two", "default", "four"]


def test_one_leading_space_of_msg_is_dropped_as_rsyslog_relays_it() -> None:
    (record,) = parse(b"<14>1 - h a - - -  relayed text ")
    assert record["message"] == "relayed text "


def test_a_plain_rfc5424_batch_is_parsed_by_arrow_kernels() -> None:
    frames = [b"<14>1 2026-12-04T11:00:00Z web-1 a/b 42 M1 - \xef\xbb\xbfcaf\xc3\xa9", b"<191>1 - - - - - - x y  z"]
    assert syslog_batches._plain_rfc5424(frames, "192.0.2.7", BOUNDS, LIMITS) is not None
    first, second = parse(*frames)
    assert first == {
        "timestamp": ms("2026-12-04T11:00:00Z"),
        "service": "a_b",
        "severity": "info",
        "message": "café",
        "attributes": {
            "facility": "user",
            "syslog_severity": "info",
            "hostname": "web-1",
            "procid": "42",
            "msgid": "M1",
            "app_name": "a/b",
            "peer": "192.0.2.7",
        },
    }
    assert (second["service"], second["severity"], second["message"]) == ("default", "debug", "x y  z")
    assert second["attributes"] == {"facility": "local7", "syslog_severity": "debug", "peer": "192.0.2.7"}


@pytest.mark.parametrize(
    "odd",
    [
        b'<14>1 - h a - - [x@1 k="v"] structured data',
        b"<14>Dec  4 11:00:00 h tag: rfc 3164",
        b"<192>1 - h a - - - PRI too large",
        b"<014>1 - h a - - - PRI with a leading zero",
        b'<14>1 - ho"st a - - - a quote to escape',
        b"<14>1 - h a - - - caf\xe9 is not UTF-8",
        b"<14>1 - h\xc2\xa0x a - - - a no-break space in a field",
        b"<14>1 - h a - - -",
        TruncatedFrame(b"<14>1 - h a - - - cut"),
    ],
)
def test_a_batch_with_one_message_that_is_not_plain_goes_message_by_message(odd: bytes) -> None:
    frames = [b"<14>1 - h a - - - plain", odd]
    assert syslog_batches._plain_rfc5424(frames, "192.0.2.7", BOUNDS, LIMITS) is None
    assert parse(*frames)[0]["message"] == "plain"  # and parse() checks both ways give the same records


def test_header_fields_split_on_white_space_as_python_does() -> None:
    """The Arrow path's field class (RE2) must take what syslog_parse's `\\S` (Python's re) takes."""
    characters = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    taken = pc.match_substring_regex(pa.array(characters), f"^{syslog_batches._FIELD}$").to_pylist()
    assert taken == [re.fullmatch(r"\S", c) is not None for c in characters]


def parse_in(zone: str, *frames: bytes) -> list[dict]:
    """The records of a batch whose zone-less times are read in `zone` (both ways of parsing, as parse() checks)."""
    bounds = TimeBounds.of(LIMITS, NOW)
    batch = parse_batch(list(frames), "192.0.2.7", bounds, LIMITS, ZoneInfo(zone))
    records = as_records(batch.timestamps, batch.services, batch.severities, batch.messages, batch.attributes)
    columns = parse_messages(list(frames), "192.0.2.7", bounds, LIMITS, ZoneInfo(zone))
    one_by_one = (columns.timestamps, columns.services, columns.severities, columns.messages, columns.attributes)
    assert as_records(*one_by_one) == records
    return records


def test_rfc3164_times_are_read_in_the_senders_zone() -> None:
    """A Tokyo host's "now" was stored 9 h in the future and an LA host's 8 h back (trial s14 T4)."""
    tokyo = parse_in("Asia/Tokyo", b"<13>Dec  4 20:30:00 h app: from Tokyo (UTC+9)")
    los_angeles = parse_in("America/Los_Angeles", b"<13>Dec  4 03:30:00 h app: from LA (UTC-8)")
    assert tokyo[0]["timestamp"] == los_angeles[0]["timestamp"] == NOW - 30 * 60_000
    # The year is the one that puts the local time at most a day after now, in the zone too.
    assert parse_in("Asia/Tokyo", b"<13>Jan  1 08:30:00 h app: new year")[0]["timestamp"] == ms("2025-12-31T23:30:00Z")


def test_rfc3339_times_without_an_offset_are_read_in_the_zone_and_those_with_one_as_they_say() -> None:
    records = parse_in(
        "Asia/Tokyo",
        b"<13>1 2026-12-04T20:30:00 h app - - - no offset",
        b"<13>1 2026-12-04T11:30:00Z h app - - - UTC",
        b"<13>2026-12-04T20:30:00 h app: 3164 with an RFC 3339 time",
    )
    assert [r["timestamp"] for r in records] == [NOW - 30 * 60_000] * 3
    assert parse_in("Asia/Tokyo", b"<13>1 2026-12-04T11:30:00.5+00:00 h app - - - plain")[0]["timestamp"] == (
        NOW - 30 * 60_000 + 500
    )


def test_a_local_time_a_zone_change_skipped_or_repeated_is_read_as_zoneinfo_settles_it() -> None:
    """New York, 2026: 02:00-03:00 on 8 March never was (read in the offset before, EST); 01:00-02:00 on
    1 November was twice (read as the first, EDT)."""
    at = TimeBounds.of(LIMITS, ms("2026-11-02T12:00:00Z"))
    skipped, repeated = parse_batch(
        [b"<13>Mar  8 02:30:00 h app: skipped", b"<13>Nov  1 01:30:00 h app: repeated"],
        "192.0.2.7",
        at,
        LIMITS,
        ZoneInfo("America/New_York"),
    ).timestamps.to_pylist()
    assert (skipped, repeated) == (ms("2026-03-08T07:30:00Z"), ms("2026-11-01T05:30:00Z"))


@pytest.mark.parametrize(
    "line",
    [
        b"<14>1 - " + b"h" * 300 + b" a - - - text",
        b"<14>1 - h " + b"a" * 300 + b" - - - text",
        b"<14>Dec  4 11:00:00 " + b"h" * 300 + b" app: text",
    ],
    ids=["hostname", "app-name", "rfc3164 hostname"],
)
def test_header_fields_over_the_attribute_limit_are_dropped_and_the_line_kept(line: bytes) -> None:
    """Dropping STRUCTURED-DATA alone left a huge HOSTNAME or APP-NAME over the limit the record's rules set, and a
    parse_error that blamed a STRUCTURED-DATA the line did not have (trial S)."""
    limits = Limits(max_attribute_bytes=200, retention_days=365)
    (record,) = parse(line, limits=limits)
    assert record["message"] == line.decode()
    assert record["attributes"] == {
        "facility": "user",
        "syslog_severity": "info",
        "parse_error": "the header's fields over 200 bytes as attributes; see the message",
        "peer": "192.0.2.7",
    }
    columns = parse_messages([line], "192.0.2.7", TimeBounds.of(limits, NOW), limits)
    assert columns.unparsed == 1 and len(columns.attributes[0]) <= 200
