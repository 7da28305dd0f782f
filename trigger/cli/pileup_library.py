"""``trigger pileup-library``: minimum-bias interactions for ``trigger generate --pileup``."""

from __future__ import annotations

import argparse

from trigger.cli.generate import add_run_arguments
from trigger.generator.library import LibraryPlan, build_library

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = (
        "Pythia8 SoftQCD:inelastic with MPI on; each interaction's visible final-state particles with "
        "|eta| < 4.9 are stored compactly (pT, eta, phi, PDG id). The same seed and chunk size give the same file "
        "for any --jobs or Dask cluster; a complete file records the SHA-256 of its content, by which the samples "
        "overlaid with it name it."
    )
    add_run_arguments(parser, "interactions", LibraryPlan.chunk_size, "minimum-bias interactions to generate")


def run(args: argparse.Namespace) -> int:
    plan = LibraryPlan(args.events, args.seed, args.chunk_size)
    result = build_library(plan, args.output, jobs=args.jobs, resume=args.resume, overwrite=args.overwrite,
                           show_progress=not args.quiet, scheduler=args.scheduler)
    per_interaction = result.particles / max(result.interactions, 1)
    print(f"{result.path}: {result.interactions} minimum-bias interactions, {per_interaction:.1f} visible particles "
          f"each, in {result.seconds:.0f} s" + (f"; content sha256 {result.sha256}" if result.complete
                                                 else " [incomplete: use --resume]"))
    return 0 if result.complete else 130
