"""A server's in-memory view of the API keys (keys.py keeps them), checked on every request without a system
call, and reloaded as soon as another process changes the keys database."""

from __future__ import annotations

import hmac

from loglake.keys import ApiKey, KeyStore, hash_secret


class KeyRing:
    """A server's in-memory view of the active keys, reloaded as soon as the keys database changes."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store
        self._version = b""
        self._bearer: dict[str, list[tuple[bytes, ApiKey]]] = {}
        self._sigv4: dict[str, tuple[ApiKey, str]] = {}
        # Tokens already checked against the keys as they are now: a client sends the same token with
        # every request, and hashing it each time was a tenth of a single-record ingest's own work.
        # Emptied whenever the keys change (a revoked key stops working at once); only a token that
        # matched a key gets in, so it holds at most one entry per active key.
        self._verified: dict[str, ApiKey] = {}
        self._revoked_bearer: dict[str, list[bytes]] = {}
        self._revoked_sigv4: frozenset[str] = frozenset()
        self._refresh()

    def _refresh(self) -> None:
        version = self._store.version()
        if version != self._version:
            self._bearer, self._sigv4 = self._store.load_active()
            self._revoked_bearer, self._revoked_sigv4 = self._store.load_revoked()
            self._verified = {}
            self._version = version

    def bearer(self, token: str) -> ApiKey | None:
        self._refresh()
        # A dict lookup hashes the token with a per-process secret (SipHash): its timing tells a
        # guesser nothing about how close a guess was, like the constant-time compare below.
        known = self._verified.get(token)
        if known is not None:
            return known
        key = self._match(token)
        if key is not None:
            self._verified[token] = key
        return key

    def _match(self, token: str) -> ApiKey | None:
        return self._by_hash(token[:8], hash_secret(token))

    def bearer_by_hash(self, hint: str, digest: bytes) -> ApiKey | None:
        """The active bearer key with this hint and stored hash (a web UI session names its key so)."""
        self._refresh()
        return self._by_hash(hint, digest)

    def _by_hash(self, hint: str, digest: bytes) -> ApiKey | None:
        # Candidates are found by the token's public hint; the secret part is only ever compared
        # in constant time, so response timing says nothing about how close a guess was.
        for stored, key in self._bearer.get(hint, ()):
            if hmac.compare_digest(stored, digest):
                return key
        return None

    def sigv4(self, access_key_id: str) -> tuple[ApiKey, str] | None:
        self._refresh()
        return self._sigv4.get(access_key_id)

    def is_active(self, key: ApiKey) -> bool:
        """Whether `key`, as it authenticated a request, is active still: a stream that request opened (a live
        tail) ends once it is not."""
        self._refresh()
        if key.kind == "bearer":
            return any(active == key for _, active in self._bearer.get(key.hint, ()))
        return any(active == key for active, _ in self._sigv4.values())

    def was_revoked(self, token: str) -> bool:
        """Whether a token no active key takes is a revoked key's (compared as _by_hash does)."""
        digest = hash_secret(token)
        return any(hmac.compare_digest(stored, digest) for stored in self._revoked_bearer.get(token[:8], ()))

    def access_key_was_revoked(self, access_key_id: str) -> bool:
        return access_key_id in self._revoked_sigv4
