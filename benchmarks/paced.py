"""Deadline misses of paced replays: ``replay --rate RATE --events N`` run ``--repeat`` times.

Each run reports its deadline misses, batch latency, the events the reference compared and the
CPU time the hypervisor stole during it (a shared virtual machine's ``steal`` in /proc/stat);
the script counts the runs with any miss. ``--compare DIR`` runs another checkout of the project (e.g. ``git worktree add DIR REV``)
interleaved with this one, run for run, so the two are measured side by side on the same busy
machine.

    python benchmarks/paced.py [--rate 2MHz] [--events 3000000] [--repeat 5] [--compare DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from record import write_result

ROOT = Path(__file__).resolve().parents[1]


def steal_seconds() -> float | None:
    """CPU time the hypervisor gave to other guests since boot (``steal`` in /proc/stat), all
    CPUs together; None where there is no such counter."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def paced_run(tree: Path, rate: str, events: int, out: Path, extra: list[str]) -> dict:
    """One ``replay`` run of the project in ``tree``; its summary, with ``steal_s``: CPU time taken
    by the hypervisor during the run (on a shared virtual machine, late events follow it)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", "import sys; from replay.cli import main; sys.exit(main())", "--rate", rate,
               "--events", str(events), "--out", str(out), "--quiet", *extra]
    before = steal_seconds()
    subprocess.run(command, check=True, capture_output=True, timeout=1800, env=env, cwd=tree)
    after = steal_seconds()
    summary = json.loads((out / "summary.json").read_text())
    summary["steal_s"] = None if before is None or after is None else after - before
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", default="2MHz")
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="another checkout, run interleaved with this one")
    parser.add_argument("--json", type=Path)
    parser.add_argument("replay_args", nargs="*", help="more replay options, after --")
    args = parser.parse_args()
    trees = {"this": ROOT, **({"compare": args.compare.resolve()} if args.compare else {})}
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench-paced-") as tmp:
        for k in range(args.repeat):
            for name, tree in trees.items():
                s = paced_run(tree, args.rate, args.events, Path(tmp) / f"{name}-{k}", args.replay_args)
                scoring_max = (s.get("batch_scoring_ms") or {}).get("max")
                runs[name].append({"deadline_misses": s["deadline_misses"], "p99_ms": s["batch_latency_ms"]["p99"],
                                   "max_ms": s["batch_latency_ms"]["max"], "accounting_ok": s["accounting_ok"],
                                   "steal_s": s["steal_s"], "reference_events": s["reference_events"],
                                   "scoring_max_ms": scoring_max})
                steal = "" if s["steal_s"] is None else f", {s['steal_s']:.2f} s stolen by the hypervisor"
                print(f"{name} run {k + 1}: {s['deadline_misses']:,} events late, batch latency p99 "
                      f"{s['batch_latency_ms']['p99']:.1f} ms, max {s['batch_latency_ms']['max']:.1f} ms "
                      f"(slowest scoring {float('nan') if scoring_max is None else scoring_max:.1f} ms), "
                      f"reference compared {s['reference_events']:,}{steal}", flush=True)
    for name, results in runs.items():
        late = sum(1 for r in results if r["deadline_misses"])
        print(f"{name} ({trees[name]}): {late} of {len(results)} runs with late events at {args.rate}")
    if args.json:
        late = sum(1 for r in runs["this"] if r["deadline_misses"])
        write_result(args.json, {"rate": args.rate, "events": args.events, "runs": runs}, headline={
            f"paced replay at {args.rate}: runs with late events": f"{late} of {len(runs['this'])}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
