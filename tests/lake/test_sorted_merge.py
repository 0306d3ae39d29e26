"""Merging sorted lake files: the same rows in (service, timestamp) order, whatever the inputs, in
memory that does not grow with the merge."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loglake.lake.parts import ROW_GROUP_ROWS, SORT_ORDER, parquet_writer, write_part
from loglake.lake.sorted_merge import FINAL, MAX_FAN_IN, TIER, merge_in_memory, merge_sorted
from loglake.lake.tables import APP_LOGS_TABLE
from tests.lake.test_flush import one_service_per_row_group

START = 1_793_491_200_000  # 2026-11-01T00:00:00Z
SERVICES = ["web", "api", "db", "auth", "queue"]
SEVERITIES = ["debug", "info", "warning", "error"]


def rows(count: int, first_ms: int, seed: int) -> pa.Table:
    """`count` records from `first_ms` on, a few ms apart, of mixed services and severities."""
    pick = random.Random(seed)
    times = [first_ms + 7 * i + pick.randrange(5) for i in range(count)]
    return pa.table(
        {
            "log_id": [f"{seed:08x}-{i:027x}" for i in range(count)],
            "timestamp": pa.array(times, pa.timestamp("ms")),
            "service": [SERVICES[(i * 7 + seed + i // 3) % len(SERVICES)] for i in range(count)],
            "log_type": ["application"] * count,
            "severity": [SEVERITIES[(i + seed) % len(SEVERITIES)] for i in range(count)],
            "message": [f"message {seed}-{i}" for i in range(count)],
            "attributes": [None if i % 3 else f'{{"n": {i}}}' for i in range(count)],
            "client_id": pa.nulls(count, pa.string()),
            "trace_id": [f"{seed + 1:016x}{i + 1:016x}" if i % 2 else None for i in range(count)],
            "span_id": [f"{i + 1:016x}" if i % 2 else None for i in range(count)],
        },
        schema=APP_LOGS_TABLE.schema,
    )


def parts(tmp_path: Path, count: int, per_part: int) -> list[Path]:
    """`count` lake parts as bulk ingest writes them (sorted, plain row groups), one after another in time."""
    made = []
    for n in range(count):
        key = f"type=app_logs/date=2026-11-01/part-{n}.parquet"
        part = write_part(rows(per_part, START + n * 7 * per_part, seed=n), key, tmp_path, by_service=False)
        made.append(tmp_path / Path(part.key).name)
    return made


def keys_in_order(paths: list[Path]) -> list[tuple[str, object, str]]:
    """What the merge must write: every input row, ordered by (service, timestamp), sorted here in Python."""
    found = [(r["service"], r["timestamp"], r["log_id"]) for p in paths for r in pq.read_table(p).to_pylist()]
    return sorted(found, key=lambda key: (key[0], key[1]))


def merged_keys(path: Path) -> list[tuple[str, object, str]]:
    return [(r["service"], r["timestamp"], r["log_id"]) for r in pq.read_table(path).to_pylist()]


@pytest.mark.parametrize("style", [FINAL, TIER], ids=["final", "tier"])
@pytest.mark.parametrize("count", [3, 2 * MAX_FAN_IN + 3], ids=["few", "wider-than-the-fan-in"])
def test_a_merge_writes_every_row_once_in_service_and_time_order(tmp_path: Path, style, count: int) -> None:
    inputs = parts(tmp_path, count, 300)
    merge_sorted(inputs, tmp_path / "out.parquet", tmp_path, 64, style=style)
    written = merged_keys(tmp_path / "out.parquet")
    assert len(written) == 300 * count
    assert sorted(written) == sorted(keys_in_order(inputs))  # every row once
    assert [(s, t) for s, t, _ in written] == [(s, t) for s, t, _ in keys_in_order(inputs)]
    merged = pq.ParquetFile(tmp_path / "out.parquet")
    assert one_service_per_row_group(merged.metadata) == style.by_service
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("merged-")) == []  # work files gone


def interleaved_parts(tmp_path: Path, count: int, per_part: int) -> list[Path]:
    """`count` lake parts over the same stretch of time (senders whose batches arrive together)."""
    made = []
    for n in range(count):
        key = f"type=app_logs/date=2026-11-01/part-interleaved-{n}.parquet"
        part = write_part(rows(per_part, START + n, seed=n), key, tmp_path, by_service=False)
        made.append(tmp_path / Path(part.key).name)
    return made


@pytest.mark.parametrize("style", [FINAL, TIER], ids=["final", "tier"])
@pytest.mark.parametrize("make", [parts, interleaved_parts], ids=["one-after-another", "interleaved"])
def test_a_merge_in_memory_writes_every_row_once_in_service_and_time_order(tmp_path: Path, make, style) -> None:
    """Parts one after another in time are put together run by run, unsorted; parts whose times
    interleave have each service's rows sorted. Either way, the order a sort gives."""
    inputs = make(tmp_path, 5, 3000)[::-1]  # newest first: the order of the inputs says nothing
    assert merge_in_memory(inputs, tmp_path / "out.parquet", style, 100_000)
    written = merged_keys(tmp_path / "out.parquet")
    assert sorted(written) == sorted(keys_in_order(inputs))  # every row once
    assert [(s, t) for s, t, _ in written] == [(s, t) for s, t, _ in keys_in_order(inputs)]
    merged = pq.ParquetFile(tmp_path / "out.parquet")
    assert one_service_per_row_group(merged.metadata) == style.by_service
    if not style.by_service:  # plain row groups are whole, however many pieces of parts make one
        sizes = [merged.metadata.row_group(i).num_rows for i in range(merged.metadata.num_row_groups)]
        assert sizes == [ROW_GROUP_ROWS, 15_000 - ROW_GROUP_ROWS]


