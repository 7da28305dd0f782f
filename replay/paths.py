"""The replay's two scoring paths and the model bundle the roles load them from.

- :class:`EmulatedPath`: the trigger decision. Raw events -> the firmware's input mantissas
  (the artifact's scaling and fixed-point grid, identical to ``Scaler.transform``) -> the
  bit-exact firmware emulator -> the on-chip score -> threshold. The projection and the first
  layer's product (filled slots only), each layer's casts and the firmware's score run compiled
  (``firmware.compiled``, the check's and the report's emulator too), every step tested equal
  to its numpy form: ``grid_mantissas``, the emulator's kernels and its score head. A score above the threshold is exactly the firmware's
  accept bit (``firmware.head.threshold_mantissa``), so any ``--threshold`` decides as the
  firmware built with it would.
- :class:`ReferencePath`: the float twin at full precision, on TensorFlow (GPU when one is
  visible) or numpy on CPU, with the float model's own threshold; its inputs are the same grid
  projection (compiled, without a product).

``write_bundle`` runs once in the process that starts the replay (it needs TensorFlow and
hls4ml to read the artifact); workers and the reference role then load only numpy files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from firmware.compiled import CompiledEmulator, FirstProduct, in_chunks
from firmware.emulator import Emulator
from models.numpy_forward import NumpyNetwork
from models.scores import MASKED_SCORES, anomaly_score
from replay.config import WorkingPoint
from trigger.errors import ArtifactError, TriggerError
from trigger.preprocess import Scaler, event_values, input_mask
from trigger.schema import BLOCKS, CLASS, ETA, N_OBJECTS, PHI, PT

__all__ = (
    "BACKENDS",
    "EmulatedPath",
    "ReferencePath",
    "ScoringPath",
    "apply_working_point",
    "grid_mantissas",
    "in_chunks",
    "load_emulated",
    "load_reference",
    "read_bundle",
    "reference_backend",
    "rehearsal_events",
    "resolve_backend",
    "warm_up",
    "write_bundle",
)

BACKENDS = ("auto", "tensorflow", "numpy", "none")
F64 = NDArray[np.float64]
_MANIFEST = "bundle.json"


class ScoringPath(Protocol):
    @property
    def threshold(self) -> float: ...  # read-only: EmulatedPath is a frozen dataclass

    def scores(self, particles: NDArray[np.floating[Any]]) -> F64: ...


@dataclass(frozen=True)
class EmulatedPath(CompiledEmulator):
    """The firmware's compiled emulator (``firmware.compiled``) and the threshold it decides at."""

    score: str
    threshold: float


class ReferencePath:
    """The float twin on ``backend`` ("numpy" or "tensorflow") with the float threshold."""

    def __init__(self, scaler: Scaler, network: Any, score: str, threshold: float, backend: str) -> None:
        self.scaler, self.network, self.score, self.threshold, self.backend = (
            scaler, network, score, threshold, backend)
        self._project = None if scaler.input_type is None else FirstProduct.projection(scaler)

    def scores(self, particles: NDArray[np.floating[Any]]) -> F64:
        particles = event_values(particles)  # the input rule: float32 first
        if self.backend == "numpy":
            return in_chunks(self._scores, particles)
        return self._scores(np.asarray(particles))  # one large batch for the GPU

    def _scores(self, particles: NDArray[np.floating[Any]]) -> F64:
        if len(particles) == 0:
            return np.zeros(0)
        grid = self.scaler.input_type
        if grid is None:
            x = self.scaler.transform(particles)
        else:
            project = cast(FirstProduct, self._project)  # built whenever the scaler has a grid
            x = np.multiply(project(particles)[0], grid.lsb, dtype=np.float32)
        if self.backend == "numpy":
            outputs = self.network.predict(x)
        else:
            outputs = self.network.predict(x, batch_size=len(x), verbose=0)
        if isinstance(outputs, list) and len(outputs) == 1:
            outputs = outputs[0]
        return anomaly_score(self.score, x, outputs, _mask(self.score, particles))


def rehearsal_events(n: int) -> NDArray[np.float32]:
    """``n`` plausible events for a warm-up: MET, an electron, a muon and four jets each, the rest
    empty, as a sixth to a third of the slots of real events are filled."""
    events = np.zeros((n, N_OBJECTS, 4), np.float32)
    phi = np.linspace(-3.0, 3.0, n, dtype=np.float32)
    for block, count in zip(BLOCKS, (1, 1, 1, 4), strict=True):
        rows = slice(block.start, block.start + count)
        events[:, rows, PT] = np.linspace(60.0, 20.0, count, dtype=np.float32)
        events[:, rows, ETA] = 0.5 * block.max_abs_eta
        events[:, rows, PHI] = phi[:, None]
        events[:, rows, CLASS] = block.class_code
    return events


