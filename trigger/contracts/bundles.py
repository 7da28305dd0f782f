"""The manifests of the two bundles the firmware's decision travels in.

- :class:`FirmwareManifest` (``firmware.json``): what ``firmware.bundle.FirmwareBundle`` holds, one
  model's firmware as numpy files (the bit-exact emulator with its decision, the input scaling
  of an object model; a region model reads the counts as they are),
  the threshold it decides at and where that came from, and the artifact it was built from.
- :class:`ReplayManifest` (``bundle.json`` in a replay's ``model/`` folder): a firmware bundle as
  the replay's roles load it, plus the reference path and the working point of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trigger.contracts.record import Record

__all__ = ("FirmwareManifest", "ReplayManifest")


@dataclass
class FirmwareManifest(Record):
    """One model's firmware, scored with numpy alone: the files and the decision they make."""

    FORMAT = "trigger.firmware-bundle"
    VERSION = 1

    model: str  # the model's name
    score: str  # the score the firmware computes: mse, mu2 or distilled
    threshold: float  # accepts exactly the events whose score is above it, in the software's units
    threshold_mantissa: int  # the decision's threshold as a score mantissa, as in the firmware
    threshold_source: dict[str, Any]  # the calibration (trigger.thresholds.ThresholdEstimate) or its origin
    artifact: str  # the artifact directory it was built from
    artifact_files: dict[str, str]  # sha256 of the artifact's files the firmware depends on
    part: str
    clock_ns: float
    files: dict[str, str]  # sha256 of the bundle's own files
    packages: dict[str, str] = field(default_factory=dict)  # hls4ml and the others that built it
    reads: str = "Particles"  # the event dataset it scores: Particles (scaled) or CaloRegions (the counts)


@dataclass
class ReplayManifest(Record):
    """What a replay's roles load: the firmware bundle beside it, and the reference path."""

    FORMAT = "trigger.replay-bundle"
    VERSION = 1

    model: str  # the artifact directory
    name: str
    score: str
    threshold: float  # the decision's threshold in this run (the working point's)
    training_data: dict[str, Any] | None  # which events the model saw (replay.heldout)
    reference_threshold: float | None = None  # None: no reference path
    reference_name: str | None = None
    reference_score: str | None = None
    reference_twin: bool = True  # the reference is the model's own float twin
    reference_model: str | None = None  # another artifact's float model (replay --reference)
    reference_numpy: bool = True  # the reference has a numpy form (dense layers only)
    working_point: dict[str, Any] = field(default_factory=dict)  # where the threshold came from
    reads: str = "Particles"  # the events the decision scores: Particles, or a region model's CaloRegions
