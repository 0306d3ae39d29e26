"""Starting a server: the first-start admin key, the listening socket, uvicorn."""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import logging
import shlex
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any, TextIO

import uvicorn

from loglake import __version__, malloc
from loglake.api.accesslog import AccessLog, LogRecords
from loglake.api.app import LoglakeApp
from loglake.cli_options import DEFAULT_URL, path_from_here
from loglake.config import ConfigError, Settings, env_name
from loglake.connection_limit import ConnectionLimit, open_file_limit, raise_file_limit
from loglake.http_protocol import HttpProtocol
from loglake.keys import ApiKey, KeyStore
from loglake.lake.location import lake_description
from loglake.lake.objectstore import ObjectStoreError
from loglake.locks import HeldElsewhere, owned_lock
from loglake.private_files import private_dir


def ensure_first_key(settings: Settings, out: TextIO) -> str | None:
    """On the very first start (no key was ever created) make an admin key and show it, once."""
    if not settings.auth:
        return None
    store = KeyStore(settings.data_dir)
    try:
        new = store.create_first("admin", frozenset({"admin"}))
        active = [] if new is not None else store.list()
    finally:
        store.close()
    if new is None:
        _say_missing_keys(active, settings, out)
        return None
    base = f"http://{_reachable_host(settings.host)}:{settings.port}"
    point = ""  # the commands' --url default is not this server: say how to point them at it
    if base != DEFAULT_URL:
        point = f"\nPoint the loglake commands at this server:\n\n    export {env_name('url')}={base}\n"
    auth = shlex.quote(f"Authorization: Bearer {new.secret}")
    body = shlex.quote('{"severity": "error", "message": "Database connection timeout"}')
    print(
        f"""
First start: created the admin API key. It is shown only this once (only its hash is stored):

    {new.secret}

Send a log and read it back:

    curl -s -X POST {base}/logs -H {auth} -H 'Content-Type: application/json' -d {body}
    curl -s {base}/logs/recent -H {auth}

Make narrower keys with:

    {loglake_command()} keys create --name NAME --scopes ingest --data-dir {shlex.quote(str(settings.data_dir))}
{point}
The web UI: open {base}/ui/ in a browser and sign in with the key.
""",
        file=out,
        flush=True,
    )
    return new.secret


def _say_missing_keys(active: list[ApiKey], settings: Settings, out: TextIO) -> None:
    """Warn of a data dir whose keys were made (or revoked) so that nobody can use the server, or manage its keys
    over HTTP: the first start makes an admin key only in a data dir that never had one."""
    create = (
        f"{loglake_command()} keys create --name admin --scopes admin --data-dir {shlex.quote(str(settings.data_dir))}"
    )
    if not active:
        print(
            f"warning: no active API key: every request will be refused (401). Create one:\n\n    {create}\n", file=out
        )
    elif not any("admin" in key.scopes for key in active):
        print(
            "warning: no active admin key: keys can be managed only with `loglake keys` on this machine, not over"
            f" HTTP or in the web UI. Create one:\n\n    {create}\n",
            file=out,
        )


def loglake_command() -> str:
    """How to run this installation's `loglake` from here: by name when the shell finds it, else by its
    path (`make run` starts .venv/bin/loglake without putting .venv/bin on PATH)."""
    script = Path(sys.executable).with_name("loglake")
    if not script.exists():  # not installed as a command: the module runs the same CLI
        return f"{shlex.quote(sys.executable)} -m loglake"
    found = shutil.which("loglake")
    if found and Path(found).resolve() == script.resolve():
        return "loglake"
    return path_from_here(script)


def bind(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {settings.port} on {settings.host} is already in use; stop the other server or pick "
                "another port with --port / LOGLAKE_PORT"
            ) from None
        raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {e.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings, out: TextIO = sys.stdout) -> None:
    """Serve until Ctrl-C or SIGTERM, owning the data dir meanwhile: a second server on it would flush,
    compact and run rules beside this one, and a `recent --follow` on either would miss what the other took."""
    private_dir(settings.data_dir)
    try:
        with owned_lock(settings.data_dir / SERVER_LOCK):
            _serve(settings, out)
    except HeldElsewhere as e:
        holder = f"another loglake server (pid {e.pid})" if e.pid else "another loglake server"
        stop = f"Ctrl-C in its terminal, or kill {e.pid}" if e.pid else "Ctrl-C in its terminal"
        raise ConfigError(
            f"{holder} is serving {settings.data_dir.resolve()} already: use that one, stop it first ({stop}), "
            f"or give this one its own --data-dir / {env_name('data_dir')}"
        ) from None


SERVER_LOCK = "server.lock"  # held by the one `loglake serve` of a data dir, for its life


