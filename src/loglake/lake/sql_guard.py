"""What a user's SQL may do, checked on DuckDB's own parse of it before it runs.

The query engine runs users' SQL in a locked-down DuckDB (see query.py); this module refuses, with a
clear message, anything but one SELECT over the tables, and rewrites two common text filters into
cheaper ones that select the same rows: `ILIKE '%word%'` into an RE2 match, and a whole-word match
(`regexp_matches(message, '\bword\b', 'i')`) into a plain search for the word first.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
from collections.abc import Collection
from typing import Any

import duckdb

from loglake.lake.sql_sizes import string_constant, unbounded
from loglake.lake.tables import TABLES
from loglake.spelling import typo_of


class QueryError(Exception):
    """A query the engine refuses or cannot answer because of the query itself (HTTP 400)."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field  # the request's field it is about, if one is


ACCESS_HINT = (
    "queries may read only the tables GET /tables lists and the names their own WITH clauses define; "
    "files, URLs, settings, the engine's catalog and extensions are off limits"
)


# A query whose parse tree, plan or answer's type nest deeper than Python's JSON reader (its recursion limit) or
# Arrow (64 levels) reads: the server cannot check or answer it, which is the query's size, not a server fault.
NESTED_TOO_DEEP = (
    "the query nests too deep for the server to read (subqueries, WITH clauses, expressions or lists inside one"
    " another, some hundreds of levels; lists and structs in an answer at most 64): write it flatter"
)


def nested_too_deep() -> QueryError:
    """The refusal of a query that nests deeper than the server reads (NESTED_TOO_DEEP)."""
    return QueryError("query_too_large", NESTED_TOO_DEEP)


_SET_ADVICE = re.compile(r'\s*(?:Use |Try |You can )?["`]?SET [^.]*\.?', re.IGNORECASE)
# Where a Python traceback starts in DuckDB's message: on a line of its own (an import that failed), or after
# "Detail: Python exception:" (a live table's generator raised; what it raised is said before that too).
_TRACEBACK = re.compile(r"(?:\.?\s*Detail: Python exception:)?\s*Traceback \(most recent call last\)")


def _message(error: Exception) -> str:
    """DuckDB's message, without a Python traceback it may carry (server paths are no client's business)
    and without its advice to change a setting, which the sandbox never lets a query do."""
    text = _TRACEBACK.split(str(error), 1)[0].strip()
    return _SET_ADVICE.sub("", text).strip()


def check_select(sql: str, tables: Collection[str] = tuple(TABLES)) -> dict:
    """Accept exactly one SELECT statement (WITH ... SELECT included) that reads only `tables` (by
    default the lake's; users' queries on the local engine may read its live tables too, rules may not);
    return its parse tree. DuckDB's own sandbox (query.py) stops file access anyway; refusing
    here too gives a clear message and keeps files under the lake (also retired ones) out of reach."""
    if not sql.strip():
        raise QueryError("invalid_query", "the query is empty; send one SELECT statement")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError("invalid_query", _message(e)) from None
    if len(statements) != 1:
        raise QueryError("invalid_query", f"send exactly one statement, not {len(statements)}")
    if statements[0].type == duckdb.StatementType.EXPLAIN:
        raise QueryError(
            "read_only",
            'send the SELECT alone with "explain": true (loglake query --explain): it is run and its plan answered'
            " with what each step read",
        )
    if statements[0].type != duckdb.StatementType.SELECT:
        raise QueryError(
            "read_only",
            "only SELECT queries are allowed; the query API cannot change data, settings, files or extensions",
        )
    names = frozenset(t.lower() for t in tables)
    try:
        tree = parse_tree(sql)
        _refuse_outside_tables(tree, names, names)
    except RecursionError:
        raise nested_too_deep() from None
    return tree


# Table functions that make rows from their arguments alone; every other one reads files or the
# engine's internals (duckdb_settings(), duckdb_views(), read_parquet(), query(), ...).
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
# Scalar functions that read the engine's settings, variables, catalog or identity, or change its
# state; with catalog_functions(), every function that could tell a query more than its tables hold.
DENIED_FUNCTIONS = frozenset(
    {
        "current_setting",
        "getvariable",
        "version",
        "current_database",
        "current_catalog",
        "current_schema",
        "current_schemas",
        "in_search_path",
        "current_user",
        "current_role",
        "session_user",
        "user",
        "current_connection_id",
        "current_query_id",
        "current_transaction_id",
        "txid_current",
        "json_serialize_plan",  # binds the SQL it is given: a plan of duckdb_views() shows the views
        "nextval",
        "currval",
        "setval",
        "setseed",
        "write_log",
    }
)


