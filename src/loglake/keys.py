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

import hashlib
import hmac
import mmap
import os
import secrets
import sqlite3
import string
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loglake.private_files import private_database
from loglake.sqlitedb import migrate

SCOPES = ("ingest", "read", "admin")
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


def parse_scopes(text: str) -> frozenset[str]:
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = scopes - set(SCOPES)
    if not scopes or unknown:
        raise KeyStoreError(f"scopes must be a comma-separated subset of {', '.join(SCOPES)}, got {text!r}")
    return scopes


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class KeyStore:
    """The keys database of one data dir; safe to use from several processes at once."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = private_database(self.data_dir / "keys.db")
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        migrate(self._conn, MIGRATIONS)
        self._master_key_path = self.data_dir / "master.key"
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
        if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
            raise KeyStoreError("a key name is 1-64 characters of letters, digits, '.', '_' or '-'")
        for label, value in (("rate limit", rate_limit), ("burst", rate_burst)):
            if value is not None and not value > 0:
                raise KeyStoreError(f"a key's {label} must be a positive number, got {value}")
        created = int(time.time())
        if sigv4:
            access_key_id = ACCESS_KEY_PREFIX + "".join(secrets.choice(_UPPER_ALNUM) for _ in range(16))
            secret = secrets.token_urlsafe(30)
            row = (name, "sigv4", None, access_key_id, self._seal(secret), access_key_id[:8])
        else:
            access_key_id = None
            secret = BEARER_PREFIX + secrets.token_urlsafe(32)
            row = (name, "bearer", hash_secret(secret), None, None, secret[:8])
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO api_keys (name, kind, key_hash, access_key_id, secret_box, hint, scopes,"
                    " rate_limit, rate_burst, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row, ",".join(sorted(scopes)), rate_limit, rate_burst, created),
                )
                self._announce_change()
        except sqlite3.IntegrityError:
            raise KeyStoreError(f"an active key named {name!r} exists; revoke it first or pick another name") from None
        key = ApiKey(name, row[1], scopes, row[5], created, None, rate_limit, rate_burst)
        return NewKey(key, secret, access_key_id)

    def revoke(self, name: str, *, allow_last_admin: bool = False) -> None:
        """Revoke a key at once; refuses to revoke the last active admin key unless told to, since
        nothing but the CLI on the server's data dir could make a new one."""
        if not allow_last_admin:
            admins = [k.name for k in self.list() if "admin" in k.scopes]
            if admins == [name]:
                raise KeyStoreError(
                    f"{name!r} is the last active admin key; create another admin key first "
                    "(or revoke it from the CLI with --force)"
                )
        with self._lock:
            cur = self._conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (int(time.time()), name)
            )
            self._announce_change()
        if cur.rowcount == 0:
            raise KeyStoreError(f"no active key named {name!r}")

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

    # -- SigV4 secrets at rest -----------------------------------------------------------------

    def _master_key(self) -> bytes:
        path = self._master_key_path
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(AESGCM.generate_key(bit_length=256))
                f.flush()
                os.fsync(f.fileno())
        return path.read_bytes()

    def _seal(self, secret: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(self._master_key()).encrypt(nonce, secret.encode(), b"loglake-sigv4")

    def _open(self, box: bytes) -> str:
        return AESGCM(self._master_key()).decrypt(box[:12], box[12:], b"loglake-sigv4").decode()


class KeyRing:
    """A server's in-memory view of the active keys, reloaded as soon as the keys database changes."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._version = b""
        self._bearer: dict[str, list[tuple[bytes, ApiKey]]] = {}
        self._sigv4: dict[str, tuple[ApiKey, str]] = {}
        self._refresh()

    def _refresh(self) -> None:
        version = self._store.version()
        if version != self._version:
            self._bearer, self._sigv4 = self._store.load_active()
            self._version = version

    def bearer(self, token: str) -> ApiKey | None:
        self._refresh()
        digest = hash_secret(token)
        # Candidates are found by the token's public hint; the secret part is only ever compared
        # in constant time, so response timing says nothing about how close a guess was.
        for stored, key in self._bearer.get(token[:8], ()):
            if hmac.compare_digest(stored, digest):
                return key
        return None

    def sigv4(self, access_key_id: str) -> tuple[ApiKey, str] | None:
        self._refresh()
        return self._sigv4.get(access_key_id)


_KEY_COLUMNS = "name, kind, scopes, hint, created_at, revoked_at, rate_limit, rate_burst"
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-")
_UPPER_ALNUM = string.ascii_uppercase + string.digits


def _key_from_row(row: tuple) -> ApiKey:
    name, kind, scopes, hint, created_at, revoked_at, rate_limit, rate_burst = row
    return ApiKey(name, kind, frozenset(scopes.split(",")), hint, created_at, revoked_at, rate_limit, rate_burst)


def _open_version_map(path: Path) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size < 8:
            os.ftruncate(fd, 8)
        return mmap.mmap(fd, 8)
    finally:
        os.close(fd)
