"""Parsing Amplify access logs in their real, escaped format."""

from __future__ import annotations

import gzip

import pytest

from loglake.amplify.parse import NotAnAccessLog, parse_access_log
from tests.amplify.logs import HEADER, USER_AGENTS, Request, access_log, request_id, row, varied_requests

T0 = 1_790_000_000_000  # 2026-09-21T14:13:20Z
T0_DAY = "2026-09-21"
HOUR = 3_600_000


def test_a_row_becomes_typed_unescaped_decoded_columns() -> None:
    r = Request(T0, request_id(1), path="/a%20b", query="q=hello%20world%26x%3D1", sc_bytes=9000, status=404)
    parsed = parse_access_log(access_log([r]))
    assert parsed.rows_read == 1 and parsed.malformed.count == 0
    (got,) = parsed.table.to_pylist()
    assert got["timestamp"].isoformat() == "2026-09-21T14:13:20"
    assert got["x_edge_request_id"] == r.request_id  # '\=\=' read as '=='
    assert got["x_edge_request_id"].endswith("==")
    assert got["cs_user_agent"].startswith("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit")
    assert got["cs_uri_query"] == "q=hello world&x=1"
    assert got["cs_uri_stem"] == "/a%20b"  # only the user agent and the query are decoded
    assert (got["sc_status"], got["sc_bytes"], got["c_port"]) == (404, 9000, 54321)
    assert (got["time_taken"], got["time_to_first_byte"]) == (0.002, 0.001)
    assert got["x_forwarded_for"] is None and got["sc_range_start"] is None  # '-' is empty
    assert got["x_host_header"] == "danse.tech"


def test_the_real_header_is_required() -> None:
    assert HEADER.startswith("date,time,x-edge-location,sc-bytes,c-ip,cs-method,cs\\(Host),")
    with pytest.raises(NotAnAccessLog, match="33 CloudFront fields"):
        parse_access_log(b"a,b,c\n1,2,3\n")


def test_an_empty_range_is_a_zero_byte_file_and_no_rows() -> None:
    parsed = parse_access_log(b"")
    assert (parsed.table.num_rows, parsed.rows_read, parsed.malformed.count) == (0, 0, 0)
    assert parsed.table.schema.names[0] == "timestamp"


def test_malformed_rows_are_counted_and_described_and_do_not_stop_the_file() -> None:
    good = [Request(T0 + i * 1000, request_id(i)) for i in range(5)]
    lines = [HEADER, row(good[0]), "2026-09-21,14:13:21,too,few,fields", row(good[1])]
    lines.append(row(Request(T0 + 9000, request_id(90))).replace(",200,", ",2x0,", 1))  # bad status
    lines.append(row(Request(T0 + 9000, request_id(91))).replace("2026-09-21", "2026-13-45", 1))  # bad date
    lines.extend(row(r) for r in good[2:])
    parsed = parse_access_log(("\n".join(lines) + "\n").encode())
    assert parsed.rows_read == 8
    assert parsed.table.num_rows == 5
    assert parsed.malformed.count == 3
    reasons = " | ".join(parsed.malformed.examples)
    assert "5 fields instead of 33: '2026-09-21,14:13:21,too,few,fields'" in reasons
    assert "sc_status unreadable (sc_status='2x0')" in reasons
    assert "date/time unreadable" in reasons and "2026-13-45" in reasons


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("2026-09-21", "2026-02-30", "date='2026-02-30'"),  # rolled over to March by a lenient parser
        ("2026-09-21", "26-09-21", "date='26-09-21'"),  # year 26
        (",14:13:21,", ",24:00:00,", "time='24:00:00'"),
        (",200,", ",2000,", "sc_status='2000'"),
        # (Arrow reads these as doubles; no request took them)
        (",0.002,", ",nan,", "time_taken='nan'"),
        (",0.002,", ",-inf,", "time_taken='-inf'"),
        (",0.001,", ",inf,", "time_to_first_byte='inf'"),
        (",0.002,", ",-1,", "time_taken='-1'"),
        (",5120,", ",-1,", "sc_bytes='-1'"),  # (Arrow reads it as an integer too: it was stored, and summed)
        (",54321,", ",-54321,", "c_port='-54321'"),
    ],
)
def test_impossible_values_are_malformed_not_guessed(old: str, new: str, reason: str) -> None:
    good, bad = Request(T0, request_id(1)), Request(T0 + 1000, request_id(2))
    export = "\n".join([HEADER, row(good), row(bad).replace(old, new, 1)]) + "\n"
    parsed = parse_access_log(export.encode())
    assert parsed.table.column("x_edge_request_id").to_pylist() == [good.request_id]
    assert parsed.malformed.count == 1 and reason in parsed.malformed.examples[0]
    assert f"request {bad.request_id}" in parsed.malformed.examples[0]


def test_a_gzip_compressed_export_is_read_and_a_damaged_one_named() -> None:
    export = access_log([Request(T0, request_id(1))])
    assert parse_access_log(gzip.compress(export)).table.num_rows == 1
    with pytest.raises(NotAnAccessLog, match="a gzip file that cannot be read"):
        parse_access_log(gzip.compress(export)[:30])


def test_a_header_alone_and_a_byte_order_mark_are_fine() -> None:
    assert parse_access_log((HEADER + "\n").encode()).table.num_rows == 0
    with_bom = b"\xef\xbb\xbf" + access_log([Request(T0, request_id(1))])
    assert parse_access_log(with_bom).table.num_rows == 1


