"""A stand-in for Athena's query API that runs the SQL on DuckDB over a local lake folder.

moto's Athena answers every query with rows queued beforehand; it never runs the SQL. To test what
our Athena SQL (Trino's dialect) *means*, this client runs it on DuckDB over the lake's real Parquet
files, laid out as the Glue table declares them (`date` a string partition). Trino functions DuckDB
lacks become macros: regexp_like (RE2 and Java regexes agree on what we send), any_match and transform
(a lambda as Trino writes it, `x -> ...`, which DuckDB takes once told to), is_json_scalar, json_format
and json_extract_scalar with bracketed keys (`$["a"]["b"]`), NULL for an object or array as in Trino
(DuckDB's json_extract_string gives their JSON text); json_extract's bracketed keys, which DuckDB
writes otherwise and whose function a macro cannot replace, are rewritten in the SQL text, and so is a
cast to VARCHAR ARRAY, which fails on an array holding an object or array, as Trino's does (DuckDB's
gives their JSON text). DuckDB's functions Trino lacks (from_json, list_transform, ...) fail the query,
as Athena would. It speaks the boto3 calls and shapes the engine uses: start, get execution, get
results (header row, column info, pages with NextToken), stop.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import duckdb

from loglake.lake.tables import TABLES, LakeTable, sql_type

_ATHENA_TYPES = {"VARCHAR": "varchar", "BIGINT": "bigint", "INTEGER": "integer", "DOUBLE": "double"}


class DuckDBAthena:
    def __init__(self, lake_dir: Path, page_size: int = 1000) -> None:
        self.page_size = page_size
        self.system_failures = 0  # the next N queries fail on Athena's side (AthenaError category 1)
        self.sql_sent: list[str] = []
        self.stopped: list[str] = []  # the ids of the executions told to stop
        self._results: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.db = duckdb.connect()
        self.db.execute("CREATE MACRO regexp_like(s, p) AS regexp_matches(s, p)")
        self.db.execute("SET lambda_syntax = 'ENABLE_SINGLE_ARROW'")
        self.db.execute("CREATE MACRO any_match(items, test) AS list_bool_or(list_transform(items, test))")
        self.db.execute("CREATE MACRO transform(items, f) AS list_transform(items, f)")
        self.db.execute(
            """CREATE MACRO trino_path(p) AS '$' || regexp_replace(substr(p, 2), '\\["([^"]*)"\\]', '."\\1"', 'g')"""
        )
        self.db.execute(
            "CREATE MACRO json_extract_scalar(j, p) AS CASE WHEN json_type(j, trino_path(p)) NOT IN ('OBJECT', 'ARRAY')"
            " THEN json_extract_string(j, trino_path(p)) END"
        )
        self.db.execute("CREATE MACRO is_json_scalar(j) AS json_type(j) NOT IN ('OBJECT', 'ARRAY')")
        self.db.execute("CREATE MACRO json_format(j) AS CAST(j AS VARCHAR)")
        self.db.execute(  # (a text that is no list, cast to one: a conversion error, which try() makes NULL)
            "CREATE MACRO trino_varchar_array(j) AS CASE"
            " WHEN list_bool_or([json_type(item) IN ('OBJECT', 'ARRAY') FOR item IN CAST(j AS JSON[])])"
            " THEN CAST('INVALID_CAST_ARGUMENT: Cannot cast to array(varchar): ' || j AS VARCHAR[])"
            " ELSE CAST(j AS VARCHAR[]) END"
        )
        for table in TABLES.values():
            self._define(lake_dir, table)

    def _define(self, lake_dir: Path, table: LakeTable) -> None:
        """The table as Glue declares it: its Parquet files with their partitions as text, not the
        `type=` folder above them; a table without files yet is empty (a view binds to a first file)."""
        folder = lake_dir / f"type={table.directory}"
        files = (folder / "/".join("*" for _ in table.partitions) / "*.parquet").as_posix()
        if not any(folder.glob("/".join("*" for _ in table.partitions) + "/*.parquet")):
            columns = ", ".join(
                [f'"{c.name}" {sql_type(c.type)}' for c in table.columns] + [f'"{p}" VARCHAR' for p in table.partitions]
            )
            self.db.execute(f"CREATE TABLE {table.name} ({columns})")
            return
        types = ", ".join(f"'{p}': VARCHAR" for p in table.partitions)
        self.db.execute(
            f"CREATE VIEW {table.name} AS SELECT * EXCLUDE (type) FROM read_parquet('{files}',"
            f" hive_partitioning = true, hive_types = {{{types}}})"
        )

    def start_query_execution(self, QueryString: str, **_: Any) -> dict:
        execution_id = f"q-{next(self._ids)}"
        self.sql_sent.append(QueryString)
        if self.system_failures:
            self.system_failures -= 1
            error = {"ErrorCategory": 1, "ErrorType": 401, "Retryable": True}
            self._results[execution_id] = {"state": "FAILED", "reason": "Internal error", "error": error}
            return {"QueryExecutionId": execution_id}
        try:
            if lacking := _NOT_IN_TRINO.search(QueryString):  # DuckDB has them: Athena would refuse the query
                raise duckdb.CatalogException(
                    f"FUNCTION_NOT_FOUND: Function '{lacking.group(1).lower()}' not registered"
                )
            cursor = self.db.execute(_in_duckdbs_words(QueryString))
            columns = [(d[0], _ATHENA_TYPES.get(str(d[1]), str(d[1]).lower())) for d in cursor.description]
            self._results[execution_id] = {"state": "SUCCEEDED", "columns": columns, "rows": cursor.fetchall()}
        except duckdb.Error as e:  # what Athena calls a user error (category 2)
            error = {"ErrorCategory": 2, "ErrorType": 1100, "Retryable": False}
            self._results[execution_id] = {"state": "FAILED", "reason": str(e), "error": error}
        return {"QueryExecutionId": execution_id}

    def get_query_execution(self, QueryExecutionId: str) -> dict:
        result = self._results[QueryExecutionId]
        status = {"State": result["state"], "StateChangeReason": result.get("reason", "")}
        if "error" in result:
            status["AthenaError"] = result["error"]
        return {"QueryExecution": {"Status": status, "Statistics": {"DataScannedInBytes": 1}}}

    def get_query_results(self, QueryExecutionId: str, MaxResults: int, NextToken: str = "0") -> dict:
        result = self._results[QueryExecutionId]
        header = [{"Data": [{"VarCharValue": name} for name, _ in result["columns"]]}]
        data = [{"Data": [{} if v is None else {"VarCharValue": str(v)} for v in row]} for row in result["rows"]]
        rows = header + data
        start = int(NextToken)
        end = start + min(MaxResults, self.page_size)
        page: dict[str, Any] = {
            "ResultSet": {
                "Rows": rows[start:end],
                "ResultSetMetadata": {"ColumnInfo": [{"Name": n, "Type": t} for n, t in result["columns"]]},
            }
        }
        if end < len(rows):
            page["NextToken"] = str(end)
        return page

    def stop_query_execution(self, QueryExecutionId: str) -> dict:
        self.stopped.append(QueryExecutionId)
        return {}


# DuckDB's functions that Trino lacks, which a query written for Athena must not call
_NOT_IN_TRINO = re.compile(
    r"\b(from_json|list_bool_or|list_transform|json_extract_string|regexp_matches)\s*\(", re.IGNORECASE
)
_JSON_EXTRACT_PATH = re.compile(r"""json_extract\("?attributes"?, '(\$[^']*)'\)""", re.IGNORECASE)
_BRACKETED_KEY = re.compile(r'\["((?:[^"\\]|\\.)*)"\]')


