"""The starter pack: rules (each with its tests) for what loglake holds, shipped in the package.

`loglake rules init` copies them into a rules folder, where they are the operator's to change; a
file already there is never overwritten, nor a rule the folder holds under another name copied again.
`loglake rules test` on the folder runs their tests.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import yaml

from loglake.private_files import open_private, private_dir
from loglake.rules.loader import rule_files


def starter_files() -> list[Traversable]:
    folder = resources.files("loglake.rules") / "starter"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".yml")), key=lambda f: f.name)


def copy_starter_pack(folder: Path) -> tuple[list[str], list[str], dict[str, str]]:
    """Copy the starter rules into `folder` (made if missing): (the names copied, those left as they were, and
    those left out because another file of the folder holds their rule's id: name -> that file). A starter rule
    its operator renamed is theirs: a copy beside it would have two files of one id, and both refused."""
    private_dir(folder)
    held = {rule_id: str(path) for path in rule_files(folder) for rule_id in _rule_ids(path)}
    copied, kept, elsewhere = [], [], {}
    for file in starter_files():
        target = folder / file.name
        if target.exists():
            kept.append(file.name)
        elif holder := next((held[i] for i in _rule_ids(file) if i in held), None):
            elsewhere[file.name] = holder
        else:
            with open_private(target, "ab") as out:
                out.write(file.read_bytes())
            copied.append(file.name)
    return copied, kept, elsewhere


def _rule_ids(file: Traversable | Path) -> list[str]:
    """The ids of a rule file's documents (a correlation's file holds several); none of a file that does not load
    (`rules validate` tells why)."""
    try:
        documents = list(yaml.load_all(file.read_bytes(), Loader=yaml.CSafeLoader))
    except (OSError, yaml.YAMLError):
        return []
    return [str(d["id"]).lower() for d in documents if isinstance(d, dict) and d.get("id") is not None]  # as loaded


def starter_folder() -> Path:
    """The starter pack as a folder (it is one in an installed package)."""
    return Path(str(resources.files("loglake.rules") / "starter"))
