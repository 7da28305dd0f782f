"""The file a benchmark's ``--json PATH`` writes: its measured numbers and where they come from.

Beside the numbers (``results``) it records the ``commit`` (``git rev-parse HEAD``, with ``+dirty``
when the working tree has changes), the ``machine`` (CPU model, cores and memory, read from
``/proc``), the ``command`` (``sys.argv``, paths inside the project made relative to it) and the
``date`` (UTC). A benchmark may name a few of its numbers as its ``headline``: those are what
``benchmarks/headline.py`` puts in README's table. The documentation site renders every file under
``benchmarks/results/`` into its results page (``docs/hooks/results.py``).

    python benchmarks/emulator.py --events 20000 --json benchmarks/results/emulator.json
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def commit() -> str:
    """``git rev-parse HEAD`` of the project, ``+dirty`` added when the tree has uncommitted changes
    other than recorded results (``benchmarks/results/``: another benchmark's output changes nothing
    measured); ``unknown`` outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                              timeout=60).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """CPU model, logical cores and memory of this machine, from ``/proc`` (None where unreadable)."""
    cpu, memory_gb = None, None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 2**20, 1)
                break
    except (OSError, ValueError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gb}


def command(argv: list[str] | None = None) -> list[str]:
    """``sys.argv`` as run, each path inside the project written relative to it."""
    def relative(arg: str) -> str:
        path = Path(arg)
        if path.is_absolute() and path.resolve().is_relative_to(ROOT):
            return path.resolve().relative_to(ROOT).as_posix()
        return arg

    return [relative(arg) for arg in (sys.argv if argv is None else argv)]


def _relative_paths(value: Any) -> Any:
    """``value`` with every string that is an absolute path inside the project made relative to it."""
    if isinstance(value, dict):
        return {k: _relative_paths(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_relative_paths(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        return command([value])[0]
    return value


def write_result(path: Path, results: Any, headline: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``results`` with the commit, machine, command and date to ``path`` (JSON); returns
    what was written. ``headline``: label -> formatted value, the numbers README shows."""
    record = {
        "benchmark": Path(sys.argv[0]).stem,
        "commit": commit(),
        "machine": machine(),
        "command": command(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "headline": headline or {},
        "results": _relative_paths(results),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def events_as(path: Path, particles: Any, dtype: str) -> Path:
    """The events stored in ``path`` as ``dtype``: float32 as the project's files, float64 as the
    public ADC2021 ones (the benchmarks compare the two on the same events)."""
    from trigger.events import EventWriter

    with EventWriter(path, attrs={"process": "sm-cocktail"}, dtype=dtype) as writer:
        writer.append(particles.astype(dtype))
    return path
