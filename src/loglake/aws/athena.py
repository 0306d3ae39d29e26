"""SQL on AWS: the same read-only query contract as the DuckDB engine (lake/query.py), run by Athena.

A query is started in the stack's workgroup (results encrypted, a bytes-scanned cutoff), polled with
a growing pause until it ends or its timeout passes (then it is cancelled), and its rows are fetched
page by page up to the row cap. The same guard as locally lets only one SELECT through (Athena
would otherwise run DDL such as DROP TABLE for whoever may query).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import botocore.exceptions

from loglake.lake.answer_values import text_as_iso
from loglake.lake.query_answers import QueryBusy, QueryResult
from loglake.lake.query_limits import QueryLimits
from loglake.lake.sql_guard import QueryError, check_select
from loglake.lake.stop import OutOfTime, Stop, Stopped

_DONE = {"SUCCEEDED", "FAILED", "CANCELLED"}
# Athena's answers that mean "not now": too many queries running in the account, or throttled calls.
_BUSY = {"TooManyRequestsException", "ThrottlingException"}
_INTEGER = {"tinyint", "smallint", "integer", "int", "bigint"}
_FLOAT = {"float", "real", "double"}


class AthenaQueryEngine:
    def __init__(
        self,
        client: Any,
        database: str,
        workgroup: str,
        limits: QueryLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.database = database
        self.workgroup = workgroup
        self.limits = limits or QueryLimits()
        self.clock = clock
        self.sleep = sleep

    def query(
        self,
        sql: str,
        *,
        limit: int | None = None,
        timeout_seconds: float | None = None,
        explain: bool = False,
        stop: Stop | None = None,
    ) -> QueryResult:
        """As QueryEngine.query: told to stop (`stop`), the query is cancelled in Athena at its next poll and
        Stopped (or OutOfTime) is raised."""
        check_select(sql)
        cap = self.limits.rows_for(limit)
        timeout = self.limits.seconds_for(timeout_seconds)
        started = self.clock()
        execution_id = self._call(
            self.client.start_query_execution,
            QueryString=f"EXPLAIN {sql}" if explain else sql,
            QueryExecutionContext={"Database": self.database, "Catalog": "AwsDataCatalog"},
            WorkGroup=self.workgroup,
        )["QueryExecutionId"]
        execution = self._wait(execution_id, started + timeout, timeout, stop)
        columns, rows, truncated = self._rows(execution_id, cap)
        elapsed_ms = (self.clock() - started) * 1000
        scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
        if explain:
            plan = "\n".join(str(row[0]) for row in rows)
            return QueryResult([], [], False, elapsed_ms, scanned, 0, plan=plan)
        return QueryResult(columns, rows, truncated, elapsed_ms, scanned, 0)

    def _wait(self, execution_id: str, deadline: float, timeout: float, stop: Stop | None) -> dict:
        pause = 0.1
        while True:
            try:
                if stop is not None:
                    stop.check()
            except (Stopped, OutOfTime):
                self._call(self.client.stop_query_execution, QueryExecutionId=execution_id)
                raise
            if self.clock() >= deadline:
                self._call(self.client.stop_query_execution, QueryExecutionId=execution_id)
                raise QueryError(
                    "query_timeout",
                    f"the query ran longer than {timeout:g} s and was cancelled in Athena; narrow it (a date "
                    "range reads fewer files) or allow more time",
                )
            execution = self._call(self.client.get_query_execution, QueryExecutionId=execution_id)["QueryExecution"]
            state = execution["Status"]["State"]
            if state == "SUCCEEDED":
                return execution
            if state in _DONE:
                reason = execution["Status"].get("StateChangeReason", state.lower())
                if state == "FAILED" and _athena_side(execution["Status"].get("AthenaError")):
                    raise QueryBusy(f"Athena failed the query on its side ({reason})")
                raise QueryError("invalid_sql" if state == "FAILED" else "query_cancelled", f"Athena: {reason}")
            self.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _rows(self, execution_id: str, cap: int) -> tuple[list[tuple[str, str]], list[tuple], bool]:
        columns: list[tuple[str, str]] = []
        rows: list[tuple] = []
        request: dict[str, Any] = {"QueryExecutionId": execution_id, "MaxResults": 1000}
        first_page = True
        while True:
            page = self._call(self.client.get_query_results, **request)
            result = page["ResultSet"]
            if first_page:
                columns = [(c["Name"], c["Type"]) for c in result.get("ResultSetMetadata", {}).get("ColumnInfo", [])]
            data = result.get("Rows", [])
            if first_page and data and columns and _is_header(data[0], columns):
                data = data[1:]  # a SELECT's first row repeats the column names
            first_page = False
            rows.extend(
                tuple(_value(cell, kind) for cell, (_, kind) in zip(r["Data"], columns, strict=False)) for r in data
            )
            if len(rows) > cap or "NextToken" not in page:
                return columns, rows[:cap], len(rows) > cap
            request["NextToken"] = page["NextToken"]

    def _call(self, operation: Any, **kwargs: Any) -> Any:
        """One Athena call; its refusals become QueryError (400: the SQL) or QueryBusy (503: retry later)."""
        try:
            return operation(**kwargs)
        except botocore.exceptions.ClientError as e:
            error = e.response.get("Error", {})
            if error.get("Code") == "InvalidRequestException":
                raise QueryError("invalid_sql", f"Athena: {error.get('Message', 'invalid request')}") from None
            if error.get("Code") in _BUSY:
                raise QueryBusy(f"Athena is busy ({error.get('Code')})") from None
            raise
        except botocore.exceptions.ConnectionError as e:
            raise QueryBusy(f"Athena could not be reached ({e})") from None


def _athena_side(error: dict | None) -> bool:
    """Whether a failed query's AthenaError blames Athena (category 1, system; or a retryable error)
    rather than the SQL (category 2, user)."""
    if not error:
        return False
    return error.get("ErrorCategory") == 1 or (error.get("ErrorCategory") != 2 and bool(error.get("Retryable")))


def _is_header(row: dict, columns: list[tuple[str, str]]) -> bool:
    return [cell.get("VarCharValue") for cell in row["Data"]] == [name for name, _ in columns]


def _value(cell: dict, kind: str) -> Any:
    if "VarCharValue" not in cell:
        return None
    text = cell["VarCharValue"]
    if kind in _INTEGER:
        return int(text)
    if kind in _FLOAT:
        return float(text)
    if kind.startswith("decimal"):  # exact, as DuckDB gives a DECIMAL (and POST /query answers it as text)
        return Decimal(text)
    if kind == "boolean":
        return text == "true"
    if kind == "varbinary":  # Athena's text is its hex (`68 69`): bytes, which POST /query answers in base64 as locally
        try:
            return bytes.fromhex(text)
        except ValueError:
            return text
    if kind.startswith("timestamp"):  # a time, as DuckDB gives one: POST /query answers it as the local server does
        return _time(text, kind)
    return text


def _time(text: str, kind: str) -> datetime | str:
    """Athena's text of a `timestamp` (`2026-05-04 10:00:00.123`, UTC without a zone) or a `timestamp with time
    zone` (`2026-05-04 12:00:00.123 Europe/Paris`) as a datetime (in UTC, as DuckDB gives one); one a datetime
    cannot hold exactly (a `timestamp(9)`'s nanoseconds, a year past 9999, in UTC too, a zone given as an offset) as
    the ISO-8601 text the local engine answers for it (answer_values), else the text itself."""
    moment, _, zone = text.rpartition(" ") if "with time zone" in kind else (text, "", "")
    try:
        if len(moment.rpartition(".")[2]) > 6 and "." in moment:
            raise ValueError("nanoseconds")  # (fromisoformat drops them)
        value = datetime.fromisoformat(moment)
        # (OverflowError: a zone's time whose UTC is past 9999 or before year 1, which json_value failed on)
        return value.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC) if zone else value
    except (ValueError, KeyError, OverflowError):  # (ZoneInfo raises a KeyError subclass for an unknown zone)
        return text_as_iso(_with_offset(moment, zone) if zone else text) or text


def _with_offset(moment: str, zone: str) -> str:
    """`moment` with the offset named zone `zone` has there, as text_as_iso reads one (`... +02:00`); `moment`
    with `zone` itself when it names none (an offset already, `+02:00`, or a zone the time cannot be read in)."""
    try:
        offset = datetime.fromisoformat(moment[:19]).replace(tzinfo=ZoneInfo(zone)).utcoffset()
    except (ValueError, KeyError):
        return f"{moment} {zone}"
    seconds = int(offset.total_seconds()) if offset is not None else 0
    sign, seconds = ("-", -seconds) if seconds < 0 else ("+", seconds)
    return f"{moment} {sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
