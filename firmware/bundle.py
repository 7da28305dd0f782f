"""The firmware bundle: one model's FPGA decision as numpy files, and the one way to build it.

A :class:`FirmwareBundle` holds what the chip computes for a model: the input scaling onto the
firmware's fixed-point grid (an object model's; a region model's firmware reads the region counts
as they are, ``manifest.reads``), the bit-exact emulator of the converted network with its score and
accept decision (``firmware.emulator``), the threshold the decision is set to and where that
threshold came from, and a record of the artifact it was built from. It scores raw events exactly
as the FPGA does and needs neither hls4ml nor TensorFlow to load, so the replay's roles, the
report, the estimate, the check and the export all take the firmware from here.

:func:`build_bundle` is the one place a bundle comes from: one hls4ml conversion of the
artifact's quantized network. ``trigger calibrate`` builds it, sets its threshold
(:meth:`FirmwareBundle.with_threshold`, no second conversion) and stores it in the artifact's
``firmware/`` folder, which the model artifact itself never reads: ``Artifact.score`` always
means the model's own network. A stored bundle records the hashes of the artifact files it was
built from; :func:`stored_bundle` refuses one that no longer matches them.

Layout of a bundle folder::

    firmware.json   trigger.contracts.FirmwareManifest
    emulator.npz    firmware.emulator.Emulator
    scaler.json     trigger.preprocess.Scaler (object models only)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from firmware.compiled import CompiledEmulator
from firmware.emulator import Emulator
from firmware.head import threshold_mantissa
from firmware.region_scoring import RegionFirmware
from trigger.contracts import FirmwareManifest
from trigger.errors import ArtifactError, TriggerError
from trigger.filehash import file_sha256
from trigger.preprocess import Scaler
from trigger.versions import package_versions

if TYPE_CHECKING:
    from models.region_artifact import TriggerModel

__all__ = ("BUNDLE_DIR", "FirmwareBundle", "build_bundle", "bundle_for", "bundle_of", "calibrated_threshold",
           "converted_with_bundle",
           "deployed_scorer", "stored_bundle")

#: where ``trigger calibrate`` stores an artifact's firmware bundle, inside the artifact directory
BUNDLE_DIR = "firmware"
MANIFEST, EMULATOR, SCALER = "firmware.json", "emulator.npz", "scaler.json"
#: the artifact files the firmware is made from: a bundle whose record of them differs is stale
SOURCE_FILES = ("config.json", "scaler.json", "region.json", "quantized.weights.h5", "quantized.ranges.npz")
PACKAGES = ("hls4ml", "qkeras", "hgq", "tensorflow", "numpy")

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class FirmwareBundle:
    """The firmware of one model: raw events in, the chip's score and decision out."""

    scaler: Scaler | None  # None: a region model's firmware, which reads the counts as they are
    emulator: Emulator
    manifest: FirmwareManifest

    @property
    def threshold(self) -> float:
        """The decision threshold in the software's units: accepted exactly when score > threshold."""
        return self.manifest.threshold

    @property
    def reads(self) -> str:
        """The event dataset the firmware scores: ``Particles`` or ``CaloRegions``."""
        return self.manifest.reads

    @property
    def particle_scaler(self) -> Scaler:
        """The input scaling of an object model's firmware; what only reads ``Particles`` asks for it."""
        if self.scaler is None:
            msg = (f"the firmware of {self.manifest.model} reads {self.reads}, not Particles: "
                   "this step takes an object model's firmware only")
            raise TriggerError(msg)
        return self.scaler

    @cached_property
    def compiled(self) -> CompiledEmulator:
        return CompiledEmulator(self.particle_scaler, self.emulator)

    @cached_property
    def regions(self) -> RegionFirmware:
        return RegionFirmware(self.emulator)

    def scores(self, events: NDArray[Any]) -> F64:
        """The firmware's anomaly score of each event, in the software's units: events are (N, 19, 4)
        raw ``Particles`` or, for a region model, (N, 18, 14) ``CaloRegions`` counts."""
        if self.scaler is None:
            return self.regions.scores(events)
        return self.compiled.scores(events)

    def accept(self, events: NDArray[Any]) -> NDArray[np.bool_]:
        """The firmware's accept bit of each event."""
        return self.scores(events) > self.threshold

    def with_threshold(self, threshold: float, source: dict[str, Any]) -> FirmwareBundle:
        """The same firmware deciding at ``threshold`` (software units); ``source`` says where it came from."""
        mantissa = threshold_mantissa(threshold, self.emulator.head.score, self.emulator.head.divisor)
        manifest = replace(self.manifest, threshold=float(threshold), threshold_mantissa=mantissa,
                           threshold_source=source)
        return FirmwareBundle(self.scaler, self.emulator.with_threshold(mantissa), manifest)

    def save(self, directory: str | Path) -> Path:
        """Write the bundle's three files to ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.emulator.save(directory / EMULATOR)
        if self.scaler is not None:
            self.scaler.save(directory / SCALER)
        files = {name: file_sha256(directory / name) for name in (EMULATOR, SCALER) if (directory / name).is_file()}
        replace(self.manifest, files=files).save(directory / MANIFEST)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> FirmwareBundle:
        """A bundle :meth:`save` wrote; a missing, damaged or altered file is an :class:`ArtifactError`."""
        directory = Path(directory)
        if not (directory / MANIFEST).is_file():
            msg = f"{directory}: no {MANIFEST}, not a firmware bundle"
            raise ArtifactError(msg)
        manifest = FirmwareManifest.load(directory / MANIFEST)
        for name, digest in manifest.files.items():
            if not (directory / name).is_file() or file_sha256(directory / name) != digest:
                msg = f"{directory}: {name} is missing, damaged or was changed (sha256 mismatch)"
                raise ArtifactError(msg)
        try:
            emulator = Emulator.load(directory / EMULATOR)
        except TriggerError as err:
            raise ArtifactError(str(err)) from None
        scaler = Scaler.load(directory / SCALER) if SCALER in manifest.files else None
        return cls(scaler, emulator, manifest)


def _source_files(artifact: TriggerModel) -> dict[str, str]:
    return {name: file_sha256(artifact.path / name) for name in SOURCE_FILES if (artifact.path / name).is_file()}


def calibrated_threshold(artifact: TriggerModel) -> tuple[float, dict[str, Any]]:
    """The artifact's calibrated quantized threshold and its calibration, else infinity (no event is
    accepted): the threshold a bundle decides at unless told otherwise."""
    stored = artifact.thresholds.get("quantized")
    if stored is None:
        return float("inf"), {"source": "uncalibrated: accepts nothing"}
    return stored.threshold, stored.as_dict()


def build_bundle(artifact: TriggerModel, threshold: float | None = None, source: dict[str, Any] | None = None,
                 part: str | None = None, clock_ns: float | None = None) -> FirmwareBundle:
    """The artifact's firmware from one hls4ml conversion, deciding at ``threshold`` (default:
    :func:`calibrated_threshold`)."""
    from firmware.convert import DEFAULT_CLOCK_NS, DEFAULT_PART, convert

    part, clock_ns = part or DEFAULT_PART, clock_ns or DEFAULT_CLOCK_NS
    if threshold is None:
        threshold, calibration = calibrated_threshold(artifact)
        source = source or calibration
    with tempfile.TemporaryDirectory() as tmp:
        model = convert(artifact, Path(tmp) / "hls", part, clock_ns, threshold=threshold)
        return bundle_of(artifact, model, threshold, source or {"source": "given"}, part, clock_ns)


def bundle_of(artifact: TriggerModel, hls_model: Any, threshold: float, source: dict[str, Any], part: str,
              clock_ns: float) -> FirmwareBundle:
    """The bundle of the artifact's firmware already converted at ``threshold`` (``firmware.convert``),
    so that a C-simulation and the bundle come from the same conversion."""
    emulator = Emulator.from_hls_model(hls_model)
    manifest = FirmwareManifest(
        model=artifact.name, score=artifact.score_name, threshold=float(threshold), reads=artifact.reads,
        threshold_mantissa=emulator.threshold, threshold_source=source, artifact=str(artifact.path),
        artifact_files=_source_files(artifact), part=part, clock_ns=clock_ns, files={},
        packages=package_versions(PACKAGES))
    return FirmwareBundle(artifact.scaler, emulator, manifest)


def stored_bundle(artifact: TriggerModel) -> FirmwareBundle | None:
    """The bundle ``trigger calibrate`` stored in the artifact, None when there is none; an
    :class:`ArtifactError` when the artifact changed since (retrained: calibrate it again)."""
    directory = artifact.path / BUNDLE_DIR
    if not directory.is_dir():
        return None
    bundle = FirmwareBundle.load(directory)
    if bundle.manifest.artifact_files != _source_files(artifact):
        msg = (f"{directory}: the firmware was built from another version of this model; "
               f"run `trigger calibrate --model {artifact.path}` to rebuild it")
        raise ArtifactError(msg)
    return bundle


def converted_with_bundle(artifact: TriggerModel, convert: Callable[[float], Any]) -> tuple[Any, FirmwareBundle]:
    """One hls4ml conversion, ``convert(threshold)``, at the threshold of the artifact's firmware,
    and that firmware's bundle: the one ``trigger calibrate`` stored, else the one this conversion
    gives at the calibrated threshold (so the converted model and the bundle decide alike)."""
    from firmware.convert import DEFAULT_CLOCK_NS, DEFAULT_PART

    stored = stored_bundle(artifact)
    threshold, source = (stored.threshold, {}) if stored is not None else calibrated_threshold(artifact)
    model = convert(threshold)
    return model, stored or bundle_of(artifact, model, threshold, source, DEFAULT_PART, DEFAULT_CLOCK_NS)


def bundle_for(artifact: TriggerModel) -> FirmwareBundle:
    """The artifact's stored firmware bundle, else one built now at its calibrated threshold."""
    return stored_bundle(artifact) or build_bundle(artifact)


def deployed_scorer(artifact: TriggerModel, variant: str) -> tuple[str, Callable[[NDArray[np.floating[Any]]], F64]]:
    """A ``models.evaluate.Scorer`` for the trigger as deployed: the quantized variant on the firmware
    ``trigger calibrate`` stored (the path that decides), every other variant on its own network."""
    from models.evaluate import network_scorer

    firmware = stored_bundle(artifact) if variant == "quantized" else None
    if firmware is None:
        return network_scorer(artifact, variant)
    return "firmware emulator", firmware.scores
