"""The starter pack: rules (each with its tests) for what loglake holds, shipped in the package.

`loglake rules init` copies them into a rules folder, where they are the operator's to change; a
file already there is never overwritten. `loglake rules test` on the folder runs their tests.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from loglake.private_files import open_private, private_dir


def starter_files() -> list[Traversable]:
    folder = resources.files("loglake.rules") / "starter"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".yml")), key=lambda f: f.name)


def copy_starter_pack(folder: Path) -> tuple[list[str], list[str]]:
    """Copy the starter rules into `folder` (made if missing): (the names copied, those left as they were)."""
    private_dir(folder)
    copied, kept = [], []
    for file in starter_files():
        target = folder / file.name
        if target.exists():
            kept.append(file.name)
            continue
        with open_private(target, "ab") as out:
            out.write(file.read_bytes())
        copied.append(file.name)
    return copied, kept


def starter_folder() -> Path:
    """The starter pack as a folder (it is one in an installed package)."""
    return Path(str(resources.files("loglake.rules") / "starter"))