@functools.cache
def catalog_functions() -> frozenset[str]:
    """DuckDB's functions that describe its catalog: those of the pg_catalog schema (PostgreSQL
    look-alikes that read DuckDB's catalog, or answer constants) and the macros that run a query of
    their own (pg_get_viewdef() reads duckdb_views(): the SQL of the `logs` view). Asked of DuckDB
    itself, so a new version's additions are refused too."""
    rows = _parser().execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() WHERE schema_name <> 'main'"
        " OR (function_type = 'macro' AND macro_definition ILIKE '%select%')"
    )
    return frozenset(name.lower() for (name,) in rows.fetchall())


@functools.cache
def aggregate_functions() -> frozenset[str]:
    """The names of DuckDB's aggregate functions (asked of DuckDB itself, as catalog_functions)."""
    rows = _parser().execute("SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type = 'aggregate'")
    return frozenset(name.lower() for (name,) in rows.fetchall())


def _refuse_outside_tables(node: Any, names: frozenset[str], tables: frozenset[str]) -> None:
    """Walk the parse tree; `names` are the (lower-case) table and WITH names in scope, `tables` the
    tables alone. A WITH name is in scope in its query and the later WITH clauses of the same list, as
    DuckDB binds it: out of its scope (or in its own, not recursive, definition) the same name means
    the engine's catalog. A recursive WITH's name is in scope in its recursive branch, not its first."""
    if isinstance(node, list):
        for item in node:
            _refuse_outside_tables(item, names, tables)
        return
    if not isinstance(node, dict):
        return
    ctes = (node.get("cte_map") or {}).get("map")
    if ctes:
        for cte in ctes:
            _refuse_outside_tables(cte["value"], names, tables)
            names = names | {cte["key"].lower()}
        _refuse_outside_tables({k: v for k, v in node.items() if k != "cte_map"}, names, tables)
        return
    kind = node.get("type")
    if kind == "RECURSIVE_CTE_NODE":
        # DuckDB binds the first branch before the WITH name: there the name means the engine's catalog (a
        # view of its own, a file's path), as in a WITH that is not recursive; the recursive branch reads it.
        _refuse_outside_tables(node.get("left"), names, tables)
        names = names | {node.get("cte_name", "").lower()}
        node = {k: v for k, v in node.items() if k != "left"}
    elif kind == "BASE_TABLE":
        name = node.get("table_name", "")
        if node.get("schema_name") or node.get("catalog_name"):
            qualified = ".".join(node.get("qualified_name", {}).get("path", [name]))
            raise QueryError("forbidden", f"{qualified!r}: name tables without a schema or catalog; {ACCESS_HINT}")
        if name.lower() not in names:
            meant = typo_of(name.lower(), tables)
            guess = f"did you mean {meant[0]!r}? " if meant else ""
            raise QueryError(
                "forbidden",
                f"{name!r} is not a table here ({guess}the tables here: {', '.join(sorted(tables))}); {ACCESS_HINT}",
            )
    elif kind == "TABLE_FUNCTION":
        function = node.get("function", {})
        name = function.get("function_name", "")
        if name.lower() not in ALLOWED_TABLE_FUNCTIONS:
            raise QueryError("forbidden", f"{name}() is not available: {ACCESS_HINT}")
        _refuse_function(function)  # (not sized: a table function's rows stream)
        _refuse_outside_tables(list(function.values()), names, tables)  # (its arguments, not itself again)
        node = {k: v for k, v in node.items() if k != "function"}
    elif kind == "SHOW_REF" and node.get("table_name"):
        raise QueryError("forbidden", f"SHOW lists the engine's catalog: {ACCESS_HINT}")
    elif node.get("class") == "FUNCTION":
        _refuse_function(node)
        too_large = unbounded(node)
        if too_large:
            raise QueryError("query_too_large", too_large)
    for value in node.values():
        _refuse_outside_tables(value, names, tables)


