"""README's headline table, rendered from the last benchmark runs (``benchmarks/results/*.json``).

Each results file (written by a benchmark's ``--json``, see ``benchmarks/record.py``) names a few of
its numbers as its headline; this puts them in one table, each row with the benchmark, the commit
and the date it was measured, between the markers ``<!-- headline:start -->`` and
``<!-- headline:end -->`` in README.md. ``--check`` changes nothing and exits with status 1 when
README's table is not the one the results give (the test suite runs that check).

    python benchmarks/headline.py [--check] [--readme README.md] [--results benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- headline:start -->", "<!-- headline:end -->"


def load_results(folder: Path = RESULTS) -> list[dict[str, Any]]:
    """Every results file in ``folder``, by file name, each with ``name`` (the file's stem) added."""
    return [{"name": path.stem, **json.loads(path.read_text())} for path in sorted(folder.glob("*.json"))]


def short_commit(commit: str) -> str:
    """The first 10 hex digits, ``+dirty`` kept."""
    head, _, dirty = commit.partition("+")
    return head[:10] + (f"+{dirty}" if dirty else "")


def headline_table(results: list[dict[str, Any]]) -> str:
    """The Markdown table of every file's headline numbers (an explanatory line when there are none)."""
    rows = [(label, value, r["name"], short_commit(r["commit"]), r["date"][:10])
            for r in results for label, value in r.get("headline", {}).items()]
    if not rows:
        return "No benchmark results yet: run a benchmark with `--json benchmarks/results/NAME.json`."
    lines = ["| measurement | value | benchmark | commit | date |", "|---|---:|---|---|---|"]
    lines += [f"| {label} | {value} | `{name}` | `{commit}` | {date} |" for label, value, name, commit, date in rows]
    return "\n".join(lines)


def render(readme: str, table: str) -> str:
    """``readme`` with the text between the markers replaced by ``table``."""
    before, start, rest = readme.partition(START)
    _, end, after = rest.partition(END)
    if not start or not end:
        msg = f"README has no {START} ... {END} markers"
        raise ValueError(msg)
    return f"{before}{START}\n{table}\n{END}{after}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if README's table is out of date; write nothing")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    current = args.readme.read_text()
    wanted = render(current, headline_table(load_results(args.results)))
    if args.check:
        if wanted != current:
            print(f"{args.readme.name}: the headline table is out of date; run python benchmarks/headline.py",
                  file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted)
        print(f"{args.readme.name}: headline table updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
