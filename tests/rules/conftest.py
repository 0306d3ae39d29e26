"""Rules under test: rule files written to a folder, loaded by the real loader, run by the real
engine over a throwaway loglake (a SQLite hot store and a lake folder)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from loglake.rules.loader import load_rules
from loglake.rules.model import Problem, Rule
from loglake.rules.testing import ScratchLake


def write_rule(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def load_one(folder: Path, text: str, name: str = "rule.yml") -> Rule:
    """The rule of `text`; fails the test with the problems if it does not load."""
    path = write_rule(folder, name, text)
    loaded = load_rules(path)
    assert not loaded.problems, [str(p) for p in loaded.problems]
    return loaded.rules[0]


def problems_of(folder: Path, text: str, name: str = "bad.yml") -> list[Problem]:
    path = write_rule(folder, name, text)
    loaded = load_rules(path)
    assert not loaded.rules
    return loaded.problems


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchLake]:
    """One throwaway loglake per test module."""
    lake = ScratchLake(tmp_path_factory.mktemp("scratch"))
    yield lake
    lake.close()
