"""The generator against Pythia alone: how much of a generated event's time is Pythia's own.

Per process of the SM cocktail, in one run and one process: ``PythiaSource.generate`` keeps
``--events`` triggered events (timed, with how many it generated); a fresh Pythia with the
same settings and seed runs ``next()`` alone as many times; and, for comparison, the generator
once more with the final state read particle by particle in Python (``--python-loop``, the old
way). Each repeat runs the three in another order, so drift on a shared machine falls on all.
``generator/pythia`` is Pythia's time over the project's for the same generated events; the
cocktail's is weighted by the ADC2021 fractions. 1.0 would mean the project adds nothing.

    python benchmarks/generator.py [--events 300] [--repeat 2] [--seed 7] [--no-python-loop] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from record import write_result

from trigger.generator.detector import DetectorConfig
from trigger.generator.processes import COCKTAIL_FRACTIONS, PROCESSES
from trigger.generator.pythia_source import PythiaSource
from trigger.generator.run import _stdout_silenced


def _timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(name: str, events: int, seed: int, repeat: int, python_loop: bool) -> tuple[dict[str, float], int]:
    """(seconds per way, summed over the repeats; events generated per repeat) for ``events`` kept events."""
    process = PROCESSES[name]
    rng_seed = np.random.SeedSequence(seed)
    with _stdout_silenced():  # Pythia's banner and messages
        tried = PythiaSource(process, seed, DetectorConfig())
        tried.generate(events, np.random.default_rng(rng_seed))  # how many events that takes (and a warm-up)
        n_generated = tried.tried

        def project(native: bool) -> Callable[[], None]:
            source = PythiaSource(process, seed, DetectorConfig(), native=native)

            def run() -> None:
                source.generate(events, np.random.default_rng(rng_seed))
            return run

        def alone() -> Callable[[], None]:
            source = PythiaSource(process, seed, DetectorConfig())  # the same seed: the same events

            def run() -> None:
                for _ in range(n_generated):
                    source._next()
            return run

        ways: dict[str, Callable[[], Callable[[], None]]] = {"project": lambda: project(True), "pythia": alone}
        if python_loop:
            ways["python-loop"] = lambda: project(False)
        seconds = dict.fromkeys(ways, 0.0)
        for r in range(repeat):
            order = list(ways) if r % 2 == 0 else list(reversed(ways))
            for way in order:
                seconds[way] += _timed(ways[way]())
    return seconds, n_generated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300, help="triggered events kept per process and repeat")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, each in another order")
    parser.add_argument("--seed", type=int, default=7, help="Pythia seed")
    parser.add_argument("--no-python-loop", dest="python_loop", action="store_false",
                        help="skip the generator with the Python final-state loop")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers, commit, machine and command here")
    args = parser.parse_args()
    totals: dict[str, float] = {}
    processes: dict[str, dict[str, object]] = {}
    for name, fraction in COCKTAIL_FRACTIONS.items():
        seconds, tried = measure(name, args.events, args.seed, args.repeat, args.python_loop)
        per_event = {way: s / (args.repeat * tried) * 1e3 for way, s in seconds.items()}
        kept_per_s = args.repeat * args.events / seconds["project"]
        line = (f"{name:<6} {args.events} kept of {tried} generated, project {kept_per_s:.1f} kept/s; "
                "ms per generated event: " + ", ".join(f"{way} {ms:.2f}" for way, ms in per_event.items()))
        line += f"; generator/pythia = {seconds['pythia'] / seconds['project']:.3f}"
        if args.python_loop:
            line += f" (with the Python loop {seconds['pythia'] / seconds['python-loop']:.3f})"
        print(line, flush=True)
        processes[name] = {"kept": args.events, "generated": tried, "ms_per_generated_event": per_event,
                           "generator_over_pythia": seconds["pythia"] / seconds["project"]}
        for way, s in seconds.items():  # seconds per kept event, cocktail-weighted
            totals[way] = totals.get(way, 0.0) + fraction * s / args.events
    if args.python_loop:
        print(f"with the Python loop: generator/pythia = {totals['pythia'] / totals['python-loop']:.3f}; "
              f"project speed-up {totals['python-loop'] / totals['project']:.2f}x")
    print(f"generator/pythia = {totals['pythia'] / totals['project']:.3f}")
    if args.json:
        ratio = totals["pythia"] / totals["project"]
        write_result(args.json, {"events": args.events, "repeat": args.repeat, "seed": args.seed,
                                 "processes": processes, "seconds_per_kept_event": totals,
                                 "generator_over_pythia": ratio},
                     headline={"generator speed / Pythia's own (SM cocktail)": f"{ratio:.3f}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
