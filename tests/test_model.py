from __future__ import annotations

import uuid

import msgspec
import pytest

from loglake import ids
from loglake.ingest import parse_body
from loglake.model import (
    DAY_MS,
    InvalidRecords,
    Limits,
    Severity,
    parse_iso8601,
    validate_batch,
)
from loglake.times import format_datetime

NOW = 1_795_000_000_000


def one(item: dict, limits: Limits | None = None):
    return validate_batch([item], limits or Limits(), NOW)[0]


def problems(items: list, limits: Limits | None = None) -> list[tuple[int, str]]:
    with pytest.raises(InvalidRecords) as caught:
        validate_batch(items, limits or Limits(), NOW)
    return [(p.index, p.field) for p in caught.value.problems]


def test_defaults() -> None:
    r = one({"message": "hi"})
    assert (r.timestamp, r.service, r.log_type, r.severity, r.attributes, r.client_id) == (
        NOW,
        "default",
        "application",
        Severity.INFO,
        None,
        None,
    )
    assert ids.timestamp_of(r.log_id) == NOW
    assert uuid.UUID(bytes=r.log_id).version == 7


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ERROR", Severity.ERROR),
        ("warn", Severity.WARNING),
        ("Fatal", Severity.CRITICAL),
        ("trace", Severity.DEBUG),
        ("notice", Severity.INFO),
        ("err", Severity.ERROR),
        ("critical", Severity.CRITICAL),
    ],
)
def test_severity_aliases_case_insensitive(given: str, expected: Severity) -> None:
    assert one({"message": "m", "severity": given}).severity == expected


def test_iso_timestamps_with_an_offset_or_without_one_as_utc() -> None:
    assert one({"message": "m", "timestamp": "2026-11-01T00:00:00.123Z"}).timestamp == 1_793_491_200_123
    assert one({"message": "m", "timestamp": "2026-11-01T01:00:00+01:00"}).timestamp == 1_793_491_200_000
    assert one({"message": "m", "timestamp": "2026-11-01T00:00:00.123"}).timestamp == 1_793_491_200_123
    assert parse_iso8601("1970-01-02T00:00:00Z") == DAY_MS


def test_format_datetime_is_utc_with_ms_and_z() -> None:
    assert format_datetime(1_793_491_200_123) == "2026-11-01T00:00:00.123Z"
    assert format_datetime(1_793_577_599_999) == "2026-11-01T23:59:59.999Z"  # the day's last ms
    assert format_datetime(951_825_723_004) == "2000-02-29T12:02:03.004Z"  # a leap day
    assert format_datetime(-1) == "1969-12-31T23:59:59.999Z"  # before the epoch, the day before


def test_every_problem_of_every_record_is_reported() -> None:
    found = problems(
        [
            {"message": "fine"},
            {"message": ""},
            {"severity": "loud"},
            "not an object",
            {"message": "m", "service": "has space", "log_type": "x" * 129, "extra": 1},
            {"message": "m", "timestamp": 1.5},
            {"message": "m", "timestamp": "yesterday"},
            {"message": "m", "timestamp": "2026-11-31T00:00:00Z"},
            {"message": "m", "timestamp": 1_700_000_000},
            {"message": "m", "timestamp": NOW + DAY_MS + 1},
            {"message": "m", "attributes": [1]},
            {"message": "m", "id": "not-a-uuid"},
            {"message": 42},
        ]
    )
    assert found == [
        (1, "message"),
        (2, "message"),
        (2, "severity"),
        (3, ""),
        (4, "extra"),
        (4, "service"),
        (4, "log_type"),
        (5, "timestamp"),
        (6, "timestamp"),
        (7, "timestamp"),
        (8, "timestamp"),
        (9, "timestamp"),
        (10, "attributes"),
        (11, "id"),
        (12, "message"),
    ]


def test_epoch_seconds_get_a_hint() -> None:
    with pytest.raises(InvalidRecords) as caught:
        validate_batch([{"message": "m", "timestamp": 1_700_000_000}], Limits(), NOW)
    assert "epoch seconds" in caught.value.problems[0].reason


