"""Thresholds at a trigger accept rate, calibrated on the path that decides.

The quantized model's threshold is set on the firmware's own scores (its bundle: the bit-exact
emulator of the converted network, as the FPGA and the replay score), the float twin's on its
own. One hls4ml conversion per calibration: the bundle built to score the events is the one
stored, its decision moved to the new threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.bundle import FirmwareBundle, build_bundle
from trigger.thresholds import ThresholdEstimate, threshold_for

if TYPE_CHECKING:
    from models.artifact import Artifact

__all__ = ("Calibration", "calibrate")


@dataclass(frozen=True)
class Calibration:
    """Per variant the calibrated threshold, and the firmware deciding at the quantized one."""

    thresholds: dict[str, ThresholdEstimate]
    firmware: FirmwareBundle | None  # None for a float-only model


def calibrate(artifact: Artifact, background: Path, fpr: float) -> Calibration:
    """Thresholds for ``fpr`` on the held-out SM events of ``background`` (the artifact's test split
    when it is its training file, else every event)."""
    from models.evaluate import background_events

    events, note = background_events(artifact, background)
    described = f"{note} of {background.name} ({len(events)} SM events)"
    thresholds, firmware = {}, None
    for variant in artifact.variants:
        if variant == "quantized":
            firmware = build_bundle(artifact)
            thresholds[variant] = threshold_for(firmware.scores(events), fpr, path="emulator", events=described)
        else:
            thresholds[variant] = threshold_for(artifact.score(events, variant), fpr, path=variant, events=described)
    if firmware is not None:
        firmware = firmware.with_threshold(thresholds["quantized"].threshold, thresholds["quantized"].as_dict())
    return Calibration(thresholds, firmware)
