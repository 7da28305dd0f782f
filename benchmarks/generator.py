"""The generator against Pythia alone: how much of a generated event's time is Pythia's own.

Per process of the SM cocktail, in one run and one process: ``PythiaSource.generate`` keeps
``--events`` triggered events (timed, with how many it generated); a fresh Pythia with the
same settings and seed runs ``next()`` alone as many times; and, for comparison, the generator
once more with the final state read particle by particle in Python (``--python-loop``, the old
way). Each repeat runs the three in another order, so drift on a shared machine falls on all.
``generator/pythia`` is Pythia's time over the project's for the same generated events; the
cocktail's is weighted by the ADC2021 fractions. 1.0 would mean the project adds nothing.

Pileup (``--only pileup`` for it alone): a minimum-bias library of ``--library-interactions`` is
made on ``--jobs`` workers (interactions/s), then ``--pileup-events`` zero-bias events with
Poisson(``--pileup-mu``) interactions overlaid from it (events/s, end to end as
``trigger generate`` runs them, in chunks of ``--pileup-chunk-size`` and without regions, as ``make
zerobias-samples`` makes them: Pythia's initialisation per chunk included), and, in one process,
where a zero-bias event's time goes (Pythia, the final state, drawing the pileup, the particles'
masses, the compiled anti-kt jet finder, the rest of the detector).

    python benchmarks/generator.py [--events 300] [--repeat 2] [--seed 7] [--no-python-loop] [--json FILE]
    python benchmarks/generator.py --only pileup [--pileup-mu 60] [--pileup-events 20000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from record import write_result

from trigger.generator import GenerationPlan, generate
from trigger.generator.chunks import stdout_silenced as _stdout_silenced
from trigger.generator.detector import DetectorConfig, reconstruct
from trigger.generator.jets import antikt
from trigger.generator.library import LibraryPlan, build_library
from trigger.generator.pileup import Overlay, PileupSpec
from trigger.generator.processes import COCKTAIL_FRACTIONS, PROCESSES, ZEROBIAS
from trigger.generator.pythia_source import PythiaSource


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


def zero_bias_stages(spec: PileupSpec, events: int, seed: int) -> dict[str, float]:
    """Milliseconds per zero-bias event in each step, one process (the steps ``PythiaSource.generate`` takes)."""
    cfg = DetectorConfig()
    stages = dict.fromkeys(("pythia", "final state", "pileup draw", "masses", "jet finder", "detector"), 0.0)
    particles = 0
    with _stdout_silenced():  # Pythia's and the jet finder's banners
        source = PythiaSource(ZEROBIAS, seed, cfg, overlay=Overlay(spec, np.random.SeedSequence(seed)))
        rng, event = np.random.default_rng(seed), source._pythia.event
        for k in range(events):
            marks = [time.perf_counter()]
            source._next()
            marks.append(time.perf_counter())
            final = source._final_state(event)
            marks.append(time.perf_counter())
            merged = Overlay.draw(source.overlay, k).merged(final) if source.overlay else final
            marks.append(time.perf_counter())
            mass = source.masses(merged.pid)
            marks.append(time.perf_counter())
            jets = antikt(merged, mass, cfg)
            marks.append(time.perf_counter())
            reconstruct(merged, lambda jets=jets: jets, rng, cfg, lepton_trigger=False)
            marks.append(time.perf_counter())
            for stage, (a, b) in zip(stages, itertools.pairwise(marks), strict=True):
                stages[stage] += (b - a) * 1e3 / events
            particles += len(merged.pt)
    return {**stages, "total": sum(stages.values()), "particles_per_event": particles / events}


def measure_pileup(args: argparse.Namespace) -> dict[str, Any]:
    """The library's interactions/s, zero bias's events/s at <mu> = ``args.pileup_mu``, and where the time goes."""
    with tempfile.TemporaryDirectory() as tmp:
        library = build_library(LibraryPlan(args.library_interactions, args.seed), Path(tmp) / "minbias.h5",
                                jobs=args.jobs, show_progress=False)
        per_s = library.interactions / library.seconds
        print(f"pileup library: {library.interactions} interactions ({library.particles / library.interactions:.0f} "
              f"particles each) in {library.seconds:.1f} s on {args.jobs} workers: {per_s:.0f} interactions/s",
              flush=True)
        spec = PileupSpec.of_library(args.pileup_mu, library.path)
        plan = GenerationPlan("zerobias", args.pileup_events, args.seed, chunk_size=args.pileup_chunk_size,
                              pileup=spec, calo=None)  # --no-regions, as the recipe
        result = generate(plan, Path(tmp) / "zerobias.h5", jobs=args.jobs, show_progress=False)
        zb_per_s = result.events / result.seconds
        print(f"zero bias <mu> = {args.pileup_mu:g}: {result.events} events in {result.seconds:.1f} s on "
              f"{args.jobs} workers, chunks of {args.pileup_chunk_size}: {zb_per_s:.1f} events/s", flush=True)
        stages = zero_bias_stages(spec, args.profile_events, args.seed)
    print(f"one zero-bias event at <mu> = {args.pileup_mu:g} ({stages['particles_per_event']:.0f} particles), "
          "ms: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items() if k != "particles_per_event"))
    return {"jobs": args.jobs, "library_interactions": library.interactions,
            "library_particles_per_interaction": library.particles / library.interactions,
            "library_seconds": library.seconds, "library_interactions_per_s": per_s, "mu": args.pileup_mu,
            "zerobias_events": result.events, "zerobias_chunk_size": args.pileup_chunk_size,
            "zerobias_seconds": result.seconds, "zerobias_events_per_s": zb_per_s,
            "zerobias_ms_per_event_one_process": stages}


def measure_cocktail(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The cocktail's generator/pythia ratio (the results and the headline)."""
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
    ratio = totals["pythia"] / totals["project"]
    print(f"generator/pythia = {ratio:.3f}")
    return ({"events": args.events, "repeat": args.repeat, "seed": args.seed, "processes": processes,
             "seconds_per_kept_event": totals, "generator_over_pythia": ratio},
            {"generator speed / Pythia's own (SM cocktail)": f"{ratio:.3f}"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300, help="triggered events kept per process and repeat")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, each in another order")
    parser.add_argument("--seed", type=int, default=7, help="Pythia seed")
    parser.add_argument("--no-python-loop", dest="python_loop", action="store_false",
                        help="skip the generator with the Python final-state loop")
    parser.add_argument("--only", choices=("cocktail", "pileup"), help="one of the two measurements (default both)")
    parser.add_argument("--pileup-mu", type=float, default=60.0, help="mean pileup of the zero-bias measurement")
    parser.add_argument("--pileup-events", type=int, default=20000, help="zero-bias events generated")
    parser.add_argument("--pileup-chunk-size", type=int, default=5000,
                        help="events per chunk (each chunk initialises Pythia once), as make zerobias-samples")
    parser.add_argument("--library-interactions", type=int, default=4000, help="minimum-bias interactions made")
    parser.add_argument("--profile-events", type=int, default=200, help="zero-bias events timed step by step")
    parser.add_argument("--jobs", type=int, default=2, help="workers for the library and the zero-bias sample")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers, commit, machine and command here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    headline: dict[str, str] = {}
    if args.only != "pileup":
        cocktail, headline = measure_cocktail(args)
        results.update(cocktail)
    if args.only != "cocktail":
        results["pileup"] = pileup = measure_pileup(args)
        headline[f"zero bias at <mu> = {args.pileup_mu:g}, events/s ({args.jobs} workers)"] = \
            f"{pileup['zerobias_events_per_s']:.0f}"
        headline[f"minimum-bias library, interactions/s ({args.jobs} workers)"] = \
            f"{pileup['library_interactions_per_s']:.0f}"
    if args.json:
        write_result(args.json, results, headline=headline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
