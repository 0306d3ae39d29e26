"""A regular bulk read by Arrow (elastic_columns) gives the records elastic.parse_bulk gives, item by item, for
the sources Beats, Logstash, Fluent Bit and Vector send; any other bulk is left to parse_bulk, and the records
are still its own."""

from __future__ import annotations

import json
import random
from datetime import datetime

import pytest

from loglake import ingest_columns
from loglake.model import Limits
from loglake.protocols import elastic, elastic_columns
from loglake.protocols.columns import RecordColumns, listed
from tests.protocols import column_rows

NOW = "2026-11-01T23:59:58.250Z"
TRACE = "5b8efff798038103d269b633813fc60c"
# Each shipper's action and sources as it writes them (compact JSON, its fields in one order), with text that
# JSON escapes, text beyond ASCII, numbers, booleans, lists and nested objects.
FILEBEAT = (
    {"create": {"_index": "filebeat-9.0.0"}},
    [
        {
            "@timestamp": NOW,
            "log": {"offset": 1024 * i, "file": {"path": "C:\\logs\\app.log"}, "level": level},
            "message": f'GET "/index.html?q={i}" 200\tok é',
            "input": {"type": "filestream"},
            "ecs": {"version": "8.0.0"},
            "host": {"name": "web-1", "ip": ["10.0.0.1", "fe80::1"], "containerized": False},
            "agent": {"type": "filebeat", "version": "9.0.0", "ephemeral_id": "e1"},
            "service": {"name": "web"},
            "trace": {"id": TRACE},
            "tags": ["beats_input", f"n{i}"],
        }
        for i, level in enumerate(["info", "WARN", "error", "debug"] * 3)
    ],
)
LOGSTASH = (
    {"index": {"_index": "logstash-2026.11.01"}},
    [
        {
            "@timestamp": NOW,
            "@version": "1",
            "message": f"line {i}\nsecond line",
            "host": {"name": "ls-1"},
            "event": {"original": f"line {i}", "sequence": i},
            "log.level": "warning",
            "log": {"file": {"path": "/var/log/billing.log"}},  # (no level in it: the dotted one is the level)
            "service.name": "billing",
        }
        for i in range(10)
    ],
)
FLUENT_BIT = (
    {"create": {"_index": "fluent-bit"}},
    [
        {
            "@timestamp": NOW,
            "log": f"a line from a container {i}",
            "stream": "stderr" if i % 2 else "stdout",
            "kubernetes": {"pod_name": f"api-{i}", "labels": {"app": "api"}, "namespace_name": "default"},
        }
        for i in range(10)
    ],
)
VECTOR = (
    {"index": {"_index": "vector-2026.11.01"}},
    [
        {
            "file": "/var/log/syslog",
            "host": "vm-1",
            "message": f"kernel: [{i}.5] eth0 up",
            "source_type": "file",
            "span.id": "eee19b7ec3c1b174",
            "timestamp": "2026-11-01T23:59:58.123456789Z",
        }
        for i in range(10)
    ],
)


