"""The alert routes: list, show, acknowledge and resolve the alerts of the data dir's alerts.db."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, TypeVar

import msgspec

from loglake.alerts.alert_ids import AmbiguousAlert, NoSuchAlert, find_alert_id
from loglake.alerts.store import (
    MAX_NOTE_CHARS,
    InvalidAlertQuery,
    StatusConflict,
    change_status,
    find_alert,
    list_answer,
    parse_alert_query,
)
from loglake.api.http import ApiError, Request, decode_content, quoted
from loglake.api.routes import Result, json_body, json_body_limit, refuse_parameters
from loglake.api.rule_routes import rule_lookup_errors
from loglake.decode_errors import in_words
from loglake.rules.model import find_rule, is_rule_id

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp

T = TypeVar("T")


class StatusChange(msgspec.Struct, forbid_unknown_fields=True):
    """The optional body of POST /alerts/{alertId}/acknowledge and /resolve."""

    note: Annotated[str, msgspec.Meta(max_length=MAX_NOTE_CHARS)] | None = None


_NOTE_EXAMPLE = '{"note": "fixed by restarting the worker"}'


async def list_alerts_route(app: LoglakeApp, request: Request) -> Result:
    try:
        query = parse_alert_query(request.query, app.service.now_ms())
    except InvalidAlertQuery as e:
        details = [{"field": name, "reason": reason} for name, reason in e.problems]
        raise ApiError(400, "invalid_query", str(e), details) from None
    scheduler = app.runtime.rules
    if query.rule_id is not None and not is_rule_id(query.rule_id) and scheduler is not None:
        # The start of an id or a file's name, as the rule routes take it (a whole id is taken as it
        # is: alerts outlive the rule that raised them).
        with rule_lookup_errors(query.rule_id):
            query = replace(query, rule_id=find_rule(scheduler.folder.rules, query.rule_id).id)
    return Result(200, await _with_db(app, lambda conn: list_answer(conn, query)))


async def get_alert_route(app: LoglakeApp, request: Request, alert_id: str) -> Result:
    refuse_parameters(request, "GET /alerts/{alertId}")
    with alert_lookup_errors(alert_id):
        alert = await _with_db(app, lambda conn: find_alert(conn, alert_id))
    return Result(200, alert.to_dict())


async def acknowledge(app: LoglakeApp, request: Request, alert_id: str) -> Result:
    refuse_parameters(request, "POST /alerts/{alertId}/acknowledge")
    return await _change(app, request, alert_id, "acknowledged")


async def resolve(app: LoglakeApp, request: Request, alert_id: str) -> Result:
    refuse_parameters(request, "POST /alerts/{alertId}/resolve")
    return await _change(app, request, alert_id, "resolved")


async def _change(app: LoglakeApp, request: Request, alert_id: str, status: str) -> Result:
    """Change the alert's status as the caller's key (its name is recorded as who did it)."""
    note = _note(app, request)
    by = request.principal.name
    now_ms = app.service.now_ms()
    try:
        with alert_lookup_errors(alert_id):
            alert = await _with_db(
                app, lambda conn: change_status(conn, find_alert_id(conn, alert_id), status, by, note, now_ms)
            )
    except StatusConflict as e:
        raise ApiError(409, "status_conflict", str(e)) from None
    return Result(200, alert.to_dict())


def _note(app: LoglakeApp, request: Request) -> str | None:
    """The note of an optional JSON body; no body, no note."""
    if not decode_content(request, request.body, json_body_limit(app.settings)).strip():
        return None
    try:
        return msgspec.convert(json_body(app, request, _NOTE_EXAMPLE), StatusChange).note
    except msgspec.ValidationError as e:
        raise ApiError(400, "invalid_request", f"{in_words(e)}; send no body, or e.g. {_NOTE_EXAMPLE}") from None


@contextmanager
def alert_lookup_errors(alert_id: str) -> Iterator[None]:
    """find_alert_id's refusals as the API answers them (as rule_lookup_errors answers a rule's): 404 for
    no such alert, 400 for a part of several ids."""
    try:
        yield
    except NoSuchAlert:
        raise ApiError(404, "not_found", f"no alert with id {quoted(alert_id)}; GET /alerts lists them") from None
    except AmbiguousAlert as e:
        raise ApiError(400, "ambiguous_alert_id", f"{e}; GET /alerts lists them") from None


async def _with_db(app: LoglakeApp, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` with the alerts database, off the event loop."""
    db = app.runtime.alerts_db
    if db is None:
        raise ApiError(
            501,
            "not_available",
            "alerts live in the data dir of `loglake serve`; this deployment's store keeps none",
        )

    def run() -> T:
        with db.use() as conn:
            return fn(conn)

    try:
        return await app.run_read(run)
    except sqlite3.OperationalError as e:
        if "locked" not in str(e):
            raise
        # Another process (a rule run, `loglake alerts --data-dir`) held the write lock past the busy timeout.
        raise ApiError(
            503,
            "busy",
            "the alerts database is busy with another write; retry shortly",
            headers=[(b"retry-after", b"1")],
        ) from None
