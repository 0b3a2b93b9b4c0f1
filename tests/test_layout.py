"""Package layout: the library never imports the training and extraction tools (they import the library)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "warmchat"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_library_never_imports_the_tools():
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(n for n in _imports(path) if n.startswith("warmchat.tools"))
        for path in PACKAGE.rglob("*.py")
        if PACKAGE / "tools" not in path.parents
    }
    assert not {path: names for path, names in offenders.items() if names}
