"""A query worker's side of lake/query_workers.py: what it is given (WorkerSpec), its life (serve: build the
engine, answer queries until the server is gone), and how an answer or an error crosses the pipe to the server
(answer_of, raised): exceptions with constructors of their own do not pickle."""

from __future__ import annotations

import os
import select
import signal
import socket
import sqlite3
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loglake.lake.objectstore import LocalObjectStore, ObjectStore, s3_objects
from loglake.lake.query_answers import LakeUnreadable, QueryBusy
from loglake.lake.query_limits import QueryLimits
from loglake.lake.scratch import remove_folder_of_this_process
from loglake.lake.sql_guard import QueryError


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker builds its engine from: all of it can cross to a spawned process."""

    hot_db: Path
    work_dir: Path
    limits: QueryLimits
    lake_root: Path | None  # a local lake's folder; None for S3
    s3: tuple[str, str, str | None, str | None] | None  # bucket, prefix, endpoint, region
    alerts_dir: Path | None  # the data dir whose alerts.db is the `alerts` table, if the engine has it


def serve(connection: Connection, spec: WorkerSpec) -> None:
    """A worker's life: build the engine, then answer queries until the server closes its end of the pipe
    (or ends: then its end closes too)."""
    # Out of the terminal's process group, which a Ctrl-C reaches whole: the server decides what stops.
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        engine = _engine(spec)
    except BaseException as e:
        connection.send(f"{type(e).__name__}: {e}")
        return
    connection.send("ready")
    querying = threading.Event()
    threading.Thread(target=_exit_when_server_gone, args=(connection, querying), daemon=True).start()
    try:
        while True:
            try:
                sql, limit, timeout_seconds, explain = connection.recv()
            except EOFError:
                return
            querying.set()
            try:
                answer = ("ok", engine.query(sql, limit=limit, timeout_seconds=timeout_seconds, explain=explain))
            except Exception as e:
                answer = answer_of(e)
            querying.clear()
            try:
                connection.send(answer)
            except OSError:  # (the server ended as the query did: nobody waits for the answer)
                return
    finally:
        engine.close()
        engine.store.close()
        remove_folder_of_this_process(spec.work_dir)


def answer_of(error: Exception) -> tuple[str, tuple]:
    """An exception of a query, as the worker sends it (raised makes it again on the server's side)."""
    if isinstance(error, QueryError):
        return "query_error", (error.code, error.message, error.field)
    if isinstance(error, LakeUnreadable):
        return "lake_unreadable", (error.reason,)
    if isinstance(error, QueryBusy):
        return "busy", (str(error),)
    if isinstance(error, sqlite3.DatabaseError):  # (a damaged hot.db is the server's 503, as its own reads meet it)
        return "database", (str(error),)
    # the server logs it, as a query of its own engine that failed so
    return "failed", ("".join(traceback.format_exception(error)),)


def raised(kind: str, args: tuple) -> Exception:
    """The exception a worker sent (answer_of)."""
    if kind == "query_error":
        return QueryError(*args)
    if kind == "lake_unreadable":
        return LakeUnreadable(*args)
    if kind == "busy":
        return QueryBusy(*args)
    if kind == "database":
        return sqlite3.DatabaseError(*args)
    return RuntimeError(f"a query worker failed:\n{args[0]}")


def _exit_when_server_gone(connection: Connection, querying: threading.Event) -> None:
    """Ends the worker when the server is gone (kill -9, the OOM killer: its end of the pipe closed) while a
    query runs: nothing watches the memory the query's values take any more, nor waits for its answer, and the
    query would run on to its timeout. (Between queries the worker's own read of the pipe ends it.)"""
    pipe = socket.socket(fileno=os.dup(connection.fileno()))
    while True:
        querying.wait()
        readable, _, _ = select.select([pipe], [], [], 1.0)
        if readable and querying.is_set():
            try:
                if not pipe.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):  # (nothing comes mid-query but its end)
                    os._exit(0)
            except BlockingIOError:
                pass


def _engine(spec: WorkerSpec) -> Any:
    from loglake.lake.query import QueryEngine
    from loglake.store.sqlite_reader import HotStoreReader

    live_tables = []
    if spec.alerts_dir is not None:
        from loglake.alerts.table import alerts_table

        live_tables.append(alerts_table(spec.alerts_dir))
    return QueryEngine(HotStoreReader(spec.hot_db), _lake(spec), spec.work_dir, spec.limits, live_tables)


def _lake(spec: WorkerSpec) -> ObjectStore:
    if spec.lake_root is not None:
        return LocalObjectStore(spec.lake_root)
    assert spec.s3 is not None
    return s3_objects(*spec.s3)
