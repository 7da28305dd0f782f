"""``replay recover RUN_DIR``: a run that did not finish, its files and summary rebuilt from its journal."""

from __future__ import annotations

import argparse
from pathlib import Path

from replay.cli.summary import print_summary

__all__ = ("add_arguments", "run")

#: ``replay recover --help``'s description (the one-line help is in replay.cli.SUBCOMMANDS)
DESCRIPTION = ("write accepted.h5, quarantine.h5 and summary.json of a run that did not finish from the "
               "decisions its collector journaled")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("directory", type=Path, metavar="RUN_DIR", help=f"the run folder to {name}")


def run(args: argparse.Namespace) -> int:
    from replay.pipeline import recover_run

    summary = recover_run(args.directory)
    print_summary(summary)
    print(f"{summary.note}; summary: {args.directory / 'summary.json'}")
    return 0
