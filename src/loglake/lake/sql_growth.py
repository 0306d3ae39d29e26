"""Whether a query's values can grow past what it reads: which users' SQL must run in a query worker.

DuckDB's memory limit counts its operators' buffers, not the values an expression makes, so a query that makes
values may take any amount of memory (query_workers.py runs it in a process of its own, watched). A query whose
every function answers a value no larger than its arguments, or of a fixed size (a comparison, a count, a
substring, a date), cannot: its memory is what DuckDB's limit bounds, and it runs on the server's own engine,
without a worker's start or its memory. Anything not known to stay small (a function not listed here, a lambda,
a table function, a recursive CTE) goes to a worker.
"""

from __future__ import annotations

from typing import Any

# Scalar functions and operators whose answer is no larger than their arguments, or of a fixed size.
_SMALL_SCALARS = frozenset(
    {
        # comparisons, arithmetic, pattern matches (as the parser names operators)
        *("=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "//", "%", "^", "**"),
        *("~~", "!~~", "~~*", "!~~*", "~~~", "^@", "like", "ilike", "not_like", "not_ilike", "glob"),
        *("regexp_matches", "regexp_full_match", "regexp_extract", "contains", "starts_with", "ends_with"),
        *("prefix", "suffix", "instr", "position", "strpos"),
        # text no longer than its argument
        *("lower", "upper", "lcase", "ucase", "trim", "ltrim", "rtrim", "substring", "substr", "left", "right"),
        *("split_part", "length", "len", "strlen", "octet_length", "bit_length", "hash", "md5", "sha256"),
        *("json_extract", "json_extract_string", "->", "->>", "json_valid", "json_type"),
        # numbers and times
        *("abs", "round", "floor", "ceil", "ceiling", "sign", "sqrt", "ln", "log", "log10", "log2", "exp", "pow"),
        *("power", "greatest", "least", "coalesce", "ifnull", "nullif", "isnan", "isinf", "isfinite"),
        *("date_trunc", "datetrunc", "date_part", "datepart", "extract", "date_diff", "datediff", "date_sub"),
        *("time_bucket", "strftime", "strptime", "epoch", "epoch_ms", "epoch_us", "epoch_ns", "to_timestamp"),
        *("make_timestamp", "make_date", "year", "month", "day", "hour", "minute", "second", "dayofweek"),
        *("dayofyear", "week", "yearweek", "quarter", "now", "current_timestamp", "current_date", "today"),
        *("to_seconds", "to_minutes", "to_hours", "to_days", "to_weeks", "to_months", "to_years", "to_milliseconds"),
        *("to_microseconds", "trunc", "age", "timezone"),  # (INTERVAL 1 DAY is to_days(trunc(1)))
        # aggregates and windows of a fixed size
        *("count", "count_star", "sum", "avg", "mean", "min", "max", "first", "last", "any_value", "arg_min"),
        *("arg_max", "argmin", "argmax", "min_by", "max_by", "bool_and", "bool_or", "stddev", "stddev_pop"),
        *("stddev_samp", "variance", "var_pop", "var_samp", "median", "quantile", "quantile_cont"),
        *("quantile_disc", "approx_count_distinct", "approx_quantile", "count_if", "countif", "sum_no_overflow"),
        *("row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead"),
        *("first_value", "last_value", "nth_value"),
    }
)


def values_stay_small(tree: Any) -> bool:
    """Whether every value the parsed query (sql_guard.parse_tree's tree) makes is no larger than what it reads
    or of a fixed size."""
    if isinstance(tree, list):
        return all(map(values_stay_small, tree))
    if not isinstance(tree, dict):
        return True
    kind = tree.get("class")
    if kind == "FUNCTION" and (tree.get("function_name", "").lower() not in _SMALL_SCALARS or tree.get("schema")):
        return False
    if kind == "LAMBDA" or tree.get("type") in ("TABLE_FUNCTION", "RECURSIVE_CTE_NODE"):
        return False
    return all(map(values_stay_small, tree.values()))
