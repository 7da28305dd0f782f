"""``trigger calibrate``: set a model's thresholds to a trigger accept rate, on held-out SM events.

The quantized model's threshold is calibrated on the path that decides: the bit-exact firmware
emulator's fixed-point scores (hls4ml's graph, as the replay and the FPGA score), not QKeras'.
The emulator, its decision set to the new threshold, is then stored in the artifact
(``emulator.npz``), and the artifact's quantized scores go through it from then on.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trigger.rates import format_rate, fpr_for_rate, parse_rate

__all__ = ("add_arguments", "calibrated_thresholds", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = ("The FPR is accept-rate / bx-rate, e.g. 1kHz of 40MHz -> 2.5e-5. Uses the held-out "
                     "test split when --background is the training file, else all its events. The quantized "
                     "variant is calibrated on the firmware emulator's scores, the float twin on its own; the "
                     "emulator, deciding at the new threshold, is stored in the artifact (emulator.npz).")
    parser.add_argument("--model", type=Path, required=True, metavar="DIR", help="artifact directory")
    parser.add_argument("--background", type=Path, required=True, help="SM events")
    parser.add_argument("--accept-rate", default="1kHz", help="trigger accept budget")
    parser.add_argument("--bx-rate", default="40MHz", help="bunch-crossing rate")


def calibrated_thresholds(artifact: Any, background: Path, fpr: float) -> dict[str, Any]:
    """Per variant, the threshold for ``fpr`` on held-out SM events of ``background``: the quantized
    variant on the firmware emulator's scores, the others on their own."""
    from firmware.check import emulator_scores
    from models.evaluate import background_events
    from trigger.thresholds import threshold_for

    events, note = background_events(artifact, background)
    described = f"{note} of {background.name} ({len(events)} SM events)"
    thresholds = {}
    for variant in artifact.variants:
        if variant == "quantized":
            scores, path = emulator_scores(artifact, events), "emulator"
        else:
            scores, path = artifact.score(events, variant), variant
        thresholds[variant] = threshold_for(scores, fpr, path=path, events=described)
    return thresholds


def run(args: argparse.Namespace) -> int:
    from models.artifact import load_artifact, save_thresholds

    accept, bx = parse_rate(args.accept_rate), parse_rate(args.bx_rate)
    fpr = fpr_for_rate(accept, bx)
    artifact = load_artifact(args.model)
    thresholds = calibrated_thresholds(artifact, args.background, fpr)
    for variant, t in thresholds.items():
        print(f"[{variant}] accept {format_rate(accept)} of {format_rate(bx)} -> FPR {fpr:.3g}: "
              f"threshold {t.threshold:.6g} on {t.path} scores (68% range {t.threshold_low:.6g} - "
              f"{t.threshold_high:.6g}); achieved FPR {t.achieved.fpr:.3g} [{t.achieved.fpr_low:.3g}, "
              f"{t.achieved.fpr_high:.3g}] on {t.events}")
        print(f"[{variant}] {t.note}")
    save_thresholds(artifact, thresholds)
    print(f"thresholds stored in {artifact.path / 'thresholds.json'}")
    if "quantized" in thresholds:
        from firmware.convert import emulator_for
        from models.artifact import EMULATOR, update_manifest

        emulator_for(artifact, threshold=thresholds["quantized"].threshold).save(artifact.path / EMULATOR)
        update_manifest(artifact.path)
        print(f"firmware emulator (score and decision at this threshold) stored in {artifact.path / EMULATOR}")
    return 0
