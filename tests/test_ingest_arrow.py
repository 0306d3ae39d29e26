"""A native NDJSON body read by Arrow (ingest_arrow) gives the table msgspec's path gives, value for value, or
declines (None) and leaves the body to the exact path; parse_batch takes it only when other bodies are being
checked meanwhile."""

from __future__ import annotations

import dataclasses
import json

import msgspec
import pytest

from loglake.ingest import BULK_MIN_RECORDS, _lines, parse_batch
from loglake.ingest_arrow import checked_table, checked_tables
from loglake.ingest_columns import plainly_valid_table
from tests.test_ingest_columns import ACCEPTED, BATCH, LIMITS, NOW, REFUSED, base

# What the exact path takes and Arrow's declines: an explicit null (Arrow reads it as absent, so the body's length
# says it was not read as sent), and a time as text among times as numbers (a column holds one type).
DECLINED = {"no time", "no service", "no severity", "null attributes", "iso time"}


def body_with(change: dict, at: int, explicit_nulls: bool = True) -> bytes:
    records = [base(i) for i in range(BATCH)]
    for field, value in change.items():
        if value is None and not explicit_nulls:
            records[at].pop(field)
        else:
            records[at][field] = value
    return b"".join(msgspec.json.encode(record) + b"\n" for record in records)


def same_values(body: bytes) -> None:
    """Arrow's table for the body has msgspec's path's values (but the fresh log ids)."""
    read = checked_table(body, LIMITS, NOW, 1)
    decoded = plainly_valid_table(_lines.decode_lines(body), LIMITS, NOW)
    assert read is not None and decoded is not None
    assert read.schema == decoded.schema
    for name in read.column_names:
        if name != "log_id":
            assert read.column(name).equals(decoded.column(name)), name


@pytest.mark.parametrize("at", [0, BATCH - 1])
@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_the_exact_path_accepts_arrow_reads_alike_or_declines(name: str, at: int) -> None:
    if name in DECLINED:
        assert checked_table(body_with(ACCEPTED[name], at), LIMITS, NOW, 1) is None
        if ACCEPTED[name].get(next(iter(ACCEPTED[name]))) is None:
            same_values(body_with(ACCEPTED[name], at, explicit_nulls=False))  # the field left out: read alike
    else:
        same_values(body_with(ACCEPTED[name], at))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_the_exact_path_refuses_arrow_never_takes(name: str) -> None:
    assert checked_table(body_with(REFUSED[name], 17), LIMITS, NOW, 1) is None


def test_escapes_nesting_lists_and_scalars_are_read_as_sent() -> None:
    records = [
        {
            **base(i),
            "message": f'say "hi"\t{i}\\ok\nnext line',
            "attributes": {"user": {"id": i, "roles": ["a", "b"], "admin": i % 2 == 0}, "path": "/x\\y"},
        }
        for i in range(BATCH)
    ]
    body = b"\n".join(msgspec.json.encode(record) for record in records)  # (no final newline)
    same_values(body)
    read = checked_table(body, LIMITS, NOW, 1)
    assert read is not None
    assert json.loads(read.column("attributes")[3].as_py()) == records[3]["attributes"]
    assert read.column("message")[3].as_py() == records[3]["message"]


SENT_OTHERWISE = {
    "a space between tokens": lambda line: line.replace(b'"message":', b'"message": '),
    "an escape an encoder does not write": lambda line: line.replace(b"message 7", b"message \\u0037"),
    "a double": lambda line: line.replace(b'"i":7', b'"i":7.5'),
    "a field that is not a record's": lambda line: line.replace(b"{", b'{"colour":"red",', 1),
    "a client id": lambda line: line.replace(b"{", b'{"id":"a1",', 1),
    "a blank line after it": lambda line: line + b"\n",
    "a key twice": lambda line: line.replace(b"{", b'{"message":"twice",', 1),
    "a message as a number": lambda line: line.replace(b'"message":"message 7"', b'"message":7'),
    "a line that is no object": lambda line: b"[1,2]",
    "text that is not UTF-8": lambda line: line.replace(b"message 7", b"message \xff"),
}


@pytest.mark.parametrize("name", sorted(SENT_OTHERWISE))
def test_a_body_not_shown_to_be_read_as_sent_is_declined(name: str) -> None:
    lines = [msgspec.json.encode(base(i)) for i in range(BATCH)]
    lines[7] = SENT_OTHERWISE[name](lines[7])
    assert checked_table(b"\n".join(lines) + b"\n", LIMITS, NOW, 1) is None


def test_the_record_count_bounds_are_the_exact_paths() -> None:
    body = body_with({}, 0)
    assert checked_table(body, LIMITS, NOW, BATCH + 1) is None  # fewer than a bulk: record by record
    few = dataclasses.replace(LIMITS, max_records=BATCH - 1)
    assert checked_table(body, few, NOW, 1) is None  # more than a request may hold: the exact path says so


def test_an_objects_keys_come_in_the_order_the_body_first_gives() -> None:
    """JSON objects are unordered: Arrow gives a body's keys in the order it first met them, which every record
    of a shipper's body shares; a record sending them in another order keeps its values."""
    records = [{**base(i), "attributes": {"a": i, "b": -i}} for i in range(BATCH)]
    records[5]["attributes"] = {"b": 1, "a": 2}
    read = checked_table(b"\n".join(msgspec.json.encode(r) for r in records), LIMITS, NOW, 1)
    assert read is not None
    assert read.column("attributes")[5].as_py() == '{"a":2,"b":1}'