def compact(value: object) -> bytes:
    """JSON as the shippers write it: compact, text beyond ASCII as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def bulk(action: dict, sources: list[dict]) -> bytes:
    return b"".join(compact(action) + b"\n" + compact(source) + b"\n" for source in sources)


def records(read: tuple[list[elastic.BulkItem], RecordColumns]) -> tuple[list[tuple], list[tuple]]:
    """The records (their trace and span ids last), and the items (action, index, row, error)."""
    items, found = read
    rows = column_rows(found, listed(found.trace_ids), listed(found.span_ids))
    return rows, [(item.action, item.index, item.row, item.error) for item in items]


@pytest.mark.parametrize(
    "shipper", [FILEBEAT, LOGSTASH, FLUENT_BIT, VECTOR], ids=["filebeat", "logstash", "fluent-bit", "vector"]
)
def test_a_shippers_bulk_read_by_arrow_gives_parse_bulks_records(shipper: tuple[dict, list[dict]]) -> None:
    body = bulk(*shipper)
    read = elastic_columns.read_regular_bulk(body, None)
    assert read is not None
    assert records(read) == records(elastic.parse_bulk(body, None))


def test_what_arrow_reads_is_mapped_as_the_mapping_says() -> None:
    """The same as parse_bulk, and as written here: nested level, service and trace id taken out of their
    objects (`service` and `trace` left empty, so gone), the rest of each value as sent."""
    rows, items = records(elastic_columns.read_regular_bulk(bulk(*FILEBEAT), None))
    (message, timestamp, service, severity, log_type, attributes, trace, span), *_ = rows
    assert (message, timestamp, service, severity, log_type, trace, span) == (
        'GET "/index.html?q=0" 200\tok é',
        NOW,
        "web",
        "info",
        "filebeat-9.0.0",
        TRACE,
        None,
    )
    assert items[0] == ("create", "filebeat-9.0.0", 0, None)
    assert attributes == (
        b'{"log":{"offset":0,"file":{"path":"C:\\\\logs\\\\app.log"}},"input":{"type":"filestream"},'
        b'"ecs":{"version":"8.0.0"},"host":{"name":"web-1","ip":["10.0.0.1","fe80::1"],"containerized":false},'
        b'"agent":{"type":"filebeat","version":"9.0.0","ephemeral_id":"e1"},"tags":["beats_input","n0"]}'
    )


def test_sources_whose_keys_come_in_other_orders_keep_their_values_as_sent() -> None:
    """Beats write a map's keys in Go's random order: the attributes hold the same values, their keys in the
    order Arrow met them first."""
    action, sources = FILEBEAT
    shuffled = [dict(reversed(source.items())) if i % 2 else source for i, source in enumerate(sources)]
    body = bulk(action, shuffled)
    arrow, arrow_items = records(elastic_columns.read_regular_bulk(body, None))
    reference, reference_items = records(elastic.parse_bulk(body, None))
    assert arrow_items == reference_items
    assert [row[:5] + row[6:] for row in arrow] == [row[:5] + row[6:] for row in reference]
    assert [json.loads(row[5]) for row in arrow] == [json.loads(row[5]) for row in reference]
    assert arrow[1][5] != reference[1][5]  # (another order: the test would show nothing if it were the same)


def test_members_in_some_sources_only_are_written_as_parse_bulk_writes_them() -> None:
    """Attributes whose members, and members of nested objects, are in every source or in some only (the first
    or a later one missing, an object missing, a member of an object missing, an empty object): the same
    records as parse_bulk's, an object joined in one piece where every source has all of it. (The first source
    has every key: Arrow orders them as it meets them.)"""
    sources = [
        {
            "@timestamp": NOW,
            "message": f"m{i}",
            **({"first": f"f{i}"} if i % 3 != 1 else {}),
            "host": {"name": "h1", "ip": [f"10.0.0.{i}"], **({"os": {"family": "linux"}} if i % 2 == 0 else {})},
            **({"agent": {"id": i, "tags": {"a": "b"}}} if i % 4 != 3 else {}),
            "every": {"x": {"y": "\t" if i == 5 else "z"}, "n": i, "ok": True},
            **({"empty": {}} if i % 5 != 4 else {}),
            "last": "l" if i % 2 else f"L {i}",
        }
        for i in range(12)
    ]
    body = bulk({"create": {"_index": "app"}}, sources)
    read = elastic_columns.read_regular_bulk(body, None)
    assert read is not None
    assert records(read) == records(elastic.parse_bulk(body, None))


# Sources Arrow cannot give back as sent, or that the mapping takes otherwise than column-wise, each among
# Fluent Bit's: (what is odd, the body).
FLUENT_ACTION, FLUENT_SOURCES = FLUENT_BIT
ODD = [
    ("a space between tokens", b'{"@timestamp": "%b", "log": "x"}' % NOW.encode()),
    ("an escape another encoder writes otherwise", b'{"@timestamp":"%b","log":"caf\\u00e9"}' % NOW.encode()),
    ("an escaped slash", b'{"@timestamp":"%b","log":"a\\/b"}' % NOW.encode()),
    ("a double", b'{"@timestamp":"%b","log":"x","took":1.0}' % NOW.encode()),
    ("an exponent", b'{"@timestamp":"%b","log":"x","took":1e3}' % NOW.encode()),
    ("an explicit null", b'{"@timestamp":"%b","log":"x","stream":null}' % NOW.encode()),
    ("minus zero", b'{"@timestamp":"%b","log":"x","n":-0}' % NOW.encode()),
    ("a key twice", b'{"@timestamp":"%b","log":"x","log":"y"}' % NOW.encode()),
    ("two objects on a line", b'{"@timestamp":"%b","log":"x"}{"log":"y"}' % NOW.encode()),
    ("no message", b'{"@timestamp":"%b","stream":"stdout"}' % NOW.encode()),
    ("a time of digits", b'{"@timestamp":"1793577595000","log":"x"}'),
    ("a time as a number", b'{"@timestamp":1793577595000,"log":"x"}'),
    ("a level it does not know", b'{"@timestamp":"%b","log":"x","log.level":"chatty"}' % NOW.encode()),
    ("a service name made valid", b'{"@timestamp":"%b","log":"x","service.name":"my app"}' % NOW.encode()),
    ("a trace id that is none", b'{"@timestamp":"%b","log":"x","trace.id":"not-hex"}' % NOW.encode()),
    ("a control character escaped as \\u", b'{"@timestamp":"%b","log":"x\\u0001"}' % NOW.encode()),
    (  # (the key's escape counted once: twice, it would make up for the space)
        "a key with an escape, and a space",
        b'{"@timestamp":"%b","log":"x","a\\"b":1, "c":2}' % NOW.encode(),
    ),
    ("a very big number", b'{"@timestamp":"%b","log":"x","n":123456789012345678901234}' % NOW.encode()),
]


@pytest.mark.parametrize(("odd", "source"), ODD, ids=[odd for odd, _ in ODD])
def test_a_bulk_with_an_odd_source_is_left_to_parse_bulk(odd: str, source: bytes) -> None:
    regular = bulk(FLUENT_ACTION, FLUENT_SOURCES)
    body = regular + compact(FLUENT_ACTION) + b"\n" + source + b"\n" + regular
    assert elastic_columns.read_regular_bulk(regular, None) is not None  # (the others alone: Arrow's)
    assert elastic_columns.read_regular_bulk(body, None) is None
    assert records(elastic_columns.bulk_records(body * 50, None)) == records(elastic.parse_bulk(body * 50, None))


@pytest.mark.parametrize(
    "body",
    [
        b'{"create":{"_index":"a"}}\n{"message":"x"}\n\n{"create":{"_index":"a"}}\n{"message":"y"}\n',
        b'{"create":{"_index":"a"}}\n{"message":"x"}\n{"delete":{"_index":"a","_id":"1"}}\n',
        b'{"create":{"_index":"a","_id":"abc"}}\n{"message":"x"}\n',
        b'{"create":{}}\n{"message":"x"}\n',
        b'{"create":{"_index":"a"}}\n{"message":"x"}',
        b'{"create":{"_index":"a"}}\n{"message":"x","log.level":"info","log":{"level":"warn"}}\n',
    ],
    ids=[
        "blank-line",
        "delete",
        "id",
        "no-index",
        "no-final-newline",
        "level-in-both-forms",
    ],
)
def test_an_irregular_bulk_is_left_to_parse_bulk(body: bytes) -> None:
    assert elastic_columns.read_regular_bulk(body, None) is None


# An action line that is a source too, with a message (keys after the action's are ignored, as Elasticsearch 8
# ignores them): where it stands for a source, Arrow has records to give, which must be parse_bulk's.
A = b'{"create":{"_index":"a"},"message":"m","@timestamp":"2026-11-01T23:59:57.000Z"}'
B = b'{"index":{"_index":"b"}}'
S = b'{"message":"x","@timestamp":"2026-11-01T23:59:58.250Z"}'


@pytest.mark.parametrize(
    ("lines", "by_arrow"),
    [
        ([A, S, A, A, A, S], True),  # a source that is the action line's text
        ([A, A, A, S], True),  # (the first source)
        ([A, S, A, A], False),  # (the last source)
        ([A, S, B, A], False),  # another action, then a source that is the first's text
        ([A, S, b"{}", A, A, S], False),  # an action line that is none, then two lines of the first's text
        ([A, S, b'{"foo":{}}', A], False),
        ([A, S, S, A], False),  # a source where an action line should be, the action's text where its source should be
        ([b'{"create":{"_index":5}}', S], True),  # an index as a number: its digits
        ([A, b"", A, b'{"message":"a"}{"message":"b"}'], False),  # a blank line, and two objects on one line
        ([A, S, A, b"", b"", S, A, S + S], False),
        ([B, S + b' {"index":{"_index":"c"}}', S], False),  # a space for a line break
    ],
    ids=[
        "source-as-action",
        "first",
        "last",
        "other-action",
        "no-action",
        "bad-action",
        "source-for-action",
        "number-index",
        "blank-and-two-on-a-line",
        "blanks-and-two-on-a-line",
        "space-for-a-line-break",
    ],
)
def test_a_bulk_whose_lines_look_alike_is_read_as_parse_bulk_reads_it(lines: list[bytes], by_arrow: bool) -> None:
    """The action lines are taken out of a bulk whose every action is its first before Arrow reads it: a source
    with the action line's very text, wherever it is, stays a source, and an action line of another text is
    never read as a source; a row per line, which a blank line beside a line of two objects (`{..}{..}`, two
    rows) or a space for a line break gave without changing the text's length. Arrow gives parse_bulk's records,
    or leaves the bulk to parse_bulk."""
    body = b"".join(line + b"\n" for line in lines)
    read = elastic_columns.read_regular_bulk(body, None)
    try:
        expected = elastic.parse_bulk(body, None)
    except elastic.BulkRefused:
        assert read is None
        return
    assert (read is not None) == by_arrow
    if read is not None:
        assert records(read) == records(expected)
    many = body * 20000  # (past the size from which bulk_records asks Arrow)
    assert records(elastic_columns.bulk_records(many, None)) == records(elastic.parse_bulk(many, None))


def test_a_text_arrow_would_take_for_a_time_stays_text_as_sent() -> None:
    """Arrow reads "2026-11-01T23:59:58Z" as a timestamp unless told otherwise: read again, as text."""
    sources = [{"@timestamp": "2026-11-01T23:59:58Z", "message": "m", "event": {"created": "2026-11-01"}}] * 3
    body = bulk({"create": {"_index": "a"}}, sources)
    read = elastic_columns.read_regular_bulk(body, None)
    assert read is not None
    assert records(read) == records(elastic.parse_bulk(body, None))
    assert records(read)[0][0][5] == b'{"event":{"created":"2026-11-01"}}'


def test_the_path_index_names_the_index_an_action_does_not() -> None:
    body = bulk({"create": {}}, [{"@timestamp": NOW, "message": "m"}] * 3)
    read = elastic_columns.read_regular_bulk(body, "from-path")
    assert read is not None
    assert records(read) == records(elastic.parse_bulk(body, "from-path"))
    assert [item.index for item in read[0]] == ["from-path"] * 3


def test_a_time_given_as_a_number_in_every_source_is_the_time_as_parse_bulk_takes_it() -> None:
    """The first time field a source has is its time, whatever its type: epoch ms in `@timestamp`, not the text
    in `timestamp` beside it, nor the time received."""
    sources = [{"@timestamp": 1793577595000 + i, "timestamp": NOW, "message": f"m{i}"} for i in range(3)]
    body = bulk({"create": {"_index": "a"}}, sources)
    assert records(elastic_columns.bulk_records(body * 20000, None)) == records(elastic.parse_bulk(body * 20000, None))
    assert [row[1] for row in records(elastic.parse_bulk(body, None))[0]] == [
        1793577595000,
        1793577595001,
        1793577595002,
    ]
    assert elastic_columns.read_regular_bulk(body, None) is None


def test_a_bulk_into_two_indexes_read_by_arrow_gives_each_item_its_index() -> None:
    """A bulk into one index has its items made alike; into two, each its own: both as parse_bulk gives them."""
    action, sources = FLUENT_BIT
    body = bulk(action, sources) + bulk({"create": {"_index": "other"}}, sources)
    read = elastic_columns.read_regular_bulk(body, None)
    assert read is not None
    assert records(read) == records(elastic.parse_bulk(body, None))
    assert [item.index for item in read[0]] == ["fluent-bit"] * len(sources) + ["other"] * len(sources)


def nesting(value: object) -> int:
    """How deep objects and lists nest in a JSON value, as the record check counts it (a flat object is 1)."""
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    return 0


@pytest.mark.parametrize("deepest", [Limits().max_attribute_depth, Limits().max_attribute_depth + 1])
@pytest.mark.parametrize("nested", ["objects", "lists"])
def test_the_depth_and_keys_arrow_read_bound_the_attributes_and_the_check_counts_on_them(
    nested: str, deepest: int
) -> None:
    """Arrow's reading says how deep the attributes nest and how many keys they hold (their schema's), and the
    column check takes that for its own count: attributes within the limits checked as such, beyond them left to
    the record check (which fits them): decided alike whichever source of the bulk nests deepest."""
    value: object = {"leaf": 1}
    for _ in range(deepest - 2):
        value = {"in": value} if nested == "objects" else [value]
    sources = [
        {"@timestamp": NOW, "message": f"m{i}", "host": {"name": "h"}, "n": i, **({"deep": value} if i == 7 else {})}
        for i in range(12)
    ]
    read = elastic_columns.read_regular_bulk(bulk({"create": {"_index": "a"}}, sources), None)
    assert read is not None
    _, found = read
    kept = [{k: v for k, v in source.items() if k not in ("@timestamp", "message")} for source in sources]
    assert found.attributes_within == (max(map(nesting, kept)), len(set().union(*kept)))
    assert max(map(nesting, kept)) == deepest
    limits = Limits()
    now_ms = int(datetime.fromisoformat(NOW).timestamp() * 1000)
    columns = (found.timestamps, found.services, found.log_types, found.severities, found.messages)
    table = ingest_columns.valid_columns_table(
        *columns, found.attributes, limits, now_ms, attributes_within=found.attributes_within
    )
    assert (table is None) is (deepest > limits.max_attribute_depth)
    if table is not None:
        assert [json.loads(text) for text in table.column("attributes").to_pylist()] == kept


@pytest.mark.parametrize("piece_bytes", [40, 1 << 20])
def test_the_action_lines_taken_out_in_pieces_leave_what_bytes_replace_leaves(monkeypatch, piece_bytes: int) -> None:
    """The action lines are taken out of a body cut into pieces at them, for Arrow's replace (_without_lines): the
    sources left are those one bytes.replace of the whole body leaves, also where a source is the action line
    itself, before, after or between two of them (None: such a pair across a cut, left to the other path); and
    the bulk read from them is parse_bulk's, or left to it, where the action lines are not the even ones."""
    monkeypatch.setattr(elastic_columns, "_PIECE_BYTES", piece_bytes)
    action = b'{"create":{"_index":"x"}}'
    line = b"\n" + action + b"\n"
    chooser = random.Random(5)
    compared = regular = 0
    for _ in range(3000):
        lines = []
        for row in range(chooser.randint(1, 30)):
            lines.append(action if chooser.random() < 0.95 else b'{"index":{}}')
            lines.append(action if chooser.random() < 0.1 else b'{"message":"m%d"}' % row)
        body = action + b"\n" + b"\n".join(lines[1:]) + b"\n"
        replaced = (b"\n" + body).replace(line, b"\n")
        read = elastic_columns._sources_of_one_action(body, None)
        if read is not None:
            assert read[2] == replaced[1:]
            assert read[3] == (len(body) + 1 - len(replaced)) // len(line[1:])
            compared += 1
        else:
            assert piece_bytes < 1 << 20 or body.endswith(line)
        whole = elastic_columns.read_regular_bulk(body, None)
        if whole is not None:
            assert records(whole) == records(elastic.parse_bulk(body, None))
            regular += 1
    assert compared > 500
    assert regular > 500


