"""``trigger pileup-scan``: how pileup moves each model, at the same L1 rate at every ⟨μ⟩.

The work is :func:`models.pileup_scan.scan_pileup`'s; this command groups the files by their
pileup, prints one table per ⟨μ⟩ and writes the scan (``--json``), which ``trigger report
--pileup-scan`` draws.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trigger.contracts import PileupScan
from trigger.rates import format_rate, fpr_for_rate, parse_rate

__all__ = ("add_arguments", "format_scan", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = ("Each file's <mu> is its 'pileup' attribute (trigger generate --pileup MU); give a file "
                     "without one as MU=FILE. At each <mu>, every model's threshold is set on that <mu>'s "
                     "zero bias at --accept-rate, so the models compare at the same L1 rate; the rate each "
                     "stored threshold (its own calibration) takes there is shown beside it. Example: "
                     "trigger pileup-scan --model models/artifacts/zb-ae --background "
                     "data/zerobias/zerobias_pu60_calibration.h5 --signal data/zerobias/ato4l_pu60.h5 ...")
    parser.add_argument("--model", type=Path, action="append", required=True, metavar="DIR",
                        help="artifact directory; repeat to compare models")
    parser.add_argument("--background", action="append", required=True, metavar="[MU=]FILE",
                        help="zero-bias events, one file per <mu>")
    parser.add_argument("--signal", action="append", required=True, metavar="[MU=]FILE",
                        help="signal events generated at one of those <mu> (without the lepton trigger)")
    parser.add_argument("--menu", default="run3", help="emulated L1 menu: a TOML file or a bundled menu's name")
    parser.add_argument("--accept-rate", default="1kHz", help="trigger budget of the working point")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate")
    parser.add_argument("--max-events", type=int, default=None, help="cap events read per file")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="write the scan here (for trigger report --pileup-scan)")


def run(args: argparse.Namespace) -> int:
    from firmware.bundle import deployed_scorer
    from models.pileup_scan import group_by_pileup, scan_pileup
    from models.region_artifact import load_model
    from trigger.menu import load_menu

    bx_hz = parse_rate(args.bx_rate)
    fpr = fpr_for_rate(parse_rate(args.accept_rate), bx_hz)
    groups = group_by_pileup(args.background, args.signal)
    menu = load_menu(args.menu)
    models = [load_model(path) for path in args.model]
    scan = scan_pileup(models, groups, fpr, menu, deployed_scorer, bx_rate_hz=bx_hz, max_events=args.max_events)
    print(format_scan(scan))
    if args.json:
        scan.save(args.json)
        print(f"scan written to {args.json}")
    return 0


def format_scan(scan: PileupScan) -> str:
    """One block per <mu>: each model's threshold, pure rate and stored threshold's rate, then per
    signal the menu's, the model's and the pure efficiency."""
    lines = [(f"at {format_rate(scan.working_point_fpr * scan.bx_rate_hz)} of each <mu>'s zero bias; menu "
             f"{scan.menu.get('name')}; pure = accepted by the model and by no seed")]
    for point in scan.points:
        lines.append(f"<mu> = {point['mu']:g}  ({point['background']})")
        for name, model in point["models"].items():
            b, rate = model["background"], model["stored_threshold_rate_hz"]
            stored = "not calibrated at this rate" if rate is None else f"takes {format_rate(rate)}"
            lines.append(f"  {name:<24} threshold {model['threshold']:.4g}  pure rate "
                         f"{format_rate(b['pure']['rate_hz'])} of {format_rate(b['anomaly']['rate_hz'])}  "
                         f"its stored threshold {stored}")
            for signal, cell in model["signals"].items():
                percents = (f"{100 * cell[key]['fraction']:.2f} %" for key in ("menu", "anomaly", "pure"))
                lines.append(f"    {signal:<22} " + "  ".join(f"{label} {text:>8}" for label, text in
                                                          zip(("menu", "trigger", "pure"), percents, strict=True)))
    return "\n".join(lines)
