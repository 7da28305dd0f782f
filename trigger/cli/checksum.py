"""``trigger checksum``: the SHA-256 of an event file's events; write or check a sample's record.

A sample too large for the repository (the 1,000,000-event calibration sample) is kept as its
record: ``make calibration-sample`` regenerates it and checks it against the record.
Exit status: 0 when the file matches (or a record was written), 1 when it differs, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trigger.checksum import SampleRecord, events_sha256, sample_problems

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = ("The hash covers the events (Particles, then each per-event dataset), not the HDF5 "
                     "container, so a resumed generation and an uninterrupted one hash the same.")
    parser.add_argument("file", type=Path, metavar="FILE", help="HDF5 event file")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", type=Path, metavar="RECORD.json",
                        help="write the file's record (process, seed, events, generator, hash); "
                             "the generation must be complete")
    action.add_argument("--check", type=Path, metavar="RECORD.json",
                        help="check the file against a record; exit status 1 if it differs")


def run(args: argparse.Namespace) -> int:
    if args.write is not None:
        record = SampleRecord.of_file(args.file)
        record.write(args.write)
        print(f"{args.write}: {record.events} {record.process} events, seed {record.seed}, "
              f"sha256 {record.events_sha256}")
        return 0
    if args.check is not None:
        problems = sample_problems(args.file, SampleRecord.read(args.check))
        for problem in problems:
            print(f"{args.file}: differs from {args.check}: {problem}", file=sys.stderr)
        if not problems:
            print(f"{args.file}: the sample of {args.check}")
        return 1 if problems else 0
    print(f"{events_sha256(args.file)}  {args.file}")
    return 0