def _refuse_function(node: dict) -> None:
    """Refuse a call by a qualified name, or of a function off limits."""
    name = node.get("function_name", "")
    if node.get("schema") or node.get("catalog"):
        qualified = ".".join(node.get("qualified_name", {}).get("path", [name]))
        raise QueryError("forbidden", f"{qualified}(): call functions by their plain name; {ACCESS_HINT}")
    if name.lower() in DENIED_FUNCTIONS or name.lower() in catalog_functions():
        raise QueryError("forbidden", f"{name}() is not available: {ACCESS_HINT}")


# `x ILIKE '%word%'` is how most people write "contains, any case", and DuckDB's ILIKE on a Parquet
# scan costs about twice RE2's case-insensitive search (10M messages: 1.0 s against 0.68 s here). So
# such a predicate in a WHERE or HAVING clause, its word ASCII, is rewritten on the parsed query
# (json_serialize_sql) to an RE2 match of exactly the characters ILIKE takes for each of the word's
# (ilike_regex): ILIKE compares characters by their lowercase, so it takes U+0130 (I with a dot) for
# i and U+212A (the Kelvin sign) for k, where RE2's (?i) would miss U+0130 and take U+017F (long s) for
# s. Words with other characters stay ILIKE.
_CONTAINS_PATTERN = re.compile(r"%([^%_\\]+)%")
_ILIKE_ALSO = {"i": "\u0130", "k": "\u212a"}  # besides x and X: what DuckDB lowercases to x
# `regexp_matches(x, '\bword\b', 'i')`, the whole word in any case, costs RE2 about 2.5 times a search
# for the word alone (the word boundaries keep it off its fast path for literals; 1M messages: 1.09 s
# against 0.43 s, one thread). Every match holds the word, so such a filter (a word of letters, digits
# and underscores, a boundary on either side or both, case-insensitive by the 'i' option or `(?i)`,
# else case-sensitive) is rewritten to `regexp_matches(x, '[(?i)]word') AND <the filter as it was>`:
# DuckDB evaluates the second only where the first holds. Both are NULL for a NULL message, so the
# conjunction has the original filter's value in every case (under NOT too).
_WORD_PATTERN = re.compile(r"(\(\?i\))?(?=.*\\b)(?:\\b)?(\w+)(?:\\b)?", re.ASCII)
_REWRITE_UNDER = ("where_clause", "having")
_RE2_SPECIAL = re.compile(r"[\\.^$|?*+()\[\]{}-]")
_parsing = threading.local()


# A dashboard or a script sends the same SQL again and again. Its check and rewrite take two or three
# DuckDB calls (0.2-0.6 ms: a fifth of a query over `logs` that reads nothing, a few percent of a count
# over a million lake records), so their outcome is kept for the latest texts; long texts are not kept,
# so the kept trees stay small.
CHECKED_KEPT = 256
CHECKED_KEPT_CHARS = 4096


def checked_select(sql: str, tables: tuple[str, ...]) -> tuple[dict, str]:
    """check_select's tree of a user's query (shared between calls: read it, never change it) and the SQL
    to run (rewrite_text_filters'). Refused queries raise QueryError each time."""
    if len(sql) > CHECKED_KEPT_CHARS:
        return _checked_select(sql, tables)
    return _kept_checked_select(sql, tables)


def _checked_select(sql: str, tables: tuple[str, ...]) -> tuple[dict, str]:
    tree = check_select(sql, tables)
    return tree, rewrite_text_filters(_statement_alone(sql), tree)


def _statement_alone(sql: str) -> str:
    """The one statement without the semicolons (and comments) after it: the engine runs it again inside
    other SQL (a result's intervals as text, its nested values as Arrow), where a semicolon is a syntax error."""
    text = sql.encode()  # (DuckDB's tokens start at byte offsets)
    tokens = [at for at, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment]
    end = None
    while tokens and text[tokens[-1] : tokens[-1] + 1] == b";":
        end = tokens.pop()
    return sql if end is None else text[:end].decode()


_kept_checked_select = functools.lru_cache(maxsize=CHECKED_KEPT)(_checked_select)


def rewrite_text_filters(sql: str, tree: dict | None = None) -> str:
    """The query with `col ILIKE '%literal%'` filters as case-insensitive regex matches and whole-word
    regex matches behind a search for the word (or as it was)."""
    if "ilike" not in sql.lower() and "regexp_matches" not in sql.lower():
        return sql
    try:
        tree = json.loads(json.dumps(tree)) if tree is not None else parse_tree(sql)
        if not _rewrite(tree, inside_filter=False):
            return sql
        return sql_text(tree)
    except (duckdb.Error, QueryError):
        return sql