def warm_up(path: ScoringPath, events: int = 1) -> None:
    """Score ``events`` rehearsal events, so that compiling the numba steps (or loading them from
    numba's cache: seconds once per machine, milliseconds after) is done before a role says READY,
    and, with a whole batch, the allocator has grown to a batch's arrays: the first batches of a
    paced run are not late. One dtype is enough: every path rounds events to float32 first."""
    path.scores(rehearsal_events(events))


def _mask(score: str, particles: NDArray[np.floating[Any]]) -> NDArray[np.bool_] | None:
    """The (N, 57) mask of filled slots' inputs, computed only for the scores that read it."""
    return input_mask(particles[..., PT] > 0) if score in MASKED_SCORES else None


def grid_mantissas(scaler: Scaler, particles: NDArray[np.floating[Any]]) -> F64:
    """Input mantissas, equal to ``scaler.transform(particles) * 2**F`` (tested), computed on the
    filled slots only (about one in six): empty slots are exactly 0 after the scaler's mask.

    ``(x - c) / (s * 2**-F)`` equals ``(x - c) / s * 2**F`` exactly: scaling by a power of
    two commutes with rounding.
    """
    grid = scaler.grid
    particles = event_values(particles)  # the input rule: float32 first, then float64
    n = len(particles)
    filled = particles[..., PT] > 0
    rows, slots = np.nonzero(filled)
    values = particles[rows, slots, :3].astype(np.float64)
    if scaler.log_pt:
        np.log1p(values[:, PT], out=values[:, PT])  # pT > 0 in a filled slot
    values -= scaler.center.reshape(N_OBJECTS, 3)[slots]
    values /= scaler.mantissa_step.reshape(N_OBJECTS, 3)[slots]
    np.floor(values, out=values)  # the grid rounds toward minus infinity and saturates (preprocess.py)
    if len(values) and (values.min() < grid.int_min or values.max() > grid.int_max):
        np.clip(values, grid.int_min, grid.int_max, out=values)
    x = np.zeros((n, N_OBJECTS, 3))
    x[rows, slots] = values
    return x.reshape(n, N_OBJECTS * 3)


def gpu_visible() -> bool:
    """Whether TensorFlow could use a GPU; checked without importing TensorFlow when there is none."""
    if not (Path("/proc/driver/nvidia").exists() or os.environ.get("CUDA_VISIBLE_DEVICES")):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_backend(requested: str) -> str:
    """``auto`` -> tensorflow when a GPU is visible, numpy otherwise."""
    if requested not in BACKENDS:
        msg = f"unknown reference backend {requested!r}; expected one of {', '.join(BACKENDS)}"
        raise TriggerError(msg)
    if requested == "auto":
        return "tensorflow" if gpu_visible() else "numpy"
    return requested


