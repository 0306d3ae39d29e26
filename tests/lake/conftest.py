"""Fixtures the lake's tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.store.sqlite import SQLiteHotStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteHotStore]:
    """An empty hot store in the test's folder (a module needing another one defines its own)."""
    s = SQLiteHotStore(tmp_path / "hot.db")
    yield s
    s.close()
