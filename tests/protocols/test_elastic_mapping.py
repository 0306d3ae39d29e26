"""The ECS mapping of a bulk's sources, record by record: the same records (attributes in their order, as text)
whether a bulk takes the column path (every source with a string message and @timestamp) or goes item by item."""

from __future__ import annotations

import json

import pytest

from loglake.protocols import elastic, elastic_sources
from tests.protocols import column_rows

NOW = "2026-11-01T23:59:58.250Z"
UUID = "0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b"
ABC = "1416f062-f46a-5962-b7c3-06d1375c634f"  # a name-based UUID (uuid5) of the index "app" and the id "abc"
# (action, source, the record expected: message, timestamp, service, severity, log_type, attributes, client id).
# The sources are sent as json.dumps writes them, with spaces: a value kept in the attributes keeps its text,
# a nested object loglake took a field out of is written anew, without them.
CASES = [
    (
        {"create": {"_index": "nginx-access"}},
        {
            "@timestamp": NOW,
            "message": "a",
            "log": {"level": "WARN", "file": {"path": "/x"}},
            "service": {"name": "web", "version": "1.2"},
            "host": {"name": "h1"},
        },
        (
            "a",
            NOW,
            "web",
            "warning",
            "nginx-access",
            b'{"log":{"file":{"path": "/x"}},"service":{"version":"1.2"},"host":{"name": "h1"}}',
            None,
        ),
    ),
    (
        {"index": {"_index": "disk"}},
        {"@timestamp": "1793577595000", "message": "b", "log.level": "error", "service.name": "disk watch", "x": 1},
        ("b", 1793577595000, "disk_watch", "error", "disk", b'{"service.name":"disk watch","x":1}', None),
    ),
    (
        {"create": {"_index": "app:one"}},
        {"message": "c", "@timestamp": NOW, "z": 1, "log": {"level": "info"}, "service": {"name": "api"}, "a": [1]},
        ("c", NOW, "api", "info", "app_one", b'{"z":1,"a":[1]}', None),
    ),
    (
        {"create": {"_index": "app", "_id": "abc"}},
        {"@timestamp": NOW, "message": "d", "log": {"level": "chatty"}, "service": {"name": ""}, "k": "v"},
        # An _id that is not a UUID: kept as sent, and the client id is a name-based UUID of the index and id.
        ("d", NOW, None, None, "app", b'{"log":{"level": "chatty"},"service":{"name": ""},"k":"v","_id":"abc"}', ABC),
    ),
    (
        {"create": {"_index": "app", "_id": UUID}},
        {"@timestamp": "²", "message": "", "log": "fluent", "msg": "m", "timestamp": 5},
        (
            "",
            "²",
            None,
            None,
            "app",
            b'{"log":"fluent","msg":"m","timestamp":5}',
            UUID,
        ),
    ),
    (  # Vector's: `timestamp`
        {"create": {"_index": "vector"}},
        {"timestamp": NOW, "message": "v", "host": "h", "log.level": "info"},
        ("v", NOW, None, "info", "vector", b'{"host":"h"}', None),
    ),
]


def bulk(pairs: list[tuple[dict, dict]]) -> bytes:
    return b"".join(
        json.dumps(action).encode() + b"\n" + json.dumps(source).encode() + b"\n" for action, source in pairs
    )


def records(body: bytes) -> list[tuple]:
    items, found = elastic.parse_bulk(body, None)
    assert [item.row for item in items if item.error is None] == list(range(len(found)))
    assert found.ids is not None
    return column_rows(found, found.ids)


