"""API Gateway (REST API, Lambda proxy integration) events to the ASGI app and back, with no I/O of
its own: the Lambda functions answer with the very routes, validation and errors of `loglake serve`.

Event and response shapes: https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import urlencode

from loglake.api.http import ApiError

Asgi = Any
_TEXT_TYPES = (b"application/json", b"text/", b"application/problem+json")
# A synchronous Lambda response is at most 6 MB (6,291,556 bytes) once serialized: the body as an
# escaped JSON string, plus the headers. Past it API Gateway would answer 502; a clear 400 comes first.
MAX_LAMBDA_RESPONSE = 6_291_556 - 4096
_MOST_BYTES_PER_CHARACTER = 12  # a character escaped as \u0001, that text escaped again as a JSON string


async def call(app: Asgi, event: dict[str, Any]) -> dict[str, Any]:
    """Run one proxy event through an ASGI app; the proxy response."""
    raw = body_of(event)
    sent = False
    # API Gateway gives no sign of a client that leaves: the connection counts as open until the answer is
    # sent (an app that watches for the client leaving, as POST /query does, must not stop at once).
    answered = asyncio.Event()

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await answered.wait()
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    response: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            response["status"], response["headers"] = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            response["body"] += message.get("body", b"")
            if not message.get("more_body", False):
                answered.set()

    await app(scope_of(event), receive, send)
    return fit_for_lambda(_proxy_response(response["status"], response["headers"], response["body"]))


def body_of(event: dict[str, Any]) -> bytes:
    """A proxy event's body as the client sent it (base64 when API Gateway took it as binary: the APIs' binary
    media types are */*, so every body is)."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def json_body_of(event: dict[str, Any], route: str, example: str, empty_ok: bool = False) -> dict[str, Any]:
    """The body of a proxy event for a function that answers without the app (POST /query, /ask), read as the
    local route reads it (api/routes.json_body): no query parameters, sent as JSON (gzipped or not), within the
    JSON APIs' body limit, one object ({} for an empty body when `empty_ok`); ApiError otherwise."""
    from loglake.api.http import Request, decode_content, too_large
    from loglake.api.routes import json_request_object, refuse_parameters
    from loglake.config import JSON_BODY_BYTES

    request = Request(scope_of(event), None)
    request.body = body_of(event)
    # (these functions' settings are the defaults, whose max_body_bytes is larger: json_body_limit is this)
    if len(request.body) > JSON_BODY_BYTES:
        raise too_large(JSON_BODY_BYTES)
    refuse_parameters(request, route)
    if empty_ok and not decode_content(request, request.body, JSON_BODY_BYTES).strip():
        return {}
    return json_request_object(request, JSON_BODY_BYTES, example)


def fit_for_lambda(response: dict[str, Any]) -> dict[str, Any]:
    """The proxy response, or a 400 in its place when it is more than Lambda may return."""
    if len(response["body"]) * _MOST_BYTES_PER_CHARACTER < MAX_LAMBDA_RESPONSE // 2:
        return response  # small enough whatever its escaping: no need to serialize it to measure
    size = len(json.dumps(response).encode())
    return response if size <= MAX_LAMBDA_RESPONSE else _too_large(size)


def _too_large(size: int) -> dict[str, Any]:
    message = (
        f"the answer is {size / 1e6:.1f} MB, more than a Lambda function can return (6 MB): "
        "ask for fewer records (limit) or a narrower window, and page with next_cursor"
    )
    body = json.dumps(ApiError(400, "response_too_large", message).body()).encode()
    return _proxy_response(400, [(b"content-type", b"application/json")], body)


def scope_of(event: dict[str, Any]) -> dict[str, Any]:
    """The ASGI HTTP scope of a proxy event (multi-value headers and query strings kept whole)."""
    headers: list[tuple[bytes, bytes]] = []
    multi = event.get("multiValueHeaders") or {}
    for name, value in (event.get("headers") or {}).items():
        for one in multi.get(name) or [value]:
            # API Gateway gives the values as text decoded from the client's bytes (UTF-8, any character): encoded
            # back to those bytes, the app reads them as it reads a local server's (latin-1 fails past U+00FF).
            headers.append((name.lower().encode("latin-1"), str(one).encode("utf-8", "replace")))
    context = event.get("requestContext") or {}
    if context.get("requestId") and not any(name == b"x-request-id" for name, _ in headers):
        headers.append((b"x-request-id", context["requestId"].encode("latin-1")))
    query_multi = event.get("multiValueQueryStringParameters") or {
        k: [v] for k, v in (event.get("queryStringParameters") or {}).items()
    }
    # A value holding a lone surrogate (API Gateway's text for percent-encoded bytes that are not UTF-8) is encoded
    # back to those bytes too: the app reads them as a local server's (as U+FFFD), where UTF-8 refused them (a 502).
    query = urlencode([(k, v) for k, values in query_multi.items() for v in values], errors="surrogatepass")
    raw_path = event["path"].encode("utf-8", "surrogatepass")  # (and the path's, as a local server decodes it)
    source_ip = (context.get("identity") or {}).get("sourceIp") or "0.0.0.0"
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": event["httpMethod"],
        "scheme": "https",
        "path": raw_path.decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": query.encode(),
        "headers": headers,
        "client": (source_ip, 0),
        "server": ("lambda", 443),
    }


def _proxy_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> dict[str, Any]:
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        multi.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    content_type = next((v for n, v in headers if n == b"content-type"), b"")
    # A compressed body (the UI's gzipped assets) is bytes whatever its type: base64, as API Gateway
    # expects of binary answers (decoded again since the API's binary media types are */*).
    encoded = any(n == b"content-encoding" and v.lower() != b"identity" for n, v in headers)
    text = not body or (not encoded and any(content_type.startswith(t) for t in _TEXT_TYPES))
    return {
        "statusCode": status,
        "multiValueHeaders": multi,
        "body": body.decode() if text else base64.b64encode(body).decode(),
        "isBase64Encoded": not text,
    }
