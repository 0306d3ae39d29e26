"""API keys: created and revoked from the CLI or the admin API, honoured by a running server at once.

Bearer secrets are stored only as SHA-256 hashes (they are 256-bit random, so a slow hash adds
nothing). SigV4 is an HMAC scheme: the verifier needs the secret itself, as AWS IAM does, so SigV4
secrets are stored encrypted (AES-GCM) with a master key kept in its own 0600 file.

A running server must honour a key created or revoked by another process (the CLI) at once,
without a system call per request (on the ingest path any call that releases the GIL can wait
behind the store's writer thread). So every change also writes a fresh random token into a
small shared memory-mapped file, `keys.version`, and the server compares 8 bytes of memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import mmap
import os
import re
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loglake.private_files import fsync_dir, private_database
from loglake.spelling import typo_of
from loglake.sqlitedb import migrate, use_wal, write_transaction

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# ingest: POST /logs; read: everything that reads; alerts: acknowledge and resolve alerts; admin: all of
# them, and the keys.
SCOPES = ("ingest", "read", "alerts", "admin")
# A key's name: the key store's check, the OpenAPI schema and the web UI's form all take these.
MAX_KEY_NAME_CHARS = 64
# Not `.` or `..`: in DELETE /admin/keys/NAME, browsers and curl resolve them as the URL's steps (%2E too), so such a
# key could be revoked by the CLI alone. (A hyphen escaped: browsers' `v` flag wants it.)
KEY_NAME_PATTERN = rf"(?!\.\.?$)[A-Za-z0-9._\-]{{1,{MAX_KEY_NAME_CHARS}}}"
KEY_NAME_RULE = f"1-{MAX_KEY_NAME_CHARS} characters of letters, digits, '.', '_' or '-', other than '.' and '..'"
BUSY_TIMEOUT_S = 10.0  # how long a key write waits for another process's write to keys.db
BEARER_PREFIX = "llk_"
ACCESS_KEY_PREFIX = "LLAK"

MIGRATIONS = [
    """
    CREATE TABLE api_keys (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL,
        kind          TEXT NOT NULL CHECK (kind IN ('bearer', 'sigv4')),
        key_hash      BLOB UNIQUE,      -- sha256 of a bearer secret
        access_key_id TEXT UNIQUE,      -- sigv4 only
        secret_box    BLOB,             -- sigv4 only: nonce + AES-GCM(secret)
        hint          TEXT NOT NULL,    -- first characters, to tell keys apart in listings
        scopes        TEXT NOT NULL,
        rate_limit    REAL,             -- requests/s, NULL = server default
        rate_burst    INTEGER,
        created_at    INTEGER NOT NULL,
        revoked_at    INTEGER
    );
    CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;
    """,
]


class KeyStoreError(ValueError):
    """A key operation that cannot be done; the message says why."""


class KeyNameTaken(KeyStoreError):
    """An active key already has the name."""


class NoSuchKey(KeyStoreError):
    """No active key has the name."""


class LastAdminKey(KeyStoreError):
    """Revoking the key would leave no active admin key."""


class KeyStoreBusy(KeyStoreError):
    """Another process's write held keys.db for the whole busy timeout (HTTP 503: retry)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    kind: str
    scopes: frozenset[str]
    hint: str
    created_at: int
    revoked_at: int | None = None
    rate_limit: float | None = None
    rate_burst: int | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "scopes": sorted(self.scopes),
            "hint": self.hint,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "rate_limit": self.rate_limit,
            "rate_burst": self.rate_burst,
        }


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str
    access_key_id: str | None = None


# The largest rate (requests/s) and burst a key, or the server's default, may have: far above what a server
# takes, and within what SQLite's integers and the token bucket's floats hold (1e308 failed to be stored).
MAX_RATE_LIMIT = 1_000_000_000
MAX_RATE_BURST = 1_000_000_000
# The smallest rate: one request in about twelve days. (At 5e-324 a key's wait for its next request, 1/rate, was
# infinite, and every request after its first answered 500.)
MIN_RATE_LIMIT = 0.000_001


def own_rate_burst(rate_limit: float) -> int:
    """The burst of a key that has its own rate but no burst of its own: one second's worth, so
    `--rate-limit 50` means 50/s, not 50/s after the server's default burst of thousands."""
    return max(1, math.ceil(rate_limit))


def new_sigv4_secret() -> str:
    """A SigV4 secret access key: 40 letters and digits (~238 bits), like AWS's own length. Letters
    and digits only, so it never starts with '-' (which `awscurl --secret_key` would take for an
    option) and needs no quoting in a shell, a URL or a config file."""
    return "".join(secrets.choice(_ALNUM) for _ in range(40))


def parse_scopes(text: str) -> frozenset[str]:
    """The scopes of a comma-separated text (the CLI's --scopes, whose refusal names the option)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [name for name in names if name not in SCOPES]
    if not names or unknown:
        meant = _did_you_mean(unknown[0]) if unknown else ""
        raise KeyStoreError(f"{meant}must be a comma-separated subset of {', '.join(SCOPES)}, got {text!r}")
    return frozenset(names)


def _did_you_mean(name: str) -> str:
    """The scope a misspelt one likely meant, as a refusal's start (`injest`: "did you mean 'ingest'? "), else ""."""
    meant = typo_of(name.lower(), SCOPES)
    return f"did you mean {meant[0]!r}? " if meant else ""


