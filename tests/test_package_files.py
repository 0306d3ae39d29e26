"""What the wheel ships: setuptools finds only folders with an `__init__.py`, and copies other files
only when pyproject.toml declares them as package data; a file the code reads must be both."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
SOURCE = ROOT / "src" / "loglake"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _files() -> list[Path]:
    return [p for p in SOURCE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def test_every_folder_of_modules_is_a_package() -> None:
    folders = {p.parent for p in _files() if p.suffix == ".py"}
    assert len(folders) > 5
    assert sorted(str(f.relative_to(SOURCE)) for f in folders if not (f / "__init__.py").exists()) == []


def test_every_other_file_is_declared_package_data() -> None:
    declared = PYPROJECT["tool"]["setuptools"].get("package-data", {})
    others = [p for p in _files() if p.suffix not in (".py", ".pyc")]
    assert others  # the starter rules, at least
    undeclared = []
    for path in others:
        package = next(d for d in path.parents if (d / "__init__.py").exists())
        name = ".".join(("loglake", *package.relative_to(SOURCE).parts))
        inside = str(path.relative_to(package))
        if not any(fnmatch.fnmatch(inside, pattern) for pattern in declared.get(name, [])):
            undeclared.append(str(path.relative_to(SOURCE)))
    assert undeclared == []