def parse_tree(sql: str) -> dict:
    """DuckDB's own parse of a SELECT, as JSON (json_serialize_sql)."""
    tree = json.loads(_parser().execute("SELECT json_serialize_sql($1)", [sql]).fetchone()[0])
    if tree.get("error"):
        raise QueryError("invalid_query", tree.get("error_message") or "the query cannot be parsed")
    return tree


def sql_text(tree: dict) -> str:
    """The SQL of a parse tree (parse_tree's form), as DuckDB writes it."""
    return _parser().execute("SELECT json_deserialize_sql($1::JSON)", [json.dumps(tree)]).fetchone()[0]


def _parser() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection of this thread that only parses (no data, no file access)."""
    con = getattr(_parsing, "con", None)
    if con is None:
        con = _parsing.con = duckdb.connect(config={"enable_external_access": False, "threads": 1})
    return con


def case_insensitive_regex(text: str) -> str:
    """An RE2 pattern matching `text` anywhere, in any case."""
    return "(?i)" + _RE2_SPECIAL.sub(r"\\\g<0>", text)


def ilike_regex(text: str) -> str:
    """An RE2 pattern that matches where `ILIKE '%text%'` does, for an ASCII text without LIKE's
    wildcards: each letter as the class of the characters DuckDB lowercases to it."""
    return "".join(
        f"[{c.lower()}{c.upper()}{_ILIKE_ALSO.get(c.lower(), '')}]" if c.isalpha() else _RE2_SPECIAL.sub(r"\\\g<0>", c)
        for c in text
    )


def _rewrite(node: Any, inside_filter: bool) -> bool:
    changed = False
    if isinstance(node, list):
        for item in node:
            changed |= _rewrite(item, inside_filter)
        return changed
    if not isinstance(node, dict):
        return False
    if inside_filter and _word_prefilter(node):
        return True  # its arguments are a column and constants: nothing more to rewrite inside
    if inside_filter and node.get("class") == "FUNCTION" and node.get("function_name") == "~~*":
        pattern = node["arguments"][1]["expression"]
        literal = pattern.get("literal", {}) if pattern.get("class") == "CONSTANT" else {}
        found = _CONTAINS_PATTERN.fullmatch(literal.get("text", "")) if literal.get("kind") == "STRING" else None
        if found and found.group(1).isascii():
            literal["text"] = ilike_regex(found.group(1))
            node.update(function_name="regexp_matches", is_operator=False, qualified_name={"path": ["regexp_matches"]})
            changed = True
    for key, value in node.items():
        changed |= _rewrite(value, inside_filter or key in _REWRITE_UNDER)
    return changed


def _word_prefilter(node: dict) -> bool:
    """Put a search for the word before a whole-word `regexp_matches(column, pattern[, 'i' | 'c'])`."""
    if node.get("class") != "FUNCTION" or node.get("function_name") != "regexp_matches" or node.get("schema"):
        return False
    arguments = [argument["expression"] for argument in node["arguments"]]
    texts = [string_constant(a) for a in arguments[1:]]
    if not (2 <= len(arguments) <= 3 and arguments[0].get("class") == "COLUMN_REF" and None not in texts):
        return False
    options = texts[1] if len(texts) == 2 else ""
    found = _WORD_PATTERN.fullmatch(texts[0]) if options in ("", "i", "c") else None
    if found is None:
        return False
    flag, word = found.groups()
    original = copy.deepcopy(node)
    search = copy.deepcopy(node)  # regexp_matches too, so that a column that is not text is cast alike
    del search["arguments"][2:]
    search["arguments"][1]["expression"]["literal"]["text"] = ("(?i)" if flag or options == "i" else "") + word
    node.clear()
    node.update({"class": "CONJUNCTION", "type": "CONJUNCTION_AND", "alias": "", "children": [search, original]})
    return True


def client_error(error: duckdb.Error) -> QueryError:
    """A DuckDB error caused by the query itself, as the QueryError the API answers with (400)."""
    text = _message(error)
    if isinstance(error, duckdb.PermissionException):
        return QueryError("forbidden", f"{text} ({ACCESS_HINT})")
    if isinstance(error, duckdb.CatalogException | duckdb.BinderException | duckdb.ParserException):
        return QueryError("invalid_query", text)
    return QueryError("query_failed", text)
