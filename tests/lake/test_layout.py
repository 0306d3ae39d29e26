from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from loglake.lake.layout import (
    LayoutError,
    amplify_access_key,
    amplify_export_key,
    app_logs_key,
    day_of,
    new_part_name,
    partition_prefix,
    partitions_of,
)


def test_app_logs_keys_are_hive_partitioned_by_record_date() -> None:
    name = new_part_name(1_793_491_200_000)
    key = app_logs_key(day_of(1_793_491_199_999), name)  # one ms before midnight UTC
    assert key == f"type=app_logs/date=2026-10-31/{name}"
    assert partitions_of(key) == {"type": "app_logs", "date": "2026-10-31"}
    assert name.startswith("part-") and name.endswith(".parquet")


def test_part_names_sort_in_write_order() -> None:
    names = [new_part_name(1_793_491_200_000 + i) for i in range(50)]
    assert names == sorted(names) and len(set(names)) == 50


def test_amplify_keys_follow_the_original_design() -> None:
    exported = datetime(2026, 11, 2, 1, 0, 5, tzinfo=timezone(timedelta(hours=2)))  # 23:00:05 UTC the day before
    range_start = datetime(2026, 10, 18, 0, 0, tzinfo=UTC)
    range_end = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    assert amplify_export_key("danse_tech", exported, range_start, range_end) == (
        "type=amplify_logs/app=danse_tech/date_export=2026-11-01/log_20261018_000000_20261101_000000"
    )
    assert amplify_access_key("danse_tech", date(2026, 11, 1), "part-x.parquet") == (
        "type=amplify_access/app=danse_tech/date=2026-11-01/part-x.parquet"
    )
    assert (
        partition_prefix("amplify_access", app="a", date=date(2026, 1, 2))
        == "type=amplify_access/app=a/date=2026-01-02/"
    )


@pytest.mark.parametrize("bad", ["", "a/b", "x=y", "../up", "with space"])
def test_partition_values_cannot_break_the_layout(bad: str) -> None:
    with pytest.raises(LayoutError):
        partition_prefix("amplify_access", app=bad)


def test_day_of_is_utc() -> None:
    assert day_of(int(datetime(2026, 3, 1, 0, 30, tzinfo=UTC).timestamp() * 1000)) == date(2026, 3, 1)
