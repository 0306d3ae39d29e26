"""The client ids that lake files taken out of the catalog (`loglake verify --quarantine`) took their records with.

The flush keeps the client id of each record it moves (flushed_client_ids), so that a retry with it is answered as a
duplicate after the record left the hot store. A record quarantined is in no read any more: its client id must no
longer name it, else the client's resend (the only copy left) is answered as stored and dropped."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loglake.ids import format_uuid, join_id, smallest_high
from loglake.lake.manifest import LakeFile, list_files
from loglake.lake.objectstore import ObjectStore, ObjectStoreError
from loglake.lake.parquet_objects import ParquetObjects
from loglake.lake.tables import APP_LOGS_TABLE

Read = Callable[[str, list], list[tuple]]


def lost_client_ids(read: Read, objects: ObjectStore, files: Iterable[LakeFile]) -> list[str]:
    """The client ids kept for records in the time spans of `files` (about to leave the catalog) that no other file
    of the catalog holds. Call it under the maintenance lock: nothing else moves records with client ids meanwhile
    (bulk parts have none). A file in the span that cannot be read counts as holding them all (its damage is for
    `verify` to find): an id kept too long answers a resend as a duplicate, as before."""
    files = [file for file in files if file.table_name == APP_LOGS_TABLE.name]
    taken = {file.key for file in files}
    parquet = ParquetObjects(objects)
    lost: list[str] = []
    for file in files:
        until_ms = file.max_ts + 1
        kept = read(
            "SELECT client_id, id_hi, id_lo FROM flushed_client_ids WHERE id_hi >= ? AND id_hi < ?",
            [smallest_high(file.min_ts), smallest_high(until_ms)],
        )
        candidates = {format_uuid(join_id(high, low)): client_id for client_id, high, low in kept}
        for other in list_files(read, file.table_name, file.min_ts, until_ms):
            if not candidates:
                break
            if other.key in taken:
                continue
            try:
                _drop_held(candidates, parquet.open(other.key))
            except (OSError, ObjectStoreError):
                candidates.clear()
                break
        lost.extend(candidates.values())
    return lost


def _drop_held(candidates: dict[str, str], file: pq.ParquetFile) -> None:
    """Take out of `candidates` (by log id) the records `file` holds; its ids read a batch at a time (a day's file
    may hold millions)."""
    wanted = pa.array(list(candidates), pa.string())
    for batch in file.iter_batches(columns=["log_id"]):
        log_ids = batch.column("log_id")
        for log_id in log_ids.filter(pc.is_in(log_ids, wanted)).to_pylist():
            candidates.pop(log_id, None)