def test_limits_are_configurable() -> None:
    small = Limits(
        max_message_bytes=10, max_attribute_keys=2, max_attribute_depth=2, max_attribute_bytes=20, max_future_ms=1000
    )
    assert one({"message": "é" * 5}, small).message == "é" * 5  # 10 bytes of UTF-8: at the limit
    assert problems([{"message": "é" * 6}], small) == [(0, "message")]
    assert problems([{"message": "m", "attributes": {"a": 1, "b": 2, "c": 3}}], small) == [(0, "attributes")]
    assert problems([{"message": "m", "attributes": {"a": {"b": {"c": 1}}}}], small) == [(0, "attributes")]
    assert one({"message": "m", "attributes": {"a": {"b": 1}}}, small).attributes == b'{"a":{"b":1}}'
    assert problems([{"message": "m", "attributes": {"a": "x" * 30}}], small) == [(0, "attributes")]
    assert problems([{"message": "m", "timestamp": NOW + 1001}], small) == [(0, "timestamp")]


def test_default_limits_match_the_design() -> None:
    limits = Limits()
    assert (
        limits.max_records,
        limits.max_message_bytes,
        limits.max_attribute_keys,
        limits.max_attribute_depth,
        limits.max_attribute_bytes,
        limits.max_future_ms,
    ) == (10_000, 256 * 1024, 128, 5, 64 * 1024, DAY_MS)
    assert one({"message": "x" * 256 * 1024}).message == "x" * 256 * 1024
    assert problems([{"message": "x" * (256 * 1024 + 1)}]) == [(0, "message")]
    deep = {"a": {"b": {"c": {"d": {"e": 1}}}}}  # depth 5
    assert one({"message": "m", "attributes": deep}).attributes == b'{"a":{"b":{"c":{"d":{"e":1}}}}}'
    assert problems([{"message": "m", "attributes": {"z": deep}}]) == [(0, "attributes")]


def test_ids_are_time_ordered_and_unique_within_a_millisecond() -> None:
    made = [ids.uuid7_bytes(NOW) for _ in range(1000)]
    assert made == sorted(made) and len(set(made)) == 1000
    assert ids.uuid7_bytes(NOW + 1) > made[-1]
    assert ids.lower_bound(NOW) <= made[0] < ids.lower_bound(NOW + 1)
    assert ids.parse_uuid(ids.format_uuid(made[0])) == made[0]


@pytest.mark.parametrize(
    "text",
    [
        "0123456789abcdef0123456789abcd  ",  # 30 hex digits and 2 spaces: bytes.fromhex made 15 bytes of it
        "01234567-89ab-cdef-0123-456789abcd  ",
        "0123456789abcdef0123456789abcdef",  # bare hex: not the canonical form
        " 0b7e3f2a-5c1d-4e8f-9a6b-1c2d3e4f5a6b",
        "0b7e3f2a-5c1d-4e8f-9a6b-1c2d3e4f5a6b\n",
        "0b7e3f2a+5c1d-4e8f-9a6b-1c2d3e4f5a6b",
        "0b7e3f2a-5c1d-4e8f-9a6b-1c2d3e4f5a6g",
        "0b7e3f2a-5c1d-4e8f-9a6b-1c2d3e4f5a6٣",  # an Arabic-Indic digit: a digit, but not hex
    ],
)
def test_a_client_id_must_be_a_canonical_uuid(text: str) -> None:
    with pytest.raises(ValueError, match="not a UUID"):
        ids.parse_uuid(text)
    assert problems([{"message": "m", "id": text}]) == [(0, "id")]
    # The fast path (typed decoding) refuses it too, and the full path names the field.
    with pytest.raises(InvalidRecords) as caught:
        parse_body(msgspec.json.encode({"message": "m", "id": text}), False, Limits(), NOW)
    assert [(p.index, p.field) for p in caught.value.problems] == [(0, "id")]


def test_a_canonical_client_id_in_any_case_is_accepted() -> None:
    record = one({"message": "m", "id": "0B7E3F2A-5C1D-4E8F-9A6B-1C2D3E4F5A6B"})
    assert record.client_id == bytes.fromhex("0b7e3f2a5c1d4e8f9a6b1c2d3e4f5a6b")


