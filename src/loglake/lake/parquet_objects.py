"""A lake's Parquet objects opened for pyarrow wherever the lake is: a local lake's by path, an S3 lake's through one
pyarrow S3 filesystem (made on first use) for all of a reader's reads; their pages' checksums verified as read."""

from __future__ import annotations

import threading
from typing import Any

import pyarrow.parquet as pq

from loglake.lake.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore
from loglake.lake.parts import READ_CHECKED


class ParquetObjects:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()  # guards _s3
        self._s3: Any = None

    def open(self, key: str, **options: Any) -> pq.ParquetFile:
        """Object `key` as a ParquetFile (its footer read; a page that fails its checksum fails the read that
        meets it, an OSError); `options` as ParquetFile takes them."""
        return pq.ParquetFile(self._source(key), **READ_CHECKED, **options)

    def metadata(self, key: str) -> pq.FileMetaData:
        """Object `key`'s footer alone."""
        return pq.read_metadata(self._source(key))

    def _source(self, key: str) -> Any:
        if isinstance(self.store, LocalObjectStore):
            return self.store.root / key
        assert isinstance(self.store, S3ObjectStore)
        with self._lock:
            if self._s3 is None:
                self._s3 = self.store.arrow_filesystem()
        return self._s3.open_input_file(self.store.arrow_path(key))
