"""Resident memory of the replay's processes over a run and over a run ten times longer.

Runs ``replay`` (the bundled SM sample, cycled) for ``--events`` and for ten times as many,
one after the other, and samples every role's resident set (``VmRSS`` in ``/proc``, the role
found by its process title) every 0.1 s. If nothing grows with the run's length, the peaks of
the two runs agree; ``longer/shorter`` is printed per process. Linux only.

    python benchmarks/replay_memory.py [--events 2000000] [--reference-backend numpy] [--json FILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import write_result

REPLAY = [sys.executable, "-c", "import sys; from replay.cli import main; sys.exit(main())"]


def _rss_mb(pid: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _roles(run: Path) -> dict[str, str]:
    """Role name -> pid of the processes titled for ``run``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"(run {run})" in cmdline and cmdline.startswith("replay "):
            found[cmdline.split()[1]] = entry.name
    return found


def peak_rss(events: int, backend: str, out: Path) -> tuple[dict[str, float], float]:
    """Peak resident MB per process of one run (the head as ``head``), and its wall time."""
    started = time.monotonic()
    head = subprocess.Popen([*REPLAY, "--events", str(events), "--reference-backend", backend, "--out", str(out),
                             "--quiet", "--json"], stdout=subprocess.DEVNULL)
    peaks: dict[str, float] = {}
    while head.poll() is None:
        for role, pid in {**_roles(out), "head": str(head.pid)}.items():
            try:
                peaks[role] = max(peaks.get(role, 0.0), _rss_mb(pid))
            except OSError:
                continue  # it ended between the listing and the read
        time.sleep(0.1)
    if head.returncode != 0:
        msg = f"replay exited with status {head.returncode}"
        raise SystemExit(msg)
    return peaks, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000, help="the shorter run; the longer is 10x")
    parser.add_argument("--reference-backend", default="numpy", choices=("numpy", "none"))
    parser.add_argument("--json", type=Path, default=None, help="write the numbers, commit, machine and command here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="replay-memory-") as tmp:
        short, short_s = peak_rss(args.events, args.reference_backend, Path(tmp) / "short")
        long, long_s = peak_rss(10 * args.events, args.reference_backend, Path(tmp) / "long")
    print(f"{args.events:,} events in {short_s:.1f} s, then {10 * args.events:,} in {long_s:.1f} s "
          f"(reference: {args.reference_backend}); peak resident memory:")
    for role in sorted(set(short) | set(long)):
        a, b = short.get(role, 0.0), long.get(role, 0.0)
        print(f"  {role:<10} {a:8.1f} MB  {b:8.1f} MB  longer/shorter = {b / a if a else float('nan'):.3f}")
    if args.json:
        growth = max((long.get(r, 0.0) / short[r] for r in short if short[r]), default=float("nan"))
        write_result(args.json, {"events": args.events, "reference_backend": args.reference_backend,
                                 "seconds": {"shorter": short_s, "longer": long_s},
                                 "peak_rss_mb": {"shorter": short, "longer": long}},
                     headline={"replay memory, 10x longer run / shorter (largest process ratio)": f"{growth:.3f}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
