"""The delivery outbox: one row per (alert event, destination), written before anything is sent.

Routing reads `alert_events` after the outbox's cursor and, in ONE transaction, records the
deliveries each event makes and moves the cursor past it: a crash before the commit routes the
event again, a crash after it finds the rows (and the unique (event, destination) pair would refuse
a second copy anyway). A delivery's id is its idempotency key, sent with every attempt.

States: `pending` (due at next_attempt_ms), `sending` (an attempt under way), `sent`, `dead` (the
last attempt failed, a receiver refused it for good, or its destination is not configured). One
process delivers per data dir (the worker's lock), so a `sending` row found at start was cut short
by a crash and is due again, with the same key. Deliveries of one dedup key to one destination go
out in event order: a PagerDuty resolve never overtakes its trigger, and while one is dead-lettered the later
ones wait behind it (a receiver told of an acknowledgement or a resolve of an incident it never heard of
could not open it), until it is retried (which retries the dead ones before it too) or forgotten.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loglake.alerts.alert_ids import SHORTEST_PART, find_alert_id
from loglake.alerts.db import EVENT_STATUS_COLUMNS, open_alerts_db
from loglake.sqlitedb import Schema, migrate_schema, write_transaction

if TYPE_CHECKING:
    from loglake.alerts.routing import Routing

DELIVERY_STATES = ("pending", "sending", "sent", "dead")
ROUTE_BATCH = 500
MAX_ERROR_CHARS = 500
_ID_START = re.compile("[0-9a-f-]+")  # what a delivery's id (a UUID) may start with

SCHEMA = Schema(
    "delivery",
    (
        """
        CREATE TABLE delivery_cursor (
            name TEXT PRIMARY KEY,
            seq INTEGER NOT NULL               -- the last alert_events.seq routed
        );
        CREATE TABLE delivery_alerts (
            event_seq INTEGER PRIMARY KEY,     -- an alert_events row that was routed somewhere
            at_ms INTEGER NOT NULL,            -- when the event happened
            alert TEXT NOT NULL                -- JSON: the alert as it was then, what every attempt sends
        );
        CREATE TABLE deliveries (
            id TEXT PRIMARY KEY,               -- the idempotency key, the same on every attempt
            event_seq INTEGER NOT NULL,
            destination TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            dedup_key TEXT NOT NULL,
            kind TEXT NOT NULL,                -- the event: trigger, update, acknowledge, resolve
            state TEXT NOT NULL,               -- one of DELIVERY_STATES
            attempts INTEGER NOT NULL,
            next_attempt_ms INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            last_error TEXT,
            last_status INTEGER,               -- the receiver's last HTTP or SMTP status
            UNIQUE (event_seq, destination)
        );
        CREATE INDEX deliveries_due ON deliveries (state, destination, next_attempt_ms);
        CREATE INDEX deliveries_in_order ON deliveries (destination, dedup_key, event_seq);
        CREATE INDEX deliveries_by_alert ON deliveries (alert_id);
        CREATE TABLE delivery_memory (
            destination TEXT NOT NULL,
            dedup_key TEXT NOT NULL,
            value TEXT NOT NULL,               -- what the destination keeps per dedup key (a Jira issue key)
            PRIMARY KEY (destination, dedup_key)
        ) WITHOUT ROWID
        """,
        # Which destinations heard of which alert (deliveries are pruned, this is kept while the alert is). The
        # alerts routed before it count as heard of everywhere: their deliveries may be pruned, not sent again.
        """
        CREATE TABLE delivery_told (
            alert_id TEXT NOT NULL,
            destination TEXT NOT NULL,         -- '*': every destination (an alert routed before this table)
            PRIMARY KEY (alert_id, destination)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO delivery_told (alert_id, destination) SELECT DISTINCT alert_id, '*' FROM alert_events
            WHERE seq <= (SELECT coalesce(max(seq), 0) FROM delivery_cursor WHERE name = 'alert_events');
        """,
    ),
)
_CURSOR = "alert_events"
_COLUMNS = (
    "rowid, id, event_seq, destination, alert_id, dedup_key, kind, state, attempts, next_attempt_ms,"
    " created_ms, updated_ms, last_error, last_status"
)
# A pending delivery that may go: no earlier delivery of its dedup key to its destination waits, is under way or
# is dead-lettered (the later ones wait for it to be retried).
_READY = (
    "d.state = 'pending' AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.destination = d.destination"
    " AND e.dedup_key = d.dedup_key AND e.event_seq < d.event_seq AND e.state IN ('pending', 'sending', 'dead'))"
)
# The deliveries after a given one of its dedup key to its destination (destination, dedup key, event_seq).
_LATER = "destination = ? AND dedup_key = ? AND event_seq > ?"
_EVENT_STATUS = ", ".join(f"e.{column}" for column in EVENT_STATUS_COLUMNS)
_ALERT_JSON = ("tags", "group_values", "evidence", "destinations")


@dataclass(frozen=True)
class DeliveryRow:
    rowid: int
    id: str
    event_seq: int
    destination: str
    alert_id: str
    dedup_key: str
    kind: str
    state: str
    attempts: int
    next_attempt_ms: int
    created_ms: int
    updated_ms: int
    last_error: str | None
    last_status: int | None


@dataclass(frozen=True)
class DeadAhead:
    """The first dead delivery of a dedup key to a destination before a given event: the later ones wait behind
    it. It may be another alert's (a new alert of the key, after one resolved whose trigger died)."""

    event_seq: int
    kind: str
    id: str
    alert_id: str


@dataclass(frozen=True)
class DeadLetters:
    count: int
    newest_ms: int  # when the last of them was dead-lettered


class NoSuchDelivery(LookupError):
    pass


class RetryRefused(ValueError):
    """A delivery that cannot be retried; the message says why."""


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for an attempt: its row, the alert it sends, and the destination's memory of the key."""

    row: DeliveryRow
    alert: dict[str, Any]
    at_ms: int
    remembered: str | None


@dataclass(frozen=True)
class Sent:
    """An attempt that went through: what to remember for its dedup key, and the receiver's reply code."""

    remember: str | None
    status: int | None
    warning: str | None = None  # kept as its last error: a send that went through, but not wholly


class Outbox:
    """The outbox tables in `<data>/alerts.db`; thread-safe (one connection behind a lock)."""

    def __init__(self, data_dir: Path) -> None:
        self._conn = open_alerts_db(data_dir)
        migrate_schema(self._conn, SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- routing ----------------------------------------------------------------------------------

    def route(self, routing: Routing, now_ms: int, batch: int = ROUTE_BATCH) -> int:
        """Record the deliveries of the next events after the cursor and move it past them, in one
        transaction; the number of events routed (0: none were waiting)."""
        if not self._events_waiting():  # the usual answer, without taking the database's write lock
            return 0
        with self._lock, write_transaction(self._conn) as conn:
            cursor = _cursor(conn)
            # LEFT JOIN: an event whose alert is gone (deleted since) is passed over, not waited for.
            events = conn.execute(
                f"SELECT e.seq, e.kind, e.at_ms, e.status IS NOT NULL, {_EVENT_STATUS}, a.* FROM alert_events e"
                " LEFT JOIN alerts a ON a.id = e.alert_id WHERE e.seq > ? ORDER BY e.seq LIMIT ?",
                (cursor, batch),
            )
            names = [d[0] for d in events.description]
            rows = events.fetchall()
            status_end = 4 + len(EVENT_STATUS_COLUMNS)
            for values in rows:
                seq, kind, at_ms, kept_status = values[:4]
                alert = dict(zip(names[status_end:], values[status_end:], strict=True))
                if alert["id"] is None:
                    continue
                alert = _decoded(alert)
                if kept_status:  # the status as the event made it, not as a later change left it
                    alert.update(zip(EVENT_STATUS_COLUMNS, values[4:status_end], strict=True))
                _add_deliveries(conn, routing, seq, at_ms, alert, _told_targets(conn, routing, alert, kind), now_ms)
            if rows:
                conn.execute(
                    "INSERT INTO delivery_cursor (name, seq) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                    (_CURSOR, rows[-1][0]),
                )
        return len(rows)

    def tell_open_alerts(self, routing: Routing, now_ms: int) -> int:
        """Trigger deliveries of the open (or acknowledged) alerts to the destinations `routing` sends them to
        that never heard of them: after routing changed (alerting.yml written where there was none, a route or
        destination added), as Alertmanager tells a new receiver of the alerts firing. Alerts with events not
        routed yet are left to `route` (which sends a destination's first event of an alert as its trigger).
        Returns how many deliveries it made."""
        made = 0
        with self._lock, write_transaction(self._conn) as conn:
            cursor = _cursor(conn)
            alerts = conn.execute(
                "SELECT e.seq, e.at_ms, a.* FROM alerts a JOIN alert_events e ON e.seq ="
                " (SELECT max(seq) FROM alert_events WHERE alert_id = a.id) WHERE a.status IN ('open', 'acknowledged')"
            )
            names = [d[0] for d in alerts.description]
            for values in alerts.fetchall():
                seq, at_ms, alert = values[0], values[1], _decoded(dict(zip(names[2:], values[2:], strict=True)))
                if seq > cursor:
                    continue
                untold = [target for target in _told_targets(conn, routing, alert, "update") if target[1] == "trigger"]
                made += _add_deliveries(conn, routing, seq, at_ms, alert, untold, now_ms)
        return made

    def _events_waiting(self) -> bool:
        with self._lock:
            cursor = _cursor(self._conn)
            return (
                self._conn.execute("SELECT 1 FROM alert_events WHERE seq > ? LIMIT 1", (cursor,)).fetchone() is not None
            )

    # -- attempts ---------------------------------------------------------------------------------

    def recover(self, now_ms: int) -> int:
        """Make attempts a crash cut short due again (call holding the delivery lock, before claiming)."""
        with self._lock, write_transaction(self._conn) as conn:
            return conn.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_ms = ?, updated_ms = ? WHERE state = 'sending'",
                (now_ms, now_ms),
            ).rowcount

    def dead_letter_unconfigured(self, routing: Routing, now_ms: int) -> int:
        """Waiting deliveries to destinations the file no longer defines can never go: dead-letter them. (Read first:
        called at every round, it takes the database's write lock only when there are some.)"""
        with self._lock:
            names = [
                r[0] for r in self._conn.execute("SELECT DISTINCT destination FROM deliveries WHERE state = 'pending'")
            ]
        gone = [n for n in names if n not in routing.destinations]
        if not gone:
            return 0
        with self._lock, write_transaction(self._conn) as conn:
            for name in gone:
                conn.execute(
                    "UPDATE deliveries SET state = 'dead', updated_ms = ?, last_error = ?"
                    " WHERE state = 'pending' AND destination = ?",
                    (now_ms, not_configured(name), name),
                )
            return len(gone)

    def claim(self, destination: str, limit: int, now_ms: int) -> list[Claimed]:
        """Up to `limit` due deliveries to `destination`, marked `sending`: none whose dedup key has an
        earlier delivery to it still waiting or under way."""
        if limit <= 0:
            return []
        with self._lock, write_transaction(self._conn) as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM deliveries d WHERE {_READY} AND destination = ? AND next_attempt_ms <= ?"
                " ORDER BY next_attempt_ms, event_seq LIMIT ?",
                (destination, now_ms, limit),
            ).fetchall()
            claimed = []
            for values in rows:
                row = DeliveryRow(*values)
                conn.execute("UPDATE deliveries SET state = 'sending', updated_ms = ? WHERE id = ?", (now_ms, row.id))
                at_ms, alert = conn.execute(
                    "SELECT at_ms, alert FROM delivery_alerts WHERE event_seq = ?", (row.event_seq,)
                ).fetchone()
                remembered = conn.execute(
                    "SELECT value FROM delivery_memory WHERE destination = ? AND dedup_key = ?",
                    (destination, row.dedup_key),
                ).fetchone()
                claimed.append(Claimed(row, json.loads(alert), at_ms, remembered[0] if remembered else None))
            return claimed

    def release(self, row: DeliveryRow, due_ms: int, now_ms: int) -> None:
        """An attempt whose outcome could not be recorded: due again at `due_ms`, as after a crash (recover), with its
        idempotency key; its attempts are not counted, as none was recorded."""
        with self._lock, write_transaction(self._conn) as conn:
            conn.execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_ms = ?, updated_ms = ? WHERE id = ?"
                " AND state = 'sending'",
                (due_ms, now_ms, row.id),
            )

    def sent(self, row: DeliveryRow, now_ms: int, sent: Sent) -> None:
        remember = sent.remember
        with self._lock, write_transaction(self._conn) as conn:
            conn.execute(
                "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, updated_ms = ?, last_error = ?,"
                " last_status = ? WHERE id = ?",
                (now_ms, sent.warning, sent.status, row.id),
            )
            if remember is not None:
                conn.execute(
                    "INSERT INTO delivery_memory (destination, dedup_key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (destination, dedup_key) DO UPDATE SET value = excluded.value",
                    (row.destination, row.dedup_key, remember),
                )

    def failed(self, row: DeliveryRow, now_ms: int, error: str, status: int | None, retry_at_ms: int | None) -> str:
        """Record a failed attempt: due again at `retry_at_ms`, or (None) dead-lettered. The new state."""
        state = "dead" if retry_at_ms is None else "pending"
        with self._lock, write_transaction(self._conn) as conn:
            conn.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_attempt_ms = ?, updated_ms = ?,"
                " last_error = ?, last_status = ? WHERE id = ?",
                (state, retry_at_ms or now_ms, now_ms, error[:MAX_ERROR_CHARS], status, row.id),
            )
            if state == "dead":  # the later ones of its key wait behind it: said where their state shows
                dead = DeadAhead(row.event_seq, row.kind, row.id, row.alert_id)
                later = conn.execute(
                    f"SELECT id, alert_id FROM deliveries WHERE state = 'pending' AND {_LATER}",
                    (row.destination, row.dedup_key, row.event_seq),
                ).fetchall()
                conn.executemany(
                    "UPDATE deliveries SET last_error = ? WHERE id = ?",
                    [(_held_behind(dead, alert_id), delivery_id) for delivery_id, alert_id in later],
                )
        return state

    def retry(self, delivery_id: str, destinations: Collection[str], now_ms: int) -> DeliveryRow:
        """Make a dead-lettered delivery due now with its attempts reset (its idempotency key unchanged),
        for the worker to send like any other, and with it the dead ones of its dedup key to its destination
        before it, which go first; `destinations` are the ones alerting.yml defines. The row as it now is, or
        NoSuchDelivery, or RetryRefused saying why (it is not dead: a second retry of the same delivery is
        refused, so it goes once). A delivery is named by its id, or by its start when no other id starts so."""
        with self._lock, write_transaction(self._conn) as conn:
            row = _named_delivery(conn, delivery_id)
            refusal = retry_refusal(row, destinations)
            if refusal is not None:
                raise RetryRefused(refusal)
            key = (row.destination, row.dedup_key)
            first = _first_dead(conn, *key, row.event_seq + 1)  # retried: it, and the dead ones before it, first
            assert first is not None  # (it is dead itself)
            first_seq, first_kind = first.event_seq, first.kind
            # A later event of the same key already delivered: sending this one now would undo it (a PagerDuty
            # trigger after its resolve reopens the incident). (Later events wait behind a dead one: a delivery
            # dead-lettered before they did, or forgotten meanwhile.)
            later = conn.execute(
                f"SELECT kind FROM deliveries WHERE {_LATER} AND state = 'sent' ORDER BY event_seq DESC LIMIT 1",
                (*key, first_seq),
            ).fetchone()
            if later is not None:
                raise RetryRefused(
                    f"a later {later[0]} of the same alert was already delivered to {row.destination!r};"
                    f" sending this {first_kind} after it would deliver them out of order"
                )
            conn.execute(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_ms = ?, updated_ms = ?"
                " WHERE state = 'dead' AND destination = ? AND dedup_key = ? AND event_seq <= ?",
                (now_ms, now_ms, *key, row.event_seq),
            )
            return DeliveryRow(*conn.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE id = ?", (row.id,)).fetchone())

    def next_due_ms(self, busy: Collection[str] = ()) -> int | None:
        """When the next delivery that may go (no earlier one of its key waits) is due, leaving out the
        destinations in `busy` (no room for another attempt: the end of one of theirs is the next chance)."""
        leave_out = f" AND d.destination NOT IN ({', '.join('?' * len(busy))})" if busy else ""
        with self._lock:
            return self._conn.execute(
                f"SELECT min(next_attempt_ms) FROM deliveries d WHERE {_READY}{leave_out}", tuple(busy)
            ).fetchone()[0]

    def prune(self, before_ms: int) -> int:
        """Forget sent and dead deliveries last changed before `before_ms`, and the alert copies no row needs."""
        with self._lock, write_transaction(self._conn) as conn:
            removed = conn.execute(
                "DELETE FROM deliveries WHERE state IN ('sent', 'dead') AND updated_ms < ?", (before_ms,)
            ).rowcount
            conn.execute("DELETE FROM delivery_alerts WHERE event_seq NOT IN (SELECT event_seq FROM deliveries)")
            conn.execute("DELETE FROM delivery_told WHERE alert_id NOT IN (SELECT id FROM alerts)")
            return removed

    # -- reading ----------------------------------------------------------------------------------

    def waiting_by_destination(self) -> dict[str, int]:
        """Deliveries not yet sent nor dead-lettered, per destination."""
        with self._lock:
            return dict(
                self._conn.execute(
                    "SELECT destination, count(*) FROM deliveries WHERE state IN ('pending', 'sending')"
                    " GROUP BY destination"
                ).fetchall()
            )

    def dead_by_destination(self) -> dict[str, DeadLetters]:
        """Dead-lettered deliveries still kept, per destination: how many, and when the newest died."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT destination, count(*), max(updated_ms) FROM deliveries WHERE state = 'dead'"
                " GROUP BY destination"
            ).fetchall()
        return {name: DeadLetters(count, newest_ms) for name, count, newest_ms in rows}

    def alert_named(self, text: str) -> str:
        """The id of the alert `text` names: an id deliveries hold, as it is (they outlive their alert), else as the
        alerts commands name one (alert_ids.find_alert_id: a part of its id, such as the 4 digits before its last
        8); NoSuchAlert or AmbiguousAlert."""
        with self._lock:
            if self._conn.execute("SELECT 1 FROM deliveries WHERE alert_id = ? LIMIT 1", (text,)).fetchone():
                return text
            return find_alert_id(self._conn, text)

    def waiting_behind(self, rows: Collection[DeliveryRow]) -> dict[str, DeadAhead]:
        """The dead delivery each pending one of `rows` waits behind, by the waiting one's id (those that wait for
        none are left out)."""
        with self._lock:
            found = {
                row.id: _first_dead(self._conn, row.destination, row.dedup_key, row.event_seq)
                for row in rows
                if row.state == "pending"
            }
        return {delivery_id: dead for delivery_id, dead in found.items() if dead is not None}

    def page(
        self,
        *,
        states: Collection[str] = (),
        destination: str | None = None,
        alert_id: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]:
        """Deliveries newest first, filtered (`states`: any of them; none, every state); `before` is the rowid of
        the last one of the previous page."""
        where, params = [], []
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(states)
        for column, value in (("destination", destination), ("alert_id", alert_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            where.append("rowid < ?")
            params.append(before)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM deliveries{clause} ORDER BY rowid DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [DeliveryRow(*values) for values in rows]


def _cursor(conn: sqlite3.Connection) -> int:
    found = conn.execute("SELECT seq FROM delivery_cursor WHERE name = ?", (_CURSOR,)).fetchone()
    return found[0] if found else 0


def _decoded(alert: dict[str, Any]) -> dict[str, Any]:
    for name in _ALERT_JSON:
        if alert[name] is not None:
            alert[name] = json.loads(alert[name])
    return alert


def _named_delivery(conn: sqlite3.Connection, text: str) -> DeliveryRow:
    """The delivery whose id is `text`, or starts with it (at least SHORTEST_PART characters) alone; else
    NoSuchDelivery saying why."""
    found = conn.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE id = ?", (text,)).fetchone()
    if found is None and len(text) >= SHORTEST_PART and _ID_START.fullmatch(text):
        starting = conn.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE id LIKE ? LIMIT 2", (f"{text}%",)).fetchall()
        if len(starting) > 1:
            raise NoSuchDelivery(f"{text!r} starts several deliveries' ids ({starting[0][1]}, ...): give more of it")
        found = starting[0] if starting else None
    if found is None:
        raise NoSuchDelivery(f"no delivery with id {text!r} (`loglake alerts deliveries` lists them)")
    return DeliveryRow(*found)


def _told_targets(
    conn: sqlite3.Connection, routing: Routing, alert: dict[str, Any], kind: str
) -> list[tuple[str, str]]:
    """told_targets of an event of `alert`, by the destinations delivery_told says heard of it."""
    told = {row[0] for row in conn.execute("SELECT destination FROM delivery_told WHERE alert_id = ?", (alert["id"],))}
    return told_targets(routing, alert, kind, told)


def told_targets(routing: Routing, alert: dict[str, Any], kind: str, told: Collection[str]) -> list[tuple[str, str]]:
    """(destination, kind to send) for an event of `alert`, `told` the destinations that heard of it ('*': all of
    them, an alert routed before they were kept), here and on AWS (alerts/dynamodb.py): a destination that never
    heard of the alert (it was raised while alerting.yml was missing, or routed elsewhere then) hears of it first as
    its trigger, with its status as it is, and not at all of its resolve; the others hear of the event. (A
    PagerDuty acknowledge or resolve of an incident never triggered opens nothing.) A destination that heard of it
    hears of its later events (those it takes) while the file defines it, even once the routes send the alert
    elsewhere, as Alertmanager's and Grafana's notifications of an alert go where its firing went: else a route
    edited while it was open left its PagerDuty incident open for good. A destination that takes no triggers
    (`events: [resolve]`) is never told of an alert first: it hears of the events it takes."""
    if "*" in told:
        return [(name, kind) for name in routing.targets(alert, kind)]
    first = [] if kind == "resolve" else [(name, "trigger") for name in routing.targets(alert, "trigger")]
    untriggered = {name for name, destination in routing.destinations.items() if not destination.takes("trigger")}
    kept = [name for name, destination in routing.destinations.items() if name in told and destination.takes(kind)]
    return [(name, sent) for name, sent in first if name not in told] + [
        (name, kind)
        for name in dict.fromkeys([*routing.targets(alert, kind), *kept])
        if name in told or name in untriggered
    ]


def _add_deliveries(
    conn: sqlite3.Connection,
    routing: Routing,
    seq: int,
    at_ms: int,
    alert: dict[str, Any],
    targets: list[tuple[str, str]],
    now_ms: int,
) -> int:
    """Record the deliveries of event `seq` (at `at_ms`) of `alert` to `targets`, (destination, kind to send), and
    the alert as every attempt sends it; how many were new."""
    if not targets:
        return 0
    conn.execute(
        "INSERT OR IGNORE INTO delivery_alerts (event_seq, at_ms, alert) VALUES (?, ?, ?)",
        (seq, at_ms, json.dumps(alert)),
    )
    return sum(_add_delivery(conn, routing, seq, alert, name, kind, now_ms) for name, kind in targets)


def _add_delivery(
    conn: sqlite3.Connection, routing: Routing, seq: int, alert: dict[str, Any], name: str, kind: str, now_ms: int
) -> int:
    """Record the delivery of event `seq` (of `kind`) to destination `name`: pending, or held behind a dead one of
    its dedup key, or dead when the file does not define `name`. Returns 1, or 0 if it was recorded before."""
    known = name in routing.destinations
    dead = _first_dead(conn, name, alert["dedup_key"], seq) if known else None
    held = None if dead is None else _held_behind(dead, alert["id"])
    added = conn.execute(
        "INSERT OR IGNORE INTO deliveries (id, event_seq, destination, alert_id, dedup_key, kind,"
        " state, attempts, next_attempt_ms, created_ms, updated_ms, last_error)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
        (
            str(uuid.uuid4()),
            seq,
            name,
            alert["id"],
            alert["dedup_key"],
            kind,
            "pending" if known else "dead",
            now_ms,
            now_ms,
            now_ms,
            held if known else not_configured(name),
        ),
    ).rowcount
    conn.execute("INSERT OR IGNORE INTO delivery_told (alert_id, destination) VALUES (?, ?)", (alert["id"], name))
    return added


def _first_dead(conn: sqlite3.Connection, destination: str, dedup_key: str, before_seq: int) -> DeadAhead | None:
    """The first dead delivery of a dedup key to a destination before event `before_seq`, or None."""
    found = conn.execute(
        "SELECT event_seq, kind, id, alert_id FROM deliveries WHERE destination = ? AND dedup_key = ?"
        " AND event_seq < ? AND state = 'dead' ORDER BY event_seq LIMIT 1",
        (destination, dedup_key, before_seq),
    ).fetchone()
    return None if found is None else DeadAhead(*found)


def _held_behind(dead: DeadAhead, alert_id: str) -> str:
    """The last error of a delivery of alert `alert_id` waiting behind `dead`, which may be another alert's (of the
    same dedup key): named, as the page of the waiting one's alert does not show it."""
    whose = "its alert" if dead.alert_id == alert_id else f"alert {dead.alert_id} (of the same dedup key)"
    return (
        f"waits for the {dead.kind} of {whose}, dead-lettered ({dead.id}), to go first: retry that one"
        f" (loglake alerts retry {dead.id})"
    )


def retry_refusal(row: DeliveryRow, destinations: Collection[str]) -> str | None:
    """Why a delivery cannot be retried as it is (None: it can, but for a later event of its alert already
    delivered, which Outbox.retry finds in the outbox): not dead, or its destination no longer defined
    (`destinations`: those alerting.yml defines)."""
    if row.state != "dead":
        return f"delivery {row.id} is {row.state}, not dead; only a dead delivery is retried"
    if row.destination not in destinations:
        return not_configured(row.destination)
    return None


def not_configured(name: str) -> str:
    return f"destination {name!r} is not defined in alerting.yml; define it, or take it out of the rule's destinations"
