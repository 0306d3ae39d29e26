"""The HEC mapping of a batch's events: the same records (attributes in their order, as text) whether every event
is a shipper's plain one (a string event, a numeric time, flat fields), mapped rule by rule over the batch, or
the batch goes event by event."""

from __future__ import annotations

import json

import pytest

from loglake.protocols import splunk, splunk_fields
from loglake.protocols.columns import listed
from tests.protocols import column_rows

# (event, the record expected: message, timestamp, service, severity, log_type, attributes)
CASES = [
    (
        {
            "time": 1426279439.5,
            "host": "h",
            "source": "s",
            "sourcetype": "nginx:access",
            "event": "a",
            "fields": {"severity": "WARN", "service.name": "web", "z": "1", "a": ["x"]},
        },
        (
            "a",
            1426279439500,
            "web",
            "warning",
            "nginx_access",
            b'{"host":"h","source":"s","sourcetype":"nginx:access","z":"1","a":["x"]}',
        ),
    ),
    (
        {"event": "b", "fields": {"level": "error", "service": "my app", "host": "f"}},
        ("b", None, "my_app", "error", None, b'{"service":"my app","host":"f"}'),
    ),
    (
        {"time": 5, "event": "c", "index": "main", "fields": {"severity": "chatty", "level": "info"}},
        ("c", 5000, None, "info", None, b'{"index":"main","severity":"chatty"}'),
    ),
    (
        {"event": "d", "host": "h", "fields": {"host": "f", "n": 1, "b": True, "x": None}},
        ("d", None, None, None, None, b'{"host":"f","n":1,"b":true,"x":null}'),
    ),
    ({"event": "e", "fields": {}}, ("e", None, None, None, None, b"")),
    (
        {"event": "f", "sourcetype": "x", "fields": {"service.name": "", "severity": "debug"}},
        ("f", None, None, "debug", "x", b'{"sourcetype":"x","service.name":""}'),
    ),
    # pino's and bunyan's numbers, as Elasticsearch bulk's sources map them (they stayed attributes); a number in
    # `severity` is none of theirs
    ({"event": "g", "fields": {"severity": 50, "level": 50}}, ("g", None, None, "error", None, b'{"severity":50}')),
    # the OpenTelemetry Collector's splunk_hec exporter: its severity in fields, the number first (they were kept as
    # attributes, every record info); a text that says another severity than its number stays
    (
        {
            "time": 1426279439.5,
            "host": "web-1",
            "source": "otel",
            "sourcetype": "otel",
            "event": "h",
            "fields": {"otel.log.severity.text": "ERROR", "otel.log.severity.number": 17, "service.name": "api"},
        },
        ("h", 1426279439500, "api", "error", "otel", b'{"host":"web-1","source":"otel","sourcetype":"otel"}'),
    ),
    (
        {"event": "i", "fields": {"otel.log.severity.text": "Fine", "otel.log.severity.number": 5}},
        ("i", None, None, "debug", None, b'{"otel.log.severity.text":"Fine"}'),
    ),
    ({"event": "j", "fields": {"otel.log.severity.text": "warn"}}, ("j", None, None, "warning", None, b"")),
]


def records(body: bytes) -> list[tuple]:
    return column_rows(splunk.event_columns(body))


@pytest.mark.parametrize(
    "only", [[0, 0], [0, 1, 2, 3, 4, 5, 6], [7, 8, 9]], ids=["each-names-its-severity-and-service", "varied", "otel"]
)
def test_a_batch_maps_each_event_as_the_event_by_event_path_does(only: list[int]) -> None:
    events = [json.dumps(CASES[i][0]).encode() for i in only]
    expected = [CASES[i][1] for i in only]
    plain = b"".join(events)
    assert splunk_fields.plain_columns(plain) is not None  # mapped rule by rule
    assert records(plain) == expected
    # An event whose `event` is an object sends the batch event by event: the same records, and its own.
    event_by_event = b"\n".join(
        [*events, b'{"event": {"message": "g", "level": "warn", "k": 1}}', b'{"event": {"msg": "p", "level": 30}}']
    )
    assert splunk_fields.plain_columns(event_by_event) is None
    assert records(event_by_event) == [
        *expected,
        ("g", None, None, "warning", None, b'{"k":1}'),
        ("p", None, None, "info", None, b""),
    ]


@pytest.mark.parametrize("name", splunk_fields.METADATA)
def test_events_that_differ_in_one_of_host_source_sourcetype_and_index_each_keep_their_own(name: str) -> None:
    """A batch's (host, source, sourcetype, index) are told to be one set by comparing each of the four: events
    that differ in any one of them keep their own value, with the same fields."""
    given = {"host": "h", "source": "s", "sourcetype": "t", "index": "i"}
    values = ["a", "a", "b", "a", None]
    events = [{"event": f"e{n}", **given, name: value, "fields": {"k": "v"}} for n, value in enumerate(values)]
    plain = b"".join(json.dumps(event).encode() for event in events)
    assert splunk_fields.plain_columns(plain) is not None  # mapped rule by rule
    expected = [{**given, name: value} for value in values]
    assert [json.loads(text) for text in listed(splunk.event_columns(plain).attributes)] == [
        {**{key: value for key, value in metadata.items() if value is not None}, "k": "v"} for metadata in expected
    ]


