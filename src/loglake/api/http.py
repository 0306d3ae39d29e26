"""The little HTTP toolkit the API needs on top of raw ASGI: requests, JSON responses, errors, bodies.

loglake speaks ASGI directly instead of through a framework because ingest is its hot path: a
framework's routing, middleware and request objects cost more than the rest of a request does
(measured on a 2-core machine: a bare ASGI app answers ~3x the requests/s of a Starlette route).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec

from loglake import content_encoding
from loglake.decode_errors import in_words, not_json_reason
from loglake.lake.stop import SERVER_STOPPING

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
T = TypeVar("T")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
JSON_HEADERS = [(b"content-type", b"application/json")]


_QUOTED_CHARS = 64  # of a value a client sent, quoted back in an error message (a UUID has 36)


def quoted(value: str) -> str:
    """A value the client sent, quoted for an error message: cut when long, so that an answer does not grow
    with what was sent (a path of 5,000 characters), and escaped, so that it cannot add lines."""
    if len(value) > _QUOTED_CHARS:
        value = value[:_QUOTED_CHARS] + "..."
    return repr(value)


class ApiError(Exception):
    """An error with its HTTP status, stable code, human message and optional details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class EncodedApiError(ApiError):
    """An ApiError answered in a protocol's own encoding (OTLP's protobuf Status, Loki's text): `encoded` is
    the whole body, and its Content-Type is among the headers."""

    def __init__(self, error: ApiError, encoded: bytes, content_type: bytes) -> None:
        super().__init__(error.status, error.code, error.message, error.details, [*error.headers])
        self.headers.append((b"content-type", content_type))
        self.encoded = encoded


