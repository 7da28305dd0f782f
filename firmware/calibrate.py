"""Thresholds at a trigger accept rate, calibrated on the path that decides.

The quantized model's threshold is set on the firmware's own scores (its bundle: the bit-exact
emulator of the converted network, as the FPGA and the replay score), the float twin's on its
own. One hls4ml conversion per calibration: the bundle built to score the events is the one
stored, its decision moved to the new threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.bundle import FirmwareBundle, build_bundle
from trigger.thresholds import ThresholdEstimate, threshold_for

if TYPE_CHECKING:
    from models.region_artifact import TriggerModel

__all__ = ("Calibration", "calibrate")


@dataclass(frozen=True)
class Calibration:
    """Per variant the calibrated threshold, and the firmware deciding at the quantized one."""

    thresholds: dict[str, ThresholdEstimate]
    firmware: FirmwareBundle | None  # None for a float-only model


def calibrate(artifact: TriggerModel, background: Path | Sequence[Path], fpr: float) -> Calibration:
    """Thresholds for ``fpr`` on the held-out SM events of ``background`` (the artifact's test split
    when it is its training file, else every event); several files are weighted to the stream by
    process (``models.background.read_background``)."""
    from models.background import read_background

    sm = read_background(artifact, background)
    described = f"{sm.note} ({len(sm)} SM events)"
    thresholds, firmware = {}, None
    for variant in artifact.variants:
        if variant == "quantized":
            firmware = build_bundle(artifact)
            scores, path = firmware.scores(sm.events), "emulator"
        else:
            scores, path = artifact.score(sm.events, variant), variant
        thresholds[variant] = threshold_for(scores, fpr, path=path, events=described, weights=sm.weights)
    if firmware is not None:
        firmware = firmware.with_threshold(thresholds["quantized"].threshold, thresholds["quantized"].as_dict())
    return Calibration(thresholds, firmware)
