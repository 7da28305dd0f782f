"""``replay`` without a role: the whole pipeline on this machine, or a run continued (``--resume``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from replay.cli.options import (
    MODEL_HELP,
    add_input_options,
    add_rate_options,
    add_working_point_options,
    defaults,
    replay_config,
    working_point,
)
from replay.cli.summary import print_summary
from trigger.errors import UsageError

__all__ = ("add_arguments", "refuse_resume_with_others", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    add_rate_options(parser)
    add_input_options(parser)
    parser.add_argument("--model", type=Path, help=MODEL_HELP)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    add_working_point_options(parser)
    parser.add_argument("--reference", type=Path, metavar="MODEL_DIR",
                        help="the reference path's model: any artifact's full-precision model, at its own "
                             "calibrated threshold (default: the trigger model's float twin); the summary counts "
                             "the events only it accepts and those only the trigger accepts")
    parser.add_argument("--reference-backend", default="auto", choices=("auto", "tensorflow", "numpy", "none"),
                        help="float reference path; auto = tensorflow when a GPU is visible (or the reference "
                             "has no numpy form: convolutions, attention), else numpy; none: no reference path")
    parser.add_argument("--out", type=Path, help=f"run directory (default: runs/{name}-DATE-TIME)")
    parser.add_argument("--transport", default="ipc", choices=("ipc", "tcp"), help="socket transport")
    parser.add_argument("--curve", action="store_true",
                        help="encrypt and authenticate with CurveZMQ, fresh keys for each role of this run, "
                             "none written (tcp only)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON (and no progress line)")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR with its recorded settings (run.json): the batches "
                             "its journal holds are counted, not replayed, so it ends as an uninterrupted run")


def refuse_resume_with_others(args: argparse.Namespace) -> None:
    """``--resume`` takes every setting from the run's record: given with a role or another input,
    it is a usage error."""
    if args.resume is not None and (args.role or args.input or args.model or args.out or args.events or args.loop):
        msg = "--resume takes the run's settings from RUN_DIR/run.json; give it alone (with --quiet or --json)"
        raise UsageError(msg)


def run(args: argparse.Namespace) -> int:
    from replay.pipeline import ReplayRun, load_run, run_replay

    if args.resume is not None:
        out, replay_run = args.resume, load_run(args.resume)
    else:
        defaults(args, builds_bundle=True, reads_input=True)
        out = args.out or Path("runs") / time.strftime("replay-%Y%m%d-%H%M%S")
        if out.exists() and any(out.iterdir()):
            msg = f"{out} is not empty; choose another --out (or continue the run there with --resume {out})"
            raise UsageError(msg)
        replay_run = ReplayRun(tuple(args.input), args.model, out, replay_config(args), args.events, args.loop,
                               args.workers, args.reference_backend, args.transport, args.curve, working_point(args),
                               args.reference)
    summary = run_replay(replay_run, progress=None if args.quiet or args.json else sys.stderr,
                         resume=args.resume is not None)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=1))
    else:
        print_summary(summary)
        print(f"summary: {out / 'summary.json'}; accepted events: {out / 'accepted.h5'}")
    return 0 if summary.accounting_ok else 1