def test_plain_row_groups_stay_whole_when_rows_arrive_a_batch_at_a_time(tmp_path: Path) -> None:
    inputs = parts(tmp_path, 5, 6000)  # 30,000 rows, merged a few thousand at a time
    merge_sorted(inputs, tmp_path / "out.parquet", tmp_path, 64, style=TIER)
    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [ROW_GROUP_ROWS] * 3 + [30_000 - 3 * ROW_GROUP_ROWS]


def by_time_only(path: Path) -> Path:
    """A file of another tool's making: rows in time order only, and the timestamps in microseconds."""
    table = rows(3000, START + 10**8, seed=99).sort_by("timestamp")
    pq.write_table(table.set_column(1, "timestamp", table["timestamp"].cast(pa.timestamp("us"))), path)
    return path


def backwards_in_time(path: Path) -> Path:
    """Services in order, but each one's rows newest first."""
    pq.write_table(
        rows(3000, START + 10**8, seed=99).sort_by([("service", "ascending"), ("timestamp", "descending")]), path
    )
    return path


def two_sorted_halves(path: Path) -> Path:
    """Two row groups, each sorted, the second starting over: sorted batch by batch, not as a whole."""
    halves = [rows(8192, START + 10**8 + n * 10**6, seed=n).sort_by(SORT_ORDER) for n in (98, 99)]
    pq.write_table(pa.concat_tables(halves), path, row_group_size=8192)
    return path


@pytest.mark.parametrize("how", ["streamed", "in_memory"])
@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("make", [by_time_only, backwards_in_time, two_sorted_halves])
def test_an_input_not_sorted_by_service_and_time_is_sorted_with_the_rest(
    tmp_path: Path, where: str, make, how: str
) -> None:
    lake_parts = parts(tmp_path, 3, 3000)  # four inputs: batches of 8192 rows, one row group of the odd file each
    odd = make(tmp_path / "odd.parquet")
    inputs = [odd, *lake_parts] if where == "first" else [*lake_parts, odd]
    if how == "in_memory":
        assert merge_in_memory(inputs, tmp_path / "out.parquet", FINAL, 100_000)
    else:
        merge_sorted(inputs, tmp_path / "out.parquet", tmp_path, 64, style=FINAL)
    written = merged_keys(tmp_path / "out.parquet")
    assert [(s, t) for s, t, _ in written] == [(s, t) for s, t, _ in keys_in_order(inputs)]
    assert sorted(written) == sorted(keys_in_order(inputs))


