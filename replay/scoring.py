"""The replay's two scoring paths, as the workers and the reference role run them.

- :class:`EmulatedPath`: the trigger decision. Raw events -> the firmware's input mantissas
  (the artifact's scaling and fixed-point grid, identical to ``Scaler.transform``) -> the
  bit-exact firmware emulator -> the on-chip score -> threshold. The projection and the first
  layer's product (filled slots only), each layer's casts and the firmware's score run compiled
  (``firmware.compiled``, the check's and the report's emulator too), every step tested equal
  to its numpy form: :func:`grid_mantissas`, the emulator's kernels and its score head. A score
  above the threshold is exactly the firmware's accept bit (``firmware.head.threshold_mantissa``),
  so any ``--threshold`` decides as the firmware built with it would.
- :class:`ReferencePath`: the float twin at full precision, on TensorFlow (GPU when one is
  visible) or numpy on CPU, with the float model's own threshold (and its multiplicity prior,
  where it has one); its inputs are the same grid projection (compiled, without a product).

Both are loaded from a replay bundle (``replay.bundle``) with numpy alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from firmware.compiled import CompiledEmulator, FirstProduct, in_chunks
from firmware.region_scoring import RegionFirmware
from models.multiplicity import MultiplicityPrior
from models.scores import MASKED_SCORES, anomaly_score
from trigger.preprocess import Scaler, event_values, input_mask
from trigger.schema import BLOCKS, CLASS, DATASET, ETA, N_OBJECTS, PHI, PT, REGIONS_DATASET

__all__ = ("EmulatedPath", "ReferencePath", "RegionPath", "ScoringPath", "checked_first", "grid_mantissas",
           "rehearsal_events", "warm_up")

F64 = NDArray[np.float64]


class ScoringPath(Protocol):
    @property
    def threshold(self) -> float: ...  # read-only: EmulatedPath is a frozen dataclass

    @property
    def reads(self) -> str: ...  # the events it scores: Particles, or a region model's CaloRegions

    def scores(self, particles: NDArray[Any]) -> F64: ...

    def checked_scores(self, particles: NDArray[Any]) -> tuple[F64, NDArray[np.bool_]]: ...


@dataclass(frozen=True)
class EmulatedPath(CompiledEmulator):
    """The firmware's compiled emulator (``firmware.compiled``) and the threshold it decides at."""

    score: str
    threshold: float

    @property
    def reads(self) -> str:
        return DATASET

    def checked_scores(self, particles: NDArray[np.floating[Any]]) -> tuple[F64, NDArray[np.bool_]]:
        """Which events have only finite values (after the input rule) and their scores: in the
        native kernel's scoring pass where there is one, else checked first."""
        if self.native is None:
            return checked_first(self.scores, particles)
        return self.native.checked(particles)


@dataclass(frozen=True)
class RegionPath:
    """A region model's firmware (``firmware.region_scoring``, its native kernel where it applies)
    scoring each event's region counts, and the threshold it decides at."""

    firmware: RegionFirmware
    score: str
    threshold: float

    @property
    def reads(self) -> str:
        return REGIONS_DATASET

    def scores(self, counts: NDArray[Any]) -> F64:
        return self.firmware.scores(counts)

    def checked_scores(self, counts: NDArray[Any]) -> tuple[F64, NDArray[np.bool_]]:
        """Region counts are integers: every event is finite."""
        return self.scores(counts), np.ones(len(counts), np.bool_)


class ReferencePath:
    """The float twin on ``backend`` ("numpy" or "tensorflow") with the float threshold."""

    def __init__(self, scaler: Scaler, network: Any, score: str, threshold: float, backend: str,
                 prior: MultiplicityPrior | None = None) -> None:
        self.scaler, self.network, self.score, self.threshold, self.backend, self.prior = (
            scaler, network, score, threshold, backend, prior)
        self._project = None if scaler.input_type is None else FirstProduct.projection(scaler)

    @property
    def reads(self) -> str:
        return DATASET

    def checked_scores(self, particles: NDArray[np.floating[Any]]) -> tuple[F64, NDArray[np.bool_]]:
        """Which events have only finite values and their scores (NaN for the others)."""
        return checked_first(self.scores, particles)

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
        scores = anomaly_score(self.score, x, outputs, _mask(self.score, particles))
        return scores if self.prior is None else scores + self.prior.values(x)


def checked_first(scores: Callable[[NDArray[np.floating[Any]]], F64],
                  particles: NDArray[np.floating[Any]]) -> tuple[F64, NDArray[np.bool_]]:
    """Which events have only finite values, and ``scores`` of those (NaN for the others): one BLAS
    pass over the batch first (a huge finite value that overflows it is checked event by event)."""
    flat = particles.reshape(-1)
    if np.isfinite(np.dot(flat, flat)):
        return scores(particles), np.ones(len(particles), np.bool_)
    finite = np.isfinite(particles).all(axis=(1, 2))
    out = np.full(len(particles), np.nan)
    with np.errstate(all="ignore"):
        out[finite] = scores(particles[finite])
    return out, finite


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