class Request:
    """One request: method, path, query, headers (last value wins), and the raw body once read."""

    __slots__ = (
        "_query",
        "body",
        "body_done",
        "body_held",
        "body_received",
        "headers",
        "method",
        "path",
        "principal",
        "raw_headers",
        "receive",
        "request_id",
        "scope",
        "takes_records",
    )

    def __init__(self, scope: dict, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive  # the connection's next message: the body's, then http.disconnect
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.headers: dict[bytes, bytes] = dict(self.raw_headers)
        # Its body is records (its route's takes_records, set when routed), which a 413 tells to send in smaller
        # batches (a query cannot be).
        self.takes_records = False
        self._query: dict[str, str] | None = None
        self.body = b""
        self.body_received: int | None = None  # bytes of the body received so far; None: none asked for yet
        self.body_done = False  # the body's last message has been received
        self.body_held = 0  # bytes the server's body budget holds for it until it is answered (body_budget.py)
        self.principal: Any = None
        self.request_id = ""

    def header(self, name: bytes, default: str = "") -> str:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else default

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; a repeated name is refused, since which value wins would be ambiguous
        (and SigV4 signs repeated values sorted, so a replay could reorder them)."""
        if self._query is None:
            if not self.scope.get("query_string"):  # nothing to parse: most requests (POST /logs asks each time)
                self._query = {}
                return self._query
            raw = self.scope["query_string"].decode("latin-1")
            pairs = parse_qsl(raw, keep_blank_values=True)
            query = dict(pairs)
            if len(query) != len(pairs):
                repeated = sorted({k for k, _ in pairs if sum(1 for n, _ in pairs if n == k) > 1})
                raise ApiError(400, "invalid_query", f"query parameter(s) {', '.join(repeated)} given more than once")
            self._query = query
        return self._query

    def body_unread(self) -> bool:
        """Whether the client sent (or is sending) body bytes the app has not received yet."""
        if self.body_done:
            return False
        if self.headers.get(b"transfer-encoding", b"").strip().lower() == b"chunked":
            return True
        return _declared_length(self) > (self.body_received or 0)


def body_reservation(request: Request, max_bytes: int) -> int:
    """The bytes a body may hold (what body_budget reserves for it): its Content-Length, the route's limit when it
    gives none for a body sent in chunks; 0 when it gives more than the limit (read_body refuses it at once), and
    for a request with neither header, which has no body (RFC 9112 6.3: a signed GET, a live tail, held as long as
    it streams)."""
    length = request.headers.get(b"content-length")
    if length is None:
        return max_bytes if b"transfer-encoding" in request.headers else 0
    return int(length) if length.isdigit() and int(length) <= max_bytes else 0


async def read_body(request: Request, receive: Receive, max_bytes: int) -> bytes:
    """The raw body, refusing (413) as soon as it passes max_bytes, before all of it has arrived."""
    length = request.headers.get(b"content-length")
    if length is not None and not length.isdigit():
        raise ApiError(400, "bad_request", "Content-Length is not a number")
    if length is not None and int(length) > max_bytes:
        raise too_large(max_bytes, records=request.takes_records)
    chunks: list[bytes] = []
    size = request.body_received = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone(message.get("answered", 499))
        chunk = message.get("body", b"")
        size = request.body_received = size + len(chunk)
        more = message.get("more_body", False)
        request.body_done = not more
        if size > max_bytes:
            raise too_large(max_bytes, records=request.takes_records)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def discard_body(request: Request, receive: Receive, max_body_bytes: int) -> None:
    """Receive and drop what is left of the body after an early answer (413, 401, 404...), as long as the
    whole body is at most twice max_body_bytes.

    Clients such as urllib and requests send the whole body before they read the answer; if the server
    closed the connection with their bytes unread, the kernel would reset it and they would see
    "connection reset" instead of the answer. A body a little over the limit, the usual mistake, gets
    the answer; a far larger one gets the reset, since reading it all to be polite is not worth it. A
    client that asked `Expect: 100-continue` and was not told to go on sends no body: nothing to wait for.
    """
    if not request.body_unread():
        return
    if request.body_received is None and request.header(b"expect").strip().lower() == "100-continue":
        return
    limit = 2 * max_body_bytes
    if _declared_length(request) > limit:
        return
    request.body_received = request.body_received or 0  # (counted for the access log's bytes_in)
    while request.body_received <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        request.body_received += len(message.get("body", b""))
        if not message.get("more_body", False):
            request.body_done = True
            return


async def wait_for_disconnect(request: Request) -> None:
    """Return when the client goes away; what is left of the body meanwhile is received and dropped (and
    counted, so that an error answer does not wait for it)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
        request.body_received = (request.body_received or 0) + len(message.get("body", b""))
        if not message.get("more_body", False):
            request.body_done = True


def _declared_length(request: Request) -> int:
    """The Content-Length, 0 when there is none (or it is not a number, which read_body refuses)."""
    length = request.headers.get(b"content-length", b"")
    return int(length) if length.isdigit() else 0


def server_stopping(reason: str = SERVER_STOPPING) -> ApiError:
    """The 503 of work the server will not do because it is stopping: asked again once it is back. A second
    later: a restart takes about that, and a client that asks meanwhile finds the port closed and waits by its
    own backoff (loglake tail, which misses what arrives while it is away, waited the 5 s this said before)."""
    return ApiError(503, "server_stopping", f"{reason}: retry once it is back", headers=[(b"retry-after", b"1")])


def decode_content(request: Request, body: bytes, max_bytes: int) -> bytes:
    """Undo Content-Encoding: gzip, and drop a leading UTF-8 byte order mark (content_encoding.decoded)."""
    try:
        return content_encoding.decoded(body, is_gzip(request), max_bytes)
    except content_encoding.NotInflated as e:
        if e.too_large:
            raise too_large(max_bytes, after_decompression=True, records=request.takes_records) from None
        raise ApiError(400, "bad_gzip", str(e)) from None


def is_gzip(request: Request) -> bool:
    """Whether the body is gzipped (Content-Encoding); ApiError 415 for an encoding other than gzip."""
    if b"content-encoding" not in request.headers:  # the usual case, checked first: ingest's hot path
        return False
    encoding = request.header(b"content-encoding").strip().lower()
    if encoding in ("", "identity"):
        return False
    if encoding not in content_encoding.GZIP_ENCODINGS:
        raise ApiError(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip")
    return True


def json_object(body: bytes, example: str) -> dict[str, Any]:
    """A body that must be one JSON object (POST /query, POST /admin/keys); ApiError 400 saying what to send."""
    try:
        value = _decode(body or b"null")
    except RecursionError:  # msgspec follows nesting about a thousand levels deep, then gives up
        raise ApiError(
            400, "too_deep", f"the JSON nests too deeply to decode; send a flat object, e.g. {example}"
        ) from None
    except msgspec.DecodeError as e:
        raise ApiError(
            400, "invalid_json", f"the body is not valid JSON in UTF-8: {not_json_reason(e, body)}"
        ) from None
    if type(value) is not dict:
        raise ApiError(400, "invalid_request", f"send a JSON object, e.g. {example}")
    return value


def json_struct(value: dict[str, Any], kind: type[T], example: str, code: str = "invalid_request") -> T:
    """A decoded JSON object (json_object) as the route's body type; ApiError 400 naming the field otherwise."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as e:
        raise ApiError(400, code, f"{in_words(e)}; send e.g. {example}") from None


class ClientGone(Exception):
    """The client disconnected before the request was complete: `status` for the access log and the metrics,
    499 (nginx's "client closed request"), or what the HTTP protocol answered it with (408 for a body that
    came too slowly)."""

    def __init__(self, status: int = 499) -> None:
        super().__init__(status)
        self.status = status


def storage_unavailable(message: str) -> ApiError:
    """The 503 of a write or read that storage cannot take now, with when to try again."""
    return ApiError(503, "storage_unavailable", message, headers=[(b"retry-after", b"5")])


def too_large(max_bytes: int, after_decompression: bool = False, records: bool = False) -> ApiError:
    """The 413 of a body over max_bytes; only records can be sent in smaller batches (a query cannot)."""
    where = " after decompression" if after_decompression else ""
    hint = " (records: in smaller batches)" if records else ""
    return ApiError(
        413, "payload_too_large", f"the body is larger than {max_bytes} bytes{where}; send less in one request{hint}"
    )


async def send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None, more_body: bool = False
) -> int:
    body = _encode(payload) + b"\n"  # so `curl` output does not run into the shell prompt
    await send_bytes(send, status, body, JSON_HEADERS + (headers or []), more_body)
    return len(body)


async def send_bytes(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], more_body: bool = False
) -> None:
    """A whole response; with more_body the server waits for an empty last part before it may close."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": more_body})
