"""``replay worker``: one worker (one thread: start one per core) of a run on several hosts."""

from __future__ import annotations

import argparse
import sys

from replay.cli.options import endpoints
from replay.cli.role import add_role_arguments, set_up

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_role_arguments(parser, name)


def run(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_limits

    from replay.worker import run_worker

    role = set_up(args)
    threadpool_limits(1)  # one BLAS thread: run a worker per core (several threads each ran at a third)
    ends = endpoints(args.source, args.collector)

    def say(message: str) -> None:
        print(f"worker: {message}", file=sys.stderr, flush=True)

    scored = run_worker(ends.tasks, ends.results, role.bundle_dir, role.config, curve=role.curve, say=say)
    print(f"worker: scored {scored} batches")
    return 0