def _serve(settings: Settings, out: TextIO) -> None:
    raise_file_limit()
    sock = bind(settings)
    malloc.limit_arenas()  # before the app starts its threads
    try:
        app = LoglakeApp.from_settings(settings)
    except BaseException:
        sock.close()
        raise
    syslog = app.runtime.syslog
    try:
        if syslog is not None:
            syslog.bind()  # a port in use, or a TLS key that is not the certificate's, is said now
        check_lake_store(app, settings, out)
        app.open_databases()
        # Last: the key is shown only once, so a start that fails after showing it would lose it.
        ensure_first_key(settings, out)
    except BaseException:
        app.close()
        sock.close()
        raise
    _tune_gc()
    malloc.TrimWhenQuiet().start()  # what a burst of work freed goes back to the system once it is over
    auth = "API keys / SigV4" if settings.auth else "DISABLED (loopback only)"
    lake = f", lake: {lake_description(settings)}" if settings.lake_bucket else ""  # (else the data dir's folder)
    print(
        f"loglake {__version__} listening on http://{_url_host(settings.host)}:{settings.port} "
        f"(data: {settings.data_dir.resolve()}{lake}, auth: {auth}, durability: {settings.durability}). "
        "Docs at /docs. Ctrl-C stops it.",
        file=out,
        flush=True,
    )
    if syslog is not None:
        listening = ", ".join(f"{kind} {_url_host(host)}:{port}" for kind, (host, port) in syslog.addresses.items())
        print(f"syslog: {listening}", file=out, flush=True)
    _log_to(app.access_log)
    config = uvicorn_config(app)
    # uvicorn shuts down gracefully on SIGINT and SIGTERM, then raises the signal again into the handler it
    # found: with this one, either ends as Ctrl-C does (`loglake stopped`, exit 0). SIGTERM's default killed the
    # process (exit 143); SIGINT is ignored when a shell starts the server as a background job (`make run &` in
    # a script), and raised again into that, it ended the server without a word. A `kill -INT` still asks the
    # server to stop, as uvicorn and gunicorn read it whatever they inherit.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    LoglakeServer(config, app).run(sockets=[sock])


# The S3 error codes that say the lake's settings or credentials are wrong, not that the store is down for now:
# what to do about each. (A server started so took records into its hot store and said "ok" at /healthz while
# every move into the lake failed, the reason only in tracebacks of its log: a new-user trial.)
_CREDENTIALS = (
    "check the AWS credentials loglake finds (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, the instance "
    "role) and the lake's --lake-endpoint"
)
_LAKE_REFUSALS = {
    "InvalidAccessKeyId": _CREDENTIALS,
    "SignatureDoesNotMatch": _CREDENTIALS,
    "ExpiredToken": _CREDENTIALS,
    "InvalidToken": _CREDENTIALS,
    "NoCredentialsError": _CREDENTIALS,
    "AccessDenied": "allow these credentials s3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket there",
    "AllAccessDisabled": "allow these credentials s3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket there",
    "NoSuchBucket": f"create the bucket, or name one that exists with --lake-bucket / {env_name('lake_bucket')}",
}


def check_lake_store(app: LoglakeApp, settings: Settings, out: TextIO) -> None:
    """Before serving, write (and delete) a probe object in an S3 lake: a store that refuses loglake's settings or
    credentials stops the start, saying why and what to do; one that cannot be reached now is a warning (records
    wait in the hot store, and bulk batches are refused, until it can)."""
    if app.lake is None or not settings.lake_bucket:
        return
    try:
        app.lake.objects.probe_write()
    except ObjectStoreError as e:
        where = lake_description(settings)
        todo = _LAKE_REFUSALS.get(e.code or "")
        if todo is not None:
            raise ConfigError(f"the lake {where} refused loglake ({e.code}): {todo}. ({e})") from None
        # (/healthz said "ok" until a move into the lake failed: never, on an idle server)
        told = app.lake_jobs is not None and app.lake_jobs.store_unwritable(e)
        print(
            f"warning: the lake {where} cannot be written now ({e}): records wait in the hot store, and bulk "
            f"batches are refused, until it can{'; /healthz says degraded meanwhile' if told else ''}",
            file=out,
            flush=True,
        )


def uvicorn_config(app: LoglakeApp) -> uvicorn.Config:
    """How `loglake serve` runs the app on uvicorn (bench/b1_in_process.py drives the same protocol)."""
    files = open_file_limit()
    syslog = app.runtime.syslog
    refused = functools.partial(app.metrics.connections_refused.inc, ())
    limit = ConnectionLimit.http(files, refused, syslog=syslog is not None and syslog.streams)
    return uvicorn.Config(
        app,
        loop=_loop(),
        http=functools.partial(HttpProtocol, limit=limit),
        interface="asgi3",  # (said: its __call__ returns the handler's coroutine, which uvicorn would take for ASGI 2)
        lifespan="on",
        access_log=False,
        log_config=None,  # its loggers' records reach the root logger, which writes them to the access log
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=10,
    )


class LoglakeServer(uvicorn.Server):
    """uvicorn's server, which on Ctrl-C or SIGTERM first ends the app's open event streams and stops its
    SQL work in flight: uvicorn waits for responses in flight, and a live tail's never ends by itself."""

    def __init__(self, config: uvicorn.Config, app: LoglakeApp) -> None:
        super().__init__(config)
        self.loglake = app

    def handle_exit(self, sig: int, frame: Any) -> None:
        # uvicorn calls this from a signal handler (signal.signal), which runs between any two steps of whatever
        # the event loop's thread runs: the app's stopping goes to the loop as a callback of its own, not in the
        # middle of a stream's step (which then ended without its `end` event) or of a lock held on that thread.
        try:
            asyncio.get_running_loop().call_soon_threadsafe(self.loglake.stopping)
        except RuntimeError:  # (no loop running yet, or any more)
            self.loglake.stopping()
        super().handle_exit(sig, frame)


def _log_to(access_log: AccessLog) -> None:
    """Every warning logged in the process (uvicorn's own, such as an invalid request, and ours) goes
    to the access log's writer thread: a stderr nobody reads then costs log lines, not a stalled server."""
    root = logging.getLogger()
    root.addHandler(LogRecords(access_log))
    root.setLevel(logging.WARNING)


def _tune_gc() -> None:
    """A 10,000-record request allocates ~100,000 objects; with the default threshold (700) the
    collector runs over a hundred times per request and costs a third of the parse time. Freeze
    what startup made, and collect the young generation every 50,000 allocations instead."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _reachable_host(host: str) -> str:
    """The host of a URL to reach this server from here: loopback for a wildcard bind (every address), which is
    no address to send to, for all that Linux takes 0.0.0.0 for one."""
    return _url_host({"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host))
