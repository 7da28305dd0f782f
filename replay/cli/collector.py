"""``replay collector``: the collector of a run on several hosts; its folder holds the decisions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from replay.cli.options import add_menu_option, endpoints, host_port
from replay.cli.role import add_role_arguments, set_up

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_role_arguments(parser, name)
    parser.add_argument("--bind", type=host_port, default="127.0.0.1:5558", help="HOST:PORT to bind (results)")
    parser.add_argument("--out", type=Path, required=True, help=f"run directory: the {name}'s journal and "
                                                                "accepted events")
    parser.add_argument("--no-reference", action="store_true", help="no reference role will connect")
    add_menu_option(parser)


def run(args: argparse.Namespace) -> int:
    from replay.collector import run_collector

    role = set_up(args)
    ends = endpoints(args.source, args.bind)
    counts = run_collector(ends.results, ends.control, role.out, role.manifest.threshold,
                           None if args.no_reference else role.manifest.reference_threshold, role.config,
                           curve=role.curve)
    print(json.dumps({k: v for k, v in counts.items() if k != "batch_latency_ms"}))
    return 0