def test_sources_that_each_name_fields_of_their_own_are_left_to_parse_bulk_unread_by_arrow() -> None:
    """Arrow makes a column of every field any source names, a value of it in every row: 400 sources naming 200
    fields each of their own (1.3 MB) were 80,000 columns of 400 rows, 10 s and 800 MiB in the server, growing
    with the square of the body (an adversarial trial). Read with its samples' fields, such a bulk goes to
    parse_bulk."""
    sources = [{"message": f"m{i}", **{f"s{i}f{k}": "v" for k in range(200)}} for i in range(100)]
    body = bulk({"create": {"_index": "app"}}, sources)
    assert len(body) > 256 * 1024  # (a size elastic_columns reads)
    assert elastic_columns.read_regular_bulk(body, None) is None
    assert records(elastic_columns.bulk_records(body, None)) == records(elastic.parse_bulk(body, None))


def test_a_regular_bulk_is_read_by_arrow_with_its_samples_fields() -> None:
    """A shipper's sources share their fields, a few now and then more (an error): the samples find them, and the
    whole is read by Arrow; a last source naming a field none of them saw goes to parse_bulk, its records the same."""
    action, sources = FILEBEAT
    many = [dict(source, log={**source["log"], "offset": i}) for i, source in enumerate(sources * 300)]
    for at in range(0, len(many), 50):
        many[at] = {**many[at], "error": {"message": f"at {at}"}}
    body = bulk(action, many)
    assert len(body) > 256 * 1024
    read = elastic_columns.read_regular_bulk(body, None)
    assert read is not None
    assert records(read) == records(elastic.parse_bulk(body, None))
    later = bulk(action, [*many, {**many[1], "late": {"message": "late"}}])
    assert elastic_columns.read_regular_bulk(later, None) is None
    assert records(elastic_columns.bulk_records(later, None)) == records(elastic.parse_bulk(later, None))
