"""What `ask` keeps, with the data, in `<data-dir>/ask.db` (0600: questions can be sensitive):
conversations and their turns (they expire), cached answers, and each provider's token use per UTC
day (the daily budget, and the usage /metrics shows, whichever process asked: server or CLI).

The daily budget is kept by reservation: before the model is called, the most tokens the call can use
are held in one write transaction that first checks the day's use and holdings, so questions asked at
once (threads of the server, a `loglake ask` beside it) can never together spend more than the
budget; the call's actual use then replaces its holding. A process killed during a call leaves its
holding until the day ends, which errs on the side of spending less.

AWS keeps the same things in DynamoDB (aws/ask_store.py), behind the same methods (ConversationStore).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loglake.private_files import private_database
from loglake.sqlitedb import SharedConnection, migrate, use_wal, write_transaction

ASK_DB = "ask.db"
CACHE_MS = 5 * 60_000  # a cached answer's time literals were computed when it was made: keep it briefly
BUSY_TIMEOUT_S = 10.0  # how long a write waits for another process's write to ask.db (tests shorten it)

MIGRATIONS = (
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,              -- the API key's name that started it ('' from the CLI)
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE TABLE turns (
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        n INTEGER NOT NULL,               -- 1, 2, ... in the order asked
        question TEXT NOT NULL,
        answer TEXT NOT NULL,             -- JSON: sql, explanation, ... as answered
        created_ms INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, n)
    );
    CREATE TABLE cached_answers (
        key TEXT PRIMARY KEY,             -- question + schema version + conversation state (service.cache_key)
        answer TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    CREATE TABLE usage (
        day TEXT NOT NULL,                -- UTC, YYYY-MM-DD
        provider TEXT NOT NULL,
        requests INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        PRIMARY KEY (day, provider)
    )
    """,
    # tokens held for calls under way (reserve, then settle or release): the budget counts them as spent
    "ALTER TABLE usage ADD COLUMN reserved_tokens INTEGER NOT NULL DEFAULT 0",
)


@dataclass(frozen=True)
class Turn:
    question: str
    answer: dict[str, Any]


@dataclass(frozen=True)
class Usage:
    provider: str
    requests: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Holding:
    """A provider's day as a reservation found it: tokens used, tokens held for calls under way, and
    whether the reservation was granted (then `held` does not count it)."""

    used: int
    held: int
    granted: bool


class NoSuchConversation(Exception):
    """No conversation of this id for this owner (or it expired)."""


class AskStoreBusy(Exception):
    """Another writer held the store past the busy timeout (HTTP 503: retry shortly)."""


class ConversationStore(Protocol):
    """Where asking keeps conversations, cached answers and token use: ask.db here, DynamoDB on AWS."""

    def turns(self, conversation_id: str, owner: str) -> list[Turn]: ...
    def add_turn(self, conversation_id: str | None, owner: str, question: str, answer: dict[str, Any]) -> str: ...
    def cached(self, key: str) -> dict[str, Any] | None: ...
    def cache(self, key: str, answer: dict[str, Any]) -> None: ...
    def reserve(self, provider: str, day: str, tokens: int, budget: int) -> Holding: ...
    def settle(self, provider: str, day: str, held: int, input_tokens: int, output_tokens: int) -> None: ...
    def release(self, provider: str, day: str, held: int) -> None: ...
    def close(self) -> None: ...


