"""``trigger sweep``: search widths, latent size and quantization for the efficiency/logic trade.

Optuna (NSGA-II) trains each trial's quantized autoencoder from the base configuration, scores
it on the bit-exact emulator, and measures its mean signal efficiency at the working point
against da4ml's cost of its firmware (score and decision included; about one LUT per unit).
``--check K`` runs the full open-source estimate (RTL check and yosys) on the K cheapest points
of the Pareto front. A QKeras trial searches its weight and activation bits, an HGQ trial the
weight of HGQ's resource penalty (its bits are trained); ``--quantizer both`` mixes the two.
``--include DIR`` measures a trained model (a bundled one, or a kind the search does not
build, as AXOL1TL v5's chain) on the same events and places it on the same front.
Writes OUT/sweep.json and OUT/pareto.png; each trial's artifact stays in
OUT/trial-N.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trigger.rates import fpr_for_rate, parse_rate

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.add_argument("--config", type=Path, default=Path("models/configs/tiny_ae.toml"),
                        help="the base configuration whose shape and bit widths are searched")
    parser.add_argument("--data", type=Path, required=True, help="SM events to train on")
    parser.add_argument("--signal", type=Path, action="append", required=True, metavar="FILE",
                        help="signal events; the efficiency is their mean; repeatable")
    parser.add_argument("--calibration", type=Path, metavar="SM.h5",
                        help="SM events never trained on for each trial's threshold (default: the held-out split)")
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"), help="output folder")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per trial")
    parser.add_argument("--quantizer", choices=("qkeras", "hgq", "both"),
                        help="how the trials quantize (default: as the base configuration does)")
    parser.add_argument("--include", type=Path, action="append", default=[], metavar="DIR",
                        help="a trained quantized model measured beside the trials, on the same front; repeatable")
    parser.add_argument("--check", type=int, default=0, metavar="K", help="yosys-check the K cheapest front points")
    parser.add_argument("--accept-rate", default="1kHz", help="working point")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate")
    parser.add_argument("--seed", type=int, default=1, help="the sampler's seed")


def run(args: argparse.Namespace) -> int:
    from firmware.sweep import describe, point_name, run_sweep
    from models.config import load_config
    from trigger.report.plots import sweep_figure

    fpr = fpr_for_rate(parse_rate(args.accept_rate), parse_rate(args.bx_rate))
    quantizers = ("qkeras", "hgq") if args.quantizer == "both" else (args.quantizer,) if args.quantizer else ()
    sweep = run_sweep(load_config(args.config), args.data, args.signal, args.out, args.trials, args.epochs, fpr,
                      args.calibration, args.seed, check=args.check, quantizers=quantizers, include=args.include)
    sweep_figure(sweep.as_dict()).savefig(args.out / "pareto.png", dpi=120)
    trials = {t["number"]: t for t in sweep.trials}
    print(f"Pareto front ({len(sweep.pareto)} of {len(trials)} trials), by cost:")
    for number in sweep.pareto:
        t = trials[number]
        print(f"  {point_name(t)}: {describe(t['params'])}  efficiency {t['efficiency']:.4f}  cost {t['cost']:,.0f}  "
              f"latency {t['latency_ns']:.0f} ns")
    for c in sweep.checked:
        print(f"  trial {c['trial']} checked with yosys: {c['LUT']:,} LUTs for cost {c['cost']:,.0f} "
              f"({c['lut_per_cost']:.3f} LUT per unit), {c['latency_ns']:.0f} ns, RTL mismatches {c['rtl_mismatches']}")
    print(f"written: {args.out / 'sweep.json'}, {args.out / 'pareto.png'}")
    return 0