_VARCHAR_ARRAY_CAST = re.compile(r"\s+AS\s+VARCHAR\s+ARRAY\s*\)", re.IGNORECASE)


def _in_duckdbs_words(sql: str) -> str:
    """Trino's SQL as DuckDB writes it where a macro cannot say it: json_extract's paths with dotted keys
    (`$."a"."b"`), and `CAST(x AS VARCHAR ARRAY)` as trino_varchar_array(x)."""

    def dotted(path: re.Match[str]) -> str:
        return "json_extract(attributes, '" + _BRACKETED_KEY.sub(r'."\1"', path.group(1)) + "')"

    sql = _JSON_EXTRACT_PATH.sub(dotted, sql)
    while cast := _VARCHAR_ARRAY_CAST.search(sql):
        opening = _opening_parenthesis(sql, cast.start())
        assert sql[opening - 4 : opening].upper() == "CAST", sql
        sql = f"{sql[: opening - 4]}trino_varchar_array({sql[opening + 1 : cast.start()]}){sql[cast.end() :]}"
    return sql


def _opening_parenthesis(sql: str, end: int) -> int:
    """Where the parenthesis open at `end` opens (text in quotes aside)."""
    depth, quoted = 0, False
    for i in range(end - 1, -1, -1):
        if sql[i] == "'":
            quoted = not quoted
        elif not quoted and sql[i] == ")":
            depth += 1
        elif not quoted and sql[i] == "(":
            if depth == 0:
                return i
            depth -= 1
    raise ValueError(f"no opening parenthesis before {end} in {sql}")
