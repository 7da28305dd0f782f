"""``replay keys KEY_DIR ROLE``: one role's CurveZMQ key pair, made on the host that runs it."""

from __future__ import annotations

import argparse
from pathlib import Path

from replay.cli.role import ROLES

__all__ = ("add_arguments", "run")

#: ``replay keys --help``'s description (the one-line help is in replay.cli.SUBCOMMANDS)
DESCRIPTION = ("write ROLE's CurveZMQ key pair into KEY_DIR (the secret one 0600, never to be copied) with "
               "servers/ for the public keys of the roles it connects to and, for the source and the collector, "
               "authorized_clients/ for those of the roles that connect to it; print what to copy where")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("directory", type=Path, metavar="KEY_DIR", help=f"where `replay {name}` writes the keys")
    parser.add_argument("key_role", metavar="ROLE", choices=tuple(ROLES), help=", ".join(ROLES))


def run(args: argparse.Namespace) -> int:
    from replay.security import create_keys, key_instructions

    create_keys(args.directory, args.key_role)
    print(key_instructions(args.directory, args.key_role))
    return 0
