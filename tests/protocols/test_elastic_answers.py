"""Elasticsearch's bulk answer, item by item in the request's order, whole or as filter_path names, whatever
runs of stored and refused items the bulk holds."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from loglake.protocols.elastic import BulkItem, items_alike
from loglake.protocols.elastic_answers import answer_filter, bulk_answer, created_answer

SHARDS = {"total": 1, "successful": 1, "failed": 0}
CREATED = {"_version": 1, "result": "created", "_shards": SHARDS, "_seq_no": 0, "_primary_term": 1}
BAD = {"type": "document_parsing_exception", "reason": "bad"}


def items() -> list[BulkItem]:
    """Two stored creates, a refused one between them and another stored create, an index of an id stored
    before (kept: 200), and a create into another index whose id JSON must escape."""
    found = [
        BulkItem("create", "app", "a", 0),
        BulkItem("create", "app", "b", 1),
        BulkItem("create", "app", "c", 2),
        BulkItem("create", "app", "d", 3),
        BulkItem("index", "app", "e", 4, status=200),
        BulkItem("create", "other", 'q"x', 5),
    ]
    found[2].refuse("bad")
    return found


def test_the_whole_answer_has_every_items_entry_in_order() -> None:
    answer = bulk_answer(items(), 5)
    assert answer.endswith(b"}\n")
    assert json.loads(answer) == {
        "errors": True,
        "took": 5,
        "items": [
            {"create": {"_index": "app", "_id": "a", **CREATED, "status": 201}},
            {"create": {"_index": "app", "_id": "b", **CREATED, "status": 201}},
            {"create": {"_index": "app", "_id": "c", "status": 400, "error": BAD}},
            {"create": {"_index": "app", "_id": "d", **CREATED, "status": 201}},
            {"index": {"_index": "app", "_id": "e", **CREATED, "result": "noop", "status": 200}},
            {"create": {"_index": "other", "_id": 'q"x', **CREATED, "status": 201}},
        ],
    }


@pytest.mark.parametrize(
    ("filter_path", "expected"),
    [
        (
            "errors,items.*.error,items.*.status",  # Beats' and Logstash's
            {
                "errors": True,
                "items": [
                    {"create": {"status": 201}},
                    {"create": {"status": 201}},
                    {"create": {"status": 400, "error": BAD}},
                    {"create": {"status": 201}},
                    {"index": {"status": 200}},
                    {"create": {"status": 201}},
                ],
            },
        ),
        ("items.*.error", {"items": [{"create": {"error": BAD}}]}),
        (
            "items.*._id,took",
            {
                "took": 5,
                "items": [{"create": {"_id": i}} for i in "abcd"]
                + [{"index": {"_id": "e"}}, {"create": {"_id": 'q"x'}}],
            },
        ),
        ("errors", {"errors": True}),
    ],
)
def test_a_filtered_answer_has_what_the_filter_names_and_no_empty_entry(filter_path: str, expected: dict) -> None:
    assert json.loads(bulk_answer(items(), 5, answer_filter(filter_path))) == expected


def test_a_bulk_all_stored_with_nothing_kept_of_its_items_answers_no_items() -> None:
    stored = [item for item in items() if item.error is None]
    assert json.loads(bulk_answer(stored, 5, answer_filter("errors,items.*.error"))) == {"errors": False}


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("filter_path", ["", "errors,items.*._id"])
def test_a_bulk_stored_alike_is_answered_with_each_entry_and_its_id(count: int, filter_path: str) -> None:
    """The usual answer: every item stored alike, one run, answered in one join of its ids (which JSON escapes)."""
    stored = [BulkItem("create", "app", f'id"{i}', i) for i in range(count)]
    answer = bulk_answer(stored, 5, answer_filter(filter_path))
    assert answer.endswith(b"]}\n")
    if filter_path:
        assert json.loads(answer) == {"errors": False, "items": [{"create": {"_id": f'id"{i}'}} for i in range(count)]}
    else:
        entries = [{"create": {"_index": "app", "_id": f'id"{i}', **CREATED, "status": 201}} for i in range(count)]
        assert json.loads(answer) == {"errors": False, "took": 5, "items": entries}


@pytest.mark.parametrize("filter_path", ["", "errors,items.*._id,items.*.status", "errors,items.*.status"])
def test_the_ids_of_a_bulk_stored_as_tables_are_answered_as_the_items_own(filter_path: str) -> None:
    """Every item stored as a table's row: their ids, given in order as Arrow text, answered as each item's doc_id
    is, in every run (two indexes and two actions here) and every filter."""
    runs = [("create", "app", 3), ("create", "web", 1), ("index", "web", 2)]
    made = [(action, index) for action, index, count in runs for _ in range(count)]
    ids = [f"0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a{row:02d}" for row in range(len(made))]
    keep = answer_filter(filter_path)
    with_doc_ids = [BulkItem(action, index, ids[row], row) for row, (action, index) in enumerate(made)]
    expected = bulk_answer(with_doc_ids, 5, keep)
    without = [BulkItem(action, index, None, row) for row, (action, index) in enumerate(made)]
    assert bulk_answer(without, 5, keep, pa.array(ids)) == expected
    assert json.loads(expected)["items"][-1] != {}


@pytest.mark.parametrize(
    "filter_path", ["", "errors,items.*._id,items.*.status", "errors,items.*.error,items.*.status"]
)
def test_items_made_alike_are_answered_as_the_same_items_one_by_one(filter_path: str) -> None:
    """Items made alike (one action line's) are answered with no pass over them when every one was stored as a new
    record (ids given), and item by item when one was refused: both as the same items in a plain list are."""
    keep = answer_filter(filter_path)
    ids = pa.array([f"0190b3c4-5d6e-7f80-9a1b-2c3d4e5f6a{row:02d}" for row in range(4)])
    alike = items_alike("create", "app", None, range(4))
    assert bulk_answer(alike, 5, keep, ids) == bulk_answer(list(alike), 5, keep, ids)
    assert created_answer(alike, 5, keep) == created_answer(list(alike), 5, keep)
    alike[2].refuse("message: a record needs one", field="message")
    answered = without_failed_ids(bulk_answer(alike, 5, keep))
    assert answered == without_failed_ids(bulk_answer(list(alike), 5, keep))
    assert answered["errors"] is True
    assert answered["items"][2]["create"]["status"] == 400


def test_a_part_of_items_made_alike_has_the_wholes_items() -> None:
    """The items of a part (a body of bulks checked joined, a group of a big bulk's) are the whole's, made or not
    when the part was taken: an item refused through the part is refused in the whole's answer."""
    whole = items_alike("create", "app", None, range(10, 16))
    part = whole.part(2, 5)
    assert len(part) == 3 and part.rows == range(12, 15)
    part[1].refuse("message: a record needs one", field="message")
    assert [item.row for item in whole] == [10, 11, 12, None, 14, 15]
    assert whole[3] is part[1]
    assert [item.row for item in whole.part(4, 6)] == [14, 15]


def without_failed_ids(answer: bytes) -> dict:
    """An answer without the ids of failed items (a new one each time, as Elasticsearch generates them)."""
    answered = json.loads(answer)
    for entry in answered["items"]:
        for outcome in entry.values():
            if outcome.get("status", 400) != 201:
                outcome.pop("_id", None)
    return answered


@pytest.mark.parametrize(
    "filter_path", ["errors,items.*.error,items.*.status", "items.*.status", "errors,items.*.error", "errors", "took"]
)
@pytest.mark.parametrize("indexes", [("app",), ("app", "web")])
def test_a_bulk_created_with_one_action_is_answered_as_bulk_answer_answers_it(
    filter_path: str, indexes: tuple[str, ...]
) -> None:
    """Every item stored as a new record, with one action: created_answer's repeated entry is bulk_answer's answer,
    whatever indexes the items went to, for every filter that keeps neither `_index` nor `_id`."""
    created = [BulkItem("create", indexes[row % len(indexes)], None, row) for row in range(5)]
    keep = answer_filter(filter_path)
    assert created_answer(created, 5, keep) == bulk_answer(created, 5, keep)


@pytest.mark.parametrize("filter_path", ["", "items.*._id", "errors,items.*._index,items.*.status", "items"])
def test_an_answer_keeping_ids_or_indexes_is_left_to_bulk_answer(filter_path: str) -> None:
    created = [BulkItem("create", "app", None, row) for row in range(3)]
    assert created_answer(created, 5, answer_filter(filter_path)) is None


def test_a_bulk_of_two_actions_is_left_to_bulk_answer() -> None:
    created = [BulkItem("create", "app", None, 0), BulkItem("index", "app", None, 1)]
    assert created_answer(created, 5, answer_filter("errors,items.*.status")) is None
