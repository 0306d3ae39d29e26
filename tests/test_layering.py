"""The core never imports an edge (DESIGN.md section 2): edges import the core, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

import loglake

SOURCE = Path(loglake.__file__).parent
# The edges: HTTP, AWS, the command line and what only the command line uses.
EDGES = (
    "loglake.__main__",
    "loglake.api",
    "loglake.aws",
    "loglake.cli",
    "loglake.server",
    "loglake.client",
    "loglake.shipping",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_edge(module: str) -> bool:
    return any(module == edge or module.startswith(edge + ".") or module.startswith(edge + "_") for edge in EDGES)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_core_module_imports_an_edge() -> None:
    core = [p for p in SOURCE.rglob("*.py") if not _is_edge(_module_name(p))]
    assert len(core) > 30  # the walk found the package
    offences = {
        _module_name(path): sorted(name for name in _imports(path) if _is_edge(name))
        for path in core
        if any(_is_edge(name) for name in _imports(path))
    }
    assert offences == {}


def test_the_check_sees_an_offence() -> None:
    assert _is_edge("loglake.api.cors") and _is_edge("loglake.cli_lake") and not _is_edge("loglake.config")
