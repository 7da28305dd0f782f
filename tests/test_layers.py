"""The package layering, read from every import statement (function-level ones included).

``trigger/`` is the core: outside ``trigger/cli/`` it imports neither ``models``, ``firmware``
nor ``replay``; ``replay/`` does not import the umbrella command line (``trigger.cli``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def violations(package: str, forbidden: tuple[str, ...], allowed_under: str | None = None) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if allowed_under and relative.startswith(allowed_under):
            continue
        for module in sorted(imported_modules(path)):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{relative} imports {module}")
    return bad


def test_the_core_imports_no_stage_package() -> None:
    assert violations("trigger", ("models", "firmware", "replay"), allowed_under="trigger/cli/") == []


def test_replay_does_not_import_the_umbrella_command_line() -> None:
    assert violations("replay", ("trigger.cli",)) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("import models.artifact", "trigger/x.py imports models.artifact"),
    ("def f():\n    from firmware.check import compare_paths", "trigger/x.py imports firmware.check"),
])
def test_the_check_sees_top_and_function_level_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       source: str, expected: str) -> None:
    (tmp_path / "trigger").mkdir()
    (tmp_path / "trigger" / "x.py").write_text(source + "\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert violations("trigger", ("models", "firmware", "replay"), "trigger/cli/") == [expected]