@pytest.mark.parametrize(
    "only", [[2], [0, 1, 2, 3, 4], [5, 5]], ids=["nested-only-level-and-name", "varied", "timestamp-not-@timestamp"]
)
def test_a_bulk_maps_each_source_as_the_item_by_item_path_does(only: list[int]) -> None:
    pairs = [CASES[i][:2] for i in only]
    expected = [CASES[i][2] for i in only]
    regular = bulk(pairs)
    assert elastic._regular_bulk(regular.split(b"\n"), None) is not None  # the column path takes it
    assert records(regular) == expected
    # A source without a time among them: theirs are mapped one by one, with the same records, and its own.
    mixed = bulk([*pairs, ({"create": {"_index": "app"}}, {"message": "e"})])
    assert records(mixed) == [*expected, ("e", None, None, None, "app", b"", None)]
    # A delete action: the bulk goes item by item, as do the records.
    item_by_item = mixed + b'{"delete": {"_index": "app", "_id": "x"}}\n'
    assert elastic._regular_bulk(item_by_item.split(b"\n"), None) is None
    assert records(item_by_item) == [*expected, ("e", None, None, None, "app", b"", None)]


def test_a_timestamp_of_digits_that_are_no_number_is_left_for_the_check_to_refuse() -> None:
    """ "²" is a digit to str.isdigit, but int() refuses it: it took the request down (a 500)."""
    assert elastic_sources._epoch_ms("²") == "²"
    assert elastic_sources._epoch_ms("1793577595000") == 1793577595000


def test_a_null_time_is_no_time_as_elasticsearch_indexes_a_null() -> None:
    """`"@timestamp": null` is stored at the time received (it was refused, "must be a date"), or at a `timestamp`
    after it; the null is not kept."""
    nulls = [
        ({"create": {"_index": "app"}}, {"@timestamp": None, "message": "a", "x": 1}),
        ({"create": {"_index": "app"}}, {"@timestamp": None, "timestamp": NOW, "message": "b"}),
        ({"create": {"_index": "app"}}, {"timestamp": None, "message": "c"}),
    ]
    assert records(bulk(nulls)) == [
        ("a", None, None, None, "app", b'{"x":1}', None),
        ("b", NOW, None, None, "app", b"", None),
        ("c", None, None, None, "app", b"", None),
    ]


TRACE = "5B8EFFF798038103D269B633813FC60C"
SPAN = "EEE19B7EC3C1B174"
TRACED = [  # (source, the trace and span ids expected, the attributes left)
    ({"trace.id": TRACE, "span.id": SPAN}, (TRACE.lower(), SPAN.lower()), b""),
    ({"trace": {"id": TRACE}, "span": {"id": SPAN}}, (TRACE.lower(), SPAN.lower()), b""),
    ({"trace": {"id": TRACE, "x": 1}}, (TRACE.lower(), None), b'{"trace":{"x":1}}'),
    (  # not W3C ids (all zeros means none): they stay as sent
        {"trace.id": "not-hex", "span": {"id": "0000000000000000"}},
        (None, None),
        b'{"trace.id":"not-hex","span":{"id": "0000000000000000"}}',
    ),
    ({"labels": {"a": "b"}}, (None, None), b'{"labels":{"a": "b"}}'),
]


@pytest.mark.parametrize("column_path", [True, False], ids=["column-path", "item-by-item"])
def test_ecs_trace_and_span_ids_fill_their_columns(column_path: bool) -> None:
    """ECS `trace.id` and `span.id` (dotted or nested) are the record's trace context, so logs shipped by Beats
    or Vector join with traces as OTLP's do; ids that are not W3C ids stay in the attributes."""
    pairs = [({"create": {"_index": "app"}}, {"@timestamp": NOW, "message": "m", **extra}) for extra, _, _ in TRACED]
    body = bulk(pairs) + (b"" if column_path else b'{"delete": {"_index": "app", "_id": "x"}}\n')
    assert (elastic._regular_bulk(body.split(b"\n"), None) is not None) is column_path
    _, found = elastic.parse_bulk(body, None)
    assert list(zip(found.trace_ids, found.span_ids, strict=True)) == [ids for _, ids, _ in TRACED]
    assert found.attributes == [left for _, _, left in TRACED]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"index":{}}\n', "the index action on line 1 has no source line"),
        (b'{"index":{}}\n{"message":"a"}\n\n{"create":{}}\n\n', "the create action on line 4 has no source line"),
        (b'{"index":{"_index":[5]}}\n{"message":"a"}\n', "Malformed action/metadata line [1], _index must be a"),
        (b'{"index":{"_id":{"n":1}}}\n{"message":"a"}\n', "Malformed action/metadata line [1], _id must be a"),
    ],
)
def test_a_bulk_that_is_no_bulk_is_refused_naming_its_line(body: bytes, reason: str) -> None:
    with pytest.raises(elastic.BulkRefused) as refused:
        elastic.parse_bulk(body, "logs")
    assert str(refused.value).startswith(reason)


