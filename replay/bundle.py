"""The replay bundle: what the roles load, written once by the process that starts the replay.

A replay's ``model/`` folder holds the model's firmware bundle (``firmware.bundle``: the
emulator, an object model's scaler and ``firmware.json``), the reference path's files (none for
a region model) and ``bundle.json`` (:class:`~trigger.contracts.ReplayManifest`, whose ``reads``
says which events the decision scores). Writing it reads the artifact (TensorFlow, and
hls4ml only when the artifact has no stored firmware bundle); workers and the reference role
then load numpy files alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from firmware.bundle import FirmwareBundle
from models.multiplicity import MultiplicityPrior
from models.numpy_forward import NumpyNetwork
from replay.config import WorkingPoint
from replay.scoring import EmulatedPath, ReferencePath, RegionPath
from trigger.contracts import ReplayManifest
from trigger.errors import ArtifactError, InputFileError, TriggerError
from trigger.preprocess import Scaler

__all__ = ("MANIFEST", "apply_working_point", "load_emulated", "load_reference", "read_bundle", "write_bundle")

MANIFEST = "bundle.json"
REFERENCE_NETWORK, REFERENCE_SCALER = "reference.npz", "reference_scaler.json"
TWIN_PRIOR, REFERENCE_PRIOR = "prior.json", "reference_prior.json"  # the float path's multiplicity prior


def write_bundle(artifact_dir: str | Path, out: str | Path, reference: str | Path | None = None) -> ReplayManifest:
    """Write the bundle of artifact ``artifact_dir`` to ``out``: its firmware (the one ``trigger
    calibrate`` stored, else one built now) and, as the reference path, its float twin or the float
    model of artifact ``reference``."""
    from firmware.bundle import bundle_for
    from models.region_artifact import RegionArtifact, load_model

    artifact = load_model(artifact_dir)
    if "quantized" not in artifact.variants:
        msg = f"{artifact_dir}: a float-only model has no firmware to replay; give a quantized model (--model)"
        raise TriggerError(msg)
    if isinstance(artifact, RegionArtifact) and reference is not None:
        msg = f"{artifact_dir}: a region model's replay has no reference path (--reference reads Particles)"
        raise TriggerError(msg)
    threshold = artifact.threshold("quantized")  # an uncalibrated model is refused here, with the fix
    out = Path(out)
    firmware = bundle_for(artifact)
    firmware.save(out)
    manifest = ReplayManifest(model=str(artifact_dir), name=artifact.name, score=artifact.score_name,
                              threshold=threshold, reads=artifact.reads,
                              training_data=artifact.manifest.get("data"))  # which events it saw: replay.heldout
    if isinstance(artifact, RegionArtifact):  # the teacher is TensorFlow's alone: no reference path
        manifest.save(out / MANIFEST)
        return manifest
    if reference is not None:
        manifest = _with_reference_model(manifest, Path(reference), out)
    elif "float" in artifact.networks:
        NumpyNetwork.from_keras(artifact.networks["float"].scorer).save(out / REFERENCE_NETWORK)
        if artifact.prior is not None:
            artifact.prior.save(out / TWIN_PRIOR)
        manifest = replace(manifest, reference_threshold=artifact.threshold("float"),
                           reference_name=f"{manifest.name}/float", reference_score=manifest.score)
    manifest.save(out / MANIFEST)
    return manifest


def _with_reference_model(manifest: ReplayManifest, path: Path, out: Path) -> ReplayManifest:
    """Bundle another artifact's float model as the reference path (``replay --reference``): its
    scaler, its numpy form when it has one (dense layers only), and its own calibrated threshold."""
    from models.artifact import load_artifact

    reference = load_artifact(path)
    if "float" not in reference.networks:
        msg = f"{path}: no full-precision model to use as the reference"
        raise TriggerError(msg)
    if "float" not in reference.thresholds:
        msg = f"{path}: its float model has no calibrated threshold; run `trigger calibrate --model {path}` first"
        raise TriggerError(msg)
    reference.scaler.save(out / REFERENCE_SCALER)
    if reference.prior is not None:
        reference.prior.save(out / REFERENCE_PRIOR)
    try:
        NumpyNetwork.from_keras(reference.networks["float"].scorer).save(out / REFERENCE_NETWORK)
        numpy_form = True
    except TriggerError:  # convolutions, attention: TensorFlow only
        (out / REFERENCE_NETWORK).unlink(missing_ok=True)
        numpy_form = False
    return replace(manifest, reference_model=str(path.resolve()), reference_name=f"{reference.config.model.name}/float",
                   reference_score=reference.config.model.score, reference_threshold=reference.threshold("float"),
                   reference_twin=False, reference_numpy=numpy_form)


def apply_working_point(bundle: str | Path, point: WorkingPoint | None,
                        default_calibration: Callable[[], Path]) -> ReplayManifest:
    """Set the bundle's decision threshold from ``point`` and record where it came from; the firmware
    bundle in it is moved to that threshold too, so it decides as firmware built with it would.

    ``--accept-rate`` is calibrated on the replay's own decision path: the bundle's emulated path
    scores the held-out SM events of the calibration file (the artifact's test split when that is
    its training file), and the threshold goes between two adjacent distinct scores.
    """
    from models.background import background_events
    from models.region_artifact import load_model
    from trigger.thresholds import threshold_for

    manifest = read_bundle(bundle)
    source: dict[str, Any]
    if point is None or (point.threshold is None and point.accept_rate is None):
        threshold, source = manifest.threshold, {"source": "the artifact's calibration"}
    elif point.threshold is not None:
        threshold, source = point.threshold, {"source": "--threshold"}
    else:
        calibration = point.calibration or default_calibration()
        events, note = background_events(load_model(manifest.model), calibration)
        estimate = threshold_for(load_emulated(bundle).scores(events), point.fpr, path="emulator (replay)",
                                 events=f"{note} of {calibration.name} ({len(events)} SM events)")
        threshold = estimate.threshold
        source = {"source": f"--accept-rate {point.accept_rate} of {point.bx_rate}",
                  "calibration": estimate.as_dict()}
    if threshold != manifest.threshold:
        FirmwareBundle.load(bundle).with_threshold(threshold, source).save(bundle)
    manifest = replace(manifest, threshold=threshold, working_point={**source, "threshold": threshold})
    manifest.save(Path(bundle) / MANIFEST)
    return manifest


def read_bundle(bundle: str | Path) -> ReplayManifest:
    """The manifest of a bundle written by :func:`write_bundle` (a clear error when it is not one)."""
    path = Path(bundle) / MANIFEST
    try:
        return ReplayManifest.load(path)
    except InputFileError as e:
        msg = f"{bundle}: no readable replay bundle ({e.problem})"
        raise ArtifactError(msg) from None


def load_emulated(bundle: str | Path) -> EmulatedPath | RegionPath:
    """The trigger's decision path: the bundle's firmware at the bundle's threshold."""
    manifest = read_bundle(bundle)
    firmware = FirmwareBundle.load(bundle)
    if firmware.scaler is None:
        return RegionPath(firmware.regions, manifest.score, manifest.threshold)
    return EmulatedPath(firmware.scaler, firmware.emulator, manifest.score, manifest.threshold)


