"""The generator against Pythia alone: how much of a generated event's time is Pythia's own.

Per process of the SM cocktail, in one run and one process: ``PythiaSource.generate`` keeps
``--events`` triggered events (timed, with how many it generated), then a fresh Pythia with the
same settings and seed runs ``next()`` alone as many times. ``generator/pythia`` is Pythia's
time over the project's for the same generated events; the cocktail's is weighted by the
ADC2021 fractions. 1.0 would mean the project adds nothing to Pythia's own time.

    python benchmarks/generator.py [--events 300] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from trigger.generator.detector import DetectorConfig
from trigger.generator.processes import COCKTAIL_FRACTIONS, PROCESSES
from trigger.generator.pythia_source import PythiaSource
from trigger.generator.run import _stdout_silenced


def measure(name: str, events: int, seed: int) -> tuple[float, float, int]:
    """(project seconds, Pythia-alone seconds, events generated) for ``events`` kept events."""
    process = PROCESSES[name]
    with _stdout_silenced():  # Pythia's banner and messages
        source = PythiaSource(process, seed, DetectorConfig())
        start = time.perf_counter()
        source.generate(events, np.random.default_rng(seed))
        project = time.perf_counter() - start
        alone = PythiaSource(process, seed, DetectorConfig())  # the same seed: the same events
        start = time.perf_counter()
        for _ in range(source.tried):
            alone._next()
        pythia = time.perf_counter() - start
    return project, pythia, source.tried


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300, help="triggered events kept per process")
    parser.add_argument("--seed", type=int, default=7, help="Pythia seed")
    args = parser.parse_args()
    project_total = pythia_total = 0.0
    for name, fraction in COCKTAIL_FRACTIONS.items():
        project, pythia, tried = measure(name, args.events, args.seed)
        print(f"{name:<6} {args.events} kept of {tried} generated: project {args.events / project:7.1f} kept/s, "
              f"Pythia next() alone {pythia / tried * 1e3:.2f} ms per generated event, "
              f"project {project / tried * 1e3:.2f} ms; generator/pythia = {pythia / project:.3f}", flush=True)
        project_total += fraction * project / args.events  # seconds per kept event, cocktail-weighted
        pythia_total += fraction * pythia / args.events
    print(f"generator/pythia = {pythia_total / project_total:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
