"""An S3 lake's files for DuckDB: a pyarrow dataset (DuckDB cannot read S3 here without a download,
DESIGN.md section 6) that counts the files its scans read, and their bytes.

DuckDB's profile counts the Parquet files its own reader reads, none of a dataset's. DuckDB asks the
dataset for a scanner with the filters it pushes down; the files whose partition values that filter
keeps are the files the scanner opens (it prunes row groups only inside them), so they are counted
there, with their sizes as the catalog has them: an upper bound of the bytes read (the row groups and
columns a scan skips inside them are counted), where a count of what was read would take a request per
file for its footer. Counting as the files are opened instead (a pyarrow filesystem in Python) deadlocked: DuckDB
holds the GIL while pyarrow's threads start opening them.
"""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds


class CountedDataset(ds.FileSystemDataset):
    """A dataset that counts the files its scans read (`files_read`) and their sizes (`bytes_read`)."""

    files_read = 0
    bytes_read = 0
    sizes: dict[str, int]  # of each file, by path
    _lock = threading.Lock()  # a query may scan the dataset on two threads (`logs` twice)

    def scanner(self, columns: Any = None, filter: Any = None, **options: Any) -> ds.Scanner:
        paths = [fragment.path for fragment in self.get_fragments(filter=filter)]
        size = sum(self.sizes.get(path, 0) for path in paths)
        with self._lock:
            self.files_read += len(paths)
            self.bytes_read += size
        return super().scanner(columns=columns, filter=filter, **options)


def s3_dataset(
    filesystem: Any, sizes: dict[str, int], schema: pa.Schema, partitions: tuple[str, ...], base_dir: str
) -> CountedDataset:
    """The Parquet objects at the paths of `sizes` (their sizes in bytes) as one dataset of `schema`, with
    Hive partitions under `base_dir`."""
    found = ds.dataset(
        list(sizes),
        schema=schema,
        format="parquet",
        filesystem=filesystem,
        partitioning=ds.partitioning(pa.schema([schema.field(p) for p in partitions]), flavor="hive"),
        partition_base_dir=base_dir,
    )
    dataset = CountedDataset(list(found.get_fragments()), found.schema, found.format, found.filesystem)
    dataset.sizes = sizes
    return dataset
