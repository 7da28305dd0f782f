"""``trigger supervised``: the supervised upper bound, one classifier per signal.

For each signal a gradient-boosted classifier and seed 000's DNN are trained on SM events
against the signal's events; the one that keeps more signal at FPR 10^-3 on the validation
events is written to
``OUT/supervised-<signal>``. It is the efficiency a trigger dedicated to that signal would
reach, not an anomaly detector: no command takes it as a trigger's model, and
``trigger evaluate --supervised DIR`` reports it labelled as supervised, on the held-out
events of its own signal only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trigger.rates import fpr_for_rate, parse_rate

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = __doc__.split("\n\n", 1)[1]
    parser.add_argument("--background", type=Path, required=True, help="SM events (split as for the autoencoders)")
    parser.add_argument("--signal", type=Path, action="append", required=True, metavar="FILE",
                        help="a signal's events: one classifier each; repeatable")
    parser.add_argument("--out-dir", type=Path, default=Path("models/artifacts"),
                        help="where supervised-<signal>/ folders are written")
    parser.add_argument("--signal-train-fraction", type=float, default=0.6,
                        help="the first part of each signal file trained on; the rest is held out")
    parser.add_argument("--calibration", type=Path, metavar="SM.h5",
                        help="SM events never trained on for the threshold (default: the held-out SM split)")
    parser.add_argument("--accept-rate", default="1kHz", help="working point of the stored threshold")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate")
    parser.add_argument("--seed", type=int, default=1)


def run(args: argparse.Namespace) -> int:
    from models.evaluate import signal_name
    from models.supervised import SELECTION, train_supervised
    from trigger.errors import UsageError

    if not 0 < args.signal_train_fraction < 1:
        msg = "--signal-train-fraction must be between 0 and 1"
        raise UsageError(msg)
    fpr = fpr_for_rate(parse_rate(args.accept_rate), parse_rate(args.bx_rate))
    for path in args.signal:
        out = args.out_dir / f"supervised-{signal_name(path)}"
        classifier = train_supervised(args.background, path, out, fpr, args.seed, args.signal_train_fraction,
                                      calibration=args.calibration)
        training, candidates = classifier.manifest["training"], classifier.manifest["candidates"]
        tried = ", ".join(f"{kind} {c[SELECTION]:.4f} (AUC {c['validation_auc']:.4f}, {c['seconds']} s)"
                          for kind, c in candidates.items())
        print(f"{out}: supervised classifier for {classifier.signal}, trained on {training['sm_events']:,} SM and "
              f"{training['signal_events']:,} signal events; signal kept at FPR 1e-3 on the validation events: "
              f"{tried}: kept the {training['classifier']}; "
              f"threshold {classifier.threshold.threshold:.4g}: {classifier.threshold.note}")
    return 0