def test_the_parser_reads_by_arrow_only_when_other_bodies_are_checked_meanwhile() -> None:
    records = [{**base(i), "attributes": {"a": i, "b": -i}} for i in range(BULK_MIN_RECORDS)]
    records[5]["attributes"] = {"b": 1, "a": 2}  # (told apart by the order of its keys)
    body = b"\n".join(msgspec.json.encode(r) for r in records)
    body += b"\n" + b"\n".join(msgspec.json.encode({**base(0), "message": "m" * 40}) for _ in range(4000))
    alone = parse_batch(body, True, LIMITS, NOW, bulk=True)
    contended = parse_batch(body, True, LIMITS, NOW, bulk=True, contended=True)
    assert alone.table is not None and contended.table is not None
    assert alone.table.column("attributes")[5].as_py() == '{"b":1,"a":2}'  # msgspec's: as sent
    assert contended.table.column("attributes")[5].as_py() == '{"a":2,"b":1}'  # Arrow's
    assert alone.table.column("message").equals(contended.table.column("message"))


def bodies_of(*counts: int) -> list[bytes]:
    """Bodies of `counts` records each, every record told apart by its body and line (`body 1 line 7`)."""
    return [
        b"".join(msgspec.json.encode({**base(i), "message": f"body {b} line {i}"}) + b"\n" for i in range(count))
        for b, count in enumerate(counts)
    ]


def test_bodies_checked_together_give_each_body_its_own_table() -> None:
    bodies = bodies_of(BATCH, 2 * BATCH, BATCH)
    bodies[1] = bodies[1].rstrip(b"\n")  # (a body without its final newline joins as well)
    tables = checked_tables(bodies, LIMITS, NOW, BATCH)
    assert tables is not None
    assert [table.column("message").to_pylist() for table in tables] == [
        [f"body {b} line {i}" for i in range(count)] for b, count in enumerate((BATCH, 2 * BATCH, BATCH))
    ]
    for body, table in zip(bodies, tables, strict=True):  # each as checked alone, but its fresh ids
        alone = checked_table(body, LIMITS, NOW, 1)
        assert alone is not None
        assert table.drop_columns(["log_id"]).equals(alone.drop_columns(["log_id"]))
    ids = [log_id for table in tables for log_id in table.column("log_id").to_pylist()]
    assert len(set(ids)) == len(ids)


def test_bodies_are_checked_together_only_when_each_would_be_a_table_alone() -> None:
    bad = bodies_of(BATCH, BATCH)
    bad[1] = bad[1].replace(b'"severity":"info"', b'"severity":"loud"', 1)
    assert checked_tables(bad, LIMITS, NOW, BATCH) is None  # a record the check refuses: each alone says which
    assert checked_tables(bodies_of(BATCH, BATCH - 1), LIMITS, NOW, BATCH) is None  # one too small for a table
    few = dataclasses.replace(LIMITS, max_records=BATCH)
    assert checked_tables(bodies_of(BATCH, BATCH + 1), few, NOW, 1) is None  # one more than a request may hold
    blank = bodies_of(BATCH, BATCH)
    blank[0] += b"\n"  # (a blank line: its body's line count is not its records')
    assert checked_tables(blank, LIMITS, NOW, 1) is None


def test_a_blank_line_beside_a_line_of_two_objects_is_declined_alone_and_joined() -> None:
    """The reader skips a blank line and reads `{..}{..}` as two rows (msgspec's lines do too): a body holding both
    has as many rows as lines and its text's length. Joined, a blank line in one body and a line of two in the
    next moved a record from one request's answer to the other's; so Arrow reads no body with a blank line."""
    blank, two = bodies_of(BATCH, BATCH)
    blank = blank.replace(b"\n", b"\n\n", 1)  # (after its first line)
    first, second, rest = two.split(b"\n", 2)
    two = first + second + b"\n" + rest  # (its first line holds two objects)
    assert checked_tables([blank, two], LIMITS, NOW, 1) is None
    both = two.replace(b"\n", b"\n\n", 1)  # (one body: a line of two, then a blank line)
    assert both.count(b"\n") == BATCH
    assert checked_table(both, LIMITS, NOW, 1) is None


def test_records_that_each_name_attributes_of_their_own_are_left_to_the_exact_path() -> None:
    """Read whole by Arrow, a body costs rows times the fields any record names: 1,000 records with 100 attributes
    each of their own (1.4 MB) took 32 s and 2.2 GB (an adversarial trial). Read with its samples' fields, such a
    body is left to the exact path (msgspec), which reads it in milliseconds."""
    records = [{**base(i), "attributes": {f"r{i}k{k}": k for k in range(40)}} for i in range(1000)]
    body = b"\n".join(msgspec.json.encode(r) for r in records)
    wide = dataclasses.replace(LIMITS, max_attribute_bytes=1 << 20)
    assert checked_table(body, wide, NOW, 1) is None
    contended = parse_batch(body, True, wide, NOW, bulk=True, contended=True)
    alone = parse_batch(body, True, wide, NOW, bulk=True)
    assert contended.table is not None and alone.table is not None
    kept = ["timestamp", "service", "severity", "message", "attributes"]  # (the ids are made anew by each check)
    assert contended.table.select(kept).equals(alone.table.select(kept))


def test_records_whose_attributes_vary_now_and_then_are_read_by_arrow() -> None:
    """The samples (the start of the body, then spread over it) find the attributes a shipper's records name now
    and then: the whole body is still read by Arrow."""
    records = [base(i) for i in range(9_000)]
    for at in range(0, len(records), 97):
        records[at] = {**records[at], "attributes": {"i": at, "error": {"code": at, "reason": "bad"}}}
    body = b"\n".join(msgspec.json.encode(r) for r in records)
    table = checked_table(body, LIMITS, NOW, 1)
    assert table is not None and table.num_rows == 9_000
    assert json.loads(table.column("attributes")[97].as_py()) == {"i": 97, "error": {"code": 97, "reason": "bad"}}
