"""What Sigma rules read: each Sigma `logsource` loglake holds, its lake table, and the names its
fields go by in rules (the one definition the processing pipeline, the backend and the load-time
checks all use).

A field is a column of the table (`service`, `sc_status`), another name for one (the CloudFront name
`sc-status`, Sigma's web name `c-uri-path`, the record's `logId`), a value made of columns (Sigma's
`c-uri`: the path and query), or for application logs a path into the `attributes` JSON
(`attributes.user`, `attributes.http.status`); there, any other name is a key of the attributes too
(`user`, `http.status`), as search reads `user:alice`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import pyarrow as pa

from loglake.amplify.parse import COLUMN_OF
from loglake.lake.tables import AMPLIFY_ACCESS_TABLE, APP_LOGS_TABLE, LakeTable, partition_type
from loglake.spelling import alike, typo_of

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class UnknownField(ValueError):
    """A field name the source does not have (the message lists what it has), or one a typo away from a column's."""


@dataclass(frozen=True)
class Field:
    """A field as SQL reads it: its expression and what kind of value it holds."""

    sql: str
    kind: str  # "text", "number", "timestamp" or "date"
    # (JSON column, the paths it may be at, the first present wins) for a value inside a JSON column
    json_path: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Source:
    table: LakeTable
    logsources: tuple[dict[str, str], ...]  # the Sigma logsources that mean this table (any one)
    aliases: dict[str, str]  # other names of columns, as rules write them
    keyword_field: str  # the field a keyword (a value without a field) is searched in
    derived: dict[str, str] = dataclass_field(default_factory=dict)  # text values made of columns, by name
    json_column: str | None = None  # `<json_column>.<path>`, or a name no column has, is a value inside it

    @property
    def columns(self) -> dict[str, pa.DataType]:
        """The table's columns and partitions as SQL sees them."""
        found = {c.name: c.type for c in self.table.columns}
        found.update({p: partition_type(p) for p in self.table.partitions})
        return found

    def column_of(self, name: str) -> str | None:
        """The column a field name means (None for a JSON path or an unknown name)."""
        column = self.aliases.get(name, name)
        return column if column in self.columns else None

    def field(self, name: str) -> Field:
        """The SQL of a field name (a column, another name for one, or a JSON path); UnknownField if none, or if
        the name is likely a column's mistyped (column_typo): a selection, group-by or value_count field alike."""
        column = self.column_of(name)
        if column is not None:
            return Field(quote_name(column), _kind(self.columns[column]))
        if name in self.derived:
            return Field(self.derived[name], "text")
        typo = self.column_typo(name)
        if typo is not None:
            raise UnknownField(typo)
        if self.json_column is not None and name:
            prefix = f"{self.json_column}."
            keys = name[len(prefix) :] if name.startswith(prefix) and len(name) > len(prefix) else name
            # `http.status` is nested keys, or else one key with dots in it: OpenTelemetry's attributes are
            # flat, with dotted names, as OTLP stores them
            paths = tuple(dict.fromkeys([json_path(keys.split(".")), json_path([keys])]))
            column = quote_name(self.json_column)
            values = [f"json_extract_string({column}, {sql_text(path)})" for path in paths]
            return Field(
                values[0] if len(values) == 1 else f"coalesce({', '.join(values)})",
                "text",
                (self.json_column, paths),
            )
        close = alike(name, self.names)
        meant = f"did you mean {' or '.join(close)}? " if close else ""
        raise UnknownField(f"{self.table.name} has no field {name!r} ({meant}fields: {', '.join(self.names)})")

    @property
    def names(self) -> list[str]:
        """The field names that are no JSON path: the columns, their other names and the derived values."""
        return sorted(set(self.columns) | set(self.aliases) | set(self.derived))

    def column_typo(self, name: str) -> str | None:
        """Why a name read as an attribute is refused when it is a typo of a column's (`sevrity`), else None:
        a rule on it would silently never match. `attributes.sevrity` is the attribute on purpose."""
        if self.json_column is None or name.startswith(f"{self.json_column}.") or self.column_of(name):
            return None
        # a column in other capitals (`SEVERITY`, as other tools write it) is as likely meant as a typo of it
        meant = typo_of(name, self.names) or [n for n in self.names if n.lower() == name.lower()]
        if not meant:
            return None
        return (
            f"{name!r} is no column, so it would be read as the attribute {name!r}: did you mean the column"
            f" {' or '.join(meant)}? (to mean the attribute, write {self.json_column}.{name})"
        )

    def describe(self) -> str:
        return " or ".join(", ".join(f"{k}: {v}" for k, v in logsource.items()) for logsource in self.logsources)


