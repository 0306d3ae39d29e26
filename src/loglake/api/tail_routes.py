"""GET /logs/tail: a live tail as server-sent events (the browser's EventSource, `loglake tail`).

Each new record matching the search is an `event: record` with the record's JSON, as /logs/search shows
it; `event: dropped` with {"count": n} says the client read too slowly and n records were not sent; a
comment every HEARTBEAT_SECONDS keeps proxies from closing a quiet stream. The stream ends when the
client leaves or the server stops (then with `event: end`), so a stopping server never waits on it, and when
the key it was opened with is revoked or the browser session it was opened in ends (signed out, expired: then
with `event: error`, within KEY_CHECK_SECONDS), as the next request would be refused.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec

from loglake.api.auth import REVOKED_KEY, SESSION_OVER, session_token
from loglake.api.http import ApiError, Receive, Request, Send, server_stopping
from loglake.api.routes import Result, client_errors
from loglake.tail import Tail, TooManyTails

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp
    from loglake.keys import ApiKey

HEARTBEAT_SECONDS = 15.0
KEY_CHECK_SECONDS = 1.0  # how soon a tail ends once its key is revoked or its session is over
HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),  # (and no-store, as every read of credentials: app.py)
    (b"x-accel-buffering", b"no"),  # nginx and the like pass each event on at once
)
_encode = msgspec.json.Encoder().encode
_END = b'event: end\ndata: {"reason":"the server is stopping"}\n\n'


class EventStream:
    """A response that is sent as events arrive (app._http sends it through `stream`)."""

    def __init__(self, app: LoglakeApp, tail: Tail, key: ApiKey, session: str = "") -> None:
        self.app = app
        self.tail = tail
        self.key = key  # the key it was opened with
        self.session = session  # the browser session's token it was opened with ("" for a key's header)

    def _why_over(self) -> str | None:
        """Why the tail may stream no more (its key revoked, its session over), None while it may."""
        if not self.app.auth.is_active(self.key):
            return REVOKED_KEY
        if self.session and self.app.sessions.find(self.session) is None:
            return SESSION_OVER
        return None

    async def stream(self, send: Send, receive: Receive, status: int, headers: list[tuple[bytes, bytes]]) -> int:
        """Send the events until the client leaves or the tail ends; the bytes sent."""
        assert self.app.tails is not None
        watcher = asyncio.ensure_future(_stop_on_disconnect(receive, self.tail))
        sent = 0
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            quiet = 0.0  # seconds since the last chunk
            told_why = False  # an error event said why the tail ends
            while not self.tail.stopped:
                wait = min(KEY_CHECK_SECONDS, HEARTBEAT_SECONDS - quiet)
                waiting = await self.tail.next(wait)
                over = self._why_over()
                if over is not None:
                    chunk = b"event: error\ndata: %b\n\n" % _encode({"message": over})
                    told_why = True
                    self.tail.stop()
                elif waiting is None:
                    quiet += wait
                    if quiet < HEARTBEAT_SECONDS:
                        continue
                    chunk = b": keep-alive\n\n"
                else:
                    records, dropped, error = waiting
                    chunk = b"".join(b"event: record\ndata: %b\n\n" % _encode(r) for r in records)
                    if dropped:
                        chunk += b'event: dropped\ndata: {"count":%d}\n\n' % dropped
                    if error is not None:
                        chunk += b"event: error\ndata: %b\n\n" % _encode({"message": error})
                        told_why = True
                        self.tail.stop()
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent += len(chunk)
                    quiet = 0.0
            # Said after the loop, wherever in it the stop came: uvicorn stops the server from a signal handler,
            # which runs between any two steps of the loop, not only while it waits.
            if self.app.is_stopping and not told_why and not watcher.done():
                await send({"type": "http.response.body", "body": _END, "more_body": True})
                sent += len(_END)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            self.app.tails.close(self.tail)
        return sent


async def _stop_on_disconnect(receive: Receive, tail: Tail) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    tail.stop()


async def tail(app: LoglakeApp, request: Request) -> Result:
    if app.tails is None:
        raise ApiError(
            501,
            "not_available",
            "a live tail needs the server that takes the records (loglake serve); poll GET /logs/search instead",
        )
    query, conditions = client_errors(app.service.tail_query)(request.query)
    if request.method == "HEAD":
        return Result(200, b"", HEADERS)
    if app.is_stopping:  # (a tail opened now would hold the stop up until uvicorn's timeout cut it)
        raise server_stopping()
    try:
        opened = app.tails.open(request.principal.name, query, conditions)
    except TooManyTails as e:
        raise ApiError(429, "too_many_tails", str(e), headers=[(b"retry-after", b"5")]) from None
    # (a request with an Authorization header was let in by it, not by a session cookie it may also send)
    by_session = app.auth.enabled and not request.header(b"authorization")
    session = session_token(request) if by_session else ""
    return Result(200, EventStream(app, opened, request.principal, session), HEADERS)
