"""``trigger report``: one self-contained HTML page plus report.json and PNG figures.

The work is :func:`trigger.report.build_report`'s; ``--rebuild`` renders a report again from
its ``report.json`` alone, without TensorFlow or hls4ml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trigger.errors import UsageError

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--model", type=Path, action="append", metavar="ARTIFACT_DIR",
                        help="model artifact directory; repeat to compare models")
    parser.add_argument("--background", type=Path, action="append", metavar="SM.h5",
                        help="SM events (the held-out split when it is the training file); repeat to give a set "
                             "weighted to the stream's process shares, as `trigger calibrate --background` "
                             "(not with --menu)")
    parser.add_argument("--signal", type=Path, action="append", metavar="FILE",
                        help="signal events; repeatable, one file per process")
    parser.add_argument("--replay", type=Path, metavar="RUN_DIR", help="replay run with summary.json")
    parser.add_argument("--firmware", type=Path, action="append", default=[], metavar="FW_DIR",
                        help="vendor reports or estimate.json; repeat in --model order")
    parser.add_argument("--sweep", type=Path, metavar="SWEEP_JSON",
                        help="an architecture search's sweep.json (trigger sweep): its Pareto front is drawn")
    parser.add_argument("--pileup-scan", type=Path, metavar="SCAN_JSON",
                        help="a pileup scan (trigger pileup-scan --json): each model at the same L1 rate at every "
                             "<mu>, with its pure efficiency and the rate its stored threshold takes")
    parser.add_argument("--menu", default=None, metavar="NAME|FILE.toml",
                        help="an emulated L1 menu (`run3` for the bundled one, or a TOML file): adds the Level-1 "
                             "view, what each model keeps that no seed of the menu takes")
    parser.add_argument("--rebuild", type=Path, metavar="REPORT_JSON",
                        help="render the report of this report.json again instead (no model is loaded)")
    parser.add_argument("--out", type=Path, required=True, metavar="REPORT_DIR", help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace a report already in REPORT_DIR")
    parser.add_argument("--check-events", type=int, default=2000,
                        help="held-out SM events for the C-simulation vs emulator check (0: skip)")
    parser.add_argument("--accept-rate", default="1kHz", help="trigger budget of the working point")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate")
    parser.add_argument("--max-events", type=int, default=None, help="cap events read per file")


def run(args: argparse.Namespace) -> int:
    from trigger.report import build_report, prepare_out_dir, write_report

    if args.rebuild is not None:
        from trigger.report.inputs import read_report_data

        data = read_report_data(args.rebuild)
        prepare_out_dir(args.out, args.overwrite)
        page = write_report(args.out, data)
    else:
        missing = [flag for flag, value in (("--model", args.model), ("--background", args.background),
                                            ("--signal", args.signal)) if not value]
        if missing:
            msg = f"{', '.join(missing)} required (or --rebuild REPORT_JSON)"
            raise UsageError(msg)
        page = build_report(args.out, args.model, args.background, args.signal, replay=args.replay,
                            firmware=args.firmware, sweep=args.sweep, pileup_scan=args.pileup_scan, menu=args.menu, check_events=args.check_events,
                            accept_rate=args.accept_rate, bx_rate=args.bx_rate, max_events=args.max_events,
                            overwrite=args.overwrite)
    print(f"report written: {page}")
    return 0
