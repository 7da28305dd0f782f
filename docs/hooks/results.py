"""MkDocs hook: the page ``benchmarks.md``, rendered at every build from ``benchmarks/results/*.json``.

One section per results file (the last run of that benchmark with ``--json``): the commit, the
machine, the command and the date it records, its headline numbers and every number it measured.
The README's headline table comes from the same files (``benchmarks/headline.py``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
PAGE = "benchmarks.md"


def _headline_module() -> Any:
    spec = importlib.util.spec_from_file_location("benchmarks_headline", ROOT / "benchmarks" / "headline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e5 else f"{value:,.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return ", ".join(_value(v) for v in value)
    return str(value).replace("|", "\\|")


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted key, formatted value)`` for every number and string in ``value``; lists of numbers
    stay on one row."""
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, list) and not all(isinstance(v, int | float) for v in value):
        return [row for i, v in enumerate(value) for row in flatten(v, f"{prefix}[{i}]")]
    return [(prefix or "value", _value(value))]


def _section(result: dict[str, Any], short_commit: Any) -> list[str]:
    machine = result.get("machine") or {}
    memory = machine.get("memory_gib")
    lines = [f"## `{result['name']}`", "",
             "| recorded | |", "|---|---|",
             f"| commit | `{short_commit(result['commit'])}` (`{result['commit']}`) |",
             (f"| machine | {machine.get('cpu') or 'unknown CPU'}, {machine.get('cores')} cores, "
              f"{'unknown' if memory is None else memory} GiB memory |"),
             f"| command | `python {' '.join(result['command'])}` |",
             f"| date | {result['date']} |", ""]
    if result.get("headline"):
        lines += ["| headline | value |", "|---|---:|"]
        lines += [f"| {label} | {value} |" for label, value in result["headline"].items()]
        lines.append("")
    rows = flatten(result.get("results"))
    lines += ["??? note \"Every number it measured\"", "", "    | quantity | value |", "    |---|---:|"]
    lines += [f"    | `{key}` | {value} |" for key, value in rows]
    lines.append("")
    return lines


def render(results: list[dict[str, Any]], headline: Any) -> str:
    lines = ["# Benchmark results", "",
             "Rendered at every build from `benchmarks/results/*.json`, the last run of each benchmark with",
             "`--json`. Each file records the commit, the machine, the command and the date of its run;",
             "the machines these were measured on are shared and noisy, so compare ratios measured in one",
             "run rather than absolute rates across files. To refresh one:",
             "`python benchmarks/NAME.py ... --json benchmarks/results/NAME.json`, then",
             "`python benchmarks/headline.py` for README's table. Measurements recorded before the",
             "benchmarks wrote these files are on [Recorded measurements](results.md).", "",
             "## Headline", "", headline.headline_table(results), ""]
    for result in results:
        lines += _section(result, headline.short_commit)
    return "\n".join(lines)


def on_files(files: Files, config: Any) -> Files:
    headline = _headline_module()
    files.append(File.generated(config, PAGE, content=render(headline.load_results(), headline)))
    return files
