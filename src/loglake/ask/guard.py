"""The model's answer is never trusted: its SQL must be exactly one SELECT over the tables users may
read, checked twice, by the sandbox of POST /query (DuckDB's own parse: statement kind, tables, table
functions, denied functions) and by sqlglot's parse (one query expression, its tables). It then gets
a LIMIT when it has none (or a larger one than the server returns), and a time range when the question
names one and the SQL filters on no time (or a warning where it cannot be added safely).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp

from loglake.lake.sql_guard import NESTED_TOO_DEEP, QueryError, check_select
from loglake.lake.tables import TABLES
from loglake.shorten import shortened

MAX_EXPLANATION_CHARS = 600  # an answer's one or two sentences
MAX_QUERY_EXPLANATION_CHARS = 1200  # an explained query's two to four
_FENCE = re.compile(r"```[ \t]*([A-Za-z]*)[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
# An answer without a fence that starts like a statement is taken as SQL (and refused if it is not a SELECT).
_BARE_SQL = re.compile(
    r"^\s*(SELECT|WITH|FROM|VALUES|COPY|DROP|INSERT|UPDATE|DELETE|CREATE|ALTER|ATTACH|DETACH|INSTALL|LOAD|PRAGMA|"
    r"SET|RESET|CALL|EXPORT|IMPORT|VACUUM|CHECKPOINT|TRUNCATE|SUMMARIZE|DESCRIBE|SHOW|USE)\b",
    re.IGNORECASE,
)
# A label a model may put before its prose ("Explanation:", "**Answer:**").
_LABEL = re.compile(r"^\W*(?:explanation|answer|summary)\W*:\W*?(?=\w)", re.IGNORECASE)
TIME_COLUMNS = ("timestamp", "date")
SQL_FENCES = ("", "sql", "duckdb", "postgresql", "trino", "presto", "athena")


class Refusal(Exception):
    """The answer cannot run; the message says why (it is fed back to the model, then to the user)."""


@dataclass(frozen=True)
class ModelAnswer:
    sql: str | None  # None: the model answered without SQL (it says why in `text`)
    explanation: str


@dataclass
class CheckedSql:
    sql: str  # formatted, with what the guard added
    tables: list[str]
    added_limit: bool = False
    added_time_range: bool = False
    on_time: bool = False  # it filters on time (its answer depends on when it was asked)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TimeRange:
    since_ms: int
    until_ms: int
    phrase: str  # the question's words that named it


def read_answer(text: str) -> ModelAnswer:
    """The SQL of a model's answer (one fenced block, or a bare SELECT) and its explanation."""
    blocks = [(lang.lower(), body.strip()) for lang, body in _FENCE.findall(text)]
    code = [body for lang, body in blocks if lang in SQL_FENCES and body]
    if len(code) > 1:
        raise Refusal(f"the answer holds {len(code)} SQL blocks; answer with exactly one SELECT in one ```sql block")
    outside = _FENCE.sub(" ", text)
    if code:
        sql = code[0]
    elif _BARE_SQL.match(text) and not blocks:
        sql, outside = text.strip(), ""
    else:
        return ModelAnswer(None, _prose(text))
    return ModelAnswer(sql.strip().rstrip(";").strip(), _prose(outside))


def read_explanation(text: str) -> str:
    """The words of a model's explanation of a query: fences kept as their text (SQL it echoes dropped)
    and a leading label dropped, as an answer's explanation is read."""
    kept = _FENCE.sub(lambda m: " " if _BARE_SQL.match(m.group(2)) else f" {m.group(2)} ", text)
    return _prose(kept, MAX_QUERY_EXPLANATION_CHARS)


def check_sql(
    sql: str, tables: Collection[str], max_rows: int, implied: TimeRange | None = None, dialect: str = "duckdb"
) -> CheckedSql:
    """`sql` (in sqlglot's `dialect`) as it may run: Refusal with the reason when it may not. DuckDB's
    parse checks Athena's SQL too, as the Athena engine does (aws/athena.py)."""
    try:
        check_select(sql, tables)
    except QueryError as e:
        raise Refusal(e.message) from None
    try:
        parsed = sqlglot.parse(sql, read=dialect)
    except sqlglot.errors.ParseError as e:
        raise Refusal(f"the SQL does not parse: {str(e).splitlines()[0]}") from None
    except RecursionError:  # sqlglot's parse recurses per level: DuckDB reads deeper than Python's stack holds
        raise Refusal(NESTED_TOO_DEEP) from None
    statements = [p for p in parsed if p is not None]
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise Refusal("answer with exactly one SELECT statement")
    tree = statements[0]
    allowed = {t.lower() for t in tables}
    read = tables_of(tree)
    outside = [t for t in read if t not in allowed]
    if outside:
        raise Refusal(f"{outside[0]!r} is not a table here; the tables: {', '.join(sorted(allowed))}")
    checked = CheckedSql("", read)
    limit = tree.args.get("limit")
    if limit is None or _limit_of(limit) is None or _limit_of(limit) > max_rows:
        tree = tree.limit(max_rows)
        checked.added_limit = True
    if implied is not None and not _bounds_time(tree):
        if _addable(tree):
            tree = _with_time_range(tree, implied, dialect)
            checked.added_time_range = True
        else:
            checked.warnings.append(
                f"the question says {implied.phrase!r} but the SQL filters on no time, and loglake could not add "
                "the range to it: it reads every day"
            )
    checked.on_time = has_time_filter(tree)
    checked.sql = _formatted(tree, sql, max_rows if checked.added_limit else None, tables, dialect)
    return checked


