"""POST /query (one SQL over the hot store and the lake) and GET /tables (what it can read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loglake.api.http import ApiError, Request
from loglake.api.routes import Result, json_body, query_error, refuse_parameters
from loglake.lake.query import QueryError
from loglake.lake.query_answers import QueryBusy, parse_query_request, result_to_dict

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp


async def query(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "POST /query")
    engine = app.sql_engine
    if engine is None:
        raise ApiError(501, "not_available", "SQL needs the lake, which this server's store does not have")
    spec = json_body(app, request, '{"sql": "SELECT count(*) FROM logs", "limit": 100}')
    try:
        wanted = parse_query_request(spec)
        result = await app.run_query(lambda stop: engine.query(**wanted.options(), stop=stop), request)
    except (QueryError, QueryBusy) as e:
        app.metrics.queries.inc((e.code if isinstance(e, QueryError) else "busy",))
        raise query_error(e) from None
    app.metrics.queries.inc(("ok",))
    return Result(200, result_to_dict(result))


async def tables(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "GET /tables")
    if app.lake is None:
        raise ApiError(501, "not_available", "tables need the lake, which this server's store does not have")
    return Result(200, {"tables": await app.run_read(app.lake.describe_tables)})
