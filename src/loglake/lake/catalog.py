"""Athena and Glue catalog entries for the lake's tables, generated from the table registry.

The lake's Parquet objects are already Hive-partitioned (`type=<dir>/date=YYYY-MM-DD/...`), so Athena can
query them in place. With partition projection Athena computes the partitions from table properties
instead of the Glue catalog, so no crawler, `MSCK REPAIR` or `ADD PARTITION` is ever needed: a day that
gets its first object is queryable at once.

`athena_ddl` gives the `CREATE EXTERNAL TABLE` statements to paste into Athena; `glue_table_input` gives the
same table as a `glue.create_table(TableInput=...)` dict (for boto3 or CDK). Both render one `_Entry`, so
the two can never disagree.

Property names and values follow the Athena documentation:
- projection types and their properties (date: format, range, interval, interval.unit):
  https://docs.aws.amazon.com/athena/latest/ug/partition-projection-supported-types.html
- `projection.enabled` and `storage.location.template`:
  https://docs.aws.amazon.com/athena/latest/ug/partition-projection-setting-up.html
- the `injected` type, for keys whose values cannot be listed in advance:
  https://docs.aws.amazon.com/athena/latest/ug/partition-projection-dynamic-id-partitioning.html
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa

from loglake.lake.tables import TABLES, LakeTable

# `STORED AS PARQUET` in Athena DDL is shorthand for exactly these three classes.
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"

DATE_KEY = "date"  # the partition key holding the record's UTC day, `YYYY-MM-DD`
DEFAULT_SINCE = "2020-01-01"

_IDENTIFIER = re.compile(r"[a-z0-9_]{1,255}")  # Glue lower-cases names; keeping them lower avoids surprises
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9._=-]+")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_COMMENT = 255  # Glue's limit for a column comment
_MAX_DESCRIPTION = 2048  # and for a table description

_TYPE_RULES: tuple[tuple[Callable[[pa.DataType], bool], str], ...] = (
    (pa.types.is_string, "string"),
    (pa.types.is_int64, "bigint"),
    (pa.types.is_int32, "int"),
    (pa.types.is_int16, "smallint"),
    (pa.types.is_int8, "tinyint"),
    (pa.types.is_float64, "double"),
    (pa.types.is_float32, "float"),
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_timestamp, "timestamp"),
    (pa.types.is_date32, "date"),
    (pa.types.is_binary, "binary"),
)


class CatalogError(ValueError):
    """A location, name or date the catalog entries cannot be made with; the message says which."""


@dataclass(frozen=True)
class _Field:
    name: str
    type: str  # Hive type name, as both Athena DDL and Glue's Column.Type spell it
    comment: str


@dataclass(frozen=True)
class _Entry:
    """The one description of a catalog table that the DDL and the Glue input are both rendered from."""

    name: str
    description: str
    columns: tuple[_Field, ...]
    partition_keys: tuple[_Field, ...]
    location: str
    parameters: Mapping[str, str]


def hive_type(arrow_type: pa.DataType) -> str:
    """The Athena/Glue type that reads a Parquet column written with `arrow_type`."""
    for matches, name in _TYPE_RULES:
        if matches(arrow_type):
            return name
    supported = "string, int8/16/32/64, float32/64, bool, timestamp, date32, binary"
    raise CatalogError(f"pyarrow type {arrow_type} has no Athena mapping here (supported: {supported})")


def athena_ddl(
    location: str,
    database: str = "loglake",
    tables: Iterable[LakeTable] | None = None,
    since: str = DEFAULT_SINCE,
) -> str:
    """`CREATE EXTERNAL TABLE` statements, one per table (default: every registered table).

    `location` is the lake root (`s3://bucket[/prefix]`); `since` is the first day the date projection covers.
    """
    database = _identifier("database", database)
    chosen = list(TABLES.values() if tables is None else tables)
    if not chosen:
        raise CatalogError("no tables to describe")
    statements = [_create_statement(database, _entry(table, location, since)) for table in chosen]
    return ";\n\n".join(statements) + ";\n"


def glue_table_input(
    table: LakeTable, location: str, database: str = "loglake", since: str = DEFAULT_SINCE
) -> dict[str, Any]:
    """The `TableInput` for `glue.create_table(DatabaseName=database, TableInput=...)` or CDK's `CfnTable`.

    TableInput itself names no database; `database` is checked here so both entry points accept the same names.
    """
    _identifier("database", database)
    entry = _entry(table, location, since)
    return {
        "Name": entry.name,
        "Description": entry.description,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": dict(entry.parameters),
        "PartitionKeys": [_glue_column(f) for f in entry.partition_keys],
        "StorageDescriptor": {
            "Columns": [_glue_column(f) for f in entry.columns],
            "Location": entry.location,
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE},
        },
    }


def normalize_location(location: str) -> str:
    """`s3://bucket[/prefix]` with exactly one trailing slash; a ValueError says what is wrong otherwise."""
    if not location.startswith("s3://"):
        raise CatalogError(f"location {location!r} must start with s3:// (s3://bucket or s3://bucket/prefix)")
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise CatalogError(
            f"location {location!r}: bucket {bucket!r} must be 3-63 characters of a-z 0-9 . -, "
            "starting and ending with a letter or digit"
        )
    segments = prefix.removesuffix("/").split("/") if prefix.strip("/") else []
    if any(not _PREFIX_SEGMENT.fullmatch(s) or s in (".", "..") for s in segments):
        raise CatalogError(
            f"location {location!r}: prefix {prefix!r} must be /-separated non-empty segments of A-Z a-z 0-9 . _ = -"
        )
    return "s3://" + "/".join([bucket, *segments]) + "/"


def _entry(table: LakeTable, location: str, since: str) -> _Entry:
    root = normalize_location(location) + f"type={_identifier('table directory', table.directory)}/"
    columns = tuple(
        _Field(_identifier("column", c.name), hive_type(c.type), _comment("column description", c.description))
        for c in table.columns
    )
    keys = tuple(_partition_field(_identifier("partition key", k)) for k in table.partitions)
    clash = {c.name for c in columns} & set(table.partitions)
    if clash:
        raise CatalogError(f"table {table.name!r}: {sorted(clash)} cannot be both a column and a partition key")
    return _Entry(
        name=_identifier("table", table.name),
        description=_comment("table description", table.description, _MAX_DESCRIPTION),
        columns=columns,
        partition_keys=keys,
        location=root,
        parameters=_parameters(root, table.partitions, _since(since)),
    )


def _parameters(root: str, partitions: tuple[str, ...], since: date) -> dict[str, str]:
    """Table properties: compression, plus partition projection when the table is partitioned."""
    params = {"parquet.compression": "ZSTD"}
    if not partitions:
        return params
    params["projection.enabled"] = "true"
    for key in partitions:
        params.update(_projection(key, since))
    params["storage.location.template"] = root + "".join(f"{key}=${{{key}}}/" for key in partitions)
    return params


def _projection(key: str, since: date) -> dict[str, str]:
    """The projection of one partition key.

    `date` is a date range from `since` to tomorrow, one partition per day (records may be dated up to a
    day ahead, and a range ending today would hide them until their day came). Any other key (e.g. an Amplify `app`)
    is `injected`: its values (app names) are not enumerable in advance and an `enum` list would go stale as
    apps appear, so Athena takes them from the query, which must then filter that key with `=` or `IN`.
    """
    if key == DATE_KEY:
        return {
            f"projection.{key}.type": "date",
            f"projection.{key}.format": "yyyy-MM-dd",
            f"projection.{key}.range": f"{since.isoformat()},NOW+1DAYS",
            f"projection.{key}.interval": "1",
            f"projection.{key}.interval.unit": "DAYS",
        }
    return {f"projection.{key}.type": "injected"}


def _partition_field(key: str) -> _Field:
    if key == DATE_KEY:
        return _Field(key, "string", "UTC day of the record, yyyy-MM-dd; filter on it to read fewer files")
    return _Field(key, "string", "injected partition: every query must filter it with = or IN")


def _create_statement(database: str, entry: _Entry) -> str:
    parts = [
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{entry.name}` (",
        _field_list(entry.columns),
        ")",
        f"COMMENT {_literal(entry.description)}",
    ]
    if entry.partition_keys:
        parts += ["PARTITIONED BY (", _field_list(entry.partition_keys), ")"]
    parts += [
        "STORED AS PARQUET",
        f"LOCATION {_literal(entry.location)}",
        "TBLPROPERTIES (",
        ",\n".join(f"  {_literal(k)}={_literal(v)}" for k, v in entry.parameters.items()),
        ")",
    ]
    return "\n".join(parts)


def _field_list(fields: tuple[_Field, ...]) -> str:
    return ",\n".join(f"  `{f.name}` {f.type} COMMENT {_literal(f.comment)}" for f in fields)


def _glue_column(field: _Field) -> dict[str, str]:
    return {"Name": field.name, "Type": field.type, "Comment": field.comment}


def _literal(text: str) -> str:
    """A Hive string literal: Athena's DDL engine is Hive, whose literals escape with a backslash, not ''."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _comment(what: str, text: str, limit: int = _MAX_COMMENT) -> str:
    if len(text) > limit or not text.isprintable():
        raise CatalogError(f"{what} {text!r} must be printable (one line) and at most {limit} characters")
    return text


def _identifier(what: str, name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise CatalogError(f"{what} name {name!r} must be 1-255 characters of a-z 0-9 _ (Athena/Glue identifiers)")
    return name


def _since(text: str) -> date:
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise CatalogError(f"since {text!r} must be an ISO date, YYYY-MM-DD")
