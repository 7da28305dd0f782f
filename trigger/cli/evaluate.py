"""``trigger evaluate``: ROC AUC and TPR at fixed FPR per signal, quantized and float side by side.

The quantized variant of a calibrated model is scored by its stored firmware (the path that
decides, ``firmware.bundle.deployed_scorer``), else by QKeras; each model's ``scored_by`` says which.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trigger.events import open_events
from trigger.menu import load_menu
from trigger.rates import format_rate, fpr_for_rate, parse_rate

if TYPE_CHECKING:
    from trigger.contracts import Evaluation

__all__ = ("add_arguments", "format_menu_table", "format_table", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--model", type=Path, action="append", required=True, metavar="DIR",
                        help="artifact directory; repeat to compare models on the same events (a region model "
                             "scores their CaloRegions)")
    parser.add_argument("--supervised", type=Path, action="append", default=[], metavar="DIR",
                        help="a supervised classifier (`trigger supervised`), reported as the bound for its own "
                             "signal on that signal's held-out events; repeatable")
    parser.add_argument("--background", type=Path, action="append", required=True, metavar="FILE",
                        help="SM events; repeat to give a set weighted to the stream's process shares "
                             "(as `trigger calibrate --background`)")
    parser.add_argument("--signal", type=Path, action="append", required=True, metavar="FILE",
                        help="signal events; repeatable")
    parser.add_argument("--accept-rate", default="1kHz", help="trigger budget of the working point")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate")
    parser.add_argument("--max-events", type=int, default=None, help="cap events read per file")
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--recalibrate", action="store_true",
                        help="set each model's working-point threshold on these --background events instead of its "
                             "stored calibration: on a zero-bias sample at the signals' pileup, every model at the "
                             "same Level-1 rate")
    parser.add_argument("--menu", default=None, metavar="FILE",
                        help="an emulated L1 menu (TOML file, or `run3` for the bundled one): adds per signal "
                             "the menu's efficiency and the anomaly trigger's pure efficiency (accepted by it, "
                             "by no seed), and the pure rate on the SM events")


def _cell(point: dict[str, Any] | None) -> str:
    if not point or point.get("tpr") is None:
        return "n/a"
    text = f"{point['tpr']:.3f}"
    return text if point.get("supported") else text + "*"


def format_table(results: Evaluation) -> str:
    fprs = list(next(iter(next(iter(results.models.values()))["signals"].values()))["tpr_at_fpr"])
    wp = results.working_point_fpr
    head = f"{'model':<34}{'signal':<12}{'AUC':>15}" + "".join(f"{'TPR@' + f:>11}" for f in fprs)
    lines = [head + f"{'TPR@WP ' + format(wp, '.2g'):>15}"]
    for label, model in results.models.items():
        for name, s in model["signals"].items():
            auc = f"{s['auc']:.4f}±{s['auc_error']:.4f}"
            row = f"{label:<34}{name:<12}{auc:>15}" + "".join(f"{_cell(s['tpr_at_fpr'][f]):>11}" for f in fprs)
            lines.append(row + f"{_cell(s['working_point']):>15}")
    lines.append("* statistically limited: fewer than 10 SM events expected above the threshold")
    if any(model.get("supervised") for model in results.models.values()):
        lines.append("supervised-*: a classifier trained on that signal, the bound for a dedicated trigger, "
                     "not an anomaly detector (its own signal's held-out events only)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from firmware.bundle import deployed_scorer
    from models.evaluate import evaluate
    from models.region_artifact import load_model
    from models.supervised import load_supervised

    fpr = fpr_for_rate(parse_rate(args.accept_rate), parse_rate(args.bx_rate))
    artifacts = [load_model(path) for path in args.model]
    supervised = [load_supervised(path) for path in args.supervised]
    menu = load_menu(args.menu) if args.menu else None
    bx_hz = parse_rate(args.bx_rate)
    results = evaluate(artifacts, args.background, args.signal, fpr, max_events=args.max_events,
                       supervised=supervised, scorer=deployed_scorer, menu=menu, bx_rate_hz=bx_hz,
                       recalibrate=args.recalibrate)
    results.working_point = {"accept_rate": args.accept_rate, "bx_rate": args.bx_rate}
    print(format_table(results))
    if menu is not None:
        with open_events(args.background[0]) as events:
            process = str(events.attrs.get("process", "unknown"))
        results.menu = {**menu.describe(), "bx_rate_hz": bx_hz, "background_process": process}
        print(format_menu_table(results))
    if args.json:
        results.save(args.json)
        print(f"results written to {args.json}")
    return 0


def _frac(part: dict[str, Any]) -> str:
    return f"{part['count']}: {part['fraction']:.4f} [{part['low']:.4f},{part['high']:.4f}]"


def format_menu_table(results: Evaluation) -> str:
    menu = results.menu or {}
    lines = [(f"L1 menu {menu.get('name')} ({menu.get('source')}), emulated on this project's objects: "
              "pure = accepted by the anomaly trigger and by no seed; events: fraction [68% CL]"),
             f"{'model':<34}{'signal':<12}{'menu eff':>30}{'anomaly eff':>30}{'pure eff':>30}"]
    for label, model in results.models.items():
        for name, s in model["signals"].items():
            if "menu" in s:
                m = s["menu"]
                lines.append(f"{label:<34}{name:<12}{_frac(m['menu']):>30}{_frac(m['anomaly']):>30}"
                             f"{_frac(m['pure']):>30}")
        if "menu_background" in model:
            b = model["menu_background"]
            rates = "  ".join(f"{key} {format_rate(b[key]['rate_hz'])} [{format_rate(b[key]['rate_low_hz'])}, "
                              f"{format_rate(b[key]['rate_high_hz'])}]" for key in ("menu", "anomaly", "pure"))
            lines.append(f"{label:<34}{'SM rates':<12}  {rates}")
    if menu.get("background_process") != "zerobias":
        lines.append(f"note: the SM events are {menu.get('background_process')!r}, not zero bias: their rates are "
                     f"fractions of that sample x {format_rate(menu.get('bx_rate_hz', 0.0))}, not Level-1 rates")
    return "\n".join(lines)
