"""The hot rows a top-N by time can use: `ORDER BY timestamp DESC LIMIT n` stops reading the hot store early.

`SELECT ... FROM logs [WHERE p] ORDER BY timestamp [DESC] LIMIT n [OFFSET m]` answers with rows among the
n + m newest (or oldest) records that match p, wherever they are. DuckDB cannot know that the hot rows
come in time order, so its top-N would take in every hot row: time and memory that grow with the hot store.
For a query of that shape the engine instead reads the hot rows newest (or oldest) first, along the hot
store's primary key (id order is time order, ids.py), and gives `logs` only the first n + m of them that
match p: DuckDB's LIMIT stops the read there, however many records are hot. The lake's part is left as
it is (DuckDB's top-N skips its row groups by their time statistics).

Only a query whose answer cannot change is given this: the shape above over `logs` alone, its one sort key
the record's own timestamp, nothing computed over all rows (no aggregate, window, DISTINCT, GROUP BY,
HAVING, QUALIFY, sample or subquery), and a predicate that reads only the record's columns and gives the
same value each time it is evaluated (it is evaluated on the hot rows before the limit, and again by the
query). A tie at the n-th time may be broken otherwise than over the lake alone: any such row is an
answer of the query, as SQL leaves the order of equal keys open.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from loglake.digits import is_ascii_digits
from loglake.lake.sql_guard import aggregate_functions, parse_tree, sql_text
from loglake.lake.tables import APP_LOGS_TABLE

_COLUMNS = frozenset([*(c.name for c in APP_LOGS_TABLE.columns), "date"])
# Functions whose value changes from one evaluation to the next: a predicate evaluated twice must agree.
_VOLATILE = frozenset({"random", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "nextval", "currval"})
_ANYWHERE_REFUSED = frozenset({"WINDOW", "SUBQUERY"})  # expression classes that need more than one row
# Functions that make any number of rows of one, none included: the first n rows could then come from more.
_ROWS_FROM_A_ROW = frozenset({"unnest"})


@dataclass(frozen=True)
class HotTop:
    """Of the hot rows, the query can use only the first `rows` matching `where` in time order."""

    newest_first: bool
    rows: int
    where: dict | None  # the query's WHERE, as DuckDB's parse tree
    alias: str  # the name the query reads `logs` by, which the predicate's columns may be qualified with

    def view(self, source: str) -> str:
        """A SELECT of the first `rows` rows of `source` (the hot rows, in the order read) matching `where`."""
        alias = '"' + self.alias.replace('"', '""') + '"'
        tree = parse_tree(f"SELECT * FROM ({source}) AS {alias} LIMIT {self.rows:d}")
        tree["statements"][0]["node"]["where_clause"] = copy.deepcopy(self.where)
        return sql_text(tree)


def hot_top(tree: dict, cap: int) -> HotTop | None:
    """What of the hot rows the query of `tree` (parse_tree) can use, if it is a top-N by time over `logs`;
    `cap` is the most rows its answer may hold (a sort without LIMIT is cut there too)."""
    node = tree["statements"][0]["node"]
    if node.get("type") != "SELECT_NODE" or (node.get("cte_map") or {}).get("map"):
        return None
    table = node.get("from_table") or {}
    if not (
        table.get("type") == "BASE_TABLE"
        and table.get("table_name", "").lower() == APP_LOGS_TABLE.name
        and not (table.get("schema_name") or table.get("catalog_name") or table.get("sample"))
        and not (table.get("column_name_alias") or table.get("at_clause"))
    ):
        return None
    if any(node.get(k) for k in ("group_expressions", "group_sets", "having", "qualify", "sample")):
        return None
    if node.get("aggregate_handling", "STANDARD_HANDLING") != "STANDARD_HANDLING":  # GROUP BY ALL
        return None
    alias = table.get("alias") or APP_LOGS_TABLE.name
    order = _time_order(node.get("modifiers", []), alias)
    rows = _rows_needed(node.get("modifiers", []), cap)
    if order is None or rows is None or not _keeps_timestamp(node.get("select_list", []), alias):
        return None
    if _refused_anywhere({k: v for k, v in node.items() if k != "modifiers"}):
        return None
    where = node.get("where_clause")
    if where is not None and not _row_predicate(where, alias):
        return None
    return HotTop(newest_first=order, rows=rows, where=where, alias=alias)


def _time_order(modifiers: list[dict], alias: str) -> bool | None:
    """True for ORDER BY timestamp DESC, False for ascending, None for any other order or none."""
    orders = [m for m in modifiers if m.get("type") == "ORDER_MODIFIER"]
    if (
        len(orders) != 1
        or len(orders[0]["orders"]) != 1
        or any(m.get("type") == "DISTINCT_MODIFIER" for m in modifiers)
    ):
        return None
    key = orders[0]["orders"][0]
    if not _is_column(key["expression"], "timestamp", alias):
        return None
    return {"DESCENDING": True, "ASCENDING": False, "ORDER_DEFAULT": False}.get(key["type"])


def _rows_needed(modifiers: list[dict], cap: int) -> int | None:
    """How many rows in time order the answer may come from: its first rows up to the cap + 1 the engine
    fetches (or the LIMIT, if smaller) after the OFFSET; None for a limit that is not a constant count."""
    limits = [m for m in modifiers if m.get("type") in ("LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER")]
    if not limits:
        return cap + 1
    if len(limits) != 1 or limits[0].get("limit_type") != "ROW_COUNT":
        return None
    limit, offset = limits[0].get("limit"), limits[0].get("offset")
    counts = [_count(limit) if limit is not None else cap + 1, _count(offset) if offset is not None else 0]
    return None if None in counts else min(counts[0], cap + 1) + counts[1]


def _count(expression: dict) -> int | None:
    literal = expression.get("literal", {}) if expression.get("class") == "CONSTANT" else {}
    text = literal.get("text", "") if literal.get("kind") in ("INTEGER", "BIGINT", "HUGEINT") else ""
    return int(text) if is_ascii_digits(text) else None


def _keeps_timestamp(select_list: list[dict], alias: str) -> bool:
    """No output column is named `timestamp` but the record's own: ORDER BY binds such a name first."""
    for item in select_list:
        if item.get("class") == "STAR" and (item.get("replace_list") or item.get("rename_list")):
            return False
        if item.get("alias", "").lower() == "timestamp" and not _is_column(item, "timestamp", alias):
            return False
    return True


