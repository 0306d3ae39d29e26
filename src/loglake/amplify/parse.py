"""Amplify Hosting access logs (CSV, the 33 CloudFront fields) into typed Arrow columns. No I/O.

Facts about the real files this follows: one header row whose names carry backslash-escaped
parentheses (`cs\\(Host)`); values URL-encoded (`%20`) and carrying backslash escapes (`\\(`, `\\)`,
`\\=\\=` at the end of request ids); commas inside values stripped by Amplify, so a comma always
separates fields and nothing is quoted; `-` means empty. An empty time range comes as a 0-byte file; a
file may come gzip-compressed.

The work is done column by column by Arrow (read as text, unescape, check, cast), not row by row:
URL-decoding, which Arrow lacks, runs once per distinct value.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from loglake.lake.tables import AMPLIFY_ACCESS_TABLE
from loglake.malloc import give_back_freed_memory

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
_WHEN = "%Y-%m-%d %H:%M:%S"
PIECE_BYTES = 16 * 2**20  # of an export read at a time (parse_access_log)
# A date and time as the files write them.
_WRITTEN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_STATUS = r"^[0-9]{3}$"  # 000 when the viewer left before the response
_PATTERN = {  # what a typed column's text must look like (checked only when a cast fails)
    pa.int64(): r"^[0-9]{1,18}$",
    pa.int32(): r"^[0-9]{1,9}$",
    pa.float64(): r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$",
}
MAX_EXAMPLES = 20


class NotAnAccessLog(ValueError):
    """The file is not an Amplify access log at all (its header is wrong): nothing in it is read."""


@dataclass
class Malformed:
    """Rows that could not be read: how many, and the first few with the reason. One whose date and time
    can be read and fall outside [since_ms, until_ms) is not counted but set `outside`: it is another
    window's (exports overlap by the hour, and each window would count it)."""

    count: int = 0
    examples: list[str] = field(default_factory=list)
    since_ms: int | None = None
    until_ms: int | None = None
    outside: int = 0

    def add(self, reason: str, written: str | None = None) -> None:
        """`written`: the row's date and time as the file has them ('2026-09-21 14:13:20'), if known."""
        if written is not None and not self._inside(written):
            self.outside += 1
            return
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(reason)

    def _inside(self, written: str) -> bool:
        try:  # (strptime reads '26-09-21' as the year 26: only the form the files write places a row)
            ms = int(datetime.strptime(written, _WHEN).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            ms = None
        if ms is None or not _WRITTEN.fullmatch(written):
            return True  # no time to place it by: counted by every window whose export holds it
        return (self.since_ms is None or ms >= self.since_ms) and (self.until_ms is None or ms < self.until_ms)


def _written(line: str) -> str | None:
    """A line's first two fields, its date and time, as `Malformed.add` takes them."""
    fields = line.split(",", 2)
    return f"{fields[0]} {fields[1]}" if len(fields) > 1 else None


@dataclass
class ParsedLog:
    table: pa.Table  # AMPLIFY_ACCESS_TABLE's columns, without the partitions
    rows_read: int  # data rows in the file
    malformed: Malformed
    duplicates: int = 0  # rows whose x-edge-request-id came earlier in the file
    outside: int = 0  # rows outside the requested time range (the API answers whole hours)


def parse_access_log(
    data: bytes, since_ms: int | None = None, until_ms: int | None = None, piece_bytes: int = PIECE_BYTES
) -> ParsedLog:
    """Typed rows of one export, de-duplicated by request id and kept to [since_ms, until_ms). The rows are read
    `piece_bytes` of the file at a time: read whole, a file's text columns and what each step made of them were
    held at once (a 110 MiB export took 600 MiB more; an operator's trial saw 1.8 GB for 304 MB)."""
    malformed = Malformed(since_ms=since_ms, until_ms=until_ms)
    if data[:2] == b"\x1f\x8b":  # gzip-compressed, as a log URL may serve it (with no Content-Encoding to undo it)
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise NotAnAccessLog(f"a gzip file that cannot be read ({e}): a download cut short?") from None
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as spreadsheets save one
    if not data.strip():
        return ParsedLog(AMPLIFY_ACCESS_TABLE.schema.empty_table(), 0, malformed)
    header_end = data.find(b"\n") if b"\n" in data else len(data)
    _check_header(data[:header_end])
    if not data[header_end + 1 :].strip():  # the header alone: no requests
        return ParsedLog(AMPLIFY_ACCESS_TABLE.schema.empty_table(), 0, malformed)
    pieces, rows_read = [], 0
    for start, end in _pieces(data, header_end + 1, piece_bytes):
        unread = malformed.count + malformed.outside
        body = _utf8_rows(data[start:end], malformed)
        text = _read_text_columns(pa.py_buffer(body), malformed)
        rows_read += text.num_rows + malformed.count + malformed.outside - unread  # (those of no text row too)
        pieces.append(_typed(text, body.count(b"\\"), malformed))
        del body, text  # (not held while the next piece is read)
        give_back_freed_memory()  # (the C library's malloc kept what each piece freed: its arenas only grew)
    table = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    del pieces
    table, duplicates = _first_of_each_request(table)
    kept = table
    if since_ms is not None or until_ms is not None:
        millis = table.column("timestamp").cast(pa.int64())
        inside = pc.and_(
            pc.greater_equal(millis, since_ms if since_ms is not None else -(2**62)),
            pc.less(millis, until_ms if until_ms is not None else 2**62),
        )
        kept = table.filter(inside)
    outside = table.num_rows - kept.num_rows + malformed.outside
    return ParsedLog(kept, rows_read, malformed, duplicates, outside)


def _pieces(data: bytes, start: int, piece_bytes: int) -> Iterator[tuple[int, int]]:
    """[start, end) of each piece of `data` from `start`: about `piece_bytes` each, ending at a line's end."""
    while start < len(data):
        end = data.find(b"\n", min(start + piece_bytes, len(data)) - 1) + 1 or len(data)
        yield start, end
        start = end


def _check_header(header: bytes) -> None:
    names = header.decode("utf-8", "replace").strip().replace("\\", "").split(",")
    if names != FIELDS:
        shown = header[:200].decode("utf-8", "replace")
        raise NotAnAccessLog(
            f"not an Amplify access log: the header should be the {len(FIELDS)} CloudFront fields "
            f"(date,time,x-edge-location,...), found {shown!r}"
        )


def _utf8_rows(body: bytes, malformed: Malformed) -> bytes:
    """The rows that are UTF-8 text; the others counted as malformed. Arrow refuses a whole file for one
    row that is not (a stray byte in a path), and the window would fail on every run."""
    try:
        body.decode("utf-8")
        return body
    except UnicodeDecodeError:
        pass
    kept = []
    for line in body.split(b"\n"):
        try:
            line.decode("utf-8")
            kept.append(line)
        except UnicodeDecodeError as e:
            malformed.add(
                f"not UTF-8 text (byte {e.start + 1}): {line[:120]!r}", _written(line.decode("utf-8", "replace"))
            )
    return b"\n".join(kept)


def _read_text_columns(body: pa.Buffer, malformed: Malformed) -> pa.Table:
    """Every field as text (`-` and empty as null), on all cores; rows with the wrong number of
    fields are counted and skipped."""

    def wrong_field_count(row: pacsv.InvalidRow) -> str:
        malformed.add(
            f"{row.actual_columns} fields instead of {row.expected_columns}: {row.text[:120]!r}", _written(row.text)
        )
        return "skip"

    columns = [COLUMN_OF[f] for f in FIELDS]
    return pacsv.read_csv(
        pa.BufferReader(body),
        read_options=pacsv.ReadOptions(column_names=columns, block_size=8 << 20),
        parse_options=pacsv.ParseOptions(quote_char=False, invalid_row_handler=wrong_field_count),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()), null_values=["-", ""], strings_can_be_null=True
        ),
    )


def _typed(text: pa.Table, backslashes: int, malformed: Malformed) -> pa.Table:
    """Unescape, decode and cast every column; rows with a value that does not fit its type are
    counted as malformed (with the field and the value) and left out."""
    values = _unescaped(text, backslashes)
    good = pa.array([True] * text.num_rows)
    written = pc.binary_join_element_wise(values["date"], values["time"], " ")
    when = pc.strptime(written, format=_WHEN, unit="ms", error_is_null=True)
    # strptime rolls impossible dates over (2026-02-30 -> 03-02) and reads 26-11-20 as year 26:
    # only a time that prints back as written is the time written
    exact = pc.fill_null(pc.equal(pc.strftime(when.cast(pa.timestamp("s")), format=_WHEN), written), False)
    good = _require(good, exact, values, "date/time", malformed, ("date", "time"))
    when = pc.if_else(exact, when, None)
    good = _require(good, pc.is_valid(values["x_edge_request_id"]), values, "x-edge-request-id", malformed)
    typed: dict[str, pa.Array] = {"timestamp": when}
    for column in AMPLIFY_ACCESS_TABLE.schema:
        if column.name != "timestamp":
            typed[column.name], good = _cast(values, column, good, malformed)
    table = pa.table(typed).select(AMPLIFY_ACCESS_TABLE.schema.names).cast(AMPLIFY_ACCESS_TABLE.schema)
    return table if pc.all(good).as_py() else table.filter(good)


def _cast(
    values: dict[str, pa.ChunkedArray], column: pa.Field, good: pa.Array, malformed: Malformed
) -> tuple[pa.ChunkedArray, pa.Array]:
    """One column in its type. The whole column is cast at once; only when that fails are the values
    that do not fit found (by pattern), counted as malformed rows, and left out."""
    value = values[column.name]
    if column.type not in _PATTERN:
        return value.cast(column.type), good
    if column.name == "sc_status":  # a number is not enough: three digits
        fits = pc.fill_null(pc.match_substring_regex(value, _STATUS), True)
        good = _require(good, fits, values, column.name, malformed, (column.name,))
        return pc.if_else(fits, value, None).cast(column.type), good
    try:
        cast = value.cast(column.type)
        # (Arrow casts '-1' to integers and doubles, and 'nan' and 'inf' to doubles: no bytes, port or time a
        # request took; summed, one would skew the totals)
        fits = pc.greater_equal(cast, 0)
        if column.type == pa.float64():
            fits = pc.and_(pc.is_finite(cast), fits)
        if pc.all(fits).as_py() is not False:
            return cast, good
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    fits = pc.fill_null(pc.match_substring_regex(value, _PATTERN[column.type]), True)
    good = _require(good, fits, values, column.name, malformed, (column.name,))
    return pc.if_else(fits, value, None).cast(column.type), good


def _require(
    good: pa.Array,
    fits: pa.Array,
    values: dict[str, pa.ChunkedArray],
    what: str,
    malformed: Malformed,
    shown: tuple[str, ...] = (),
) -> pa.Array:
    """`good` without the rows where `fits` is false; those are counted once each as malformed."""
    newly_bad = pc.and_(good, pc.invert(fits))
    if pc.any(newly_bad).as_py():
        for index in pc.indices_nonzero(newly_bad).to_pylist():
            found = ", ".join(f"{name}={values[name][index].as_py()!r}" for name in shown) or "missing"
            request = values["x_edge_request_id"][index].as_py()
            day, at = values["date"][index].as_py(), values["time"][index].as_py()
            written = f"{day} {at}" if day is not None and at is not None else None
            malformed.add(f"request {request}: {what} unreadable ({found})", written)
    return pc.and_(good, fits)


def _unescaped(text: pa.Table, backslashes: int) -> dict[str, pa.ChunkedArray]:
    """Every column with its backslash escapes undone (`\\x` is `x`), the user agent and the query
    also %XX-decoded. The escapes are where the real files have them: `\\=\\=` closing every request id,
    `\\(` `\\)` in user agents; the file's `backslashes` tell whether any other column has one, so
    the clean ones are not scanned."""
    values = dict(zip(text.column_names, text.columns, strict=True))
    request_ids = values["x_edge_request_id"]
    found = pc.sum(pc.count_substring(request_ids, "\\")).as_py() or 0
    if found:
        values["x_edge_request_id"] = _without_escapes(request_ids)
    for name in _DECODED:
        values[name], in_column = _decoded(values[name])
        found += in_column
    if found < backslashes:  # in other columns too
        for name, column in values.items():
            if (
                name != "x_edge_request_id"
                and name not in _DECODED
                and pc.any(pc.match_substring(column, "\\")).as_py()
            ):
                values[name] = _without_escapes(column)
    return values


def _without_escapes(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The usual escape as a plain replacement; anything else (rare) by a regular expression."""
    column = pc.replace_substring(column, "\\=", "=")
    if pc.any(pc.match_substring(column, "\\")).as_py():
        column = pc.replace_substring_regex(column, r"\\(.)", r"\1")
    return column


def _decoded(column: pa.ChunkedArray) -> tuple[pa.Array, int]:
    """Unescaped and %XX-decoded, once per distinct value (user agents and queries repeat a lot);
    also how many backslashes the column held."""
    encoded = column.combine_chunks().dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    uses = pc.value_counts(encoded.indices)
    backslashes = sum(
        distinct[index].count("\\") * count
        for index, count in zip(uses.field("values").to_pylist(), uses.field("counts").to_pylist(), strict=True)
        if index is not None and "\\" in distinct[index]
    )
    decoded = [None if v is None else unquote(_BACKSLASHED.sub(r"\1", v)) for v in distinct]
    return pc.take(pa.array(decoded, pa.string()), encoded.indices), backslashes


_BACKSLASHED = re.compile(r"\\(.)")


def _first_of_each_request(table: pa.Table) -> tuple[pa.Table, int]:
    """Rows de-duplicated by x-edge-request-id, keeping the first (exports overlap at their edges)."""
    if table.num_rows == 0:
        return table, 0
    if len(pc.unique(table.column("x_edge_request_id"))) == table.num_rows:
        return table, 0  # the usual case, found by a hash of the ids (a group-by takes four times longer)
    numbered = pa.table({"row": pa.array(range(table.num_rows)), "id": table.column("x_edge_request_id")})
    first = numbered.group_by("id", use_threads=False).aggregate([("row", "min")]).column("row_min")
    if len(first) == table.num_rows:
        return table, 0
    return table.take(pc.take(first, pc.sort_indices(first))), table.num_rows - len(first)
