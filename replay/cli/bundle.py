"""``replay bundle BUNDLE_DIR``: the files the roles load, written once where TensorFlow and hls4ml are."""

from __future__ import annotations

import argparse
from pathlib import Path

from replay.cli.options import MODEL_HELP, add_working_point_options, defaults, working_point

__all__ = ("add_arguments", "run")

#: ``replay bundle --help``'s description (the one-line help is in replay.cli.SUBCOMMANDS)
DESCRIPTION = ("read a model artifact once (TensorFlow, hls4ml) and write the numpy/JSON bundle the roles load "
               "without them, at the working point asked for")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("directory", type=Path, metavar="BUNDLE_DIR", help=f"where the {name} goes")
    parser.add_argument("--model", type=Path, help=MODEL_HELP)
    parser.add_argument("--reference", type=Path, metavar="MODEL_DIR",
                        help="another artifact's full-precision model for the reference role (default: the float twin)")
    add_working_point_options(parser)


def run(args: argparse.Namespace) -> int:
    from replay.bundle import apply_working_point, write_bundle
    from trigger.sample import bundled_sample

    defaults(args, builds_bundle=True, reads_input=False)
    write_bundle(args.model, args.directory, args.reference)
    manifest = apply_working_point(args.directory, working_point(args), lambda: bundled_sample().background)
    print(f"bundle of {manifest.name} written to {args.directory} (threshold {manifest.threshold:.6g}: "
          f"{manifest.working_point['source']}); copy it to the worker hosts")
    return 0