def _refused_anywhere(node: Any) -> bool:
    """An expression that needs more than one row (a window, a subquery, an aggregate) or makes rows."""
    if isinstance(node, list):
        return any(_refused_anywhere(item) for item in node)
    if not isinstance(node, dict):
        return False
    if node.get("class") in _ANYWHERE_REFUSED:
        return True
    name = node.get("function_name", "").lower() if node.get("class") == "FUNCTION" else ""
    if name and (name in aggregate_functions() or name in _ROWS_FROM_A_ROW):
        return True
    return any(_refused_anywhere(value) for value in node.values())


def _row_predicate(node: Any, alias: str) -> bool:
    """A predicate over the record's own columns alone (plain or qualified by the query's name for
    `logs`) that gives the same value each time: nothing volatile, no parameter."""
    if isinstance(node, list):
        return all(_row_predicate(item, alias) for item in node)
    if not isinstance(node, dict):
        return True
    kind = node.get("class")
    if kind == "COLUMN_REF":
        names = [n.lower() for n in node.get("column_names", [])]
        return names[-1] in _COLUMNS and names[:-1] in ([], [alias.lower()])
    if kind in ("PARAMETER", "LAMBDA", "STAR"):
        return False
    if kind == "FUNCTION" and node.get("function_name", "").lower() in _VOLATILE:
        return False
    return all(_row_predicate(value, alias) for value in node.values())


def _is_column(expression: dict, name: str, alias: str) -> bool:
    names = [n.lower() for n in expression.get("column_names", [])] if expression.get("class") == "COLUMN_REF" else []
    return names in ([name], [alias.lower(), name])
