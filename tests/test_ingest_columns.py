"""The column-wise check of bulk batches accepts exactly what the record-by-record check accepts, with
the same values, and gives ids of the same layout; the body parser routes batches to it by size."""

from __future__ import annotations

import json
import uuid

import msgspec
import pyarrow as pa
import pytest

from loglake import ids, ingest, ingest_columns
from loglake.ingest import BULK_MIN_RECORDS, _accept_plainly_valid, _lines, parse_batch
from loglake.ingest_columns import plainly_valid_table
from loglake.model import SEVERITY_NAMES, InvalidRecords, Limits

NOW = 1_793_491_200_000  # 2026-11-01T00:00:00Z
LIMITS = Limits(max_message_bytes=64, max_attribute_bytes=200, retention_days=30)
BATCH = 50  # the check itself does not care how many; the parser's routing is tested below


def base(i: int) -> dict:
    return {
        "timestamp": NOW - 1000 * i,
        "service": f"svc-{i % 3}",
        "severity": ["info", "error", "debug"][i % 3],
        "message": f"message {i}",
        "attributes": {"i": i},
    }


# One record of the batch changed as named; the rest are plainly valid.
ACCEPTED = {
    "iso time": {"timestamp": "2026-10-31T23:00:00.123+01:00"},
    "no time": {"timestamp": None},
    "no service": {"service": None},
    "a log type": {"log_type": "audit"},
    "severity alias in capitals": {"severity": "WARN"},
    "severity fatal": {"severity": "fatal"},
    "no severity": {"severity": None},
    "null attributes": {"attributes": None},
    "empty attributes": {"attributes": {}},
    "attributes 5 deep": {"attributes": {"a": {"b": {"c": {"d": {"e": 1}}}}}},
    "unicode everywhere": {"message": "ünïcødé ✓ " * 3, "attributes": {"ключ": "значение ✓"}},
    "message at the byte limit": {"message": "é" * 32},
    "oldest kept day": {"timestamp": NOW - 30 * 86_400_000},
    "a day ahead": {"timestamp": NOW + 86_400_000},
    "trace and span ids": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"},
    "a trace id alone": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
}
REFUSED = {
    "empty message": {"message": ""},
    "message a byte over": {"message": "é" * 32 + "x"},
    "time before the retention": {"timestamp": NOW - 31 * 86_400_000},
    "time too far ahead": {"timestamp": NOW + 86_400_001},
    "time not a time": {"timestamp": "yesterday"},
    "unknown severity": {"severity": "loud"},
    "service with a space": {"service": "bad name"},
    "empty service": {"service": ""},
    "log type too long": {"log_type": "x" * 129},
    "attributes an array": {"attributes": [1, 2]},
    "attributes a string": {"attributes": "text"},
    "attributes 6 deep": {"attributes": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}},
    "attributes too large": {"attributes": {"k": "v" * 200}},
    "trace id too short": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e473"},
    "trace id all zeros": {"trace_id": "0" * 32},
    "span id not hex": {"span_id": "00f067aa0ba902bz"},
}


def decoded(records: list[dict]) -> list:
    return _lines.decode_lines(b"\n".join(msgspec.json.encode(r) for r in records))


def batch_with(change: dict, at: int) -> list:
    records = [base(i) for i in range(BATCH)]
    for field, value in change.items():
        if value is None:
            records[at].pop(field)
        else:
            records[at][field] = value
    return decoded(records)


@pytest.mark.parametrize("at", [0, 17, BATCH - 1])
@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_both_checks_accept_has_the_same_values(name: str, at: int) -> None:
    items = batch_with(ACCEPTED[name], at)
    records = _accept_plainly_valid(items, LIMITS, NOW)
    table = plainly_valid_table(items, LIMITS, NOW)
    assert records is not None and table is not None
    rows = table.to_pylist()
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        assert int(row["timestamp"].timestamp() * 1000) == record.timestamp
        assert (row["service"], row["log_type"], row["message"]) == (record.service, record.log_type, record.message)
        assert row["severity"] == SEVERITY_NAMES[record.severity]
        expected_attributes = None if record.attributes is None else json.loads(record.attributes)
        assert (None if row["attributes"] is None else json.loads(row["attributes"])) == expected_attributes
        assert row["client_id"] is None
        assert (row["trace_id"], row["span_id"]) == (record.trace_id, record.span_id)
        log_id = uuid.UUID(row["log_id"])
        assert (log_id.version, log_id.variant) == (7, uuid.RFC_4122)
        assert ids.timestamp_of(log_id.bytes) == record.timestamp


@pytest.mark.parametrize("at", [0, 17, BATCH - 1])
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_the_record_check_refuses_the_column_check_refuses(name: str, at: int) -> None:
    items = batch_with(REFUSED[name], at)
    assert _accept_plainly_valid(items, LIMITS, NOW) is None
    assert plainly_valid_table(items, LIMITS, NOW) is None


