"""The key store under concurrent use: several processes (the server, `loglake keys ...`) share one data dir."""

from __future__ import annotations

import io
import multiprocessing
import traceback
from pathlib import Path

import pytest

from loglake.config import Settings
from loglake.keys import KeyStore, KeyStoreError, LastAdminKey, NoSuchKey, new_sigv4_secret
from loglake.server import ensure_first_key

ROUNDS = 8
_spawn = multiprocessing.get_context("spawn")  # a fresh interpreter each, like separate commands


def _revoke_each_round(data_dirs: list[Path], name: str, barrier, results) -> None:
    """One process: in each data dir, revoke `name` at the same moment as the other process."""
    for data_dir in data_dirs:
        store = KeyStore(data_dir)
        try:
            barrier.wait(timeout=60)
            try:
                store.revoke(name)
                results.put((str(data_dir), name, "revoked"))
            except KeyStoreError as e:
                results.put((str(data_dir), name, type(e).__name__))
        finally:
            store.close()


def test_two_revokes_at_once_never_remove_both_last_admin_keys(tmp_path: Path) -> None:
    data_dirs = []
    for number in range(ROUNDS):
        data_dir = tmp_path / f"round-{number}"
        store = KeyStore(data_dir)
        store.create("admin-a", frozenset({"admin"}))
        store.create("admin-b", frozenset({"admin"}))
        store.close()
        data_dirs.append(data_dir)
    barrier, results = _spawn.Barrier(2), _spawn.Queue()
    workers = [
        _spawn.Process(target=_revoke_each_round, args=(data_dirs, name, barrier, results))
        for name in ("admin-a", "admin-b")
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    for data_dir in data_dirs:
        store = KeyStore(data_dir)
        admins = [k.name for k in store.list() if "admin" in k.scopes]
        store.close()
        assert len(admins) == 1, f"{data_dir.name}: {admins} still active"
        answers = sorted(answer for where, _, answer in outcomes if where == str(data_dir))
        assert answers == ["LastAdminKey", "revoked"], data_dir.name


def test_revoke_names_what_is_wrong(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    try:
        store.create("only-admin", frozenset({"admin"}))
        with pytest.raises(NoSuchKey):
            store.revoke("nobody")
        with pytest.raises(LastAdminKey):
            store.revoke("only-admin")
        store.revoke("only-admin", allow_last_admin=True)
        assert store.list() == []
    finally:
        store.close()


def _create_sigv4_keys(data_dirs: list[Path], number: int, barrier, results) -> None:
    """One process: in each new data dir, create a SigV4 key at the same moment as the other processes."""
    for data_dir in data_dirs:
        try:
            barrier.wait(timeout=60)
            store = KeyStore(data_dir)
            try:
                new = store.create(f"signer-{number}", frozenset({"ingest"}), sigv4=True)
                results.put((str(data_dir), new.access_key_id, new.secret))
            finally:
                store.close()
        except Exception:
            results.put((str(data_dir), None, traceback.format_exc()))


def test_processes_creating_the_first_sigv4_keys_at_once_share_one_master_key(tmp_path: Path) -> None:
    """The first SigV4 key of a data dir makes its master key; processes racing to make it must all end
    up sealing with the same one (and none may fail or read a half-written file)."""
    processes = 3
    data_dirs = [tmp_path / f"round-{number}" for number in range(ROUNDS)]
    barrier, results = _spawn.Barrier(processes), _spawn.Queue()
    workers = [
        _spawn.Process(target=_create_sigv4_keys, args=(data_dirs, number, barrier, results))
        for number in range(processes)
    ]
    for worker in workers:
        worker.start()
    created = [results.get(timeout=120) for _ in range(processes * ROUNDS)]
    for worker in workers:
        worker.join(60)
    failures = [error for _, access_key_id, error in created if access_key_id is None]
    assert failures == []
    for data_dir in data_dirs:
        store = KeyStore(data_dir)
        try:
            _, sigv4 = store.load_active()  # opens every sealed secret with the one master key on disk
        finally:
            store.close()
        made = {access_key_id: secret for where, access_key_id, secret in created if where == str(data_dir)}
        assert {access_key_id: secret for access_key_id, (_, secret) in sigv4.items()} == made
        assert sorted(p.name for p in data_dir.iterdir() if "master" in p.name) == ["master.key"]


def test_a_master_key_file_of_the_wrong_size_is_named(tmp_path: Path) -> None:
    (tmp_path / "master.key").write_bytes(b"")  # e.g. what a crash while an older version wrote it left
    store = KeyStore(tmp_path)
    try:
        with pytest.raises(KeyStoreError, match=r"master\.key holds 0 bytes"):
            store.create("signer", frozenset({"ingest"}), sigv4=True)
    finally:
        store.close()


def _start_like_a_server(data_dirs: list[Path], barrier, results) -> None:
    """One process: in each new data dir, make the first-start admin key as `loglake serve` does."""
    for data_dir in data_dirs:
        try:
            barrier.wait(timeout=60)
            secret = ensure_first_key(Settings(data_dir=data_dir), io.StringIO())
            results.put((str(data_dir), secret))
        except Exception:
            results.put((str(data_dir), traceback.format_exc()))


def test_servers_starting_at_once_on_a_new_data_dir_make_one_first_key(tmp_path: Path) -> None:
    processes = 2
    data_dirs = [tmp_path / f"round-{number}" for number in range(ROUNDS)]
    for data_dir in data_dirs:
        KeyStore(data_dir).close()  # the database exists; only the first key is raced for
    barrier, results = _spawn.Barrier(processes), _spawn.Queue()
    workers = [
        _spawn.Process(target=_start_like_a_server, args=(data_dirs, barrier, results)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in range(processes * ROUNDS)]
    for worker in workers:
        worker.join(60)
    for data_dir in data_dirs:
        answers = [answer for where, answer in outcomes if where == str(data_dir)]
        assert sum(1 for a in answers if a is None) == processes - 1, answers  # the others found a key
        (secret,) = [a for a in answers if a is not None]
        assert secret.startswith("llk_"), secret
        store = KeyStore(data_dir)
        assert [k.name for k in store.list(include_revoked=True)] == ["admin"]
        store.close()
    first = KeyStore(tmp_path / "later")
    first.revoke(first.create("admin", frozenset({"admin"})).key.name, allow_last_admin=True)
    assert first.create_first("admin", frozenset({"admin"})) is None, "a data dir that had keys gets none"
    first.close()


def test_sigv4_secrets_never_start_with_a_dash() -> None:
    """awscurl --secret_key -abc... would take the secret for an option; 1 in 64 base64url secrets did.
    (Without the rule, 3,000 secrets all passing has a chance of about 1 in 10^20.)"""
    secrets = [new_sigv4_secret() for _ in range(3000)]
    assert not [s for s in secrets if s.startswith("-")]
    assert all(len(s) == 40 and s.isascii() and s.isalnum() for s in secrets)
    assert len(set(secrets)) == len(secrets)


@pytest.mark.parametrize("rate_limit", [float("inf"), float("nan"), 0.0, -1.0, 1e308, 1_000_000_001, 5e-324, 1e-7])
def test_a_rate_limit_that_is_not_a_positive_number_is_refused(tmp_path: Path, rate_limit: float) -> None:
    """(At 5e-324 a key's wait for its next request was infinite: every request after its first answered 500.)"""
    store = KeyStore(tmp_path)
    try:
        with pytest.raises(KeyStoreError, match="rate limit must be a number from 1e-06 to 1,000,000,000"):
            store.create("limited", frozenset({"read"}), rate_limit=rate_limit)
        with pytest.raises(KeyStoreError, match="burst must be a number from 1 to 1,000,000,000"):
            store.create("bursting", frozenset({"read"}), rate_limit=1, rate_burst=10**20)  # (SQLite's int: a 500)
    finally:
        store.close()


def test_a_start_with_no_active_key_or_no_admin_key_says_so_and_how_to_make_one(tmp_path: Path) -> None:
    """A data dir whose first key was made with `loglake keys create`, or whose admin key was revoked, gets no
    first-start key: the server started with its `listening on` line alone, and every request was refused."""
    store = KeyStore(tmp_path)
    try:
        store.create("reader", frozenset({"read"}))
        said = io.StringIO()
        assert ensure_first_key(Settings(data_dir=tmp_path), said) is None
        assert "warning: no active admin key" in said.getvalue()
        assert "keys create --name admin --scopes admin --data-dir" in said.getvalue()
        store.revoke("reader")
        said = io.StringIO()
        assert ensure_first_key(Settings(data_dir=tmp_path), said) is None
        assert said.getvalue().startswith("warning: no active API key: every request will be refused (401)")
        store.create("admin", frozenset({"admin"}))
        said = io.StringIO()
        assert ensure_first_key(Settings(data_dir=tmp_path), said) is None and said.getvalue() == ""
    finally:
        store.close()