def test_a_time_past_what_a_float_holds_is_refused_naming_the_event() -> None:
    with pytest.raises(splunk.HecError) as refused:
        splunk.event_columns(b'{"event": "a", "time": 1}{"event": "b", "time": 1e999}')
    assert (refused.value.code, refused.value.event_number) == (6, 1)


def test_sets_of_fields_too_large_to_keep_for_later_batches_map_as_small_ones_do() -> None:
    events = [{"event": "a", "host": "h", "fields": {"level": "warn", "k": "x" * size}} for size in (10, 2000, 10)]
    body = b"".join(json.dumps(event).encode() for event in [*events, *events])
    assert splunk_fields.plain_columns(body) is not None  # mapped rule by rule
    assert records(body) == [
        ("a", None, None, "warning", None, b'{"host":"h","k":"%s"}' % (b"x" * size)) for size in (10, 2000, 10) * 2
    ]


def test_times_are_rounded_to_ms_half_to_even_as_the_event_by_event_path_rounds_them() -> None:
    """Epoch seconds with a fraction of a millisecond: a tie goes to the even ms in both paths."""
    times = [1426279439.0005, 1426279439.0015, 1426279439.0025, 1426279439.9995, 1426279439.1234567, 2.0005, 1e-4]
    expected = [1426279439000, 1426279439002, 1426279439002, 1426279440000, 1426279439123, 2001, 0]
    events = [json.dumps({"event": "a", "time": time}).encode() for time in times]
    plain = splunk_fields.plain_columns(b"".join(events))
    assert plain is not None
    assert listed(plain.timestamps) == expected
    event_by_event = splunk.event_columns(b"".join([*events, b'{"event": {"message": "b"}, "time": 1}']))
    assert event_by_event.timestamps == [*expected, 1000]


@pytest.mark.parametrize("between", [b"", b"\n", b" "])
@pytest.mark.parametrize("message", ["line ", "a }{ in line "])
def test_a_batch_of_many_pieces_of_events_keeps_every_event_in_order(between: bytes, message: str) -> None:
    """Events are decoded some 64 KiB at a time, split between two of them: sent with or without whitespace
    between them, and with `}{` in their text (where a piece may not end)."""
    texts = [f"{message}{n} {'x' * 50}" for n in range(3000)]
    body = between.join(
        json.dumps({"event": text, "time": n, "fields": {"n": n}}).encode() for n, text in enumerate(texts)
    )
    found = splunk.event_columns(body)
    assert found.messages == texts
    assert listed(found.timestamps) == [n * 1000 for n in range(3000)]
    assert listed(found.attributes) == [b'{"n":%d}' % n for n in range(3000)]


def test_events_that_repeat_a_set_of_fields_each_take_its_mapping_in_every_piece_of_the_batch() -> None:
    """A batch's events repeat a few sets of host and fields, each mapped once for the batch: every event
    still gets its own set's record, in pieces after the first too, and fields that are not flat after
    many plain events still refuse the batch naming that event."""
    events = [
        {"event": f"e{n}", "host": "ab"[n % 2], "fields": {"severity": "error", "service.name": "web", "k": "v"}}
        if n % 3
        else {"event": f"e{n}", "host": "ab"[n % 2], "fields": {"level": "debug"}}
        for n in range(3000)
    ]
    body = b"".join(json.dumps(event).encode() for event in events)
    assert splunk_fields.plain_columns(body) is not None  # mapped rule by rule
    found = splunk.event_columns(body)
    assert listed(found.attributes) == [
        b'{"host":"%s","k":"v"}' % b"ab"[n % 2 : n % 2 + 1] if n % 3 else b'{"host":"%s"}' % b"ab"[n % 2 : n % 2 + 1]
        for n in range(3000)
    ]
    assert listed(found.services) == [("web" if n % 3 else None) for n in range(3000)]
    assert listed(found.severities) == [("error" if n % 3 else "debug") for n in range(3000)]
    nested = b"".join(json.dumps(event).encode() for event in [*events, {"event": "x", "fields": {"a": {"b": 1}}}])
    with pytest.raises(splunk.HecError) as refused:
        splunk.event_columns(nested)
    assert (refused.value.code, refused.value.event_number) == (15, 3000)


def test_a_severity_number_of_digits_int_refuses_stays_an_attribute() -> None:
    """ "²" is a digit to str.isdigit, but int() refuses it: the request failed (a 500)."""
    body = json.dumps({"event": "x", "fields": {"otel.log.severity.number": "²"}}).encode()
    assert records(body) == [("x", None, None, None, None, b'{"otel.log.severity.number":"\xc2\xb2"}')]