def _kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    return "text"


def quote_name(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def in_groups(condition: str, group_fields: list[str]) -> str:
    """A rule's WHERE condition, of the events that have every group-by field (their SQL): an event without one is
    in no group, as Splunk's `stats ... by` leaves it out (grouped under null, three users' failures from sources
    naming no address fired a value_count per address)."""
    return " AND ".join([f"({condition})", *(f"{field} IS NOT NULL" for field in group_fields)])


def sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def json_path(keys: list[str]) -> str:
    """A JSONPath to nested keys: `$.user.name`, a key with other characters quoted (`$."a b"`)."""
    return "$" + "".join(f".{k}" if _PLAIN_KEY.fullmatch(k) else '."' + k.replace('"', '\\"') + '"' for k in keys)


# Sigma's names for web server fields (its taxonomy's `category: webserver` and `proxy`, as SigmaHQ's
# web rules write them) that are not CloudFront's own, and the CloudFront column each means. The rest
# of Sigma's names are CloudFront's (`cs-method`, `sc-status`, `c-ip`, `cs-uri-stem`, `cs-uri-query`,
# `cs-user-agent`, `cs-referer`, `cs-host`, `cs-cookie`, `sc-bytes`, `cs-bytes`, `time-taken`).
SIGMA_WEB_NAMES = {
    "c-uri-path": "cs_uri_stem",
    "c-uri-stem": "cs_uri_stem",
    "c-uri-query": "cs_uri_query",
    "c-useragent": "cs_user_agent",
    "cs-referrer": "cs_referer",
    "cs-version": "cs_protocol_version",
    "r-dns": "x_host_header",
    "src_ip": "c_ip",
}
# Sigma's `c-uri`, the URL the client asked for: its path and, after a `?`, its query (URL-decoded).
REQUEST_URI = f"({quote_name('cs_uri_stem')} || coalesce('?' || {quote_name('cs_uri_query')}, ''))"

APP_LOGS = Source(
    APP_LOGS_TABLE,
    logsources=({"product": "loglake", "service": "app_logs"},),
    aliases={"logId": "log_id", "id": "client_id"},
    keyword_field="message",
    json_column="attributes",
)
AMPLIFY_ACCESS = Source(
    AMPLIFY_ACCESS_TABLE,
    logsources=(
        {"product": "loglake", "service": "amplify_access"},
        {"product": "aws", "service": "amplify"},
        {"category": "webserver"},
    ),
    # The CloudFront names (`cs-uri-stem`, `cs(User-Agent)`), the same with dashes in the
    # parentheses' place (`cs-user-agent`), and Sigma's other web names.
    aliases={
        **{
            name: column
            for name, column in COLUMN_OF.items()
            if column in {c.name for c in AMPLIFY_ACCESS_TABLE.columns}
        },
        **{column.replace("_", "-"): column for column in COLUMN_OF.values()},
        **SIGMA_WEB_NAMES,
    },
    keyword_field="c-uri",  # a web rule's keywords are looked for in the URL (SigmaHQ's say "in URL strings")
    derived={"c-uri": REQUEST_URI},
)
SOURCES = (APP_LOGS, AMPLIFY_ACCESS)
BY_TABLE = {s.table.name: s for s in SOURCES}
