"""MkDocs hook: one API page per module of the four packages, found on disk at every build.

Every ``*.py`` under ``trigger/``, ``models/``, ``firmware/`` and ``replay/`` (in folders that are
packages: they hold an ``__init__.py``) gets a page ``api/<package>/<module>.md`` whose body is the
mkdocstrings directive ``::: dotted.name``; the nav's ``API reference`` entry is filled with them,
one section per package. No module name is written down anywhere in the docs, so a module that is
added, renamed or turned into a package appears on the next build as it is. mkdocstrings reads
the source with griffe (static analysis): nothing is imported, TensorFlow included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("trigger", "models", "firmware", "replay")
API = "api"
NAV_TITLE = "API reference"


def modules(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Dotted names of every module and package under ``packages``, sorted; ``__main__`` left out."""
    found = []
    for package in packages:
        for init in sorted((root / package).rglob("__init__.py")):
            folder = init.parent
            parts = folder.relative_to(root).parts
            if any(part.startswith(".") or part == "__pycache__" for part in parts):
                continue
            if not all((root.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts) + 1)):
                continue  # a folder of scripts inside a package, not a subpackage
            found.append(".".join(parts))
            found += [".".join((*parts, path.stem)) for path in folder.glob("*.py")
                      if path.stem not in {"__init__", "__main__"}]
    return sorted(set(found))


def page_path(module: str) -> str:
    """``trigger.cli`` -> ``api/trigger/cli/index.md`` when it is a package, else ``api/trigger/cli.md``."""
    parts = module.split(".")
    if (ROOT.joinpath(*parts) / "__init__.py").is_file():
        return "/".join((API, *parts, "index.md"))
    return "/".join((API, *parts)) + ".md"


def _page(module: str) -> str:
    return f"# `{module}`\n\n::: {module}\n"


def _index(names: list[str]) -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings at every build, one page per module; nothing here is written by",
             "hand. The packages depend one way: the core `trigger` (event I/O, schema, fixed point,",
             "preprocessing, the report's rendering) below `models`, `firmware` and `replay`; the command",
             "lines (`trigger.cli`, `replay`'s) above them all.", ""]
    for package in PACKAGES:
        members = [m for m in names if m == package or m.startswith(package + ".")]
        if not members:
            continue
        lines += [f"## `{package}`", ""]
        lines += [f"- [`{m}`]({page_path(m).removeprefix(API + '/')})" for m in members]
        lines.append("")
    return "\n".join(lines)


def on_config(config: Any) -> Any:
    """Fill the nav's ``API reference`` entry with the index and one section per package."""
    names = modules()
    sections: list[Any] = [f"{API}/index.md"]
    for package in PACKAGES:
        members = [m for m in names if m == package or m.startswith(package + ".")]
        if members:
            sections.append({package: [{m: page_path(m)} for m in members]})
    nav = config["nav"] or []
    for i, entry in enumerate(nav):
        if isinstance(entry, dict) and NAV_TITLE in entry:
            nav[i] = {NAV_TITLE: sections}
            break
    else:
        nav.append({NAV_TITLE: sections})
    config["nav"] = nav
    return config


def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages (they exist only in the build, never in ``docs/``)."""
    names = modules()
    files.append(File.generated(config, f"{API}/index.md", content=_index(names)))
    for module in names:
        files.append(File.generated(config, page_path(module), content=_page(module)))
    return files
