"""``trigger generate``: Pythia8 stand-in events in the ADC2021 layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from trigger.errors import UsageError
from trigger.generator import COCKTAIL, GENERATED, GenerationPlan, generate
from trigger.generator.calo import CaloConfig
from trigger.generator.pileup import PileupSpec

__all__ = ("add_arguments", "add_run_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = (
        "Processes: " + ", ".join(f"{p.name} ({p.description})" for p in (COCKTAIL, *GENERATED.values()))
        + ". Counts are of events that pass the single-lepton trigger (zerobias and --no-lepton-trigger: of every "
        "event). The same seed "
        "and chunk size give byte-identical events for any --jobs."
    )
    parser.add_argument("--process", required=True, choices=[COCKTAIL.name, *GENERATED],
                        metavar="NAME", help="process to generate (see the list below)")
    add_run_arguments(parser, "events", 500, "events to keep")
    parser.add_argument("--pileup", type=float, metavar="MU",
                        help="overlay Poisson(MU) minimum-bias interactions from --pileup-library on each event, "
                             "before the detector")
    parser.add_argument("--pileup-library", type=Path, metavar="FILE",
                        help="the pileup library (trigger pileup-library); on Dask, at this path on every worker")
    parser.add_argument("--pileup-subtraction", action="store_true",
                        help="with --pileup: take the event's pT density (a grid median) times the area off each "
                             "jet, each lepton's isolation sum and each calorimeter cell MET is summed over, as an "
                             "experiment's pileup mitigation; recorded in the file's attributes")
    parser.add_argument("--no-regions", action="store_true",
                        help="do not write CaloRegions, the (N, 18, 14) calorimeter region image of each event "
                             "(the objects are the same bytes either way)")
    parser.add_argument("--no-lepton-trigger", action="store_true",
                        help="keep every event, as the Level-1 trigger sees them, not only those passing the "
                             "single-lepton trigger (signals and W, Z, ttbar; zerobias has none anyway)")


def add_run_arguments(parser: argparse.ArgumentParser, items: str, chunk_size: int, events_help: str) -> None:
    """The options of a chunked, resumable generation (``generate``, ``pileup-library``)."""
    parser.add_argument("--events", type=int, required=True, help=events_help)
    parser.add_argument("--seed", type=int, default=1, help="master random seed")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (with --scheduler local: Dask workers)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the chunks on a Dask cluster: 'local' starts a LocalCluster of --jobs workers "
                             "here; an address (tcp://host:8786) uses a running scheduler, e.g. one whose workers "
                             "dask-jobqueue submits to Slurm or HTCondor. Same bytes as --jobs 1 for a seed")
    parser.add_argument("--chunk-size", type=int, default=chunk_size,
                        help=f"{items} per independently seeded chunk (part of what the seed means)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output HDF5 file")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue an interrupted file made with the same settings, or extend a complete "
                           "one to more --events (its events stay the larger sample's first ones)")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    pileup = None
    if args.pileup is not None or args.pileup_library is not None or args.pileup_subtraction:
        if args.pileup is None or args.pileup_library is None:
            msg = "--pileup MU and --pileup-library FILE go together (and --pileup-subtraction needs them)"
            raise UsageError(msg)
        pileup = PileupSpec.of_library(args.pileup, args.pileup_library, subtraction=args.pileup_subtraction)
    plan = GenerationPlan(args.process, args.events, args.seed, args.chunk_size, pileup=pileup,
                          calo=None if args.no_regions else CaloConfig(), lepton_trigger=not args.no_lepton_trigger)
    result = generate(plan, args.output, jobs=args.jobs, resume=args.resume,
                      overwrite=args.overwrite, show_progress=not args.quiet, scheduler=args.scheduler)
    tried = sum(result.tried.values())
    kept = (f"{result.events / max(tried, 1):.1%} of {tried} generated passed the trigger" if plan.triggered
            else f"every one of {tried} generated kept: no trigger")
    print(f"{result.path}: {result.events} events of {args.process} ({kept}) "
          f"in {result.seconds:.0f} s" + ("" if result.complete else " [incomplete: use --resume]"))
    return 0 if result.complete else 130
