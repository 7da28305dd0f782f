"""``trigger report``: one self-contained HTML page plus report.json and PNG figures.

The report's numbers come from each stage: the models are scored (:mod:`models.summary`),
the firmware emulator and C-simulation checked and firmware results read
(:mod:`firmware.summary`), the replay run read from its folder. ``--rebuild`` renders a
report again from its ``report.json`` alone, without TensorFlow or hls4ml.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trigger.errors import UsageError

__all__ = ("add_arguments", "build_report", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--model", type=Path, action="append", metavar="ARTIFACT_DIR",
                        help="model artifact directory; repeat to compare models")
    parser.add_argument("--background", type=Path, metavar="SM.h5",
                        help="SM events (the held-out split when it is the training file)")
    parser.add_argument("--signal", type=Path, action="append", metavar="FILE",
                        help="signal events; repeatable, one file per process")
    parser.add_argument("--replay", type=Path, metavar="RUN_DIR", help="replay run with summary.json")
    parser.add_argument("--firmware", type=Path, action="append", default=[], metavar="FW_DIR",
                        help="vendor reports or estimate.json; repeat in --model order")
    parser.add_argument("--sweep", type=Path, metavar="SWEEP_JSON",
                        help="an architecture search's sweep.json (trigger sweep): its Pareto front is drawn")
    parser.add_argument("--rebuild", type=Path, metavar="REPORT_JSON",
                        help="render the report of this report.json again instead (no model is loaded)")
    parser.add_argument("--out", type=Path, required=True, metavar="REPORT_DIR", help="output directory")
    parser.add_argument("--overwrite", action="store_true", help="replace a report already in REPORT_DIR")
    parser.add_argument("--check-events", type=int, default=2000,
                        help="held-out SM events for the C-simulation vs emulator check (0: skip)")
    parser.add_argument("--accept-rate", default="1kHz", help="trigger budget of the working point")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate")
    parser.add_argument("--max-events", type=int, default=None, help="cap events read per file")


def build_report(out_dir: str | Path, models: Sequence[str | Path | Any], background: str | Path,
                 signals: Sequence[str | Path], *, replay: str | Path | None = None,
                 firmware: Sequence[str | Path | None] = (), sweep: str | Path | None = None,
                 check_events: int = 2000,
                 accept_rate: str = "1kHz", bx_rate: str = "40MHz", max_events: int | None = None,
                 overwrite: bool = False, progress: Callable[[str], None] = print) -> Path:
    """Run each stage's summary for ``models`` (artifact directories or loaded artifacts; ``firmware[i]``
    belongs to ``models[i]``) and write the report to ``out_dir``; return the page's path."""
    from firmware.summary import emulated_variant, firmware_info
    from models.artifact import Artifact, load_artifact
    from models.evaluate import read_signals
    from models.summary import model_summary
    from trigger.rates import fpr_for_rate, parse_rate
    from trigger.report import assemble, prepare_out_dir, write_report
    from trigger.report.collect import distinct_labels
    from trigger.report.inputs import read_replay, read_sweep

    if not models or not signals:
        msg = "a report needs at least one model and one signal file"
        raise UsageError(msg)
    if len(firmware) > len(models):
        msg = (
            f"{len(firmware)} --firmware directories for {len(models)} models; give at "
            "most one per --model, in the same order"
        )
        raise UsageError(msg)
    if check_events < 0:
        msg = "--check-events must be >= 0"
        raise UsageError(msg)
    out_dir = Path(out_dir)
    prepare_out_dir(out_dir, overwrite)
    wp_fpr = fpr_for_rate(parse_rate(accept_rate), parse_rate(bx_rate))
    fw_dirs = [Path(d) if d is not None else None for d in firmware]
    fw_dirs += [None] * (len(models) - len(fw_dirs))
    replay_info = read_replay(replay) if replay is not None else None
    sweep_info = read_sweep(sweep) if sweep is not None else None
    progress(f"loading {len(models)} model(s)")
    artifacts = [m if isinstance(m, Artifact) else load_artifact(m) for m in models]
    firmware_entries = [firmware_info(a, d) for a, d in zip(artifacts, fw_dirs, strict=True)]
    signal_events = read_signals(signals, max_events)
    labels = distinct_labels([a.config.model.name for a in artifacts], [a.path for a in artifacts])
    summaries = {}
    for label, artifact, fw in zip(labels, artifacts, firmware_entries, strict=True):
        summaries[label] = model_summary(artifact, label, background, signal_events, wp_fpr, max_events,
                                         emulated_variant(artifact, check_events, progress), progress)
        summaries[label]["firmware"] = fw
    files = {name: (Path(p), len(signal_events[name])) for name, p in zip(signal_events, signals, strict=True)}
    data = assemble(summaries, background, files, wp_fpr, accept_rate, bx_rate, replay_info, sweep_info)
    progress("drawing figures")
    return write_report(out_dir, data)


def run(args: argparse.Namespace) -> int:
    if args.rebuild is not None:
        from trigger.report import prepare_out_dir, write_report
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
                            firmware=args.firmware, sweep=args.sweep, check_events=args.check_events,
                            accept_rate=args.accept_rate, bx_rate=args.bx_rate, max_events=args.max_events,
                            overwrite=args.overwrite)
    print(f"report written: {page}")
    return 0
