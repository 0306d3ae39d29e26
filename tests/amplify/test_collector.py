"""The collector against a local Amplify server, with the real boto3 client pointed at it."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from loglake.amplify.collector import HOUR, Collector, Window, collection_status
from loglake.amplify.config import parse_config
from loglake.amplify.lake_rows import store_rows
from loglake.amplify.parse import parse_access_log
from loglake.amplify.run_reports import AppReport
from loglake.amplify.source import AmplifyLogSource
from loglake.lake.objectstore import LocalObjectStore, ObjectStore, ObjectStoreError
from loglake.lake.query import QueryEngine
from loglake.store.sqlite import SQLiteHotStore
from tests.amplify.logs import HEADER, Request, request_id, row, varied_requests
from tests.amplify.server import FakeAmplify, FakeApp
from tests.lake.test_bulk import RECOVER_SCRIPT

NOW = datetime(2026, 11, 16, 1, 30, tzinfo=UTC)  # a Monday; the last settled hour ends at 00:00
UNTIL = datetime(2026, 11, 16, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=28)  # logRetention 28 days, chunks of 14: two windows
DANSE = {"profile": "HylmarJ", "region": "eu-west-1", "appId": "d3hgg9jtwyuijn", "domainName": "danse.tech"}
HORIZON = {
    "profile": "JiHy__vsb__299",
    "region": "eu-central-1",
    "appId": "dziu0wvy5r9bx",
    "domainName": "main.dziu0wvy5r9bx.amplifyapp.com",
}


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def config(chunk_days: int = 14, retention_days: int = 28):
    return parse_config(
        {
            "applications": [DANSE | {"appName": "danse_tech"}, HORIZON | {"appName": "digital_horizon"}],
            "s3": {"bucket": "", "prefix": ""},
            "schedule": {"frequency": "weekly", "dayOfWeek": "Monday", "timeOfDay": "01:00"},
            "logRetention": {"days": retention_days},
            "timeChunkSize": {"days": chunk_days},
        }
    )


def serve_apps(amplify: FakeAmplify, count: int = 2_000) -> tuple[FakeApp, FakeApp]:
    """Both apps with `count` requests over the 28 days, plus some before and after them."""
    around = timedelta(days=2)
    danse = FakeApp(
        "danse.tech", varied_requests(count, ms(SINCE - around), ms(UNTIL + around) - ms(SINCE - around), "d")
    )
    horizon = FakeApp(HORIZON["domainName"], varied_requests(count // 2, ms(SINCE), ms(UNTIL) - ms(SINCE), "h"))
    amplify.apps.update({DANSE["appId"]: danse, HORIZON["appId"]: horizon})
    return danse, horizon


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def collector(store: SQLiteHotStore, lake: LocalObjectStore, **options) -> Collector:
    chosen = options.pop("config", None) or config()
    return Collector(
        chosen, store, lake, clock=lambda: NOW.timestamp(), sleep=options.pop("sleep", Sleeps()), **options
    )


def lake_rows(store: SQLiteHotStore, lake: LocalObjectStore, app: str | None = None) -> list[dict]:
    rows = []
    for (key,) in store.read("SELECT key FROM lake_files WHERE table_name = 'amplify_access' ORDER BY key"):
        if app is None or f"/app={app}/" in key:
            rows.extend(pq.read_table(io.BytesIO(lake.get(key))).to_pylist())
    return rows


def in_range(fake: FakeApp, since: datetime = SINCE, until: datetime = UNTIL) -> list[str]:
    return sorted(r.request_id for r in fake.requests if ms(since) <= r.at_ms < ms(until))


def test_a_run_collects_every_app_into_partitions_exactly_once(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, horizon = serve_apps(amplify)
    report = collector(store, lake).run()
    assert report.ok, report.to_dict()
    by_app = {a.app: a for a in report.apps}
    assert by_app["danse_tech"].windows == by_app["danse_tech"].windows_ok == 2
    stored = lake_rows(store, lake, "danse_tech")
    # the exports overlap at their edges and spill over the range; none of that is stored
    assert sorted(r["x_edge_request_id"] for r in stored) == in_range(danse)
    assert by_app["danse_tech"].rows == len(stored) and by_app["danse_tech"].outside > 0
    assert sorted(r["x_edge_request_id"] for r in lake_rows(store, lake, "digital_horizon")) == in_range(horizon)
    keys = [k for (k,) in store.read("SELECT key FROM lake_files WHERE table_name = 'amplify_access'")]
    assert all(k.startswith("type=amplify_access/app=") and "/date=2026-" in k for k in keys)
    for key in keys:  # partitioned by the event's own date
        day = key.split("/date=")[1][:10]
        assert {r["timestamp"].date().isoformat() for r in pq.read_table(io.BytesIO(lake.get(key))).to_pylist()} == {
            day
        }
    assert collector(store, lake).watermark("danse_tech") == UNTIL
    assert by_app["danse_tech"].watermark_after == "2026-11-16T00:00:00Z"
    assert store.read("SELECT count(*) FROM amplify_runs") == [(1,)]


def test_an_app_named_twice_is_collected_once(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    """`collect --app danse_tech --app danse_tech` collected it twice at once, each storing every row."""
    danse, _ = serve_apps(amplify)
    report = collector(store, lake).run(apps=["danse_tech", "danse_tech"])
    assert sorted(r["x_edge_request_id"] for r in lake_rows(store, lake)) == in_range(danse)
    assert [a.app for a in report.apps] == ["danse_tech"]


def test_exports_are_kept_gzipped_in_the_original_layout(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, _ = serve_apps(amplify)
    collector(store, lake).run(apps=["danse_tech"])
    exports = sorted(o.key for o in lake.list("type=amplify_logs/"))
    assert exports == [
        "type=amplify_logs/app=danse_tech/date_export=2026-11-16/log_20261019_000000_20261102_000000",
        "type=amplify_logs/app=danse_tech/date_export=2026-11-16/log_20261102_000000_20261116_000000",
    ]
    first = gzip.decompress(lake.get(exports[0]))
    assert first == amplify.export(danse, ms(SINCE), ms(SINCE + timedelta(days=14)))  # as delivered


def test_exports_served_gzip_compressed_are_read(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A log URL serving the CSV gzip-compressed without Content-Encoding failed every window ("not an Amplify
    # access log: ... found '\x1f\x8b...'"), on every run.
    danse, _ = serve_apps(amplify)
    plain = amplify.export
    monkeypatch.setattr(amplify, "export", lambda app, start, end: gzip.compress(plain(app, start, end)))
    report = collector(store, lake).run(apps=["danse_tech"])
    assert report.ok, report.to_dict()
    assert sorted(r["x_edge_request_id"] for r in lake_rows(store, lake, "danse_tech")) == in_range(danse)
    export = sorted(o.key for o in lake.list("type=amplify_logs/"))[0]  # kept as delivered, not compressed twice
    assert gzip.decompress(lake.get(export)) == plain(danse, ms(SINCE), ms(SINCE + timedelta(days=14)))


def test_running_again_stores_nothing_twice(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, horizon = serve_apps(amplify)
    collector(store, lake).run()
    again = collector(store, lake).run(since=SINCE, until=UNTIL)  # the same range by hand
    assert again.ok
    assert sum(a.rows for a in again.apps) == 0
    assert sum(a.duplicates for a in again.apps) == len(in_range(danse)) + len(in_range(horizon))
    assert sorted(r["x_edge_request_id"] for r in lake_rows(store, lake, "danse_tech")) == in_range(danse)


def test_a_stored_part_that_cannot_be_read_fails_its_windows_naming_it_and_the_way_out(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    """The windows that would write to its day cannot tell its rows from theirs: each fails naming the part and
    `loglake verify --quarantine` (a bare OSError of pyarrow's, naming nothing, before); the others are stored."""
    serve_apps(amplify)
    collector(store, lake).run()
    [(key,)] = store.read("SELECT key FROM lake_files WHERE key LIKE '%app=danse_tech/date=2026-11-10/%'")
    (lake.root / key).write_bytes(b"PAR1 no longer a Parquet file PAR1")
    again = collector(store, lake).run(since=SINCE, until=UNTIL)
    [failed] = [a for a in again.apps if a.app == "danse_tech"]
    assert failed.windows_failed == 1 and len(failed.errors) == 1
    assert f"the stored part {key} cannot be read" in failed.errors[0]
    assert "`loglake verify --quarantine` takes a damaged part out" in failed.errors[0]
    assert [a.windows_failed for a in again.apps if a.app != "danse_tech"] == [0]


def test_a_range_too_large_is_split_in_halves(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, _ = serve_apps(amplify)
    danse.max_hours = 100  # 14 days = 336 h -> 168 -> 84: two levels
    report = collector(store, lake).run(apps=["danse_tech"])
    (app,) = report.apps
    assert app.ok and app.splits == 2 * (1 + 2)  # per window: the window, then its two halves
    assert sorted(r["x_edge_request_id"] for r in lake_rows(store, lake)) == in_range(danse)
    hours = sorted((end - start) // 3_600_000 for start, end in danse.calls)
    assert hours == [84] * 8 + [168] * 4 + [336] * 2


def test_splitting_stops_after_three_levels(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, _ = serve_apps(amplify)
    danse.max_hours = 40  # 336 h / 8 = 42 h is still too large
    report = collector(store, lake).run(apps=["danse_tech"])
    (app,) = report.apps
    assert app.windows_failed == 2 and app.rows == 0
    assert "still too large after splitting 3 times" in app.errors[0]
    assert "reduce time range" in app.errors[0]
    assert collector(store, lake).watermark("danse_tech") is None


def test_throttling_and_5xx_are_retried_with_growing_jittered_pauses(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, _ = serve_apps(amplify)
    danse.throttle_next, danse.fail_next = 2, 1
    sleeps = Sleeps()
    report = collector(store, lake, sleep=sleeps).run(apps=["danse_tech"])
    (app,) = report.apps
    assert app.ok and app.retries == 3 and len(sleeps) == 3
    assert all(0 <= pause <= cap for pause, cap in zip(sleeps, [1.0, 2.0, 4.0], strict=True))
    assert sorted(r["x_edge_request_id"] for r in lake_rows(store, lake)) == in_range(danse)


def test_what_a_window_does_is_said_as_it_goes(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    """A window was silent until done, and one can take half an hour (splits that each time out, retries): a user
    collecting by hand saw nothing for that long."""
    danse, _ = serve_apps(amplify)
    danse.max_hours, danse.throttle_next = 200, 1  # 336 h -> 168 h: split once; its first call throttled
    said, done, sleeps = [], [], Sleeps()
    run = collector(
        store, lake, sleep=sleeps, on_activity=lambda app, doing: said.append((app, doing)),
        on_progress=lambda app, windows_done, total, rows, failed: done.append(windows_done),
    ).run(apps=["danse_tech"])  # fmt: skip
    assert run.ok
    first = Window(SINCE, SINCE + timedelta(days=14))
    assert said[:3] == [
        ("danse_tech", f"window 1/2: fetching {first}"),
        (
            "danse_tech",
            f"{first}: TooManyRequestsException: Rate exceeded; trying again in {sleeps[0]:.1f} s (attempt 2 of 5)",
        ),
        (
            "danse_tech",
            f"{first}: too large for one export (BadRequestException: Too many records in the time range, reduce"
            " time range); fetching it in halves",
        ),
    ]
    assert ("danse_tech", f"window 2/2: fetching {Window(first.end, UNTIL)}") in said
    assert done == [0, 1, 2]  # (each window done, as before)


def test_a_failed_window_holds_the_watermark_and_the_next_run_fills_the_gap(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, _ = serve_apps(amplify)
    chosen = config(chunk_days=7)  # four windows
    second = SINCE + timedelta(days=7)
    danse.failing_from_ms = {ms(second)}
    first_run = collector(store, lake, config=chosen).run(apps=["danse_tech"])
    (app,) = first_run.apps
    assert (app.windows_ok, app.windows_failed) == (3, 1)
    assert "gave up after 5 attempts" in app.errors[0] and "InternalFailureException" in app.errors[0]
    assert collector(store, lake, config=chosen).watermark("danse_tech") == second  # the end of window 1
    collected = {r["x_edge_request_id"] for r in lake_rows(store, lake)}
    assert collected == set(in_range(danse)) - set(in_range(danse, second, second + timedelta(days=7)))

    danse.failing_from_ms = set()
    second_run = collector(store, lake, config=chosen).run(apps=["danse_tech"])
    (app,) = second_run.apps
    assert app.ok and app.windows == 3  # from the watermark: windows 2, 3 and 4 again
    assert sorted(r["x_edge_request_id"] for r in lake_rows(store, lake)) == in_range(danse)
    assert collector(store, lake, config=chosen).watermark("danse_tech") == UNTIL


def test_an_empty_range_is_a_successful_empty_window(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    amplify.apps[DANSE["appId"]] = FakeApp("danse.tech")
    report = collector(store, lake).run(apps=["danse_tech"])
    (app,) = report.apps
    assert app.ok and (app.windows_ok, app.rows, app.bytes) == (2, 0, 0)
    assert collector(store, lake).watermark("danse_tech") == UNTIL
    assert not list(lake.list("type=amplify_logs/"))


def test_apps_are_collected_concurrently(amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore) -> None:
    danse, horizon = serve_apps(amplify, count=100)
    danse.delay_seconds = horizon.delay_seconds = 0.3
    report = collector(store, lake).run()
    assert report.ok and amplify.most_active == 2


def test_malformed_rows_are_reported_and_the_rest_stored(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [Request(ms(SINCE) + i * 60_000, request_id(i)) for i in range(10)]
    broken = row(Request(ms(SINCE) + 30_000, request_id(99))).replace(",200,", ",OK,", 1)
    export = "\n".join([HEADER, *(row(r) for r in good[:5]), broken, *(row(r) for r in good[5:])]) + "\n"
    danse = FakeApp("danse.tech", good)
    amplify.apps[DANSE["appId"]] = danse
    monkeypatch.setattr(amplify, "export", lambda app, start, end: export.encode() if start == ms(SINCE) else b"")
    report = collector(store, lake).run(apps=["danse_tech"])
    (app,) = report.apps
    assert app.ok and app.rows == 10 and app.malformed == 1
    assert "sc_status unreadable (sc_status='OK')" in app.malformed_examples[0]


def test_an_unknown_profile_fails_that_app_with_advice(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    serve_apps(amplify)
    chosen = parse_config({"applications": [DANSE | {"appName": "danse_tech", "profile": "nobody"}]})
    report = collector(store, lake, config=chosen).run(since=SINCE, until=SINCE + timedelta(days=1))
    (app,) = report.apps
    assert app.windows_failed == 1 and "AWS profile 'nobody' is not in the AWS config" in app.errors[0]


def test_windows_split_on_whole_hours() -> None:
    window = Window(SINCE, SINCE + timedelta(hours=5))
    first, second = window.halves()
    assert (first.end, second.start) == (SINCE + timedelta(hours=2), SINCE + timedelta(hours=2))
    assert Window(SINCE, SINCE + timedelta(minutes=90)).halves() is None


def test_dry_run_plans_from_the_watermark(amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore) -> None:
    serve_apps(amplify)
    c = collector(store, lake)
    assert [str(w) for w in c.plan(c.config.app("danse_tech"))] == [
        "2026-10-19T00:00:00Z .. 2026-11-02T00:00:00Z",
        "2026-11-02T00:00:00Z .. 2026-11-16T00:00:00Z",
    ]
    c.run(apps=["danse_tech"])
    later = Collector(c.config, store, lake, clock=lambda: (NOW + timedelta(days=7)).timestamp())
    assert [str(w) for w in later.plan(c.config.app("danse_tech"))] == ["2026-11-16T00:00:00Z .. 2026-11-23T00:00:00Z"]


def test_collected_rows_are_queryable_by_sql_with_partition_pruning(
    amplify: FakeAmplify, store: SQLiteHotStore, object_store: ObjectStore, tmp_path
) -> None:
    """On a local lake and on S3 (SeaweedFS)."""
    danse, horizon = serve_apps(amplify)
    assert collector(store, object_store).run().ok
    assert len(list(object_store.list("type=amplify_logs/app=danse_tech/"))) == 2
    engine = QueryEngine(store, object_store, tmp_path / "duckdb")
    try:
        counts = engine.query("SELECT app, count(*) FROM amplify_access GROUP BY app ORDER BY app")
        assert counts.rows == [("danse_tech", len(in_range(danse))), ("digital_horizon", len(in_range(horizon)))]
        one_day = engine.query(
            "SELECT count(*) FROM amplify_access WHERE app = 'danse_tech' AND date = DATE '2026-11-01'"
        )
        expected = sum(
            1 for r in danse.requests if r.at_ms // 86_400_000 == ms(datetime(2026, 11, 1, tzinfo=UTC)) // 86_400_000
        )
        assert one_day.rows == [(expected,)]
        if isinstance(object_store, LocalObjectStore):  # DuckDB counts the files it reads itself
            assert one_day.files_scanned == 1
        typed = engine.query("SELECT typeof(sc_status), typeof(timestamp), typeof(date) FROM amplify_access LIMIT 1")
        assert typed.rows == [("INTEGER", "TIMESTAMP", "DATE")]
    finally:
        engine.close()


def test_data_past_the_retention_is_dropped_after_a_run(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, _ = serve_apps(amplify)
    collector(store, lake).run(apps=["danse_tech"])
    days_before = {d for (d,) in store.read("SELECT DISTINCT day FROM lake_files WHERE table_name = 'amplify_access'")}
    assert min(days_before) == "2026-10-19"
    # Ten days later, with 28 days kept, what is older than 2026-10-29 goes (the run also collects the
    # app's traffic of the two days after the first run).
    # parts `loglake verify --quarantine` kept: the one of a day past logRetention.days goes with its day
    quarantined = [f"_quarantine/type=amplify_access/app=danse_tech/date=2026-10-{d}/part-x.parquet" for d in (28, 29)]
    for key in quarantined:
        lake.put(key, b"damaged")
    later = Collector(config(), store, lake, clock=lambda: (NOW + timedelta(days=10)).timestamp(), grace_ms=0)
    report = later.run(apps=["danse_tech"])
    assert [lake.exists(key) for key in quarantined] == [False, True]
    days_after = {d for (d,) in store.read("SELECT DISTINCT day FROM lake_files WHERE table_name = 'amplify_access'")}
    assert days_after == {d for d in days_before if d >= "2026-10-29"} | {"2026-11-16", "2026-11-17"}
    assert report.expired_partitions == len(days_before - days_after) == 10
    remaining = {r["x_edge_request_id"] for r in lake_rows(store, lake)}
    assert remaining == set(in_range(danse, datetime(2026, 10, 29, tzinfo=UTC), UNTIL + timedelta(days=10)))
    assert not [k for k in (o.key for o in lake.list("type=amplify_access/")) if "/date=2026-10-19/" in k]
    # the exports of the first run (date_export 2026-11-16) are younger than the cutoff: kept; the second run's
    # are its window and the first run's last day fetched again for its late logs
    assert report.expired_exports == 0 and len(list(lake.list("type=amplify_logs/"))) == 4
    much_later = Collector(config(), store, lake, clock=lambda: (NOW + timedelta(days=40)).timestamp(), grace_ms=0)
    assert much_later.run(apps=["danse_tech"]).expired_exports == 4


def late_requests(fake: FakeApp, *hours_after_since: float) -> list[str]:
    """Requests the service shows only from now on, stamped these many hours after SINCE."""
    late = [
        Request(at_ms=ms(SINCE) + int(h * 3_600_000), request_id=request_id(i, "late"))
        for i, h in enumerate(hours_after_since)
    ]
    fake.requests.extend(late)
    return [r.request_id for r in late]


def rechecked_ms(store: SQLiteHotStore, app: str = "danse_tech") -> int | None:
    return store.read("SELECT rechecked_ms FROM amplify_watermarks WHERE app = ?", (app,))[0][0]


DAY_AFTER = NOW + timedelta(days=1)
LAST_DAY = 27 * 24  # hours from SINCE to 2026-11-15T00:00, the first run's last day


def test_late_logs_are_stored_when_their_hours_are_fetched_again_a_day_old(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    """CloudFront delivers some access logs up to 24 hours late: the hours a run collected younger than that are
    fetched once more when they are, so that what came late is stored (it was missed for good)."""
    danse, _ = serve_apps(amplify)
    collector(store, lake).run(apps=["danse_tech"])  # at 2026-11-16T01:30: up to 00:00, the hours after 01:00 young
    assert rechecked_ms(store) == ms(datetime(2026, 11, 15, 1, tzinfo=UTC))
    # (at 00:30 on the 15th: collected over a day old, not looked for again; the others a day old by the next run)
    missed, *_ = late_requests(danse, LAST_DAY + 0.5, LAST_DAY + 12, LAST_DAY + 23.9, LAST_DAY + 24.5)
    later = Collector(config(), store, lake, clock=lambda: DAY_AFTER.timestamp(), sleep=Sleeps())
    (app,) = later.run(apps=["danse_tech"]).apps
    assert app.ok and app.windows == 2  # the first run's young hours again, and the day since
    assert danse.calls[-2][0] == ms(datetime(2026, 11, 15, 1, tzinfo=UTC))
    stored = [r["x_edge_request_id"] for r in lake_rows(store, lake, "danse_tech")]
    # (the first day is past the retention a day later)
    assert sorted(stored) == sorted(
        set(in_range(danse, SINCE + timedelta(days=1), UNTIL + timedelta(days=1))) - {missed}
    )
    assert len(stored) == len(set(stored)) and app.late_rows == 2  # (the one at 00:30 on the 16th: not late)
    # every hour collected before 2026-11-16T01:00 was collected a day old: none is fetched again
    assert rechecked_ms(store) == ms(datetime(2026, 11, 16, 1, tzinfo=UTC))
    calls = len(danse.calls)
    (again,) = later.run(apps=["danse_tech"]).apps
    assert (again.windows, len(danse.calls)) == (0, calls)


def test_a_recheck_that_fails_holds_its_mark_and_the_next_run_fetches_it_again(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, _ = serve_apps(amplify)
    collector(store, lake).run(apps=["danse_tech"])
    mark = rechecked_ms(store)
    (late,) = late_requests(danse, LAST_DAY + 12)
    danse.failing_from_ms = {mark}
    later = Collector(config(), store, lake, clock=lambda: DAY_AFTER.timestamp(), sleep=Sleeps())
    (app,) = later.run(apps=["danse_tech"]).apps
    assert (app.windows_ok, app.windows_failed) == (1, 1) and "2026-11-15T01:00:00Z" in app.errors[0]
    assert later.watermark("danse_tech") == UNTIL + timedelta(days=1)  # the regular window goes on
    assert rechecked_ms(store) == mark
    danse.failing_from_ms = set()
    (app,) = later.run(apps=["danse_tech"]).apps
    assert app.ok and app.late_rows == 1 and late in {r["x_edge_request_id"] for r in lake_rows(store, lake)}
    assert rechecked_ms(store) == ms(datetime(2026, 11, 16, 1, tzinfo=UTC))


def test_an_app_collected_before_late_logs_were_rechecked_rechecks_the_day_before_its_watermark(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, _ = serve_apps(amplify)
    collector(store, lake).run(apps=["danse_tech"])
    store.run_in_writer(lambda conn: conn.execute("UPDATE amplify_watermarks SET rechecked_ms = NULL"))
    late_requests(danse, LAST_DAY + 0.5)  # (a day before the watermark, 2026-11-16T00:00)
    later = Collector(config(), store, lake, clock=lambda: DAY_AFTER.timestamp(), sleep=Sleeps())
    (app,) = later.run(apps=["danse_tech"]).apps
    assert app.ok and app.late_rows == 1
    assert rechecked_ms(store) == ms(datetime(2026, 11, 16, 1, tzinfo=UTC))


def test_a_range_chosen_by_hand_leaves_rechecking_alone(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    serve_apps(amplify)
    collector(store, lake).run(apps=["danse_tech"])
    mark = rechecked_ms(store)
    later = Collector(config(), store, lake, clock=lambda: DAY_AFTER.timestamp(), sleep=Sleeps())
    (app,) = later.run(apps=["danse_tech"], since=SINCE + timedelta(days=1), until=SINCE + timedelta(days=2)).apps
    assert app.windows == 1 and rechecked_ms(store) == mark


def test_a_watermark_the_retention_period_has_passed_moves_again(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    """Collection stopped for longer than the retention: the next run starts where the retention does, and its
    windows continue the watermark (which held at its old place for ever, every run fetching 28 days again)."""
    danse, _ = serve_apps(amplify)
    collector(store, lake).run(apps=["danse_tech"])
    back = NOW + timedelta(days=40)
    later = Collector(config(), store, lake, clock=lambda: back.timestamp(), sleep=Sleeps())
    (app,) = later.run(apps=["danse_tech"]).apps
    assert app.ok and later.watermark("danse_tech") == UNTIL + timedelta(days=40)
    hour_later = Collector(config(), store, lake, clock=lambda: (back + HOUR).timestamp(), sleep=Sleeps())
    (app,) = hour_later.run(apps=["danse_tech"]).apps
    assert app.windows - app.windows_ok == 0 and hour_later.watermark("danse_tech") == UNTIL + timedelta(
        days=40, hours=1
    )
    assert danse.calls[-1] == (ms(UNTIL + timedelta(days=40)), ms(UNTIL + timedelta(days=40, hours=1)))  # the new hour


def test_a_recheck_mark_the_retention_period_has_passed_moves_again(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    """A day kept, collected hourly: at midnight the retention passes the recheck mark, and the rechecks, which start
    where the retention does, continue it (it held, and every run fetched from the retention's start again)."""
    serve_apps(amplify)
    kept_a_day = config(retention_days=1)
    for hours in range(26):  # 2026-11-16T01:30 to 2026-11-17T02:30
        at = NOW + timedelta(hours=hours)
        (app,) = Collector(kept_a_day, store, lake, clock=at.timestamp, sleep=Sleeps()).run(apps=["danse_tech"]).apps
        assert app.ok
    assert rechecked_ms(store) == ms(datetime(2026, 11, 16, 2, tzinfo=UTC))
    assert app.windows == 2  # the hour a day old again, and the new hour


class RefusingLake(LocalObjectStore):
    """A local lake whose disk refuses one app's exports (a full or read-only bucket, say)."""

    def put(self, key: str, data: bytes) -> None:
        if "/app=danse_tech/" in key:
            raise ObjectStoreError(f"cannot write {key}: no space left on device")
        super().put(key, data)


def test_a_storage_error_fails_that_window_and_the_other_app_goes_on(
    amplify: FakeAmplify, store: SQLiteHotStore, tmp_path
) -> None:
    _, horizon = serve_apps(amplify)
    lake = RefusingLake(tmp_path / "refusing")
    report = collector(store, lake).run()
    by_app = {a.app: a for a in report.apps}
    assert by_app["danse_tech"].windows_failed == 2 and by_app["danse_tech"].rows == 0
    assert "ObjectStoreError: cannot write" in by_app["danse_tech"].errors[0]
    assert by_app["digital_horizon"].ok and by_app["digital_horizon"].rows == len(in_range(horizon))
    assert collector(store, lake).watermark("danse_tech") is None  # nothing stored, nothing skipped


class ExportsLockedLake(LocalObjectStore):
    """A lake where danse_tech's exports folder may be written but not listed (a bucket policy on its prefix)."""

    def list(self, prefix: str = ""):
        if prefix.startswith("type=amplify_logs/app=danse_tech/"):
            raise ObjectStoreError(f"cannot list {prefix}: AccessDenied")
        return super().list(prefix)


def test_an_apps_own_failure_past_its_windows_is_that_apps_alone(
    amplify: FakeAmplify, store: SQLiteHotStore, tmp_path
) -> None:
    """Dropping one app's old exports, or moving its marks, failed the run as a whole: every app was reported as
    failed, the other apps' collections as if nothing was collected."""
    danse, horizon = serve_apps(amplify)
    lake = ExportsLockedLake(tmp_path / "locked")
    report = collector(store, lake).run()  # (it raised)
    assert report.error is None and not report.ok
    by_app = {a.app: a for a in report.apps}
    assert by_app["digital_horizon"].ok and by_app["digital_horizon"].rows == len(in_range(horizon))
    assert by_app["danse_tech"].windows_ok == 2 and by_app["danse_tech"].rows == len(in_range(danse))
    assert not by_app["danse_tech"].ok and by_app["danse_tech"].windows_failed == 0  # (it was ok: windows alone)
    ((app, why),) = report.failures()
    assert app == "danse_tech" and why.startswith("Amplify collection of danse_tech failed: dropping its exports")
    assert "ObjectStoreError: cannot list type=amplify_logs/app=danse_tech/" in why
    ((stored,),) = store.read("SELECT report FROM amplify_runs")
    assert '"ok": false' in stored

    # hot.db refusing one app's recheck mark (here by a trigger; the exports listed again): that app alone fails
    store.in_write_transaction(
        lambda conn: conn.execute(
            "CREATE TRIGGER refuse_mark BEFORE UPDATE OF rechecked_ms ON amplify_watermarks"
            " WHEN NEW.app = 'digital_horizon' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    ).result()
    tomorrow = Collector(config(), store, LocalObjectStore(tmp_path / "locked"), clock=DAY_AFTER.timestamp)
    by_app = {a.app: a for a in tomorrow.run().apps}
    assert by_app["danse_tech"].ok and by_app["danse_tech"].windows_ok == by_app["danse_tech"].windows > 0
    assert not by_app["digital_horizon"].ok and "disk I/O error" in by_app["digital_horizon"].errors[0]


def test_a_range_that_times_out_is_split_too(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    danse, _ = serve_apps(amplify, count=200)
    danse.slow_over_hours, danse.slow_seconds = 200, 1.5  # 14 days = 336 h: no answer within 0.5 s
    source = AmplifyLogSource(read_timeout_seconds=0.5)
    try:
        report = collector(store, lake, source=source).run(apps=["danse_tech"])
    finally:
        source.close()
    (app,) = report.apps
    assert app.ok and app.splits == 2 and app.retries == 0
    assert sorted(r["x_edge_request_id"] for r in lake_rows(store, lake)) == in_range(danse)


def test_a_first_run_reaches_back_at_most_a_year(store: SQLiteHotStore, lake: LocalObjectStore) -> None:
    long_memory = parse_config({"applications": [DANSE | {"appName": "danse_tech"}], "logRetention": {"days": 3650}})
    windows = collector(store, lake, config=long_memory).plan(long_memory.app("danse_tech"))
    assert windows[0].start == UNTIL - timedelta(days=365) and windows[-1].end == UNTIL


def test_windows_stay_within_the_settled_hours_and_the_retention(store: SQLiteHotStore, lake: LocalObjectStore) -> None:
    c = collector(store, lake)
    danse = c.config.app("danse_tech")
    future = c.plan(danse, since=UNTIL - timedelta(days=1), until=UNTIL + timedelta(days=30))
    assert future[-1].end == UNTIL  # a watermark past the last settled hour would skip what arrives later
    ancient = c.plan(danse, since=datetime(2020, 1, 1, tzinfo=UTC), until=UNTIL)
    assert ancient[0].start == SINCE  # 28 days kept: older rows would be dropped right after the run


def test_a_run_report_that_cannot_be_read_does_not_hide_the_others(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    serve_apps(amplify, count=20)
    collector(store, lake).run()
    store.run_in_writer(
        lambda conn: conn.execute("INSERT INTO amplify_runs (started_ms, finished_ms, report) VALUES (1, 2, '{bad')")
    )
    marks, runs = collection_status(store, runs=5)
    assert [app for app, _ in marks] == ["danse_tech", "digital_horizon"]
    assert "not JSON" in runs[0]["unreadable"] and runs[1]["ok"] is True


def test_maintenance_in_another_process_leaves_a_collection_under_way_alone(tmp_path) -> None:
    """A collection publishes outside the maintenance lock: recovery must not undo its round."""
    store = SQLiteHotStore(tmp_path / "hot.db")
    lake = LocalObjectStore(tmp_path / "lake")
    at = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp() * 1000)
    export = (HEADER + "\n" + "".join(row(Request(at + i * 1000, request_id(i))) + "\n" for i in range(50))).encode()
    published, go_on = threading.Event(), threading.Event()

    def pause(step: str) -> None:
        if step == "published 1":
            published.set()
            assert go_on.wait(60)

    report = AppReport("shop")
    collecting = threading.Thread(
        target=store_rows, args=(store, lake, "shop", [parse_access_log(export)], report, at), kwargs={"on_step": pause}
    )
    collecting.start()
    try:
        assert published.wait(60)
        child = subprocess.run(
            [sys.executable, "-c", RECOVER_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "0", "recovery undid a collection under way"
    finally:
        go_on.set()
        collecting.join(60)
    try:
        (key,) = [k for (k,) in store.read("SELECT key FROM lake_files")]
        assert pq.read_table(io.BytesIO(lake.get(key))).num_rows == 50
    finally:
        store.close()


def test_run_reports_are_kept_as_long_as_the_logs(
    amplify: FakeAmplify, store: SQLiteHotStore, lake: LocalObjectStore
) -> None:
    """A report per run, for ever, would grow hot.db by thousands of rows a year: it goes with the retention."""
    serve_apps(amplify, count=20)
    for days in (0, 20, 40):  # 28 days kept: the first run's report is too old at the third
        Collector(config(), store, lake, clock=lambda d=days: (NOW + timedelta(days=d)).timestamp()).run()
    finished = [at for (at,) in store.read("SELECT finished_ms FROM amplify_runs ORDER BY run_id")]
    assert finished == [ms(NOW + timedelta(days=20)), ms(NOW + timedelta(days=40))]
    _, runs = collection_status(store, runs=5)
    assert len(runs) == 2
