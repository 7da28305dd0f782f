"""The ``trigger`` command: one subcommand per module, dispatched from here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trigger import __version__
from trigger.console import HelpFormatter, add_verbs, quiet_libraries
from trigger.errors import TriggerError

__all__ = ("HelpFormatter", "main")

#: subcommand -> (module under trigger.cli, one-line help)
SUBCOMMANDS = {
    "demo": ("demo", "run the furthest pipeline stage that exists on the bundled sample"),
    "generate": ("generate", "generate stand-in events with Pythia8 in the ADC2021 layout"),
    "pileup-library": ("pileup_library", "generate minimum-bias interactions once, to overlay as pileup"),
    "inspect": ("inspect", "summarise an event file and check its layout"),
    "train": ("train", "train a quantized model and its float twin on SM events (AE, VAE, student, v5 chain)"),
    "train-regions": ("train_regions", "train CICADA's teacher and its quantized student on calorimeter regions"),
    "evaluate": ("evaluate", "ROC AUC and signal efficiency at fixed SM FPR, per signal"),
    "menu-rates": ("menu_rates", "each seed's and the emulated L1 menu's total rate on a sample, with errors"),
    "pileup-scan": ("pileup_scan", "each model at the same L1 rate at every pileup: efficiency, pure efficiency, rates"),
    "calibrate": ("calibrate", "calibrate a model's threshold to a trigger accept rate"),
    "sweep": ("sweep", "Optuna search of widths and quantization (QKeras, HGQ): efficiency against firmware logic"),
    "supervised": ("supervised", "train the supervised upper bound: a classifier per signal (not a trigger)"),
    "firmware": ("firmware", "hls4ml conversion, C-simulation and the bit-exact emulator check"),
    "report": ("report", "self-contained HTML report: ROC, efficiencies, firmware, replay, comparison"),
    "validate": ("inspect", "check an event file's layout; exit status 1 on any violation"),
    "checksum": ("checksum", "SHA-256 of an event file's events; write or check a sample's record"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trigger",
        description="Anomaly-detection trigger toolkit: event data, models, firmware, reports.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbs(parser.add_subparsers(dest="command", metavar="COMMAND"), "trigger.cli", SUBCOMMANDS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args))
    except TriggerError as err:
        print(f"trigger {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trigger {args.command}: interrupted", file=sys.stderr)
        return 130