def test_the_time_is_the_top_of_an_ids_first_half() -> None:
    made = ids.uuid7_bytes(NOW)
    high, _ = ids.split_id(made)
    assert ids.timestamp_of_high(high) == NOW
    assert ids.smallest_high(NOW) <= high < ids.smallest_high(NOW + 1)
    assert ids.split_id(ids.lower_bound(NOW))[0] == ids.smallest_high(NOW)


TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_trace_and_span_ids_are_kept_in_lowercase() -> None:
    record = one({"message": "m", "trace_id": TRACE.upper(), "span_id": SPAN})
    assert (record.trace_id, record.span_id) == (TRACE, SPAN)
    assert one({"message": "m"})[8:10] == (None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("trace_id", TRACE[:-1]),  # 31 digits
        ("trace_id", TRACE + "0"),
        ("trace_id", "0" * 32),  # W3C: all zeros is no trace
        ("trace_id", "g" + TRACE[1:]),
        ("trace_id", " " + TRACE[1:]),
        ("trace_id", "٣" + TRACE[1:]),  # a digit, but not hex
        ("trace_id", 42),
        ("span_id", SPAN[:-1]),
        ("span_id", "0" * 16),
        ("span_id", "0x" + SPAN[2:]),
        ("span_id", TRACE),
    ],
)
def test_a_trace_or_span_id_must_be_hex_of_its_length(field: str, value: object) -> None:
    assert problems([{"message": "m", field: value}]) == [(0, field)]
    # The fast path (typed decoding) refuses it too, and the full path names the field.
    with pytest.raises(InvalidRecords) as caught:
        parse_body(msgspec.json.encode({"message": "m", field: value}), False, Limits(), NOW)
    assert [(p.index, p.field) for p in caught.value.problems] == [(0, field)]


RULE = (
    "must be one of debug, info, warning, error, critical (or a word for one: trace, notice, warn, err, fatal, emerg,"
    " emergency, alert, crit, panic, dpanic, information, informational, verbose, silly)"
)


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("eror", f"did you mean 'error'? {RULE}"),
        ("WARNIGN", f"did you mean 'warning'? {RULE}"),
        ("loud", RULE),
        (3, RULE),
    ],
)
def test_a_misspelt_severity_is_told_what_it_likely_meant(given: object, reason: str) -> None:
    with pytest.raises(InvalidRecords) as caught:
        validate_batch([{"message": "m", "severity": given}], Limits(), NOW)
    assert [p.reason for p in caught.value.problems] == [reason]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (
            {"severty": "error"},
            "unknown field(s) severty (did you mean 'severity'?); put custom fields under 'attributes'",
        ),
        (
            {"colour": "red", "sevice": "api"},
            "unknown field(s) colour, sevice (did you mean 'service'?); put custom fields under 'attributes'",
        ),
    ],
)
def test_a_misspelt_field_is_told_what_it_likely_meant(record: dict, reason: str) -> None:
    with pytest.raises(InvalidRecords) as caught:
        validate_batch([{"message": "m", **record}], Limits(), NOW)
    assert [p.reason for p in caught.value.problems] == [reason]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"message": "m", "level": "error"}, "unknown field(s) level (did you mean 'severity'?); "),
        ({"msg": "m"}, "unknown field(s) msg (did you mean 'message'?); "),
        (
            {"message": "m", "@timestamp": "2026-12-06T10:00:00Z", "service.name": "api"},
            "unknown field(s) @timestamp (did you mean 'timestamp'?), service.name (did you mean 'service'?); ",
        ),
        ({"message": "m", "traceId": "ab" * 16}, "unknown field(s) traceId (did you mean 'trace_id'?); "),
    ],
)
def test_another_loggers_name_for_a_field_is_told_the_records_name(record: dict, reason: str) -> None:
    with pytest.raises(InvalidRecords) as caught:
        validate_batch([record], Limits(), NOW)
    assert [p.reason for p in caught.value.problems if p.reason.startswith("unknown")] == [
        reason + "put custom fields under 'attributes'"
    ]