def test_a_null_service_is_merged_too(tmp_path: Path) -> None:
    table = rows(100, START, seed=1)
    services = table["service"].to_pylist()
    table = table.set_column(2, "service", pa.array([None if i == 50 else s for i, s in enumerate(services)]))
    odd = tmp_path / "odd.parquet"
    with parquet_writer(odd) as writer:
        writer.write_table(table)
    inputs = [odd, *parts(tmp_path, 2, 100)]
    merge_sorted(inputs, tmp_path / "out.parquet", tmp_path, 64, style=TIER)
    written = merged_keys(tmp_path / "out.parquet")
    assert len(written) == 300 and written[-1][0] is None  # nulls last, as DuckDB orders them
    assert [(s, t) for s, t, _ in written[:-1]] == sorted((s, t) for s, t, _ in written[:-1])


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import pyarrow as pa
    from loglake.lake.sorted_merge import TIER, merge_sorted

    inputs = [Path(p) for p in sys.argv[2:]]
    merge_sorted(inputs, Path(sys.argv[1]), Path(sys.argv[1]).parent, 64, style=TIER)
    print(json.dumps({"peak": pa.default_memory_pool().max_memory()}))
    """
)


def test_a_merge_holds_a_few_batches_per_input_not_all_of_its_rows(tmp_path: Path) -> None:
    inputs = parts(tmp_path, 4, 200_000)  # 800,000 rows: about 90 MB in Arrow
    everything = sum(pq.read_table(p).nbytes for p in inputs)
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "out.parquet"), *map(str, inputs)],
        check=True,
        capture_output=True,
        text=True,
    )
    peak = json.loads(out.stdout)["peak"]
    assert pq.ParquetFile(tmp_path / "out.parquet").metadata.num_rows == 800_000
    assert peak < everything / 3, (peak, everything)


def test_streamed_and_duckdb_merges_write_the_same_rows(tmp_path: Path) -> None:
    inputs = parts(tmp_path, 4, 2000)
    merge_sorted(inputs, tmp_path / "streamed.parquet", tmp_path, 64, style=FINAL)
    merge_sorted(inputs, tmp_path / "by-duckdb.parquet", tmp_path, 64, style=FINAL, distinct_ids=True)
    assert [(s, t) for s, t, _ in merged_keys(tmp_path / "streamed.parquet")] == [
        (s, t) for s, t, _ in merged_keys(tmp_path / "by-duckdb.parquet")
    ]
    assert sorted(merged_keys(tmp_path / "streamed.parquet")) == sorted(merged_keys(tmp_path / "by-duckdb.parquet"))


@pytest.mark.parametrize("how", ["streamed", "by_duckdb", "in_memory"])
def test_files_written_before_trace_ids_merge_with_newer_ones(tmp_path: Path, how: str) -> None:
    """Files without the trace_id and span_id columns (written before they were added) merge with files
    that have them: their rows get nulls there, the newer rows keep their ids."""
    old, new = tmp_path / "old.parquet", tmp_path / "new.parquet"
    older_rows = rows(500, START, seed=1).drop_columns(["trace_id", "span_id"])
    pq.write_table(older_rows.sort_by(SORT_ORDER), old)
    pq.write_table(rows(500, START + 1, seed=2).sort_by(SORT_ORDER), new)
    output = tmp_path / "merged.parquet"
    if how == "in_memory":
        assert merge_in_memory([old, new], output, FINAL, 10_000)
    else:
        merge_sorted([old, new], output, tmp_path, 64, style=FINAL, distinct_ids=how == "by_duckdb")
    merged = pq.read_table(output)
    assert merged.schema == APP_LOGS_TABLE.schema
    by_id = {r["log_id"]: (r["trace_id"], r["span_id"]) for r in merged.to_pylist()}
    assert len(by_id) == 1000
    assert all(by_id[i] == (None, None) for i in older_rows.column("log_id").to_pylist())
    assert by_id["00000002-" + f"{1:027x}"] == (f"{3:016x}{2:016x}", f"{2:016x}")
