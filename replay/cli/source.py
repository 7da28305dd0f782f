"""``replay source``: the head of a run whose other roles run on other hosts."""

from __future__ import annotations

import argparse
from pathlib import Path

from replay.cli.options import add_input_options, add_rate_options, defaults, endpoints, host_port
from replay.cli.role import add_role_arguments, set_up
from replay.cli.summary import print_summary

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_role_arguments(parser, name)
    add_rate_options(parser)
    add_input_options(parser)
    parser.add_argument("--bind", type=host_port, default="127.0.0.1:5555",
                        help="HOST:PORT to bind: PORT for the tasks, PORT+1 for the control channel, PORT+2 for "
                             "the reference feed")
    parser.add_argument("--no-reference", action="store_true", help="no reference role will connect")
    parser.add_argument("--regions", action="store_true",
                        help="send each event's CaloRegions too: the workers run a region model (a file without "
                             "them is sent as it is, and the workers quarantine its events as no_regions)")
    parser.add_argument("--out", type=Path, help=f"where summary.json goes (default: runs/{name}-DATE-TIME)")


def run(args: argparse.Namespace) -> int:
    from replay.pipeline import REMOTE, SUMMARY, ReplayRun, summarize
    from replay.source import run_source
    from replay.stream import EventStream

    defaults(args, builds_bundle=False, reads_input=True)
    role = set_up(args)
    stream = EventStream(args.input, role.config.effective_batch_size, args.events, args.loop, regions=args.regions)
    try:
        stats = run_source(endpoints(args.bind, args.collector), stream, role.config,
                           reference=not args.no_reference, curve=role.curve)
    finally:
        stream.close()
    role.out.mkdir(parents=True, exist_ok=True)
    summary = summarize(ReplayRun(tuple(args.input), args.model, role.out, role.config), stats, None, REMOTE)
    summary.save(role.out / SUMMARY)
    print_summary(summary)
    return 0 if summary.accounting_ok else 1
