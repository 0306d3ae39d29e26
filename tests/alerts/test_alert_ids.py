"""Naming an alert by a part of its id, over a real alerts.db: alerts one rule run raised share the start of
their ids (the time) and the end (the process's node), so the start that README offered named them all."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.alerts.alert_ids import AmbiguousAlert, NoSuchAlert, find_alert_id, shortest_parts
from loglake.alerts.db import open_alerts_db
from loglake.ids import format_uuid, uuid7_many
from tests.alerts.rows import T0, insert_alert

# Three alerts of one run (one time, one node c0ffee01, consecutive counters), and one another process raised
# in the same millisecond whose counter's low digits are the first one's.
RUN = [
    "019a2446-a801-7123-8456-8016c0ffee01",
    "019a2446-a801-7123-8456-8017c0ffee01",
    "019a2446-a801-7123-8456-8018c0ffee01",
]
ELSEWHERE = "019a2446-a801-7555-8777-8016deadbeef"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = open_alerts_db(tmp_path)
    for alert_id in (*RUN, ELSEWHERE):
        insert_alert(db, id=alert_id)
    yield db
    db.close()


@pytest.mark.parametrize(
    ("text", "alert_id"),
    [
        ("8017", RUN[1]),  # the counter's low digits, before the node
        ("8018C0FFEE01", RUN[2]),  # an end, in any case
        ("016c", RUN[0]),
        ("019a2446-a801-7555", ELSEWHERE),  # a start
        (RUN[1].upper(), RUN[1]),  # the whole id
    ],
)
def test_a_part_of_an_id_no_other_alerts_id_holds_names_the_alert(
    conn: sqlite3.Connection, text: str, alert_id: str
) -> None:
    assert find_alert_id(conn, text) == alert_id


@pytest.mark.parametrize("text", ["9999", "8016c0ffee02", "0193a0b0-0000-7000-8000-000000000000", "zz", ""])
def test_text_no_alerts_id_holds_names_none(conn: sqlite3.Connection, text: str) -> None:
    with pytest.raises(NoSuchAlert):
        find_alert_id(conn, text)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("8016", f"'8016' is part of 2 alerts' ids: 016c ({RUN[0]}), 7555 ({ELSEWHERE}); give one of those parts"),
        (
            "019a2446",  # the start README offered: the run's alerts, and the other process's, all hold it
            f"'019a2446' is part of 4 alerts' ids: 016c ({RUN[0]}), 8017 ({RUN[1]}), 8018 ({RUN[2]}), 7555"
            f" ({ELSEWHERE}); give one of those parts",
        ),
        ("c0ffee01", f"'c0ffee01' is part of 3 alerts' ids: 016c ({RUN[0]}), 8017 ({RUN[1]}), 8018 ({RUN[2]});"),
    ],
)
def test_text_several_ids_hold_is_refused_naming_each_by_its_shortest_part(
    conn: sqlite3.Connection, text: str, said: str
) -> None:
    with pytest.raises(AmbiguousAlert) as refused:
        find_alert_id(conn, text)
    assert str(refused.value).startswith(said), refused.value


def test_the_alerts_of_one_run_are_each_named_by_4_digits(tmp_path: Path) -> None:
    """As the engine makes them (loglake.ids): the 4 digits before the node tell them apart."""
    db = open_alerts_db(tmp_path)
    raised = [format_uuid(raw) for raw in uuid7_many([T0] * 20)]
    for alert_id in raised:
        insert_alert(db, id=alert_id)
    parts = shortest_parts(db, raised)
    assert all(len(part) == 4 for part in parts), parts
    assert [find_alert_id(db, part) for part in parts] == raised
    db.close()
