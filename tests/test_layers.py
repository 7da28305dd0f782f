"""The package layering, read from every import statement (function-level ones included).

Dependencies point one way: the core (``trigger/`` without its commands and report) <- ``models``
<- ``firmware`` <- ``replay``; the report (``trigger/report``) and the commands (``trigger/cli``,
``replay/cli``) sit above them all. A package imports only the layers below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trigger", "models", "firmware", "replay")
#: each layer, bottom up, as module prefixes; a module belongs to the longest prefix it starts with
LAYERS = (("trigger",), ("models",), ("firmware",), ("replay",), ("trigger.report",), ("trigger.cli", "replay.cli"))


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def layer_of(module: str) -> int | None:
    """The index in ``LAYERS`` of ``module``, None for a module outside the project."""
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """``FILE imports MODULE`` for every import of a module in a layer above the file's."""
    bad = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            own = layer_of(module_name(path))
            for module in sorted(imported_modules(path)):
                theirs = layer_of(module)
                if own is not None and theirs is not None and theirs > own:
                    bad.append(f"{path.relative_to(ROOT).as_posix()} imports {module}")
    return bad


def test_every_package_imports_only_the_layers_below_it() -> None:
    assert violations() == []


@pytest.mark.parametrize(("source", "expected"), [
    ("import models.artifact", "trigger/x.py imports models.artifact"),
    ("def f():\n    from firmware.check import compare_paths", "trigger/x.py imports firmware.check"),
    ("from trigger.report.plots import sweep_figure", "trigger/x.py imports trigger.report.plots"),
])
def test_the_check_sees_top_and_function_level_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       source: str, expected: str) -> None:
    (tmp_path / "trigger").mkdir()
    (tmp_path / "trigger" / "x.py").write_text(source + "\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert violations(("trigger",)) == [expected]


def test_the_layers_go_core_models_firmware_replay_then_report_and_commands() -> None:
    order = [layer_of(m) for m in ("trigger.events", "models.artifact", "firmware.bundle", "replay.worker",
                                   "trigger.report.html", "trigger.cli.demo", "replay.cli")]
    assert order == sorted(order) and len(set(order)) == 6
    assert layer_of("numpy") is None


#: a module or a class longer than this is doing more than one job: split it
MAX_MODULE_LINES, MAX_CLASS_LINES = 400, 200


def test_no_module_or_class_is_too_long_to_read() -> None:
    long = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            name = path.relative_to(ROOT).as_posix()
            if text.count("\n") > MAX_MODULE_LINES:
                long.append(f"{name}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                    long.append(f"{name}: class {node.name} {node.end_lineno - node.lineno + 1} lines")
    assert long == []
