"""Web UI sign-ins: an API key exchanged for a server-side session, so the key never lives in the browser.

A session is a random token (the browser keeps it in an HttpOnly cookie) plus a CSRF token the page
sends back with every request that changes something. Only the token's SHA-256 is stored, in
`sessions.db` of the data dir (0600), so sessions survive a restart and a copy of the file signs
nobody in. A session names its key by the key's hint and stored hash, the same ones the key ring
holds: a key revoked (or replaced by a new key of the same name) ends its sessions at once.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loglake.private_files import private_database
from loglake.sqlitedb import SharedConnection, migrate, use_wal, write_transaction

# A person signs in from a few browsers; a script that signs in over and over must not grow the table
# (and the server's cache) without bound: past this many, a key's oldest sessions end.
MAX_SESSIONS_PER_KEY = 50
_TOKEN_BYTES = 32

MIGRATIONS = [
    """
    CREATE TABLE sessions (
        id          INTEGER PRIMARY KEY,
        token_hash  BLOB NOT NULL UNIQUE,  -- sha256 of the cookie's token
        key_hint    TEXT NOT NULL,      -- the key's hint and stored hash, as keys.db has them
        key_hash    BLOB NOT NULL,
        key_name    TEXT NOT NULL,
        csrf_token  TEXT NOT NULL,
        created_at  REAL NOT NULL,
        expires_at  REAL NOT NULL
    );
    CREATE INDEX sessions_by_key ON sessions (key_hash, id);
    """,
]


@dataclass(frozen=True, slots=True)
class Session:
    key_hint: str
    key_hash: bytes
    key_name: str
    csrf_token: str
    created_at: float
    expires_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str  # the cookie's value: shown to the browser once, stored only hashed
    session: Session


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class SessionStore:
    """The sessions of one data dir, held in memory and written through to sessions.db: only the server
    makes and ends sessions, so memory is the whole truth once the file has been read, and a request
    signed in by cookie (or carrying a made-up one) costs a dict lookup. The file is made by the first
    sign-in: a server nobody signs in to through the UI, or a Lambda function, never makes it."""

    def __init__(self, data_dir: Path, clock: Callable[[], float]) -> None:
        self.path = Path(data_dir) / "sessions.db"
        self.clock = clock
        self._db = SharedConnection(self._connect)
        self._live: dict[bytes, Session] | None = None  # by the token's hash, oldest first; None: not read yet
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(private_database(self.path), isolation_level=None, check_same_thread=False, timeout=10)
        use_wal(conn)
        migrate(conn, MIGRATIONS)
        return conn

    def _sessions(self) -> dict[bytes, Session]:
        """The live sessions, read from the file on first use (under self._lock)."""
        if self._live is None:
            self._live = {}
            if self.path.exists():
                with self._db.use() as conn:
                    rows = conn.execute(
                        "SELECT token_hash, key_hint, key_hash, key_name, csrf_token, created_at, expires_at"
                        " FROM sessions WHERE expires_at > ? ORDER BY id",
                        (self.clock(),),
                    ).fetchall()
                self._live = {row[0]: Session(*row[1:]) for row in rows}
        return self._live

    def create(self, key_hint: str, key_hash: bytes, key_name: str, lifetime_seconds: float) -> NewSession:
        """A new session for the key; ends the key's oldest sessions past MAX_SESSIONS_PER_KEY, and any
        session that has expired."""
        now = self.clock()
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        session = Session(
            key_hint, key_hash, key_name, secrets.token_urlsafe(_TOKEN_BYTES), now, now + lifetime_seconds
        )
        with self._lock:
            live = self._sessions()
            with self._db.use() as conn, write_transaction(conn):
                conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
                conn.execute(
                    "INSERT INTO sessions (token_hash, key_hint, key_hash, key_name, csrf_token, created_at,"
                    " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (_token_hash(token), key_hint, key_hash, key_name, session.csrf_token, now, session.expires_at),
                )
                conn.execute(
                    "DELETE FROM sessions WHERE key_hash = ? AND id NOT IN"
                    " (SELECT id FROM sessions WHERE key_hash = ? ORDER BY id DESC LIMIT ?)",
                    (key_hash, key_hash, MAX_SESSIONS_PER_KEY),
                )
            live[_token_hash(token)] = session
            keys = [d for d, s in live.items() if s.key_hash == key_hash]
            for digest in [*keys[: max(0, len(keys) - MAX_SESSIONS_PER_KEY)], *_expired(live, now)]:
                live.pop(digest, None)
        return NewSession(token, session)

    def find(self, token: str) -> Session | None:
        """The live session of a cookie's token; None when it is unknown, ended or expired."""
        with self._lock:
            session = self._sessions().get(_token_hash(token))
        if session is None or session.expires_at <= self.clock():
            return None
        return session

    def end(self, token: str) -> None:
        """Sign out: the token names no session any more (nothing happens if it named none)."""
        digest = _token_hash(token)
        with self._lock:
            if self._sessions().pop(digest, None) is not None:
                with self._db.use() as conn:
                    conn.execute("DELETE FROM sessions WHERE token_hash = ?", (digest,))

    def open(self) -> None:
        """Read sessions.db now, if there is one: a server's start, which refuses one a newer loglake migrated
        (NewerSchema) rather than answer each sign-in 500."""
        with self._lock:
            self._sessions()

    def close(self) -> None:
        self._db.close()


def _expired(live: dict[bytes, Session], now: float) -> list[bytes]:
    return [digest for digest, session in live.items() if session.expires_at <= now]
