"""``trigger calibrate``: set a model's thresholds to a trigger accept rate, on held-out SM events.

The work is :func:`firmware.calibrate.calibrate`'s; this command prints the thresholds, stores them
in the artifact and stores the firmware bundle deciding at the quantized one in the artifact's
``firmware/`` folder (``firmware.bundle``), where the replay, the report and the export find it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trigger.rates import format_rate, fpr_for_rate, parse_rate

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = ("The FPR is accept-rate / bx-rate, e.g. 1kHz of 40MHz -> 2.5e-5. Uses the held-out "
                     "test split when --background is the training file, else all its events. The quantized "
                     "variant is calibrated on the firmware emulator's scores, the float twin on its own; the "
                     "firmware bundle, deciding at the new threshold, is stored in the artifact's firmware/ folder.")
    parser.add_argument("--model", type=Path, required=True, metavar="DIR",
                        help="artifact directory: an object model, or a region model (it reads CaloRegions)")
    parser.add_argument("--background", type=Path, action="append", required=True, metavar="FILE",
                        help="SM events; repeat to give a set (e.g. the cocktail and an oversampled ttbar "
                             "sample): its events are weighted to the stream's process shares by their "
                             "process_code, and the rate's error comes from the effective counts")
    parser.add_argument("--accept-rate", default="1kHz", help="trigger accept budget")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate")


def run(args: argparse.Namespace) -> int:
    from firmware.bundle import BUNDLE_DIR
    from firmware.calibrate import calibrate
    from models.artifact import save_thresholds
    from models.region_artifact import load_model

    accept, bx = parse_rate(args.accept_rate), parse_rate(args.bx_rate)
    fpr = fpr_for_rate(accept, bx)
    artifact = load_model(args.model)
    calibration = calibrate(artifact, args.background, fpr)
    for variant, t in calibration.thresholds.items():
        print(f"[{variant}] accept {format_rate(accept)} of {format_rate(bx)} -> FPR {fpr:.3g}: "
              f"threshold {t.threshold:.6g} on {t.path} scores (68% range {t.threshold_low:.6g} - "
              f"{t.threshold_high:.6g}); achieved FPR {t.achieved.fpr:.3g} [{t.achieved.fpr_low:.3g}, "
              f"{t.achieved.fpr_high:.3g}] on {t.events}")
        print(f"[{variant}] {t.note}")
    save_thresholds(artifact, calibration.thresholds)
    print(f"thresholds stored in {artifact.path / 'thresholds.json'}")
    if calibration.firmware is not None:
        stored = calibration.firmware.save(artifact.path / BUNDLE_DIR)
        print(f"firmware bundle (emulator, score and decision at this threshold) stored in {stored}")
    return 0
