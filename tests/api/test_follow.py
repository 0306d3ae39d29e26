"""Following GET /logs/recent by arrival (follow.py over arrivals.py), through the ASGI app in process."""

from __future__ import annotations

import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from loglake.api.app import LoglakeApp
from loglake.arrivals import ArrivalCursor, Arrivals
from loglake.config import Settings
from loglake.follow import RESTART_LOOKBACK_MS
from loglake.times import format_datetime
from tests.conftest import asgi_client, key_for


def now_ms() -> int:
    return int(time.time() * 1000)


async def post(client: httpx.AsyncClient, *records: dict) -> None:
    response = await client.post("/logs", json=list(records))
    assert response.status_code == 201, response.text


@contextlib.asynccontextmanager
async def restarted(settings: Settings, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the server started again on the same data (a new process: new arrivals)."""
    app = LoglakeApp.from_settings(settings)
    try:
        async with asgi_client(app, key) as client:
            yield client
    finally:
        app.close()


async def start(client: httpx.AsyncClient, **params: object) -> dict:
    response = await client.get("/logs/recent", params={"follow": "true", **params})
    assert response.status_code == 200, response.text
    return response.json()


async def arrived(client: httpx.AsyncClient, cursor: str, **params: object) -> dict:
    response = await client.get("/logs/recent", params={"after": cursor, **params})
    assert response.status_code == 200, response.text
    return response.json()


def messages(page: dict) -> list[str]:
    return [r["message"] for r in page["logs"]]


async def test_without_follow_the_answer_is_as_before(client: httpx.AsyncClient) -> None:
    await post(client, {"message": "m"})
    body = (await client.get("/logs/recent")).json()
    assert set(body) == {"count", "logs", "next_cursor"}


async def test_a_record_stamped_before_one_already_shown_is_shown_when_it_arrives(client: httpx.AsyncClient) -> None:
    """The issue's case: a second shipper batches for a second, so its record arrives after a newer one was shown."""
    ts = now_ms()
    await post(client, {"message": "from the first shipper", "timestamp": ts})
    first = await start(client)
    assert messages(first) == ["from the first shipper"]
    await post(client, {"message": "from the second shipper, batched", "timestamp": ts - 1000})
    page = await arrived(client, first["follow_cursor"])
    assert messages(page) == ["from the second shipper, batched"]
    assert (page["more"], page["gap"], page["next_cursor"]) == (False, None, None)
    assert (await arrived(client, page["follow_cursor"]))["logs"] == []


async def test_the_first_page_is_the_recent_page_with_a_cursor(client: httpx.AsyncClient) -> None:
    await post(client, *({"message": f"m{i}", "service": "api"} for i in range(5)))
    params = {"service": "api", "limit": 3}
    plain = (await client.get("/logs/recent", params=params)).json()
    first = await start(client, **params)
    assert {k: first[k] for k in plain} == plain
    assert plain["next_cursor"] is not None and ArrivalCursor.decode(first["follow_cursor"])
    assert (first["more"], first["gap"]) == (False, None)


async def test_since_is_where_a_follow_starts(client: httpx.AsyncClient) -> None:
    """The first page holds the records since then (`since=now`: none), and what arrives after is followed."""
    await post(client, {"message": "ten minutes ago", "timestamp": now_ms() - 600_000})
    await post(client, {"message": "a minute ago", "timestamp": now_ms() - 60_000})
    assert messages(await start(client, since="5m")) == ["a minute ago"]
    page = await start(client, since="now")
    assert page["logs"] == []
    await post(client, {"message": "stamped an hour ago, arrived now", "timestamp": now_ms() - 3_600_000})
    assert messages(await arrived(client, page["follow_cursor"])) == ["stamped an hour ago, arrived now"]


async def test_arrivals_come_in_the_order_they_arrived_with_the_filters_applied(client: httpx.AsyncClient) -> None:
    cursor = (await start(client))["follow_cursor"]
    day_ago = now_ms() - 86_400_000
    await post(client, {"message": "api Timeout", "service": "api", "severity": "error", "timestamp": day_ago})
    await post(client, {"message": "web info", "service": "web"}, {"message": "api debug", "service": "api",
                "severity": "debug", "log_type": "audit"})  # fmt: skip
    await post(client, {"message": "api warning", "service": "api", "severity": "warning"})
    assert messages(await arrived(client, cursor)) == ["api Timeout", "web info", "api debug", "api warning"]
    assert messages(await arrived(client, cursor, service="api")) == ["api Timeout", "api debug", "api warning"]
    assert messages(await arrived(client, cursor, log_type="audit")) == ["api debug"]
    assert messages(await arrived(client, cursor, severity="debug,error")) == ["api Timeout", "api debug"]
    assert messages(await arrived(client, cursor, min_severity="warning")) == ["api Timeout", "api warning"]
    assert messages(await arrived(client, cursor, q="TIMEOUT")) == ["api Timeout"]


async def test_a_full_page_says_there_is_more(client: httpx.AsyncClient) -> None:
    cursor = (await start(client))["follow_cursor"]
    await post(client, *({"message": f"m{i}"} for i in range(5)))
    seen = []
    while True:
        page = await arrived(client, cursor, limit=2)
        seen.extend(messages(page))
        cursor = page["follow_cursor"]
        if not page["more"]:
            break
    assert seen == [f"m{i}" for i in range(5)]


async def test_a_retry_with_the_same_client_id_is_not_shown_again(client: httpx.AsyncClient) -> None:
    cursor = (await start(client))["follow_cursor"]
    client_id = str(uuid.uuid4())
    await post(client, {"message": "once", "id": client_id})
    page = await arrived(client, cursor)
    assert messages(page) == ["once"]
    await post(client, {"message": "once", "id": client_id}, {"message": "new"})
    assert messages(await arrived(client, page["follow_cursor"])) == ["new"]


@pytest.fixture
def small_app(settings: Settings) -> Iterator[LoglakeApp]:
    application = LoglakeApp.from_settings(settings, arrivals=Arrivals(max_records=3))
    yield application
    application.close()


async def test_records_that_left_the_arrivals_before_the_follower_read_them_are_a_gap(small_app: LoglakeApp) -> None:
    async with asgi_client(small_app, key_for(small_app)) as client:
        cursor = (await start(client))["follow_cursor"]
        for i in range(5):
            await post(client, {"message": f"m{i}"})
        page = await arrived(client, cursor)
        assert messages(page) == ["m2", "m3", "m4"]
        assert (page["gap"]["reason"], page["gap"]["missed"]) == ("overflow", 2)
        # They arrived after the cursor was issued: by time, they are from about then on.
        since = format_datetime(ArrivalCursor.decode(cursor).issued_ms - RESTART_LOOKBACK_MS)
        assert (page["gap"]["since"], page["gap"]["until"]) == (since, None)
        assert "2 record(s)" in page["gap"]["message"]
        assert f"GET /logs/recent?since={since}" in page["gap"]["message"]
        assert (await arrived(client, page["follow_cursor"]))["gap"] is None


async def test_a_cursor_from_before_a_restart_is_answered_by_time_and_says_so(settings: Settings) -> None:
    before = LoglakeApp.from_settings(settings)
    key = key_for(before)
    async with asgi_client(before, key) as client:
        cursor = (await start(client))["follow_cursor"]
        issued = ArrivalCursor.decode(cursor).issued_ms
        await post(client, {"message": "after the cursor, before the restart", "timestamp": issued})
    before.close()
    async with restarted(settings, key) as client:
        await post(
            client,
            {"message": "stamped within the look back", "timestamp": issued - RESTART_LOOKBACK_MS + 1000},
            {"message": "stamped before the look back", "timestamp": issued - RESTART_LOOKBACK_MS - 1000},
            {"message": "new", "timestamp": issued + 1},
        )
        page = await arrived(client, cursor)
        assert messages(page) == [  # by time, oldest first
            "stamped within the look back",
            "after the cursor, before the restart",
            "new",
        ]
        assert page["gap"]["reason"] == "restart" and "restarted" in page["gap"]["message"]
        until = format_datetime(issued - RESTART_LOOKBACK_MS)  # "stamped before the look back" is before it
        since = format_datetime(ArrivalCursor.decode(cursor).since_ms)  # the follow's own since
        assert (page["gap"]["since"], page["gap"]["until"]) == (since, until)
        assert f"GET /logs/recent?since={since}&until={until}" in page["gap"]["message"]
        listed = await client.get("/logs/recent", params={"since": since, "until": until})
        assert messages(listed.json()) == ["stamped before the look back"]
        await post(client, {"message": "arrived after the restart", "timestamp": issued - 86_400_000})
        page = await arrived(client, page["follow_cursor"])
        assert (messages(page), page["gap"]) == (["arrived after the restart"], None)


async def test_after_a_restart_a_follow_shows_nothing_from_before_its_own_since(settings: Settings) -> None:
    """`loglake recent --follow --since now`: records stamped before the follow began were not asked for, even those
    within the look back a restart gives the others (a trial saw them printed after a restart)."""
    before = LoglakeApp.from_settings(settings)
    key = key_for(before)
    async with asgi_client(before, key) as client:
        begun = before.service.now_ms()
        first = await start(client, since=format_datetime(begun))
        cursor = (await arrived(client, first["follow_cursor"]))["follow_cursor"]  # (a later read's cursor, too)
    before.close()
    async with restarted(settings, key) as client:
        await post(
            client,
            {"message": "stamped before the follow began", "timestamp": begun - 1000},
            {"message": "stamped as it began", "timestamp": begun},
        )
        page = await arrived(client, cursor)
        assert messages(page) == ["stamped as it began"]
        assert page["gap"]["until"] == format_datetime(begun)
        assert ArrivalCursor.decode(page["follow_cursor"]).since_ms == begun  # (and after the next restart)


def test_a_cursor_of_the_earlier_form_without_a_since_is_still_read() -> None:
    cursor = ArrivalCursor(b"\x01" * 8, 5, 1_000)
    earlier = base64.urlsafe_b64encode(cursor.epoch + (5).to_bytes(8, "big") + (1_000).to_bytes(8, "big"))
    assert ArrivalCursor.decode(earlier.rstrip(b"=").decode()) == cursor


async def test_after_a_restart_a_page_cut_at_its_limit_says_what_is_not_shown_up_to_its_oldest(
    settings: Settings,
) -> None:
    before = LoglakeApp.from_settings(settings)
    key = key_for(before)
    async with asgi_client(before, key) as client:
        cursor = (await start(client))["follow_cursor"]
        issued = ArrivalCursor.decode(cursor).issued_ms
    before.close()
    async with restarted(settings, key) as client:
        await post(client, *({"message": f"m{i}", "timestamp": issued + i} for i in range(3)))
        page = await arrived(client, cursor, limit=2)
        assert messages(page) == ["m1", "m2"]  # the newest two, by time
        assert page["gap"]["until"] == format_datetime(issued + 2)  # m0 before it; m1's millisecond too


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"follow": "yes"}, "follow"),
        ({"after": "not-a-cursor"}, "after"),
        ({"follow": "true", "after": "AAAA"}, "after"),
        ({"after": "{cursor}", "since": "1h"}, "since"),
        ({"after": "{cursor}", "until": "1h"}, "until"),
        ({"after": "{cursor}", "cursor": "{cursor}"}, "cursor"),
        ({"after": "{cursor}", "limit": "0"}, "limit"),
        ({"after": "{cursor}", "severity": "loud"}, "severity"),
        ({"follow": "true", "until": "1m"}, "until"),  # a follow has no end
        ({"after": "{unissued}"}, "after"),
        # forged: a `since` past year 9999 or past SQLite's integers (they answered 500: the schemathesis trial)
        ({"after": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAAAAAAA"}, "after"),
        ({"after": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADmd9If3AA"}, "after"),
    ],
)
async def test_bad_follow_parameters_are_named(client: httpx.AsyncClient, app: LoglakeApp, params: dict, field: str):
    cursor = ArrivalCursor.decode((await start(client))["follow_cursor"])
    texts = {"{cursor}": cursor.encode(), "{unissued}": cursor._replace(seq=cursor.seq + 1).encode()}
    response = await client.get("/logs/recent", params={k: texts.get(v, v) for k, v in params.items()})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_query" and field in [d["field"] for d in error["details"]]


async def test_follow_false_with_a_cursor_says_which_two_disagree(client: httpx.AsyncClient) -> None:
    """It said `follow: must be true or false` when it was false (the logging-handler trial)."""
    cursor = (await start(client))["follow_cursor"]
    response = await client.get("/logs/recent", params={"follow": "false", "after": cursor})
    assert response.status_code == 400, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "follow" and detail["reason"] == (
        "is false, but after (a follow's cursor) is given: leave out one"
    )