def test_ids_in_capitals_are_left_to_the_record_check_which_stores_them_in_lowercase() -> None:
    items = batch_with({"trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736", "span_id": "00F067AA0BA902B7"}, 3)
    assert plainly_valid_table(items, LIMITS, NOW) is None
    records = _accept_plainly_valid(items, LIMITS, NOW)
    assert records is not None
    assert (records[3].trace_id, records[3].span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_attributes_that_are_not_utf8_are_left_to_the_record_check() -> None:
    lines = [msgspec.json.encode(base(i)) for i in range(BATCH)]
    lines[5] = b'{"message": "m", "attributes": {"k": "\xff\xfe"}}'
    items = _lines.decode_lines(b"\n".join(lines))
    assert _accept_plainly_valid(items, LIMITS, NOW) is None
    assert plainly_valid_table(items, LIMITS, NOW) is None


def test_a_client_id_sends_the_batch_to_the_store_which_deduplicates() -> None:
    items = batch_with({"id": str(uuid.uuid4())}, 3)
    assert _accept_plainly_valid(items, LIMITS, NOW) is not None
    assert plainly_valid_table(items, LIMITS, NOW) is None


def test_ids_are_unique_and_ordered_like_the_record_paths_ids() -> None:
    items = decoded([{"message": f"m{i}", "timestamp": NOW} for i in range(BATCH)])
    before = ids.uuid7_bytes(NOW)
    table = plainly_valid_table(items, LIMITS, NOW)
    after = ids.uuid7_bytes(NOW)
    assert table is not None
    in_table = [uuid.UUID(text).bytes for text in table.column("log_id").to_pylist()]
    # Same time, one shared counter: each id is above the one minted before it, below the one after.
    assert [before, *in_table, after] == sorted([before, *in_table, after])
    assert len(set(in_table)) == BATCH


def test_the_counter_wraps_as_the_record_path_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_counter", ids.COUNTER_MASK - 2)
    items = decoded([{"message": f"m{i}", "timestamp": NOW} for i in range(5)])
    table = plainly_valid_table(items, LIMITS, NOW)
    assert table is not None
    monkeypatch.setattr(ids, "_counter", ids.COUNTER_MASK - 2)
    expected = [uuid.UUID(bytes=b) for b in ids.uuid7_many([NOW] * 5)]
    assert [uuid.UUID(text) for text in table.column("log_id").to_pylist()] == expected


def ndjson(count: int, **extra: object) -> bytes:
    return b"\n".join(msgspec.json.encode({**base(i), **extra}) for i in range(count))


def test_the_parser_gives_a_table_only_for_bulk_batches_when_asked() -> None:
    big = ndjson(BULK_MIN_RECORDS)
    assert parse_batch(big, True, LIMITS, NOW, bulk=True).table is not None
    assert parse_batch(big, True, LIMITS, NOW, bulk=False).records is not None
    small = ndjson(BULK_MIN_RECORDS - 1)
    assert parse_batch(small, True, LIMITS, NOW, bulk=True).records is not None
    with_client_ids = b"\n".join(
        msgspec.json.encode({**base(i), "id": str(uuid.uuid4())}) for i in range(BULK_MIN_RECORDS)
    )
    assert parse_batch(with_client_ids, True, LIMITS, NOW, bulk=True).records is not None


def test_a_body_decoded_in_pieces_gives_each_line_once_and_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "DECODE_PIECE_BYTES", 300)  # a few lines a piece
    lines = [msgspec.json.encode(base(i)) for i in range(BULK_MIN_RECORDS)]
    lines[500:500] = [b"", b"   "]  # blank lines, skipped wherever the pieces are cut
    body = b"\r\n".join(lines) + b"\n"
    parsed = parse_batch(body, True, LIMITS, NOW, bulk=True)
    assert parsed.table is not None
    assert parsed.table.column("message").to_pylist() == [f"message {i}" for i in range(BULK_MIN_RECORDS)]
    lines[-1] = msgspec.json.encode({**base(BULK_MIN_RECORDS - 1), "severity": "loud"})
    with pytest.raises(InvalidRecords) as refused:  # a bad line in the last piece refuses the batch
        parse_batch(b"\n".join(lines), True, LIMITS, NOW, bulk=True)
    assert [(p.index, p.field) for p in refused.value.problems] == [(BULK_MIN_RECORDS - 1, "severity")]


