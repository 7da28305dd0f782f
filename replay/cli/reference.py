"""``replay reference``: the float reference path of a run on several hosts, a side check."""

from __future__ import annotations

import argparse

from replay.cli.options import endpoints
from replay.cli.role import add_role_arguments, set_up

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_role_arguments(parser, name)
    parser.add_argument("--backend", default="auto", choices=("auto", "tensorflow", "numpy"),
                        help="auto = tensorflow when a GPU is visible (or the reference has no numpy form: "
                             "convolutions, attention), else numpy")


def run(args: argparse.Namespace) -> int:
    from replay.backends import reference_backend
    from replay.reference import run_reference

    role = set_up(args)
    ends = endpoints(args.source, args.collector)
    backend = reference_backend(args.backend, role.manifest)
    n = run_reference(ends.reference, ends.control, ends.results, role.bundle_dir, backend, role.config,
                      curve=role.curve)
    print(f"reference: scored {n} batches")
    return 0
