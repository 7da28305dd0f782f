"""The ``replay`` command: the whole pipeline on one machine, or one role of it per host.

    replay --rate 40MHz-sim                       # bundled sample, default model, 2 workers
    replay --rate 100kHz --input sm.h5 --events 200000 --workers 2 --out runs/paced
    replay --resume runs/paced                    # continue a run whose processes died
    replay recover runs/paced                     # or rebuild its files and summary as they are
    replay source    --rate 40MHz-sim --input sm.h5 --bind 0.0.0.0:5555 --collector hostB:5558
    replay bundle    --model DIR BUNDLE_DIR    # once, where TensorFlow and hls4ml are installed
    replay worker    --bundle BUNDLE_DIR --source hostA:5555 --collector hostB:5558
    replay reference --bundle BUNDLE_DIR --source hostA:5555 --collector hostB:5558
    replay collector --bundle BUNDLE_DIR --bind 0.0.0.0:5558 --source hostA:5555 --out RUN_DIR

A bundle holds what the roles load (numpy files and JSON), so a worker host needs only the
replay's runtime: pip install "trigger-anomaly[replay]". Roles given --model instead build
the bundle themselves, which needs TensorFlow and hls4ml there.

Ports: the source binds PORT (tasks), PORT+1 (control) and PORT+2 (reference feed); the
collector binds its PORT (results). Roles on one host default to 127.0.0.1. Across hosts,
encrypt with CurveZMQ: on each host `replay keys KEY_DIR ROLE` makes that role's own key pair and
says which public key to copy where (secret keys never leave their host); then add
`--curve KEY_DIR` to every role.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from replay.cli import local
from replay.cli.role import ROLES, exposure_warning
from replay.cli.summary import print_summary
from trigger.console import HelpFormatter, add_verbs, quiet_libraries
from trigger.errors import TriggerError

__all__ = ("SUBCOMMANDS", "build_parser", "exposure_warning", "main", "print_summary")

# Without a role the command runs replay.cli.local; each role or verb is a module here with
# add_arguments(parser, name) and run(args), as in trigger.cli, and a longer DESCRIPTION if it has one.

#: role or verb -> (module under replay.cli, one-line help)
SUBCOMMANDS = {
    "recover": ("recover", "rebuild a run's files and summary from its journal"),
    "keys": ("keys", "make this host's CurveZMQ key pair for one role"),
    "bundle": ("bundle", "write the model bundle that worker, reference and collector load"),
    **{role: (role, text) for role, text in ROLES.items()},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replay", formatter_class=HelpFormatter, description=(
        "Replay HDF5 event streams through the trigger decision path: a source, K workers running "
        "the bit-exact firmware emulator, a float reference path and a collector, over ZeroMQ. "
        "Without a role it runs the whole pipeline here."), epilog=__doc__.split("\n\n", 1)[1],
    )
    local.add_arguments(parser, "replay")
    parser.set_defaults(run=local.run)
    add_verbs(parser.add_subparsers(dest="role", metavar="ROLE", help="run one role (multi-host)"), "replay.cli",
              SUBCOMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_libraries()
    args = build_parser().parse_args(argv)
    try:
        local.refuse_resume_with_others(args)
        return int(args.run(args))
    except TriggerError as err:
        print(f"replay{' ' + args.role if args.role else ''}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("replay: interrupted", file=sys.stderr)
        return 130