# A batch whose times are all ISO-8601 text is read column-wise (by Arrow), and must give what the record
# check's parse_iso8601 gives: 2026-10-31T22:00:00.123Z is NOW - 2 h + 123 ms.
ISO_TIMES = {
    "2026-10-31T22:00:00.123Z": 1_793_484_000_123,
    "2026-10-31T23:00:00.123+01:00": 1_793_484_000_123,
    "2026-10-31T21:30:00.123-00:30": 1_793_484_000_123,
    "2026-10-31T22:00:00.123": 1_793_484_000_123,  # no offset: UTC
    "2026-10-31T22:00:00.123999Z": 1_793_484_000_123,  # past the millisecond: floored
    "2026-10-31T22:00:00.123456789Z": 1_793_484_000_123,  # nanoseconds (Vector, Go): floored too
    "2026-10-31T23:00:00.1239999+01:00": 1_793_484_000_123,
    "2026-10-31T22:00:00.123456789": 1_793_484_000_123,
    "2026-10-31T22:00:00.1234567891Z": 1_793_484_000_123,  # past nanoseconds: read one by one
    "2026-10-31T22:00:00.1Z": 1_793_484_000_100,
    "2026-10-31T22:00:00Z": 1_793_484_000_000,
    "2026-10-31 22:00:00+00:00": 1_793_484_000_000,  # other forms: read one by one
    "2026-10-31": 1_793_404_800_000,
}
ISO_NOT_TIMES = ["2026-10-31T22:00:60Z", "2026-10-31T24:00:00Z", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z"]


@pytest.mark.parametrize(("text", "ms"), ISO_TIMES.items())
def test_a_batch_of_iso_times_gives_the_times_the_record_check_gives(text: str, ms: int) -> None:
    items = decoded([base(i) | {"timestamp": text} for i in range(BATCH)])
    table = plainly_valid_table(items, LIMITS, NOW)
    records = _accept_plainly_valid(items, LIMITS, NOW)
    assert table is not None and records is not None
    assert {record.timestamp for record in records} == {ms}
    assert set(table.column("timestamp").cast(pa.int64()).to_pylist()) == {ms}


@pytest.mark.parametrize(
    "text", ["2026-10-31T22:00:00.123Z", "2026-10-31T22:00:00.123456789Z", "2026-10-31T23:00:00.1239999+01:00"]
)
def test_iso_times_to_the_nanosecond_are_read_by_arrow_not_one_by_one(text: str) -> None:
    assert ingest_columns._iso_times([text] * BATCH).to_pylist() == [ISO_TIMES[text]] * BATCH


@pytest.mark.parametrize("text", ISO_NOT_TIMES)
def test_a_batch_of_iso_texts_with_one_that_is_no_time_is_left_to_the_record_check(text: str) -> None:
    times = ["2026-10-31T22:00:00Z"] * BATCH
    times[7] = text
    items = decoded([base(i) | {"timestamp": t} for i, t in enumerate(times)])
    assert _accept_plainly_valid(items, LIMITS, NOW) is None
    assert plainly_valid_table(items, LIMITS, NOW) is None


def _as_distinct_texts(texts: list[bytes]) -> pa.DictionaryArray:
    distinct = sorted(set(texts))
    indices = pa.array([distinct.index(text) for text in texts], pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(distinct, pa.binary()))


@pytest.mark.parametrize("name", sorted(ACCEPTED.keys() | REFUSED.keys()))
def test_attributes_given_as_their_distinct_texts_are_checked_as_each_records_are(name: str) -> None:
    """A protocol's decoder may give the attributes as a dictionary of their distinct texts (OTLP's)."""
    items = batch_with({**ACCEPTED, **REFUSED}[name], 17)

    def table(attributes: list[bytes] | pa.DictionaryArray) -> pa.Table | None:
        def field(name: str) -> list:
            return [getattr(item, name) for item in items]

        fields = ("timestamp", "service", "log_type", "severity", "message")
        ids = {"trace_ids": field("trace_id"), "span_ids": field("span_id")}
        return ingest_columns.valid_columns_table(*map(field, fields), attributes, LIMITS, NOW, **ids)

    texts = [bytes(item.attributes) for item in items]
    as_listed, as_distinct = table(texts), table(_as_distinct_texts(texts))
    assert (as_listed is None) == (name in REFUSED) == (as_distinct is None)
    if as_listed is not None and as_distinct is not None:
        assert as_distinct.drop_columns(["log_id"]).equals(as_listed.drop_columns(["log_id"]))


@pytest.mark.parametrize("name", sorted(ACCEPTED.keys() | REFUSED.keys()))
def test_messages_and_attributes_given_as_arrow_arrays_are_checked_as_their_lists_are(name: str) -> None:
    """A decoder that reads with Arrow (Elasticsearch bulks) gives them as Arrow arrays: slices of a longer batch's
    once taken apart in groups (RecordColumns.take), their texts further on in their buffers."""
    items = batch_with({**ACCEPTED, **REFUSED}[name], 17)

    def field(name: str) -> list:
        return [getattr(item, name) for item in items]

    def table(messages: list | pa.Array, attributes: list | pa.Array) -> pa.Table | None:
        fields = ("timestamp", "service", "log_type", "severity")
        ids = {"trace_ids": field("trace_id"), "span_ids": field("span_id")}
        return ingest_columns.valid_columns_table(*map(field, fields), messages, attributes, LIMITS, NOW, **ids)

    texts = [bytes(item.attributes) for item in items]
    messages = field("message")
    sliced_texts = pa.array([b'{"before":1}', *texts, b"{}"], pa.binary()).slice(1, len(texts))
    sliced_messages = pa.array(["before", *messages, "after"], pa.string()).slice(1, len(messages))
    as_listed, as_arrays = table(messages, texts), table(sliced_messages, sliced_texts)
    assert (as_listed is None) == (name in REFUSED) == (as_arrays is None)
    if as_listed is not None and as_arrays is not None:
        assert as_arrays.drop_columns(["log_id"]).equals(as_listed.drop_columns(["log_id"]))


def test_times_given_as_an_arrow_array_of_texts_are_read_as_their_list_is() -> None:
    """Texts of digits are no time to the column check as a list (epoch ms come as numbers); given as an Arrow
    array, Arrow's cast to int64 took them as epoch ms (and parsed every text before failing on an ISO one)."""
    items = decoded([base(i) for i in range(BATCH)])

    def table(timestamps: list | pa.Array) -> pa.Table | None:
        fields = [[getattr(item, name) for item in items] for name in ("service", "log_type", "severity", "message")]
        attributes = [bytes(item.attributes) for item in items]
        return ingest_columns.valid_columns_table(timestamps, *fields, attributes, LIMITS, NOW)

    digits = [str(NOW - i) for i in range(BATCH)]
    assert table(digits) is None and table(pa.array(digits, pa.string())) is None
    iso = ["2026-10-31T23:00:00.123+01:00"] * BATCH
    assert table(pa.array(iso, pa.string())).column("timestamp").equals(table(iso).column("timestamp"))


@pytest.mark.parametrize("deepest", [LIMITS.max_attribute_depth, LIMITS.max_attribute_depth + 1])
@pytest.mark.parametrize("form", ["bytes", "raw", "arrow"])
@pytest.mark.parametrize("nesting", ["objects", "lists"])
def test_attributes_nested_in_every_record_are_refused_only_beyond_the_depth(
    nesting: str, form: str, deepest: int
) -> None:
    """Every record's attributes hold a nested object (as Beats' documents do), so the whole batch holds more
    brackets than the depth allows and each object's are counted, [ as {: one record's nested `deepest` levels
    (objects in objects, or lists in an object) decides, in every form the attributes come in, some records
    having none."""
    records = [base(i) | {"attributes": {"host": {"name": f"h{i}"}}} for i in range(BATCH)]
    del records[3]["attributes"], records[40]["attributes"]
    nested: dict | list = {"leaf": 1}
    for _ in range(deepest - 2):
        nested = {"in": nested} if nesting == "objects" else [nested]
    records[17]["attributes"] = {"top": nested}
    items = decoded(records)
    texts = [bytes(item.attributes) for item in items]
    given = {"bytes": texts, "raw": [item.attributes for item in items], "arrow": pa.array(texts, pa.binary())}[form]
    fields = [[getattr(item, name) for item in items] for name in ("timestamp", "service", "log_type", "severity")]
    messages = [item.message for item in items]
    table = ingest_columns.valid_columns_table(*fields, messages, given, LIMITS, NOW)
    assert (table is None) is (deepest > LIMITS.max_attribute_depth)
    if table is not None:
        kept = table.column("attributes").to_pylist()
        assert [text and json.loads(text) for text in kept] == [record.get("attributes") for record in records]


def test_attributes_holding_a_nul_are_left_to_the_record_check() -> None:
    """The column check finds each text's brackets between NULs it puts between them: a text holding a NUL itself
    (no JSON text does) could hide a nesting too deep, so none is vouched for."""
    records = [base(i) | {"attributes": {"host": {"name": f"h{i}"}}} for i in range(BATCH)]
    texts = [json.dumps(record["attributes"], separators=(",", ":")).encode() for record in records]
    texts[17] = b'{"x":{"y":{"z\x00":{"p":{"q":{"r":1}}}}}}'  # six deep, a NUL between its third and fourth
    fields = [[record.get(name) for record in records] for name in ("timestamp", "service", "log_type", "severity")]
    messages = [record["message"] for record in records]
    assert ingest_columns.valid_columns_table(*fields, messages, texts, LIMITS, NOW) is None
    texts[17] = b'{"x":{"y":{"z":{"p":{"q":1}}}}}'  # (five deep, no NUL: vouched for)
    assert ingest_columns.valid_columns_table(*fields, messages, texts, LIMITS, NOW) is not None