class AskStore:
    def __init__(
        self,
        data_dir: Path,
        clock: Callable[[], float],
        conversation_ms: int,
        busy_timeout_s: float | None = None,
    ) -> None:
        self._path = Path(data_dir) / ASK_DB
        self._db = SharedConnection(self._connect)
        self._clock = clock
        self._busy_timeout_s = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self.conversation_ms = conversation_ms

    def _connect(self) -> sqlite3.Connection:
        path = private_database(self._path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout_s)
        use_wal(conn, self._busy_timeout_s)
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, MIGRATIONS)
        return conn

    @contextlib.contextmanager
    def _use(self) -> Iterator[sqlite3.Connection]:
        """The connection; a statement that found ask.db locked past the busy timeout raises AskStoreBusy."""
        try:
            with self._db.use() as conn:
                yield conn
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            raise AskStoreBusy(
                f"{ASK_DB} stayed locked by another process's write for {self._busy_timeout_s:g} s; retry shortly"
            ) from None

    def open(self) -> None:
        """Open ask.db now, rather than at first use: one a newer loglake migrated is refused here (NewerSchema)."""
        with self._use():
            pass

    def close(self) -> None:
        self._db.close()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- conversations ----------------------------------------------------------------------------

    def turns(self, conversation_id: str, owner: str) -> list[Turn]:
        """The turns of a live conversation of `owner`, oldest first; NoSuchConversation otherwise."""
        with self._use() as conn:
            found = conn.execute(
                "SELECT 1 FROM conversations WHERE id = ? AND owner = ? AND expires_ms > ?",
                (conversation_id, owner, self._now_ms()),
            ).fetchone()
            if found is None:
                raise NoSuchConversation(conversation_id)
            rows = conn.execute(
                "SELECT question, answer FROM turns WHERE conversation_id = ? ORDER BY n", (conversation_id,)
            ).fetchall()
        return [Turn(q, json.loads(a)) for q, a in rows]

    def add_turn(self, conversation_id: str | None, owner: str, question: str, answer: dict[str, Any]) -> str:
        """Append a turn (to a new conversation when `conversation_id` is None); its id. Expired
        conversations and cached answers go at the same time."""
        now = self._now_ms()
        with self._use() as conn, write_transaction(conn):
            conn.execute("DELETE FROM conversations WHERE expires_ms <= ?", (now,))
            conn.execute("DELETE FROM cached_answers WHERE expires_ms <= ?", (now,))
            if conversation_id is None:
                conversation_id = str(uuid.uuid4())
                conn.execute(
                    "INSERT INTO conversations (id, owner, created_ms, updated_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
                    (conversation_id, owner, now, now, now + self.conversation_ms),
                )
            else:
                changed = conn.execute(
                    "UPDATE conversations SET updated_ms = ?, expires_ms = ? WHERE id = ? AND owner = ?",
                    (now, now + self.conversation_ms, conversation_id, owner),
                ).rowcount
                if not changed:
                    raise NoSuchConversation(conversation_id)
            conn.execute(
                "INSERT INTO turns (conversation_id, n, question, answer, created_ms) VALUES"
                " (?, (SELECT coalesce(max(n), 0) + 1 FROM turns WHERE conversation_id = ?), ?, ?, ?)",
                (conversation_id, conversation_id, question, json.dumps(answer), now),
            )
        return conversation_id

    # -- cached answers -----------------------------------------------------------------------

    def cached(self, key: str) -> dict[str, Any] | None:
        with self._use() as conn:
            row = conn.execute(
                "SELECT answer FROM cached_answers WHERE key = ? AND expires_ms > ?", (key, self._now_ms())
            ).fetchone()
        return json.loads(row[0]) if row else None

    def cache(self, key: str, answer: dict[str, Any]) -> None:
        with self._use() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO cached_answers (key, answer, expires_ms) VALUES (?, ?, ?)",
                (key, json.dumps(answer), self._now_ms() + CACHE_MS),
            )

    # -- token use ------------------------------------------------------------------------------

    def reserve(self, provider: str, day: str, tokens: int, budget: int) -> Holding:
        """Hold `tokens` of the day's `budget` for a call about to be made, if they fit beside what is
        used and held; checked and held in one write transaction (see the module doc)."""
        with self._use() as conn, write_transaction(conn):
            row = conn.execute(
                "SELECT input_tokens + output_tokens, reserved_tokens FROM usage WHERE day = ? AND provider = ?",
                (day, provider),
            ).fetchone()
            used, held = row if row else (0, 0)
            if used + held + tokens > budget:
                return Holding(used, held, False)
            self._add(conn, provider, day, requests=0, reserved=tokens)
        return Holding(used, held, True)

    def settle(self, provider: str, day: str, held: int, input_tokens: int, output_tokens: int) -> None:
        """A call answered: its holding (0 without a budget) becomes what it used."""
        with self._use() as conn:
            self._add(
                conn, provider, day, requests=1, input_tokens=input_tokens, output_tokens=output_tokens, reserved=-held
            )

    def release(self, provider: str, day: str, held: int) -> None:
        """A call failed: its holding goes back (the provider counts no tokens for a failed call)."""
        if held:
            with self._use() as conn:
                self._add(conn, provider, day, requests=0, reserved=-held)

    @staticmethod
    def _add(
        conn: sqlite3.Connection,
        provider: str,
        day: str,
        *,
        requests: int,
        input_tokens: int = 0,
        output_tokens: int = 0,
        reserved: int = 0,
    ) -> None:
        conn.execute(
            "INSERT INTO usage (day, provider, requests, input_tokens, output_tokens, reserved_tokens)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (day, provider) DO UPDATE SET requests = requests + excluded.requests,"
            " input_tokens = input_tokens + excluded.input_tokens,"
            " output_tokens = output_tokens + excluded.output_tokens,"
            " reserved_tokens = max(0, reserved_tokens + excluded.reserved_tokens)",
            (day, provider, requests, input_tokens, output_tokens, reserved),
        )

    def usage(self) -> list[Usage]:
        """Every provider's use so far (all days), for /metrics."""
        with self._use() as conn:
            rows = conn.execute(
                "SELECT provider, sum(requests), sum(input_tokens), sum(output_tokens) FROM usage GROUP BY provider"
                " ORDER BY provider"
            ).fetchall()
        return [Usage(*row) for row in rows]