def write_bundle(artifact_dir: str | Path, out: str | Path, reference: str | Path | None = None) -> dict[str, Any]:
    """Read the artifact once (TensorFlow, hls4ml) and write what the roles load with numpy; the
    reference path is the artifact's float twin, or the float model of artifact ``reference``."""
    from firmware.convert import emulator_for
    from models.artifact import load_artifact

    artifact = load_artifact(artifact_dir)
    if "quantized" not in artifact.networks:
        msg = (
            f"{artifact_dir}: a float-only model has no firmware to replay; "
            "give a quantized model (--model)"
        )
        raise TriggerError(msg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (artifact.firmware or emulator_for(artifact)).save(out / "emulator.npz")  # the artifact's own when stored
    artifact.scaler.save(out / "scaler.json")
    manifest: dict[str, Any] = {
        "model": str(artifact_dir), "name": artifact.config.model.name, "score": artifact.config.model.score,
        "threshold": artifact.threshold("quantized"), "reference_threshold": None,
        "training_data": artifact.manifest.get("data"),  # which events it saw: see replay.heldout
    }
    if reference is not None:
        manifest.update(_reference_model(Path(reference), out))
    elif "float" in artifact.networks:
        NumpyNetwork.from_keras(artifact.networks["float"].scorer).save(out / "reference.npz")
        manifest.update(reference_threshold=artifact.threshold("float"), reference_name=f"{manifest['name']}/float",
                        reference_score=manifest["score"], reference_twin=True)
    (out / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _reference_model(path: Path, out: Path) -> dict[str, Any]:
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
    reference.scaler.save(out / "reference_scaler.json")
    try:
        NumpyNetwork.from_keras(reference.networks["float"].scorer).save(out / "reference.npz")
        numpy_form = True
    except TriggerError:  # convolutions, attention: TensorFlow only
        (out / "reference.npz").unlink(missing_ok=True)
        numpy_form = False
    name = reference.config.model.name
    return {"reference_model": str(path.resolve()), "reference_name": f"{name}/float",
            "reference_score": reference.config.model.score, "reference_threshold": reference.threshold("float"),
            "reference_twin": False, "reference_numpy": numpy_form}


def apply_working_point(bundle: str | Path, point: WorkingPoint | None,
                        default_calibration: Callable[[], Path]) -> dict[str, Any]:
    """Set the bundle's decision threshold from ``point`` and record where it came from.

    ``--accept-rate`` is calibrated on the replay's own decision path: the bundle's emulated path
    scores the held-out SM events of the calibration file (the artifact's test split when that is
    its training file), and the threshold goes between two adjacent distinct scores.
    """
    from models.artifact import load_artifact
    from models.evaluate import background_events
    from trigger.thresholds import threshold_for

    manifest = read_bundle(bundle)
    if point is None or (point.threshold is None and point.accept_rate is None):
        manifest["working_point"] = {"source": "the artifact's calibration", "threshold": manifest["threshold"]}
    elif point.threshold is not None:
        manifest["threshold"] = point.threshold
        manifest["working_point"] = {"source": "--threshold", "threshold": point.threshold}
    else:
        calibration = point.calibration or default_calibration()
        events, note = background_events(load_artifact(manifest["model"]), calibration)
        estimate = threshold_for(load_emulated(bundle).scores(events), point.fpr, path="emulator (replay)",
                                 events=f"{note} of {calibration.name} ({len(events)} SM events)")
        manifest["threshold"] = estimate.threshold
        manifest["working_point"] = {"source": f"--accept-rate {point.accept_rate} of {point.bx_rate}",
                                     "threshold": estimate.threshold, "calibration": estimate.as_dict()}
    (Path(bundle) / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_bundle(bundle: str | Path) -> dict[str, Any]:
    """The manifest of a bundle written by :func:`write_bundle` (a clear error when it is not one)."""
    try:
        return cast(dict[str, Any], json.loads((Path(bundle) / _MANIFEST).read_text()))
    except (OSError, ValueError) as e:
        msg = f"{bundle}: no readable replay bundle ({e})"
        raise ArtifactError(msg) from None


def load_emulated(bundle: str | Path) -> EmulatedPath:
    bundle = Path(bundle)
    m = read_bundle(bundle)
    return EmulatedPath(Scaler.load(bundle / "scaler.json"), Emulator.load(bundle / "emulator.npz"),
                        m["score"], float(m["threshold"]))


def load_reference(bundle: str | Path, backend: str) -> ReferencePath:
    """The float twin for ``backend``; TensorFlow loads the artifact the bundle was made from."""
    bundle = Path(bundle)
    m = read_bundle(bundle)
    if m["reference_threshold"] is None:
        msg = f"{m['model']}: no float twin to use as the reference; use --reference-backend none"
        raise TriggerError(msg)
    twin = m.get("reference_twin", True)
    scaler = Scaler.load(bundle / ("scaler.json" if twin else "reference_scaler.json"))
    if backend == "tensorflow":
        from models.artifact import load_artifact

        network: Any = load_artifact(m["model"] if twin else m["reference_model"]).networks["float"].scorer
    elif not m.get("reference_numpy", True):
        msg = (f"the reference {m['reference_name']} has layers only TensorFlow runs; "
               "use --reference-backend tensorflow (or auto)")
        raise TriggerError(msg)
    else:
        network = NumpyNetwork.load(bundle / "reference.npz")
    return ReferencePath(scaler, network, m.get("reference_score", m["score"]), float(m["reference_threshold"]),
                         backend)


def reference_backend(requested: str, bundle: dict[str, Any]) -> str:
    """The backend the bundle's reference runs on: ``auto`` is TensorFlow when a GPU is visible or
    the reference has no numpy form, else numpy."""
    if requested == "auto" and not bundle.get("reference_numpy", True):
        return "tensorflow"
    return resolve_backend(requested)
