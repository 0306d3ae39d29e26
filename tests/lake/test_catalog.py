"""The Athena DDL and Glue input, checked by parsing the DDL the way Athena's DDL engine would.

sqlglot's `athena` dialect routes `CREATE EXTERNAL TABLE` to its Hive tokenizer and parser, as Athena routes it
to its Hive engine, so backtick identifiers, Hive string escapes and TBLPROPERTIES parse as Athena reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from loglake.lake.catalog import athena_ddl, glue_table_input
from loglake.lake.tables import APP_LOGS_TABLE, TABLES, Column, LakeTable

# Written out independently of catalog.py, so a wrong mapping there fails here.
EXPECTED_TYPES = {
    pa.string(): "string",
    pa.int64(): "bigint",
    pa.int32(): "int",
    pa.int16(): "smallint",
    pa.int8(): "tinyint",
    pa.float64(): "double",
    pa.float32(): "float",
    pa.bool_(): "boolean",
    pa.timestamp("ms"): "timestamp",
    pa.timestamp("us", tz="UTC"): "timestamp",
    pa.date32(): "date",
    pa.binary(): "binary",
}

ACCESS_TABLE = LakeTable(
    name="amplify_test",
    directory="amplify_test",
    columns=tuple(Column(f"c_{i}", t, f"a {t} column") for i, t in enumerate(EXPECTED_TYPES)),
    partitions=("app", "date"),
    description="a made-up table partitioned like the Amplify access logs",
)

DATE_PROJECTION = {
    "projection.date.type": "date",
    "projection.date.format": "yyyy-MM-dd",
    "projection.date.range": "2020-01-01,NOW+1DAYS",
    "projection.date.interval": "1",
    "projection.date.interval.unit": "DAYS",
}


@dataclass
class Parsed:
    database: str
    name: str
    exists_clause: bool
    external: bool
    file_format: str
    comment: str
    columns: list[tuple[str, str, str]]  # name, type, comment
    partitions: list[tuple[str, str, str]]
    location: str
    properties: dict[str, str]


def parse(ddl: str) -> dict[str, Parsed]:
    statements = [s for s in sqlglot.parse(ddl, read="athena") if s is not None]
    assert all(isinstance(s, exp.Create) and s.kind == "TABLE" for s in statements)
    tables = [_table(s) for s in statements]
    assert len({t.name for t in tables}) == len(tables)
    return {t.name: t for t in tables}


def _table(create: exp.Create) -> Parsed:
    schema, props = create.this, create.args["properties"].expressions
    partitioned = [p for p in props if isinstance(p, exp.PartitionedByProperty)]
    return Parsed(
        database=schema.this.db,
        name=schema.this.name,
        exists_clause=bool(create.args.get("exists")),
        external=any(isinstance(p, exp.ExternalProperty) for p in props),
        file_format=_one(props, exp.FileFormatProperty).name,
        comment=_one(props, exp.SchemaCommentProperty).this.this,
        columns=[_column(c) for c in schema.expressions],
        partitions=[_column(c) for c in partitioned[0].this.expressions] if partitioned else [],
        location=_one(props, exp.LocationProperty).this.this,
        properties={p.this.this: p.args["value"].this for p in props if type(p) is exp.Property},
    )


def _one(props: list[exp.Expression], kind: type[exp.Expression]) -> exp.Expression:
    found = [p for p in props if isinstance(p, kind)]
    assert len(found) == 1, f"expected one {kind.__name__}, got {found}"
    return found[0]


def _column(col: exp.ColumnDef) -> tuple[str, str, str]:
    comments = [c.kind.this.this for c in col.constraints if isinstance(c.kind, exp.CommentColumnConstraint)]
    return col.name, col.args["kind"].sql(dialect="hive").lower(), comments[0] if comments else ""


def expected_columns(table: LakeTable) -> list[tuple[str, str, str]]:
    return [(c.name, _expected_type(c.type), c.description) for c in table.columns]


def _expected_type(arrow_type: pa.DataType) -> str:
    """Any timestamp unit or zone reads as Athena's timestamp; everything else is listed one by one."""
    return "timestamp" if pa.types.is_timestamp(arrow_type) else EXPECTED_TYPES[arrow_type]


def test_every_registered_table_matches_the_registry() -> None:
    parsed = parse(athena_ddl("s3://my-bucket/lake"))
    assert set(parsed) == set(TABLES)
    for name, table in TABLES.items():
        got = parsed[name]
        assert (got.database, got.exists_clause, got.external, got.file_format) == ("loglake", True, True, "PARQUET")
        assert got.columns == expected_columns(table)  # comments with ' survive the Hive escaping
        assert [(n, t) for n, t, _ in got.partitions] == [(k, "string") for k in table.partitions]
        assert got.comment == table.description
        assert got.location == f"s3://my-bucket/lake/type={table.directory}/"


def test_logs_table_projects_one_partition_per_day() -> None:
    got = parse(athena_ddl("s3://my-bucket/lake", tables=[APP_LOGS_TABLE]))["logs"]
    assert got.properties == {
        "parquet.compression": "ZSTD",
        "projection.enabled": "true",
        **DATE_PROJECTION,
        "storage.location.template": "s3://my-bucket/lake/type=app_logs/date=${date}/",
    }


@pytest.mark.parametrize(
    ("location", "root"),
    [
        ("s3://my-bucket", "s3://my-bucket/"),
        ("s3://my-bucket/", "s3://my-bucket/"),
        ("s3://my-bucket/lake/prod", "s3://my-bucket/lake/prod/"),
        ("s3://my-bucket/lake/prod/", "s3://my-bucket/lake/prod/"),
        ("s3://logs.example-1/env=prod/Lake_2", "s3://logs.example-1/env=prod/Lake_2/"),
    ],
)
def test_location_is_normalized_and_prefixes_the_template(location: str, root: str) -> None:
    got = parse(athena_ddl(location, tables=[APP_LOGS_TABLE]))["logs"]
    assert got.location == root + "type=app_logs/"
    template = got.properties["storage.location.template"]
    assert template.startswith(got.location)
    assert template == got.location + "date=${date}/"


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("my-bucket/lake", "must start with s3://"),
        ("s3a://my-bucket", "must start with s3://"),
        ("S3://my-bucket", "must start with s3://"),
        ("https://my-bucket.s3.amazonaws.com/lake", "must start with s3://"),
        ("s3://", "bucket '' must be 3-63"),
        ("s3://ab", "bucket 'ab' must be 3-63"),
        ("s3://" + "a" * 64, "must be 3-63"),
        ("s3://My-Bucket", "must be 3-63"),
        ("s3://my_bucket", "must be 3-63"),
        ("s3://-bucket", "must be 3-63"),
        ("s3://my..bucket", "must be 3-63"),
        ("s3://my-bucket//lake", "prefix '/lake' must be"),
        ("s3://my-bucket/la ke", "prefix"),
        ("s3://my-bucket/${date}", "prefix"),
        ("s3://my-bucket/lake'; DROP TABLE x", "prefix"),
        ("s3://my-bucket/../lake", "prefix"),
    ],
)
def test_bad_locations_are_refused(location: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        athena_ddl(location)
    with pytest.raises(ValueError, match="location"):
        glue_table_input(APP_LOGS_TABLE, location)


@pytest.mark.parametrize("database", ["", "LogLake", "log-lake", "a.b", "x`y", "a" * 256])
def test_bad_database_names_are_refused(database: str) -> None:
    with pytest.raises(ValueError, match=r"database name .* must be 1-255 characters of a-z 0-9 _"):
        athena_ddl("s3://my-bucket", database=database)
    with pytest.raises(ValueError, match="database name"):
        glue_table_input(APP_LOGS_TABLE, "s3://my-bucket", database=database)


def test_database_name_is_used() -> None:
    assert parse(athena_ddl("s3://my-bucket", database="prod_logs"))["logs"].database == "prod_logs"


def test_since_sets_the_start_of_the_date_range() -> None:
    got = parse(athena_ddl("s3://my-bucket", tables=[APP_LOGS_TABLE], since="2026-03-01"))["logs"]
    assert got.properties["projection.date.range"] == "2026-03-01,NOW+1DAYS"


@pytest.mark.parametrize("since", ["2026-13-01", "2026-02-30", "20260101", "2026-1-1", "yesterday", ""])
def test_bad_since_is_refused(since: str) -> None:
    with pytest.raises(ValueError, match="must be an ISO date, YYYY-MM-DD"):
        athena_ddl("s3://my-bucket", since=since)


def test_app_and_date_partitions_get_injected_and_date_projection() -> None:
    parsed = parse(athena_ddl("s3://my-bucket/lake/", tables=[APP_LOGS_TABLE, ACCESS_TABLE]))
    assert set(parsed) == {"logs", "amplify_test"}
    got = parsed["amplify_test"]
    assert got.columns == expected_columns(ACCESS_TABLE)
    assert [n for n, _, _ in got.partitions] == ["app", "date"]
    assert got.location == "s3://my-bucket/lake/type=amplify_test/"
    assert got.properties == {
        "parquet.compression": "ZSTD",
        "projection.enabled": "true",
        "projection.app.type": "injected",
        **DATE_PROJECTION,
        "storage.location.template": "s3://my-bucket/lake/type=amplify_test/app=${app}/date=${date}/",
    }


def test_unpartitioned_table_has_no_projection() -> None:
    flat = LakeTable("flat", "flat", (Column("a", pa.string(), "a"),), (), "no partitions")
    got = parse(athena_ddl("s3://my-bucket", tables=[flat]))["flat"]
    assert got.partitions == []
    assert got.properties == {"parquet.compression": "ZSTD"}
    assert glue_table_input(flat, "s3://my-bucket")["PartitionKeys"] == []


@pytest.mark.parametrize(
    "arrow_type",
    [pa.large_string(), pa.uint64(), pa.float16(), pa.date64(), pa.decimal128(10, 2), pa.list_(pa.string())],
)
def test_unsupported_types_are_refused(arrow_type: pa.DataType) -> None:
    table = LakeTable("odd", "odd", (Column("x", arrow_type, "x"),), ("date",), "odd")
    with pytest.raises(ValueError, match=r"pyarrow type .* has no Athena mapping"):
        athena_ddl("s3://my-bucket", tables=[table])


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (LakeTable("Logs", "app_logs", (), ("date",), "d"), "table name 'Logs'"),
        (LakeTable("logs", "app-logs", (), ("date",), "d"), "table directory name 'app-logs'"),
        (LakeTable("logs", "app_logs", (Column("Bad", pa.string(), "d"),), (), "d"), "column name 'Bad'"),
        (LakeTable("logs", "app_logs", (), ("App",), "d"), "partition key name 'App'"),
        (LakeTable("logs", "app_logs", (Column("date", pa.string(), "d"),), ("date",), "d"), "both a column"),
        (LakeTable("logs", "app_logs", (Column("a", pa.string(), "x" * 256),), (), "d"), "at most 255"),
        (LakeTable("logs", "app_logs", (Column("a", pa.string(), "two\nlines"),), (), "d"), "printable"),
    ],
)
def test_bad_table_definitions_are_refused(table: LakeTable, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        athena_ddl("s3://my-bucket", tables=[table])


def test_quotes_and_backslashes_in_descriptions_round_trip() -> None:
    text = r"it's a C:\path\ 'quoted'"
    table = LakeTable("q", "q", (Column("a", pa.string(), text),), ("date",), text)
    got = parse(athena_ddl("s3://my-bucket", tables=[table]))["q"]
    assert got.columns == [("a", "string", text)]
    assert got.comment == text


def test_no_tables_is_refused() -> None:
    with pytest.raises(ValueError, match="no tables"):
        athena_ddl("s3://my-bucket", tables=[])


@pytest.mark.parametrize("table", [*TABLES.values(), ACCESS_TABLE], ids=lambda t: t.name)
def test_glue_table_input_agrees_with_the_ddl(table: LakeTable) -> None:
    ddl = parse(athena_ddl("s3://my-bucket/lake", tables=[table], since="2025-06-01"))[table.name]
    glue = glue_table_input(table, "s3://my-bucket/lake", since="2025-06-01")
    storage = glue["StorageDescriptor"]
    assert glue["Name"] == ddl.name
    assert glue["TableType"] == "EXTERNAL_TABLE"
    assert glue["Description"] == ddl.comment
    assert glue["Parameters"] == ddl.properties
    assert [(c["Name"], c["Type"], c["Comment"]) for c in storage["Columns"]] == ddl.columns
    assert [(c["Name"], c["Type"], c["Comment"]) for c in glue["PartitionKeys"]] == ddl.partitions
    assert storage["Location"] == ddl.location
    # What Athena's `STORED AS PARQUET` stands for, spelled out as Glue needs it.
    assert storage["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert storage["OutputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    assert storage["SerdeInfo"] == {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }
