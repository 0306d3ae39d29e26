"""POST /loki/api/v1/push: Loki's push API (Promtail, Grafana Alloy, Fluent Bit's loki output), stored as
POST /logs stores records, 204 once they are on disk.

As Loki's distributor does, an entry that cannot be stored is refused on its own: the push's other entries are
stored, and the answer is then a 400 naming the refused ones. Promtail and Alloy do not send a push again after
a 400, so refusing the whole push for one entry (one clock gone wrong, a line too long) would
lose every entry beside it. A push they send again byte for byte after a lost answer is answered as the first was
and stored once (resent_pushes), as Loki keeps one of identical entries.

Errors are answered as Loki answers them, a line of plain text with the status. Authentication, scopes
and rate limits are the app's, as for POST /logs: Bearer (`bearer_token` in Promtail and Alloy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loglake.api.http import ApiError, EncodedApiError, Request
from loglake.api.operation_routes import storage_writable
from loglake.api.resent_pushes import WINDOW_MINUTES, fingerprint
from loglake.api.routes import (
    Result,
    checked_body,
    count_if_body_refused,
    count_refused,
    count_refused_body,
    decoded_by_worker,
    ingest_counts,
    store,
)
from loglake.ingest import InvalidBody, ParsedBody
from loglake.model import Problem
from loglake.protocols import columns, loki
from loglake.protocols.mapping import SHOWN_PROBLEMS

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

PATH = "/loki/api/v1/push"
READY_PATH = "/ready"  # Loki's readiness probe, which clients and Kubernetes probe before pushing
PROTOCOL = "loki"
_TEXT = ((b"content-type", b"text/plain; charset=utf-8"),)
_STORED = Result(204, b"")  # (one, shared by the pushes resent_pushes keeps: nothing changes a Result once made)
# Said of a push without a Content-Type that cannot be read: a JSON push sent without one (as a hand-written client
# may send it) would otherwise read as a broken protobuf push, and nothing would say why.
_READ_AS_PROTOBUF = (
    f" (no Content-Type: read as protobuf, as Loki reads it; a JSON push needs Content-Type: {loki.JSON})"
)
# A JSON push as loki._JsonPush reads it: {"streams": null}, a stream without values or an entry that is no
# [timestamp, line, metadata?] are refused whole, which a schema of an object with streams took.
_JSON_PUSH = {
    "type": "object",
    "required": ["streams"],
    "properties": {
        "streams": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["values"],
                "properties": {
                    "stream": {"type": "object", "additionalProperties": {"type": "string"}},
                    "values": {
                        "type": "array",
                        "items": {
                            "type": "array",
                            "minItems": 2,
                            "maxItems": 3,
                            "prefixItems": [
                                {
                                    "description": "Unix nanoseconds",
                                    "type": ["string", "integer"],
                                    "pattern": "^[0-9]+$",
                                },
                                {"type": "string"},
                                {"type": "object", "additionalProperties": {"type": "string"}},
                            ],
                        },
                    },
                },
            },
        }
    },
}

OPENAPI = {
    PATH: {
        "post": {
            "summary": "Loki push from Promtail, Grafana Alloy or Fluent Bit (protobuf in a snappy block, or JSON; "
            "gzip accepted); 204 means the records are durable",
            "description": "Each entry becomes a record: the service from the first of the labels of the "
            "loki_service_labels setting (default service_name, service, app, job), the severity from "
            "`level`, `severity` or `detected_level`, the log type from `log_type`, the other labels and "
            "the entry's structured metadata as attributes, but `trace_id` and `span_id` that are ids fill the "
            "record's. As Loki does, an entry that cannot be stored is refused on its own and the push's other "
            "entries are stored; the answer is then a 400, a line of text naming the refused entries by stream "
            "and entry (counted from 1) and saying how many were stored. A push sent again byte for byte within "
            f"{WINDOW_MINUTES} minutes of being stored (a retry after a lost answer) gets the first one's answer, "
            "not stored again.",
            "requestBody": {
                "required": True,
                "content": {
                    loki.PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                    loki.JSON: {"schema": _JSON_PUSH},
                },
            },
            "responses": {
                "204": {"description": "Stored"},
                "400": {
                    "description": "Not a push (nothing stored), or entries that cannot be stored, named (the "
                    "others were stored) (text/plain)"
                },
                "401": {"description": "Missing, invalid or revoked credentials (text/plain)"},
                "403": {"description": "The key lacks the ingest scope (text/plain)"},
                "429": {"description": "Rate limited; see Retry-After (text/plain)"},
                "413": {"description": "Body or batch too large (text/plain)"},
                "415": {"description": "Unsupported Content-Type or Content-Encoding (text/plain)"},
                "503": {"description": "Storage cannot accept writes; nothing was stored (text/plain)"},
            },
        }
    },
    READY_PATH: {
        "get": {
            "summary": "Loki's readiness probe (no auth): `ready`, as Loki answers it, while pushes can be stored",
            "security": [],
            "responses": {
                "200": {"description": "`ready` (text/plain)"},
                "503": {"description": "Storage cannot accept writes (text/plain)"},
            },
        }
    },
}


async def push(app: LoglakeApp, request: Request) -> Result:
    content_type = request.header(b"content-type").split(";", 1)[0].strip().lower()
    if content_type not in (loki.PROTOBUF, loki.JSON, ""):
        return _failure(415, f"unsupported Content-Type {content_type!r}: send {loki.PROTOBUF} or {loki.JSON}")
    json = content_type == loki.JSON
    kind = content_type.encode()
    labels = app.settings.loki_service_label_names
    limit = app.settings.max_body_bytes
    try:
        decoded = None
        if b"content-encoding" not in request.headers:  # (a body as sent is what a worker takes)
            decoded = await decoded_by_worker(app, PROTOCOL, loki.worker_decoded, request.body, json, labels, limit)
        if decoded is None:
            parsed, problems, counts, refusal, key = await checked_body(
                app,
                request,
                lambda body: (
                    *_checked(app, *loki.columns(loki.decode_push(body, json, limit), labels)),
                    fingerprint(kind, body),
                ),
            )
        else:
            parsed, problems, counts, refusal, key = await app.run_ingest(
                lambda: (*_checked(app, *loki.worker_unpacked(decoded)), fingerprint(kind, request.body))
            )

        async def stored() -> tuple[Result, bool]:
            if parsed is not None:
                await store(app, parsed, counts)
            if problems:
                count_refused(app, request, problems, PROTOCOL)
                app.metrics.protocol_records.inc((PROTOCOL, "rejected"), len({p.index for p in problems}))
            if parsed is not None:
                app.metrics.protocol_records.inc((PROTOCOL, "accepted"), parsed.count)
            return (_failure(400, refusal) if refusal else _STORED), parsed is not None

        answer, new = await app.loki_pushes.once(key, stored)
    except ApiError as e:
        count_if_body_refused(app, e)
        return _failure(e.status, e.message, e.headers)
    except loki.MalformedPush as e:  # refused whole, as Loki refuses it: said apart from an entry refused alone
        count_refused_body(app, "invalid_loki_push")
        read_as = "" if content_type else _READ_AS_PROTOBUF
        return _failure(400, f"{e}{read_as}; the push is refused whole: nothing of it was stored")
    except InvalidBody as e:
        count_refused_body(app, e.code)
        return _failure(413 if e.too_large else 400, str(e))
    if not new:
        app.metrics.resent_pushes.inc((PROTOCOL,))
    return answer


async def ready(app: LoglakeApp, request: Request) -> Result:
    """`GET /ready` as Loki answers it: `ready` while a push can be stored, else 503 saying why."""
    if await storage_writable(app):  # (checked again: a probe that stops the pushes stops the writes clearing it)
        return _failure(200, "ready")
    return _failure(503, "not ready: storage cannot accept writes (see GET /healthz with a read key)")


def _checked(
    app: LoglakeApp, found: columns.RecordColumns, starts: list[int]
) -> tuple[ParsedBody | None, list[Problem], dict[tuple[str, int], int], str]:
    """The push's valid records (None when there are none: a push of no entries is one Loki takes), the
    problems of the others, ingest_counts of the valid ones, and the 400's text naming the refused entries by
    stream and entry ("" when none is). `found`, `starts`: the push's records and where each stream starts."""
    if not found:
        return None, [], {}, ""
    parsed, problems = columns.check_valid(app.service, found)
    if not problems:
        return parsed, [], {} if parsed is None else ingest_counts(parsed), ""
    bad = len({p.index for p in problems})
    named = "; ".join(
        f"{loki.entry_of(p.index, starts)}: {p.field or 'entry'} {p.reason}" for p in problems[:SHOWN_PROBLEMS]
    )
    more = f"; and {len(problems) - SHOWN_PROBLEMS} more problem(s)" if len(problems) > SHOWN_PROBLEMS else ""
    others = len(found) - bad
    stored = "so none was" if parsed is None else f"the other {others} {'was' if others == 1 else 'were'} stored"
    refusal = f"{bad} of {len(found)} entries cannot be stored, {stored}: {named}{more}"
    return parsed, problems, {} if parsed is None else ingest_counts(parsed), refusal


def loki_error(error: ApiError, _request: Request) -> ApiError:
    """Any error of the endpoint (auth, scope, rate limit) as Loki answers its errors: the message as text."""
    if isinstance(error, EncodedApiError):
        return error
    return EncodedApiError(error, error.message.encode() + b"\n", _TEXT[0][1])


def _failure(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> Result:
    return Result(status, message.encode() + b"\n", (*_TEXT, *(headers or ())))
