"""One rule for times everywhere (a time without an offset is UTC, a date alone its midnight UTC), and
errors that say what is wrong with the text: the parser, then each place that reads times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from loglake.times import (
    TimeFormatError,
    format_datetime,
    parse_datetime,
    parse_duration,
    parse_iso8601,
    parse_time,
)
from tests.amplify.test_commands import write_config
from tests.conftest import run_cli

NOW_MS = 1_796_292_000_000  # 2026-12-03T10:00:00Z
TEN_O_CLOCK = 1_796_292_000_000


@pytest.mark.parametrize(
    "text",
    ["2026-12-03T10:00:00Z", "2026-12-03T10:00:00", "2026-12-03 10:00", "2026-12-03T11:00:00+01:00", "20261203T100000"],
)
def test_every_reader_takes_a_time_without_an_offset_as_utc(text: str) -> None:
    assert parse_iso8601(text) == TEN_O_CLOCK
    assert parse_time(text, NOW_MS) == TEN_O_CLOCK
    assert parse_datetime(text) == datetime(2026, 12, 3, 10, tzinfo=UTC)


def test_a_date_alone_is_its_midnight_utc() -> None:
    midnight = TEN_O_CLOCK - 10 * 3_600_000
    assert parse_iso8601("2026-12-03") == parse_time("2026-12-03", NOW_MS) == midnight
    assert parse_datetime("2026-12-03") == datetime(2026, 12, 3, tzinfo=UTC)


def test_query_bounds_also_take_epoch_ms_ages_and_now() -> None:
    assert parse_time(str(TEN_O_CLOCK), NOW_MS) == TEN_O_CLOCK
    assert parse_time("2h", NOW_MS) == NOW_MS - 7_200_000
    assert parse_time("now", NOW_MS) == NOW_MS


@pytest.mark.parametrize(
    ("text", "ms"), [("1h30m", 5_400_000), ("1.5h", 5_400_000), ("2d12h", 216_000_000), ("1m0.5s", 60_500)]
)
def test_ages_may_add_up_parts_and_have_fractions_as_loki_and_victorialogs_take_them(text: str, ms: int) -> None:
    assert parse_time(text, NOW_MS) == NOW_MS - ms
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["1h 30m", "1.h", ".5h", "h", "1x"])
def test_a_duration_that_does_not_add_up_is_refused(text: str) -> None:
    with pytest.raises(TimeFormatError, match="is not a duration such as 30s, 5m, 1h30m, 7d or 1w"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("last tuesday", "'last tuesday' is not a time: use epoch milliseconds, ISO-8601"),
        ("2026-13-01", "'2026-13-01' is not a valid date or time: month must be in 1..12"),
        ("2026-02-30T00:00:00Z", "day is out of range for month"),
        ("2026-12-03T25:00:00Z", "hour must be in 0..23"),
        ("2026-12-03T10:00:00 01:00", "has a space before its offset: in a URL write + as %2B"),
        ("2026-12-03T10:00:00+1", "is not an ISO-8601 date or time such as 2026-12-03 or 2026-12-03T10:00:00Z"),
        ("1796292000", "looks like epoch seconds; send epoch milliseconds (1796292000000)"),
        ("99999999d", "is outside the years 1970 to 9999"),
        ("1796422000000000", "looks like epoch microseconds; send epoch milliseconds (1796422000000)"),
        ("1796422000000000000", "looks like epoch nanoseconds; send epoch milliseconds (1796422000000)"),
        ("99999999999999999999999", "is outside the years 1970 to 9999"),  # no plausible time in any unit
        ("²", "'²' is not a time"),  # str.isdigit() says yes, int() refuses it
    ],
)
def test_each_error_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(TimeFormatError) as caught:
        parse_time(text, NOW_MS)
    assert says in str(caught.value)


async def test_the_api_reads_times_without_an_offset_as_utc(client: httpx.AsyncClient) -> None:
    sent = await client.post("/logs", json={"message": "bare", "timestamp": "2026-12-03T10:00:00.250"})
    assert sent.status_code == 201, sent.text
    stored = (await client.get(f"/logs/{sent.json()['logId']}")).json()
    assert stored["datetime"] == "2026-12-03T10:00:00.250Z"
    found = await client.get("/logs/recent", params={"since": "2026-12-03T10:00:00", "until": "2026-12-03T10:00:01"})
    assert found.status_code == 200, found.text
    assert [r["message"] for r in found.json()["logs"]] == ["bare"]
    reports = await client.get("/amplify/reports", params={"app": "none", "since": "2026-12-01T00:00:00"})
    assert reports.status_code == 404 and reports.json()["error"]["code"] == "unknown_app"


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/logs/recent", {"since": "2026-13-01"}, "since: '2026-13-01' is not a valid date or time: month must be in"),
        ("/logs/search", {"q": "x", "until": "2026-12-03T25:00"}, "until: '2026-12-03T25:00' is not a valid date"),
        ("/logs/histogram", {"since": "yesterday"}, "since: 'yesterday' is not a time: use epoch milliseconds"),
        ("/amplify/reports", {"app": "a", "since": "1796292000"}, "since: 1796292000 looks like epoch seconds"),
        ("/logs/recent", {"since": "1796422000000000"}, "since: 1796422000000000 looks like epoch microseconds"),
        ("/amplify/reports", {"app": "a", "until": "2026-02-30"}, "until: '2026-02-30' is not a valid date or time"),
    ],
)
async def test_api_time_errors_name_the_parameter_and_the_problem(
    client: httpx.AsyncClient, path: str, params: dict, says: str
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert says in response.text


async def test_a_record_timestamp_error_says_what_is_wrong(client: httpx.AsyncClient) -> None:
    response = await client.post("/logs", json={"message": "m", "timestamp": "2026-02-30T10:00:00Z"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["reason"] == (
        "'2026-02-30T10:00:00Z' is not a valid date or time: day is out of range for month"
    )


async def test_a_record_timestamp_in_microseconds_is_told_to_be_milliseconds(client: httpx.AsyncClient) -> None:
    """Not "more than 24 h in the future (check the clock)": the clock is right, the unit is not."""
    response = await client.post("/logs", json={"message": "m", "timestamp": 1796422000000000})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["reason"] == (
        "1796422000000000 looks like epoch microseconds; send milliseconds (1796422000000)"
    )


async def test_a_too_early_or_too_late_timestamp_is_named_as_sent_with_advice_that_works(
    client: httpx.AsyncClient,
) -> None:
    """An ISO time before 1973 was named as epoch ms ("0 is before"); a number too large even as nanoseconds was
    told to be sent as a millisecond value in the year 5138, which is refused too."""
    early = await client.post("/logs", json={"message": "m", "timestamp": "1970-01-01T00:00:00Z"})
    assert early.json()["error"]["details"][0]["reason"] == "'1970-01-01T00:00:00Z' is before 1973-03-03"
    late = await client.post("/logs", json={"message": "m", "timestamp": 99999999999999999})
    assert late.json()["error"]["details"][0]["reason"] == "is more than 24 h in the future (check the clock)"
    assert (late.status_code, early.status_code) == (400, 400)


async def test_a_record_timestamp_of_digits_in_a_string_is_told_to_be_a_number(client: httpx.AsyncClient) -> None:
    """Not "month must be in 1..12", which Python's ISO reader says of 13 digits."""
    response = await client.post("/logs", json={"message": "m", "timestamp": "1796403000000"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["reason"] == (
        "'1796403000000' is a number in a string: send epoch milliseconds as a JSON number (1796403000000),"
        " or an ISO-8601 date-time such as 2026-12-03T10:00:00Z"
    )


@pytest.mark.parametrize("text", ["04/12/2026 10:00", "Dec 4 2026 10:00", "2026-12-04 at 10:00"])
async def test_a_date_then_a_time_in_another_form_is_not_taken_for_a_decoded_offset(
    client: httpx.AsyncClient, text: str
) -> None:
    """A space before the last digits is a URL-decoded `+` only when a `+` there makes it ISO-8601."""
    expected = f"{text!r} is not an ISO-8601 date or time such as 2026-12-03 or 2026-12-03T10:00:00Z"
    native = await client.post("/logs", json={"message": "t", "timestamp": text})
    assert native.status_code == 400
    assert native.json()["error"]["details"][0]["reason"] == expected
    bulk = b'{"create":{}}\n' + json.dumps({"message": "t", "@timestamp": text}).encode() + b"\n"
    elastic = await client.post("/app/_bulk", content=bulk, headers={"content-type": "application/x-ndjson"})
    assert elastic.status_code == 200 and expected in elastic.json()["items"][0]["create"]["error"]["reason"]


@pytest.mark.usefixtures("no_loglake_environment")
def test_the_collector_reads_times_without_an_offset_as_utc(tmp_path: Path) -> None:
    config = write_config(tmp_path / "amplify.json")
    day = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()

    def windows(since: str, until: str) -> str:
        args = ["--config", str(config), "--data-dir", str(tmp_path / "data"), "--app", "danse_tech", "--dry-run"]
        result = run_cli("amplify", "collect", *args, "--since", since, "--until", until)
        assert result.exit_code == 0, result.output
        return result.stdout

    planned = windows(f"{day}T06:00:00Z", f"{day}T18:00:00+00:00")
    assert f"{day}T06:00:00Z" in planned
    assert windows(f"{day}T06:00:00", f"{day}T18:00:00") == planned
    bad = run_cli("amplify", "collect", "--config", str(config), "--dry-run", "--since", f"{day}T24:30")
    assert bad.exit_code == 2 and "--since: " in bad.output and "hour must be in 0..23" in bad.output


@pytest.mark.usefixtures("no_loglake_environment")
def test_the_report_command_reads_the_same_times(tmp_path: Path) -> None:
    result = run_cli("amplify", "report", "--app", "x", "--since", "2026-02-30", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "--since: '2026-02-30' is not a valid date or time: day is out of range for month" in result.output


@pytest.mark.parametrize(
    "ts_ms", [0, 999, 1_000, 86_399_999, 86_400_000, NOW_MS, NOW_MS + 3_599_001, -1, -86_400_001, 253_402_300_799_999]
)
def test_a_record_time_is_written_as_iso_8601_utc_with_milliseconds(ts_ms: int) -> None:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ts_ms)
    assert format_datetime(ts_ms) == moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