def check_key_name(name: str) -> None:
    if not re.fullmatch(KEY_NAME_PATTERN, name):
        raise KeyStoreError(f"a key name is {KEY_NAME_RULE}")


def scope_set(names: list[str]) -> frozenset[str]:
    """The scopes of a list of them (the API's, never empty), refused in the list's terms: naming the first
    that is not a scope."""
    unknown = [name for name in names if name not in SCOPES]
    if unknown:
        meant = _did_you_mean(unknown[0]) if type(unknown[0]) is str else ""
        raise KeyStoreError(f"{meant}scopes must be a list of some of {', '.join(SCOPES)}: {unknown[0]!r} is not one")
    return frozenset(names)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class KeyStore:
    """The keys database of one data dir; safe to use from several processes at once."""

    def __init__(self, data_dir: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.data_dir = Path(data_dir)
        self.path = private_database(self.data_dir / "keys.db")
        self._lock = threading.Lock()
        self._busy_timeout_s = busy_timeout_s
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
        use_wal(self._conn)
        self._conn.execute("PRAGMA synchronous = FULL")
        migrate(self._conn, MIGRATIONS)
        self._master_key_path = self.data_dir / "master.key"
        self._master: bytes | None = None
        self._version_map = _open_version_map(self.data_dir / "keys.version")

    def close(self) -> None:
        self._conn.close()
        self._version_map.close()

    def _announce_change(self) -> None:
        self._version_map[:8] = secrets.token_bytes(8)

    def create(
        self,
        name: str,
        scopes: frozenset[str],
        *,
        sigv4: bool = False,
        rate_limit: float | None = None,
        rate_burst: int | None = None,
    ) -> NewKey:
        """A new key; KeyNameTaken when an active key has the name."""
        new = _new_key(name, scopes, sigv4, rate_limit, rate_burst)
        with self._lock, self._waiting():
            try:
                self._insert(new)
            except sqlite3.IntegrityError:
                raise KeyNameTaken(
                    f"an active key named {name!r} exists; revoke it first or pick another name"
                ) from None
            self._announce_change()
        return new

    def create_first(self, name: str, scopes: frozenset[str]) -> NewKey | None:
        """The data dir's first key, or None when it has (or ever had) one: checked and created in one
        transaction, so two processes starting on a new data dir make one key, not two or an error."""
        new = _new_key(name, scopes, False, None, None)
        with self._lock, self._waiting():
            with write_transaction(self._conn):
                if self._conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone():
                    return None
                self._insert(new)
            self._announce_change()
        return new

    def revoke(self, name: str, *, allow_last_admin: bool = False) -> None:
        """Revoke a key at once; NoSuchKey if no active key has the name, LastAdminKey for the last
        active admin key unless allowed, since nothing but the CLI on the server's data dir could make
        a new one. Checked and done in one transaction: two revokes at once cannot remove both of the
        last two admin keys, whichever processes they run in."""
        with self._lock, self._waiting():
            with write_transaction(self._conn):
                row = self._conn.execute(
                    "SELECT scopes FROM api_keys WHERE name = ? AND revoked_at IS NULL", (name,)
                ).fetchone()
                if row is None:
                    raise NoSuchKey(f"no active key named {name!r}")
                if not allow_last_admin and "admin" in row[0].split(","):
                    active = self._conn.execute("SELECT scopes FROM api_keys WHERE revoked_at IS NULL").fetchall()
                    admins = sum("admin" in scopes.split(",") for (scopes,) in active)
                    if admins == 1:
                        raise LastAdminKey(f"{name!r} is the last active admin key; create another admin key first")
                self._conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                    (int(time.time()), name),
                )
            self._announce_change()

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[None]:
        """A write that found keys.db locked past the busy timeout raises KeyStoreBusy."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if "locked" not in str(e):
                raise
            raise KeyStoreBusy(
                f"keys.db stayed locked by another process's write for {self._busy_timeout_s:g} s; retry shortly"
            ) from None

    def _insert(self, new: NewKey) -> None:
        key = new.key
        sigv4 = key.kind == "sigv4"
        self._conn.execute(
            "INSERT INTO api_keys (name, kind, key_hash, access_key_id, secret_box, hint, scopes,"
            " rate_limit, rate_burst, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.name,
                key.kind,
                None if sigv4 else hash_secret(new.secret),
                new.access_key_id,
                self._seal(new.secret) if sigv4 else None,
                key.hint,
                ",".join(sorted(key.scopes)),
                key.rate_limit,
                key.rate_burst,
                key.created_at,
            ),
        )

    def list(self, include_revoked: bool = False) -> list[ApiKey]:
        sql = f"SELECT {_KEY_COLUMNS} FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at, id").fetchall()
        return [_key_from_row(r) for r in rows]

    def version(self) -> bytes:
        """Changes whenever any process (this one included) changed the keys; a memory read."""
        return self._version_map[:8]

    def load_active(self) -> tuple[dict[str, list[tuple[bytes, ApiKey]]], dict[str, tuple[ApiKey, str]]]:
        """What a server needs to authenticate: bearer hashes by hint, SigV4 keys by access key id."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_KEY_COLUMNS}, key_hash, access_key_id, secret_box FROM api_keys WHERE revoked_at IS NULL"
            ).fetchall()
        bearer: dict[str, list[tuple[bytes, ApiKey]]] = {}
        sigv4: dict[str, tuple[ApiKey, str]] = {}
        for row in rows:
            key = _key_from_row(row[:8])
            key_hash, access_key_id, box = row[8:]
            if key.kind == "bearer":
                bearer.setdefault(key.hint, []).append((key_hash, key))
            else:
                sigv4[access_key_id] = (key, self._open(box))
        return bearer, sigv4

    def load_revoked(self) -> tuple[dict[str, list[bytes]], frozenset[str]]:
        """The revoked keys' bearer hashes by hint and SigV4 access key ids: a refused key is told it was revoked."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT kind, hint, key_hash, access_key_id FROM api_keys WHERE revoked_at IS NOT NULL"
            ).fetchall()
        bearer: dict[str, list[bytes]] = {}
        for kind, hint, key_hash, _ in rows:
            if kind == "bearer":
                bearer.setdefault(hint, []).append(key_hash)
        return bearer, frozenset(access_key_id for kind, _, _, access_key_id in rows if kind != "bearer")

    # -- SigV4 secrets at rest -----------------------------------------------------------------

    def _master_key(self) -> bytes:
        if self._master is None:
            self._master = _read_or_create_master_key(self._master_key_path)
        return self._master

    def _seal(self, secret: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._cipher().encrypt(nonce, secret.encode(), b"loglake-sigv4")

    def _open(self, box: bytes) -> str:
        return self._cipher().decrypt(box[:12], box[12:], b"loglake-sigv4").decode()

    def _cipher(self) -> AESGCM:
        # cryptography (~8 MiB of RSS) is imported by the first SigV4 key: a server with bearer keys only
        # never needs it
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(self._master_key())


_KEY_COLUMNS = "name, kind, scopes, hint, created_at, revoked_at, rate_limit, rate_burst"
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_ALNUM = string.ascii_letters + string.digits
_MASTER_KEY_BYTES = 32  # AES-256


def _new_key(
    name: str, scopes: frozenset[str], sigv4: bool, rate_limit: float | None, rate_burst: int | None
) -> NewKey:
    check_key_name(name)
    bounds = (("rate limit", rate_limit, MIN_RATE_LIMIT, MAX_RATE_LIMIT), ("burst", rate_burst, 1, MAX_RATE_BURST))
    for label, value, least, most in bounds:
        if value is not None and not (least <= value <= most):  # (nan and inf too)
            raise KeyStoreError(f"a key's {label} must be a number from {least:g} to {most:,}, got {value}")
    if rate_limit is not None and rate_burst is None:
        rate_burst = own_rate_burst(rate_limit)
    created = int(time.time())
    if sigv4:
        access_key_id = ACCESS_KEY_PREFIX + "".join(secrets.choice(_UPPER_ALNUM) for _ in range(16))
        secret, kind, hint = new_sigv4_secret(), "sigv4", access_key_id[:8]
    else:
        access_key_id = None
        secret = BEARER_PREFIX + secrets.token_urlsafe(32)
        kind, hint = "bearer", secret[:8]
    key = ApiKey(name, kind, scopes, hint, created, None, rate_limit, rate_burst)
    return NewKey(key, secret, access_key_id)


def _key_from_row(row: tuple) -> ApiKey:
    name, kind, scopes, hint, created_at, revoked_at, rate_limit, rate_burst = row
    if rate_limit is not None and rate_burst is None:  # stored before keys.create stored the burst it implies
        rate_burst = own_rate_burst(rate_limit)
    return ApiKey(name, kind, frozenset(scopes.split(",")), hint, created_at, revoked_at, rate_limit, rate_burst)


def _read_or_create_master_key(path: Path) -> bytes:
    """The data dir's master key, made on first use by whichever process comes first.

    The file appears whole or not at all: a new key is written and synced under a temporary name, then
    hard-linked into place, which fails if another process has linked its key first (its key wins).
    """
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(_MASTER_KEY_BYTES))  # as AESGCM.generate_key makes one
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
                fsync_dir(path.parent)  # the new name survives a crash only once its folder is synced
        finally:
            os.unlink(temporary)
    key = path.read_bytes()
    if len(key) != _MASTER_KEY_BYTES:
        raise KeyStoreError(
            f"{path} holds {len(key)} bytes, not a {_MASTER_KEY_BYTES}-byte key: restore it from a backup "
            "(without it the SigV4 secrets of this data dir cannot be read)"
        )
    return key


def _open_version_map(path: Path) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < 8:
            os.ftruncate(fd, 8)
        return mmap.mmap(fd, 8)
    finally:
        os.close(fd)
