"""Durability "full": a write is acknowledged only once an fdatasync of the WAL begun after its commit
has returned, and a commit never waits for the fdatasync of the one before.

The operating system's fdatasync is wrapped (it still runs) so that a test can hold it and see what
waits for it: the one seam, at the system boundary, like an injected clock."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.store import wal_sync
from loglake.store.base import StoreUnavailable
from loglake.store.sqlite import SQLiteHotStore
from tests.store.contract import BASE_TS, record

WAIT = 60  # seconds: only a deadlock guard, never a speed expectation


class HeldSync:
    """os.fdatasync that waits for `release()` before syncing, and records what it was called on."""

    def __init__(self) -> None:
        self.real = os.fdatasync
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.entered = threading.Semaphore(0)
        self.files: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    def __call__(self, fd: int) -> None:
        with self.lock:
            self.files.append(os.readlink(f"/proc/self/fd/{fd}"))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.entered.release()
        try:
            assert self.released.wait(WAIT)
            self.real(fd)
        finally:
            with self.lock:
                self.in_flight -= 1

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=WAIT), "no fdatasync started"

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldSync]:
    sync = HeldSync()
    monkeypatch.setattr(wal_sync.os, "fdatasync", sync)
    yield sync
    sync.release()


@pytest.fixture
def store(tmp_path: Path, held: HeldSync) -> Iterator[SQLiteHotStore]:
    s = SQLiteHotStore(tmp_path / "hot.db")
    yield s
    held.release()
    s.close()


def test_a_write_is_acknowledged_only_once_the_wal_is_synced(store: SQLiteHotStore, held: HeldSync) -> None:
    new = record(BASE_TS, "kept")
    written = store.submit([new])
    held.wait_entered()
    assert not written.done()
    assert store.get(new.log_id) is not None  # committed, visible, not yet acknowledged
    held.release()
    assert written.result(WAIT) == [new.log_id]
    assert set(held.files) == {str(store.path) + "-wal"}


def test_a_commit_does_not_wait_for_the_sync_of_the_one_before(store: SQLiteHotStore, held: HeldSync) -> None:
    first = store.submit([record(BASE_TS, "first")])
    held.wait_entered()
    second = store.submit([record(BASE_TS + 1, "second")])
    held.wait_entered()  # the second commit's own fdatasync began while the first one's is held
    assert held.most_in_flight == 2 and not first.done() and not second.done()
    held.release()
    assert len(first.result(WAIT)) == len(second.result(WAIT)) == 1


async def test_a_write_awaited_on_an_event_loop_waits_for_the_sync_and_a_cancelled_one_spoils_nothing(
    store: SQLiteHotStore, held: HeldSync
) -> None:
    given_up, kept = record(BASE_TS, "given up"), record(BASE_TS + 1, "kept")
    abandoned = asyncio.create_task(store.write([given_up]))
    awaited = asyncio.create_task(store.write([kept]))
    await asyncio.to_thread(held.wait_entered)
    await asyncio.sleep(0)
    assert not awaited.done()
    abandoned.cancel()  # the client went away while its record was being made durable
    held.release()
    assert await asyncio.wait_for(awaited, WAIT) == [kept.log_id]
    assert abandoned.cancelled()
    assert store.get(given_up.log_id) is not None  # committed all the same, like a 201 lost on the way


def test_the_writers_other_transactions_are_synced_before_they_return(store: SQLiteHotStore, held: HeldSync) -> None:
    done = threading.Event()

    def write() -> None:
        store.run_in_writer(lambda conn: conn.execute("CREATE TABLE extra (x)"))
        done.set()

    threading.Thread(target=write, daemon=True).start()
    held.wait_entered()
    assert not done.is_set()
    held.release()
    assert done.wait(WAIT)


def test_closing_acknowledges_what_waits_for_a_sync(tmp_path: Path, held: HeldSync) -> None:
    store = SQLiteHotStore(tmp_path / "hot.db")
    written = store.submit([record(BASE_TS, "last")])
    held.wait_entered()
    closing = threading.Thread(target=store.close)
    closing.start()
    held.release()
    closing.join(WAIT)
    assert not closing.is_alive() and len(written.result(0)) == 1


def test_a_failed_sync_fails_its_writes_and_every_write_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(wal_sync.os, "fdatasync", failing)
    store = SQLiteHotStore(tmp_path / "hot.db")
    try:
        with pytest.raises(StoreUnavailable, match=r"durable .*restart the server"):
            store.submit([record(BASE_TS, "lost?")]).result(WAIT)
        later = store.submit([record(BASE_TS + 1, "refused")])
        with pytest.raises(StoreUnavailable, match="accepts no more writes"):
            later.result(WAIT)
        with pytest.raises(StoreUnavailable):
            store.run_in_writer(lambda conn: conn.execute("CREATE TABLE extra (x)"))
        assert store.read("SELECT name FROM sqlite_master WHERE name = 'extra'") == []  # not even run
    finally:
        monkeypatch.setattr(wal_sync.os, "fdatasync", os.fdatasync)
        store.close()


def test_durability_process_acknowledges_without_syncing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(fd: int) -> None:
        raise AssertionError("durability 'process' must not wait for an fdatasync")

    monkeypatch.setattr(wal_sync.os, "fdatasync", never)
    store = SQLiteHotStore(tmp_path / "hot.db", durability="process")
    try:
        new = record(BASE_TS, "quick")
        assert store.submit([new]).result(WAIT) == [new.log_id]
    finally:
        store.close()
