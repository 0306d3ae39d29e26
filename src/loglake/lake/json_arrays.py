"""An attribute holding a JSON array matches by any of its values, in search and in Sigma rules alike (as
Elasticsearch finds a keyword array by any of its values): one SQL form for both, in DuckDB's dialect, which the
rules' Athena dialect rewrites (rules/dialect.py) and the AWS search writes in Trino's (aws/athena_search.py)."""

from __future__ import annotations

# Trino's SQL for the text of a JSON value `{json}` (Trino's JSON type), as DuckDB's json_extract_string and
# from_json(..., '["VARCHAR"]') read one: a scalar's text (NULL for null), an object's or array's JSON text. Trino's
# json_extract_scalar is NULL for an object or array, and its cast to VARCHAR (or VARCHAR ARRAY) fails on one.
TRINO_JSON_TEXT = "CASE WHEN is_json_scalar({json}) THEN json_extract_scalar({json}, '$') ELSE json_format({json}) END"


def any_element(json_value: str, element_test: str, column: str = "attributes") -> str:
    """DuckDB SQL true when `json_value` (a json_extract of `column`) is an array one of whose elements (each as
    text, named x; an element that is no scalar is its JSON text) passes `element_test`, NULL or false
    otherwise. Only the records whose column holds a `[` are parsed again: a search for a user over 1M records took
    45-55 ms, 90-100 ms when every record was read twice."""
    elements = f"try(from_json({json_value}, '[\"VARCHAR\"]'))"
    return f"(contains({column}, '[') AND list_bool_or(list_transform({elements}, lambda x: {element_test})))"