def tables_of(tree: exp.Expression) -> list[str]:
    """The tables a query reads (its own WITH names aside), by name, sorted."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return sorted({t.name.lower() for t in tree.find_all(exp.Table) if t.name} - ctes)


def tables_read(sql: str, dialect: str = "duckdb") -> list[str]:
    """The tables a query the sandbox accepted reads."""
    return tables_of(sqlglot.parse_one(sql, read=dialect))


def has_time_filter(tree: exp.Expression) -> bool:
    return any(c.name in TIME_COLUMNS for w in tree.find_all(exp.Where) for c in w.find_all(exp.Column))


def _bounds_time(tree: exp.Query) -> bool:
    """Every read of a lake table is bounded in time, as the estimate's "no time filter" warning judges it: a
    mention of the time in a WHERE (`date IS NOT NULL`, an OR) bounds nothing, and the question's range is due."""
    from loglake.ask.time_bounds import time_bounds  # (it reads TIME_COLUMNS from here)

    return time_bounds(tree).bounded


def _limit_of(limit: exp.Expression) -> int | None:
    value = limit.args.get("expression")
    return int(value.name) if isinstance(value, exp.Literal) and value.name.isdigit() else None


def _addable(tree: exp.Query) -> bool:
    """A plain SELECT from one lake table (no join, no set operation, no sample): a range ANDed to its WHERE
    means what the question said. (DuckDB samples `logs` before its WHERE: a range ANDed to a sampled query
    kept the sample's records of that range, none of 10 records of the whole year for "today".)"""
    if not isinstance(tree, exp.Select) or tree.args.get("joins") or tree.args.get("sample"):
        return False
    source = tree.args.get("from_")
    table = source.this if source is not None else None
    return (
        isinstance(table, exp.Table)
        and table.name.lower() in TABLES
        and not table.args.get("db")
        and not table.args.get("sample")
    )


def _with_time_range(tree: exp.Select, implied: TimeRange, dialect: str) -> exp.Select:
    """The range ANDed to the WHERE, on timestamp and on the date partition (a DATE locally; text,
    'YYYY-MM-DD', in Athena's Glue tables)."""
    table = tree.args["from_"].this
    # Quoted as an identifier of the dialect: the model's alias may hold a double quote (`AS "x""y"`).
    name = exp.to_identifier(table.alias_or_name, quoted=True).sql(dialect)
    since, until = (datetime.fromtimestamp(ms / 1000, UTC) for ms in (implied.since_ms, implied.until_ms))
    last_day = (until - timedelta(milliseconds=1)).date()
    day = "'{}'" if dialect == "athena" else "DATE '{}'"
    condition = (
        f"{name}.\"timestamp\" >= TIMESTAMP '{since:%Y-%m-%d %H:%M:%S}' AND "
        f"{name}.\"timestamp\" < TIMESTAMP '{until:%Y-%m-%d %H:%M:%S}' AND "
        f'{name}."date" BETWEEN {day.format(since.date())} AND {day.format(last_day)}'
    )
    return tree.where(condition, dialect=dialect)


def _formatted(tree: exp.Query, original: str, limit: int | None, tables: Collection[str], dialect: str) -> str:
    """The tree as SQL of `dialect`, pretty; where sqlglot's rendering is not SQL DuckDB's parse reads
    as safe (a construct it renders differently), the original with the limit wrapped around it."""
    text = tree.sql(dialect=dialect, pretty=True)
    try:
        check_select(text, tables)
        return text
    except QueryError:
        return f"SELECT * FROM (\n{original}\n) LIMIT {limit}" if limit is not None else original


# -- the time a question names -----------------------------------------------------------------

_UNITS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_LAST_N = re.compile(r"\b(?:last|past|previous)\s+(\d+|an?|one)?\s*(minute|hour|day|week)s?\b", re.IGNORECASE)
_NAMED = re.compile(r"\b(today|yesterday|this week|last week|this month)\b", re.IGNORECASE)


def implied_range(question: str, now_ms: int, time_zone: str) -> TimeRange | None:
    """The time range a question names ("today", "last 3 hours", "this week"), in the user's zone."""
    now = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(time_zone))
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    found = _NAMED.search(question)
    if found:
        word = found.group(1).lower()
        since, until = {
            "today": (midnight, now),
            "yesterday": (midnight - timedelta(days=1), midnight),
            "this week": (midnight - timedelta(days=now.weekday()), now),
            "last week": (midnight - timedelta(days=now.weekday() + 7), midnight - timedelta(days=now.weekday())),
            "this month": (midnight.replace(day=1), now),
        }[word]
        return TimeRange(_ms(since), _ms(until) if until != now else _next_second(now_ms), found.group(0))
    found = _LAST_N.search(question)
    if found:
        count = found.group(1) or "1"
        n = 1 if count.lower() in ("a", "an", "one") else int(count)
        # From 1970 at the earliest, as records are (model.py): "the last 99999999 days" reached before the year 1,
        # which no datetime holds (a 500 of /ask).
        since_ms = max(0, now_ms - n * _UNITS[found.group(2).lower()] * 1000)
        return TimeRange(since_ms, _next_second(now_ms), found.group(0))
    return None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _prose(text: str, limit: int = MAX_EXPLANATION_CHARS) -> str:
    """Text for a person: one line without a leading label, at most `limit` characters."""
    text = _LABEL.sub("", " ".join(text.split()), count=1)
    return shortened(text, limit)


def _next_second(ms: int) -> int:
    """The end of a range that ends now, as SQL's second-precision literals write it."""
    return (ms // 1000 + 1) * 1000