def load_reference(bundle: str | Path, backend: str) -> ReferencePath:
    """The float reference for ``backend``; TensorFlow loads the artifact the bundle was made from."""
    bundle = Path(bundle)
    m = read_bundle(bundle)
    if m.reference_threshold is None:
        msg = f"{m.model}: no float twin to use as the reference; use --reference-backend none"
        raise TriggerError(msg)
    scaler = Scaler.load(bundle / ("scaler.json" if m.reference_twin else REFERENCE_SCALER))
    prior_file = bundle / (TWIN_PRIOR if m.reference_twin else REFERENCE_PRIOR)
    prior = MultiplicityPrior.load(prior_file) if prior_file.exists() else None
    if backend == "tensorflow":
        from models.artifact import load_artifact

        source = m.reference_model if m.reference_model is not None and not m.reference_twin else m.model
        network: Any = load_artifact(source).networks["float"].scorer
    elif not m.reference_numpy:
        msg = (f"the reference {m.reference_name} has layers only TensorFlow runs; "
               "use --reference-backend tensorflow (or auto)")
        raise TriggerError(msg)
    else:
        network = NumpyNetwork.load(bundle / REFERENCE_NETWORK)
    return ReferencePath(scaler, network, m.reference_score or m.score, m.reference_threshold, backend, prior)
