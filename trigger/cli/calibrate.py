"""``trigger calibrate``: set a model's thresholds to a trigger accept rate, on held-out SM events."""

from __future__ import annotations

import argparse
from pathlib import Path

from trigger.rates import format_rate, fpr_for_rate, parse_rate

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = ("The FPR is accept-rate / bx-rate, e.g. 1kHz of 40MHz -> 2.5e-5. Uses the held-out "
                     "test split when --background is the training file, else all its events.")
    parser.add_argument("--model", type=Path, required=True, metavar="DIR", help="artifact directory")
    parser.add_argument("--background", type=Path, required=True, help="SM events")
    parser.add_argument("--accept-rate", default="1kHz", help="trigger accept budget")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate")


def run(args: argparse.Namespace) -> int:
    from models.artifact import load_artifact, save_thresholds
    from models.evaluate import background_events
    from trigger.thresholds import threshold_for

    accept, bx = parse_rate(args.accept_rate), parse_rate(args.bx_rate)
    fpr = fpr_for_rate(accept, bx)
    artifact = load_artifact(args.model)
    events, note = background_events(artifact, args.background)
    thresholds = {}
    for variant in artifact.variants:
        t = threshold_for(artifact.score(events, variant), fpr)
        thresholds[variant] = t
        print(f"[{variant}] accept {format_rate(accept)} of {format_rate(bx)} -> FPR {fpr:.3g}: "
              f"threshold {t.threshold:.6g} (68% range {t.threshold_low:.6g} - {t.threshold_high:.6g}); "
              f"achieved FPR {t.achieved.fpr:.3g} [{t.achieved.fpr_low:.3g}, {t.achieved.fpr_high:.3g}] "
              f"on {t.achieved.total} SM events ({note})")
        print(f"[{variant}] {t.note}")
    save_thresholds(artifact, thresholds)
    print(f"thresholds stored in {artifact.path / 'thresholds.json'}")
    return 0