def test_a_broken_source_is_named_as_such_even_without_an_index() -> None:
    items, _ = elastic.parse_bulk(b'{"index":{}}\n{"message":\n{"index":{}}\n{"message":"ok"}\n', None)
    assert [item.error[1].split(":")[0] for item in items if item.error] == [
        "failed to parse the source",
        "index is missing",
    ]


def test_a_number_as_index_or_id_is_read_as_its_digits_as_elasticsearch_reads_it() -> None:
    body = b'{"index":{"_index":5,"_id":17}}\n{"message":"a"}\n{"create":{"_id":2.5}}\n{"message":"b"}\n'
    items, found = elastic.parse_bulk(body, "logs")
    assert [(item.index, item.doc_id, item.error) for item in items] == [("5", "17", None), ("logs", "2.5", None)]
    assert found.log_types == ["5", "logs"]


@pytest.mark.parametrize(
    ("actions", "log_types"),
    [
        ([{"create": {"_index": "app"}}] * 3, ["app"] * 3),  # one action line throughout, as shippers write it
        (
            [{"create": {"_index": "app"}}, {"index": {"_index": "web:1"}}, {"create": {"_index": "app"}}],
            ["app", "web_1", "app"],
        ),
    ],
    ids=["one-action-line", "two-action-lines"],
)
def test_each_item_of_a_regular_bulk_has_its_own_action_index_and_row(actions: list[dict], log_types: list) -> None:
    body = bulk([(action, {"@timestamp": NOW, "message": f"m{row}"}) for row, action in enumerate(actions)])
    assert elastic._regular_bulk(body.split(b"\n"), None) is not None
    items, found = elastic.parse_bulk(body, None)
    expected = [(*next(iter(action.items())), row) for row, action in enumerate(actions)]
    assert [(item.action, {"_index": item.index}, item.row) for item in items] == expected
    assert [item.doc_id for item in items] == [None] * 3
    assert found.log_types == log_types
    assert found.messages == ["m0", "m1", "m2"]


@pytest.mark.parametrize("services", [2, 100], ids=["a-few-services", "more-services-than-read-once"])
def test_nested_levels_and_services_are_taken_whether_their_texts_repeat_or_not(services: int) -> None:
    """A bulk's nested `log` and `service` objects are read once per distinct text when they repeat (a few levels
    and services), else source by source: the same records either way, and an object holding more than the field
    keeps the rest in the attributes."""
    sources = [
        {
            "@timestamp": NOW,
            "message": f"m{row}",
            "log": {"level": "warn"} if row % 3 else {"level": "error", "origin": "x"},
            "service": {"name": f"svc{row % services}"},
        }
        for row in range(200)
    ]
    body = bulk([({"create": {"_index": "app"}}, source) for source in sources])
    assert elastic._regular_bulk(body.split(b"\n"), None) is not None
    expected = [
        (
            f"m{row}",
            NOW,
            f"svc{row % services}",
            "warning" if row % 3 else "error",
            "app",
            b"" if row % 3 else b'{"log":{"origin":"x"}}',
            None,
        )
        for row in range(200)
    ]
    assert records(body) == expected
