"""The habits that catch mistakes early run with the tests: ruff's rules and strict mypy
(both configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=600)


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "trigger", "models", "firmware", "replay", "tests", "benchmarks", "docs")
    assert done.returncode == 0, done.stdout + done.stderr


def test_strict_mypy_finds_nothing() -> None:
    done = _run("mypy")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr
