"""The model's instructions, built from the live catalog at each question: the tables the query engine
serves, their columns with types and meanings, partition keys, a few real values of the columns a
question names by value (services, log types, Amplify apps, edge results), the current time in the
user's time zone, and the SQL dialect.

Sample values come cheaply: the lake's files are written in row groups of one service each, so the
smallest and largest value in a row group's footer statistics (footers.py, read once per file) are
real values; a row group of several (a bulk batch's part, until compaction rewrites it) has the values
between them read from its column's chunk, once per file; the hot store adds its services by a skip-scan
of its service index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from loglake.ask.footers import Footers
from loglake.lake.layout import partitions_of
from loglake.lake.query import QueryEngine
from loglake.lake.tables import TABLES, LakeTable, partition_type, sql_type
from loglake.model import SEVERITY_NAMES

MAX_SAMPLES = 12  # values shown per column
SAMPLED_FILES = 16  # the newest files of a table whose footers give sample values
# The columns questions name by value ("for service payments", "5xx from app shop"), per table.
SAMPLED_COLUMNS = {
    "logs": ("service", "log_type"),
    "amplify_access": ("app", "x_edge_result_type", "cs_method", "sc_status"),
}
DIALECTS = {"duckdb": "DuckDB", "athena": "Athena (Trino)"}  # sqlglot's dialect names, as a prompt says them

_RULES = """\
Answer with exactly one read-only SQL SELECT statement in a ```sql fenced block, then one or two
sentences that explain what it returns. Rules:
- Read only the tables listed here; no other tables, files, URLs, settings or functions that read them.
- Write times as UTC literals computed from the current time above, e.g. timestamp >= TIMESTAMP
  '2026-12-01 00:00:00' (not now() arithmetic): literals let the engine skip the files out of range.
  A day in the user's time zone starts at its local midnight; convert it to UTC.
- When the question names a time range, filter on timestamp (and on date, the partition, for whole days).
- Always end with a LIMIT (at most {max_rows}).
- If the question cannot be answered from these tables, say so in one sentence without SQL."""


@dataclass(frozen=True)
class Prompt:
    system: str
    schema_version: str  # changes when a table, column or type changes (not with the data)


class PromptBuilder:
    def __init__(self, engine: QueryEngine, footers: Footers, dialect: str = "duckdb") -> None:
        self.engine = engine
        self.footers = footers
        self.dialect = DIALECTS[dialect]

    def build(self, now_ms: int, time_zone: str, max_rows: int) -> Prompt:
        schema = "\n\n".join(self._describe(t) for t in TABLES.values())
        live = "\n\n".join(
            f"Table {t.name}: {t.description} (live: not in the lake)\n" + column_lines(t.columns)
            for t in self.engine.live_tables
        )
        shape = "|".join(
            f"{t.name}:{','.join(f'{c.name} {c.type}' for c in t.columns)}:{','.join(getattr(t, 'partitions', ()))}"
            for t in (*TABLES.values(), *self.engine.live_tables)
        )
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        local = now.astimezone(ZoneInfo(time_zone))
        system = (
            f"You write {self.dialect} SQL over loglake, a log platform, for the user's questions.\n"
            f"Current time: {now:%Y-%m-%d %H:%M:%S} UTC ({local:%Y-%m-%d %H:%M:%S %Z} in the user's time zone, "
            f"{time_zone}; a week starts on Monday).\n\n{schema}\n\n{live}\n\n" + _RULES.format(max_rows=max_rows)
        )
        return Prompt(system, hashlib.sha256(shape.encode()).hexdigest()[:16])

    def _describe(self, table: LakeTable) -> str:
        samples = self._samples(table)
        lines = [
            f"Table {table.name}: {table.description}",
            column_lines(table.columns, samples),
            *(
                f"- {key} {sql_type(partition_type(key))}: partition key (free to filter on; "
                f"{'the record day, UTC' if key == 'date' else 'the app name'})"
                + (f"; values: {listing(samples[key])}" if samples.get(key) else "")
                for key in table.partitions
            ),
        ]
        if table.name == "logs":
            lines.append(f"  severity values: {', '.join(SEVERITY_NAMES)}; attributes is JSON text (use ->> 'key')")
        return "\n".join(lines)

    def _samples(self, table: LakeTable) -> dict[str, list]:
        wanted = SAMPLED_COLUMNS.get(table.name, ())
        found: dict[str, set] = {c: set() for c in wanted}
        keys = [
            key
            for (key,) in self.engine.store.read(
                "SELECT key FROM lake_files WHERE table_name = ? ORDER BY max_ts DESC LIMIT ?",
                (table.name, SAMPLED_FILES),
            )
        ]
        for key in keys:
            for name, value in partitions_of(key).items():
                if name in found:
                    found[name].add(value)
            for index, group in enumerate(self.footers.of(key)):
                for column in wanted:
                    bounds = group.bounds.get(column)
                    if bounds is None:
                        continue
                    found[column].update(bounds)
                    # values between them (a bulk batch's part: a row group of several), while samples are few
                    if bounds[0] != bounds[1] and len(found[column]) < MAX_SAMPLES:
                        found[column].update(self.footers.values(key, index, column, MAX_SAMPLES))
        if table.name == "logs":
            found["service"].update(self._hot_services())
        return {c: sorted(v for v in values if v is not None)[:MAX_SAMPLES] for c, values in found.items()}

    def _hot_services(self) -> list[str]:
        """The hot store's services, each found by one step down its service index."""
        rows = self.engine.store.read(
            "WITH RECURSIVE s(v) AS (SELECT min(service) FROM logs UNION ALL"
            " SELECT (SELECT min(service) FROM logs WHERE service > v) FROM s WHERE v IS NOT NULL)"
            " SELECT v FROM s WHERE v IS NOT NULL LIMIT ?",
            (MAX_SAMPLES,),
        )
        return [v for (v,) in rows]


def column_lines(
    columns: Iterable, samples: dict[str, list] | None = None, type_name: Callable[..., str] = sql_type
) -> str:
    """The prompt's lines of a table's columns: name, type (`type_name` of the dialect), meaning, samples."""
    samples = samples or {}
    return "\n".join(
        f"- {c.name} {type_name(c.type)}: {c.description}"
        + (f"; values include {listing(samples[c.name])}" if samples.get(c.name) else "")
        for c in columns
    )


def listing(values: list) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)
