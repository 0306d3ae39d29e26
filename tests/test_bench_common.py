"""bench/common.py finds the workspace's shared folder (the data set generator, outside the repository)
from the main checkout and from a git worktree placed elsewhere."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

COMMON = Path(__file__).resolve().parents[1] / "bench" / "common.py"


def load_common(path: Path) -> ModuleType:
    name = f"bench_common_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True)


def test_the_shared_folder_is_found_from_the_main_checkout_and_from_a_worktree_elsewhere(tmp_path: Path) -> None:
    workspace = tmp_path / "work"
    main = workspace / "main"
    (main / "bench").mkdir(parents=True)
    shutil.copy(COMMON, main / "bench" / "common.py")
    generator = workspace / "shared" / "bench" / "make_dataset.py"
    generator.parent.mkdir(parents=True)
    generator.write_text("# the generator\n")
    git("init", "-q", str(main))
    git("-C", str(main), "add", ".")
    git("-C", str(main), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "bench")
    worktree = workspace / "wt" / "branch"
    git("-C", str(main), "worktree", "add", "-q", "-b", "branch", str(worktree))
    for checkout in (main, worktree):
        found = load_common(checkout / "bench" / "common.py").MAKE_DATASET
        assert found == generator, checkout
