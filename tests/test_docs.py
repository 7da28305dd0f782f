"""The documentation: the site builds with warnings as errors, every module has its API page, and
README stays a short user's page whose headline table is the one the last benchmark runs give."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built as ``make docs`` builds it (``--strict``: any warning fails the build)."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    assert "WARNING" not in done.stderr, done.stderr[-8000:]
    return out


@pytest.mark.slow
def test_the_site_builds_with_a_page_per_stage(site: Path) -> None:
    for page in ("index", "data", "preprocessing", "models", "firmware", "replay", "report", "development",
                 "schemas", "decisions", "results", "benchmarks"):
        assert (site / f"{page}.html").is_file(), page
    assert "FirmwareManifest" in (site / "schemas.html").read_text()  # generated from trigger.contracts


@pytest.mark.slow
def test_every_module_has_an_api_page(site: Path) -> None:
    api = _module(ROOT / "docs" / "hooks" / "api.py", "docs_hooks_api")
    modules = api.modules()
    assert {"trigger.events", "trigger.preprocess", "trigger.contracts", "models.artifact", "firmware.emulator",
            "replay.wire"} <= set(modules)
    for module in modules:
        page = site / api.page_path(module).replace(".md", ".html")
        assert page.is_file(), module
    events = (site / "api" / "trigger" / "events.html").read_text()
    assert "open_events" in events and "EventWriter" in events  # rendered from the docstrings


@pytest.mark.slow
def test_the_results_page_names_commit_machine_and_command(site: Path) -> None:
    headline = _module(ROOT / "benchmarks" / "headline.py", "benchmarks_headline")
    page = (site / "benchmarks.html").read_text()
    for result in headline.load_results():
        assert result["commit"] in page and result["date"] in page
        assert html.escape(" ".join(result["command"]), quote=False) in page


def test_the_api_pages_follow_the_modules_on_disk(tmp_path: Path) -> None:
    api = _module(ROOT / "docs" / "hooks" / "api.py", "docs_hooks_api")
    for path in ("trigger/__init__.py", "trigger/events.py", "trigger/cli/__init__.py", "trigger/cli/__main__.py",
                 "trigger/cli/train.py", "models/__init__.py", "models/configs/notes.py", "replay/__init__.py",
                 "replay/cli/__init__.py", "replay/cli/worker.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    assert api.modules(tmp_path, ("trigger", "models", "firmware", "replay")) == [
        "models", "replay", "replay.cli", "replay.cli.worker", "trigger", "trigger.cli", "trigger.cli.train",
        "trigger.events"]


def test_readme_is_a_short_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    assert str(ROOT) not in readme and "make docs" in readme  # the project speaks only of itself


def test_readme_headline_table_is_the_last_benchmark_runs() -> None:
    headline = _module(ROOT / "benchmarks" / "headline.py", "benchmarks_headline")
    readme = (ROOT / "README.md").read_text()
    table = headline.headline_table(headline.load_results())
    assert headline.render(readme, table) == readme, "run: python benchmarks/headline.py"
    assert headline.load_results(), "no benchmarks/results/*.json"


def test_benchmark_records_name_commit_machine_and_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = _module(ROOT / "benchmarks" / "record.py", "benchmarks_record")
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "x.py"), "--json", str(ROOT / "benchmarks/results/x.json")])
    written = record.write_result(tmp_path / "x.json", {"rate": 1.5, "model": str(ROOT / "models" / "m")},
                                  headline={"rate": "1.5"})
    assert written["command"] == ["benchmarks/x.py", "--json", "benchmarks/results/x.json"]
    assert written["results"] == {"rate": 1.5, "model": "models/m"}
    assert written["benchmark"] == "x" and written["headline"] == {"rate": "1.5"}
    assert written["commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", written["commit"])
    assert set(written["machine"]) == {"cpu", "cores", "memory_gib"}
    assert written["date"].endswith("Z")
