"""Amplify Hosting access logs (CSV, the 33 CloudFront fields) into typed Arrow columns. No I/O.

Facts about the real files this follows: one header row whose names carry backslash-escaped
parentheses (`cs\\(Host)`); values URL-encoded (`%20`) and carrying backslash escapes (`\\(`, `\\)`,
`\\=\\=` at the end of request ids); commas inside values stripped by Amplify, so a comma always
separates fields and nothing is quoted; `-` means empty. An empty time range comes as a 0-byte file.

The work is done column by column by Arrow (read as text, unescape, check, cast), not row by row:
URL-decoding, which Arrow lacks, runs once per distinct value.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from loglake.lake.tables import AMPLIFY_ACCESS_TABLE

_FIELD_LINE = (  # the real files' header, unescaped
    "date,time,x-edge-location,sc-bytes,c-ip,cs-method,cs(Host),cs-uri-stem,sc-status,cs(Referer),"
    "cs(User-Agent),cs-uri-query,cs(Cookie),x-edge-result-type,x-edge-request-id,x-host-header,cs-protocol,"
    "cs-bytes,time-taken,x-forwarded-for,ssl-protocol,ssl-cipher,x-edge-response-result-type,"
    "cs-protocol-version,fle-status,fle-encrypted-fields,c-port,time-to-first-byte,"
    "x-edge-detailed-result-type,sc-content-type,sc-content-len,sc-range-start,sc-range-end"
)
FIELDS = _FIELD_LINE.split(",")
# The column names of the lake table: cs(User-Agent) -> cs_user_agent.
COLUMN_OF = {f: f.replace("(", "_").replace(")", "").replace("-", "_").lower() for f in FIELDS}
_DECODED = ("cs_user_agent", "cs_uri_query")  # URL-decoded; the rest stay as CloudFront wrote them
_PATTERN = {  # what a typed column's text must look like, before it is cast
    pa.int64(): r"^[0-9]{1,18}$",
    pa.int32(): r"^[0-9]{1,9}$",
    pa.float64(): r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$",
}
MAX_EXAMPLES = 20


class NotAnAccessLog(ValueError):
    """The file is not an Amplify access log at all (its header is wrong): nothing in it is read."""


@dataclass
class Malformed:
    """Rows that could not be read: how many, and the first few with the reason."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(reason)


@dataclass
class ParsedLog:
    table: pa.Table  # AMPLIFY_ACCESS_TABLE's columns, without the partitions
    rows_read: int  # data rows in the file
    malformed: Malformed
    duplicates: int = 0  # rows whose x-edge-request-id came earlier in the file
    outside: int = 0  # rows outside the requested time range (the API answers whole hours)


def parse_access_log(data: bytes, since_ms: int | None = None, until_ms: int | None = None) -> ParsedLog:
    """Typed rows of one export, de-duplicated by request id and kept to [since_ms, until_ms)."""
    malformed = Malformed()
    if not data.strip():
        return ParsedLog(AMPLIFY_ACCESS_TABLE.schema.empty_table(), 0, malformed)
    header, _, body = data.partition(b"\n")
    _check_header(header)
    text = _read_text_columns(body, malformed)
    rows_read = text.num_rows + malformed.count
    table = _typed(text, malformed)
    table, duplicates = _first_of_each_request(table)
    kept = table
    if since_ms is not None or until_ms is not None:
        millis = table.column("timestamp").cast(pa.int64())
        inside = pc.and_(
            pc.greater_equal(millis, since_ms if since_ms is not None else -(2**62)),
            pc.less(millis, until_ms if until_ms is not None else 2**62),
        )
        kept = table.filter(inside)
    return ParsedLog(kept, rows_read, malformed, duplicates, table.num_rows - kept.num_rows)


def _check_header(header: bytes) -> None:
    names = header.decode("utf-8", "replace").strip().replace("\\", "").split(",")
    if names != FIELDS:
        shown = header[:200].decode("utf-8", "replace")
        raise NotAnAccessLog(
            f"not an Amplify access log: the header should be the {len(FIELDS)} CloudFront fields "
            f"(date,time,x-edge-location,...), found {shown!r}"
        )


def _read_text_columns(body: bytes, malformed: Malformed) -> pa.Table:
    def wrong_field_count(row: pacsv.InvalidRow) -> str:
        line = f"line {row.number + 1}" if row.number is not None else "a line"  # +1: the header
        malformed.add(f"{line}: {row.actual_columns} fields instead of {row.expected_columns}: {row.text[:120]!r}")
        return "skip"

    columns = [COLUMN_OF[f] for f in FIELDS]
    return pacsv.read_csv(
        io.BytesIO(body),
        read_options=pacsv.ReadOptions(column_names=columns, use_threads=False, block_size=16 << 20),
        parse_options=pacsv.ParseOptions(quote_char=False, invalid_row_handler=wrong_field_count),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=False
        ),
    )


def _typed(text: pa.Table, malformed: Malformed) -> pa.Table:
    """Unescape, decode and cast every column; rows with a value that does not fit its type are
    counted as malformed (with the field and the value) and left out."""
    values = {name: _unescaped(text.column(name)) for name in text.column_names}
    good = pa.array([True] * text.num_rows)
    when = pc.strptime(
        pc.binary_join_element_wise(values["date"], values["time"], " "),
        format="%Y-%m-%d %H:%M:%S",
        unit="ms",
        error_is_null=True,
    )
    good = _require(good, pc.is_valid(when), values, "date/time", malformed, ("date", "time"))
    good = _require(good, pc.is_valid(values["x_edge_request_id"]), values, "x-edge-request-id", malformed)
    typed: dict[str, pa.Array] = {"timestamp": when}
    for column in AMPLIFY_ACCESS_TABLE.schema:
        if column.name == "timestamp":
            continue
        value = values[column.name]
        if column.type in _PATTERN:
            fits = pc.or_(pc.is_null(value), pc.match_substring_regex(value, _PATTERN[column.type]))
            good = _require(good, pc.fill_null(fits, True), values, column.name, malformed, (column.name,))
            value = pc.if_else(pc.fill_null(fits, False), value, None)
        elif column.name in _DECODED:
            value = _url_decoded(value)
        typed[column.name] = value.cast(column.type)
    table = pa.table(typed).select(AMPLIFY_ACCESS_TABLE.schema.names).cast(AMPLIFY_ACCESS_TABLE.schema)
    return table.filter(good)


def _require(
    good: pa.Array,
    fits: pa.Array,
    values: dict[str, pa.Array],
    what: str,
    malformed: Malformed,
    shown: tuple[str, ...] = (),
) -> pa.Array:
    """`good` without the rows where `fits` is false; those are counted once each as malformed."""
    newly_bad = pc.and_(good, pc.invert(fits))
    count = pc.sum(newly_bad.cast(pa.int64())).as_py() or 0
    if count:
        bad_rows = pc.indices_nonzero(newly_bad).to_pylist()
        for index in bad_rows:
            found = ", ".join(f"{name}={values[name][index].as_py()!r}" for name in shown) or "missing"
            request = values["x_edge_request_id"][index].as_py()
            malformed.add(f"row {index + 1} (request {request}): {what} unreadable ({found})")
    return pc.and_(good, fits)


def _unescaped(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """`-` and empty as null; `\\x` as `x`."""
    column = pc.if_else(pc.or_(pc.equal(column, "-"), pc.equal(column, "")), None, column)
    if pc.any(pc.match_substring(column, "\\")).as_py():
        column = pc.replace_substring_regex(column, r"\\(.)", r"\1")
    return column


def _url_decoded(column: pa.ChunkedArray) -> pa.Array:
    """%XX-decoded, once per distinct value (user agents repeat a lot)."""
    encoded = column.combine_chunks().dictionary_encode()
    distinct = [unquote(v) if v is not None and "%" in v else v for v in encoded.dictionary.to_pylist()]
    return pc.take(pa.array(distinct, pa.string()), encoded.indices)


def _first_of_each_request(table: pa.Table) -> tuple[pa.Table, int]:
    """Rows de-duplicated by x-edge-request-id, keeping the first (exports overlap at their edges)."""
    if table.num_rows == 0:
        return table, 0
    numbered = pa.table({"row": pa.array(range(table.num_rows)), "id": table.column("x_edge_request_id")})
    first = numbered.group_by("id", use_threads=False).aggregate([("row", "min")]).column("row_min")
    if len(first) == table.num_rows:
        return table, 0
    return table.take(pc.take(first, pc.sort_indices(first))), table.num_rows - len(first)