def test_rows_are_deduplicated_by_request_id_and_kept_to_the_range() -> None:
    requests = [Request(T0 + i * 60_000, request_id(i)) for i in range(120)]  # two hours, one a minute
    repeated = requests + requests[50:70]  # overlapping exports
    parsed = parse_access_log(access_log(repeated), since_ms=T0 + 30 * 60_000, until_ms=T0 + 90 * 60_000)
    assert parsed.duplicates == 20
    ids = parsed.table.column("x_edge_request_id").to_pylist()
    assert ids == [r.request_id for r in requests[30:90]]  # half-open: the 90th minute is out
    assert parsed.outside == 60


def test_user_agents_decode_once_per_distinct_value() -> None:
    requests = [Request(T0 + i, request_id(i), user_agent=USER_AGENTS[i % 4]) for i in range(40)]
    agents = set(parse_access_log(access_log(requests)).table.column("cs_user_agent").to_pylist())
    assert agents == {
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML like Gecko) Chrome/130.0.0.0 "
        "Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
    }


def test_every_backslash_escape_is_undone_including_an_escaped_backslash() -> None:
    plain = Request(T0, request_id(1), path="/a\\;b")  # an escape Amplify does not usually write
    doubled = Request(T0 + 1, request_id(2), path="/c\\\\(d")  # an escaped backslash, then an escaped "("
    for r, path in [(plain, "/a;b"), (doubled, "/c\\(d")]:
        (got,) = parse_access_log(access_log([r])).table.to_pylist()
        assert (got["cs_uri_stem"], got["x_edge_request_id"]) == (path, r.request_id)


def test_a_row_that_is_not_utf8_is_malformed_and_the_rest_of_the_file_is_read() -> None:
    # One stray byte in one row raised ArrowInvalid for the whole export: `amplify import` ended in a
    # traceback, and the collector failed the window on every run, so the app's watermark stayed behind it.
    good = [Request(T0 + i * 1000, request_id(i)) for i in range(4)]
    broken = row(Request(T0 + 9000, request_id(90))).encode().replace(b"/index.html", b"/caf\xe9", 1)
    export = b"\n".join([HEADER.encode(), row(good[0]).encode(), broken, *(row(r).encode() for r in good[1:])]) + b"\n"
    parsed = parse_access_log(export)
    assert parsed.table.column("x_edge_request_id").to_pylist() == [r.request_id for r in good]
    assert (parsed.rows_read, parsed.malformed.count) == (5, 1)
    assert "not UTF-8" in parsed.malformed.examples[0] and "/caf\\xe9" in parsed.malformed.examples[0]


def test_a_malformed_row_outside_the_range_is_another_windows_and_not_counted_here() -> None:
    # Exports overlap by the hour: a malformed row of an edge hour was counted by both windows (a daily run
    # of 2-day windows reported 754 malformed rows of an app whose exports held 733).
    hour_rows = [Request(T0 + i * 600_000, request_id(i)) for i in range(12)]  # two hours, one each 10 minutes
    lines = [HEADER]
    for r in hour_rows:
        lines.append(row(r))
        lines.append(row(Request(r.at_ms + 1000, request_id(100 + len(lines)))).replace(",200,", ",2x0,", 1))
        lines.append(row(Request(r.at_ms + 2000, request_id(200 + len(lines)))) + ",extra")
    export = ("\n".join(lines) + "\n").encode()
    middle = T0 + 6 * 600_000
    first, second = parse_access_log(export, until_ms=middle), parse_access_log(export, since_ms=middle)
    assert (first.malformed.count, second.malformed.count) == (12, 12)  # each bad row counted once, by its window
    assert (first.outside, second.outside) == (18, 18)  # the other window's rows, readable or not
    assert first.rows_read == second.rows_read == 36
    for bad_day in ("2026-02-30", "26-09-21"):  # no time to place the row by: counted by each window
        bad_date = row(Request(T0, request_id(999))).replace(T0_DAY, bad_day, 1).encode()
        for parsed in (
            parse_access_log(export + bad_date, until_ms=middle),
            parse_access_log(export + bad_date, since_ms=middle),
        ):
            assert parsed.malformed.count == 13


def test_an_export_read_in_pieces_is_read_as_it_is_whole() -> None:
    """Pieces end at a line's end: no row is cut, counted twice, or kept twice across a piece's edge."""
    requests = varied_requests(3_000, T0, 3_600_000, "pieces")
    lines = access_log(requests + requests[1_000:1_200]).decode().splitlines()
    lines.insert(500, "2026-09-21,14:13:21,too,few,fields")
    lines.insert(2_000, lines[1_999].replace(",200,", ",2x0,", 1))
    data = ("\n".join(lines) + "\n").encode()
    window = {"since_ms": T0 + 600_000, "until_ms": T0 + 3_000_000}
    whole, pieces = parse_access_log(data, **window), parse_access_log(data, **window, piece_bytes=1_000)
    assert pieces.table.equals(whole.table) and whole.table.num_rows > 1_500
    assert (pieces.rows_read, pieces.duplicates, pieces.outside) == (whole.rows_read, whole.duplicates, whole.outside)
    assert (pieces.malformed.count, pieces.malformed.examples) == (whole.malformed.count, whole.malformed.examples)
