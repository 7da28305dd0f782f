"""The firmware of a calorimeter-region model scoring region counts, bit-exact and fast.

:class:`RegionFirmware` takes the emulator of a network that reads the 18 x 14 region counts
(``CaloRegions``, io_parallel's flat order) and gives the firmware's scores and decisions. It
scores with the native kernel (``native_regions.cpp``: the counts are the input mantissas, the
layers and the score run on integer SIMD lanes, a convolution as the Dense layer of its nonzero
weights) where ``firmware.native`` can prove the integer arithmetic exact, and with the numpy
emulator (``Emulator.predict``, the reference) otherwise. The kernel checks itself against the
emulator on :func:`check_counts` when it is loaded and steps aside, with a warning, if they differ;
events whose counts are off the input grid, or not whole numbers, are always scored by the emulator.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.emulator import Emulator
from firmware.native import NotNative, checked_kernel, compile_kernel, network_source
from trigger.errors import TriggerError
from trigger.schema import REGION_MAX_COUNT, REGION_N_ETA, REGION_N_PHI

__all__ = ("RegionFirmware", "check_counts", "region_counts", "region_source")

SOURCE = Path(__file__).with_name("native_regions.cpp")
N_REGIONS = REGION_N_PHI * REGION_N_ETA

F64 = NDArray[np.float64]

def region_counts(counts: NDArray[Any]) -> NDArray[Any]:
    """(N, 18, 14), (N, 18, 14, 1) or (N, 252) region counts -> (N, 252) in io_parallel's flat order
    (phi first), as given (no copy where none is needed)."""
    counts = np.asarray(counts)
    if counts.ndim < 2 or int(np.prod(counts.shape[1:])) != N_REGIONS or (
            counts.ndim > 2 and counts.shape[1:3] != (REGION_N_PHI, REGION_N_ETA)):
        msg = f"region counts must be (N, {REGION_N_PHI}, {REGION_N_ETA}), got {counts.shape}"
        raise ValueError(msg)
    return counts.reshape(len(counts), N_REGIONS)


def region_source(emulator: Emulator) -> str:
    """The model's part of the region kernel's C++ (namespace ``net``); raises :class:`NotNative`
    with the reason where the kernel cannot score this firmware exactly."""
    t, first = emulator.input_type, emulator.kernels[0].weight if emulator.kernels else np.zeros((0, 0))
    if first.shape[0] != N_REGIONS or t.fractional < 0 or emulator.head.prior or emulator.head.reconstruction:
        msg = (f"a region kernel reads {N_REGIONS} counts onto a grid that drops no integer bits and scores "
               "the network's outputs without a prior")
        raise NotNative(msg)
    scale = 2**t.fractional
    low, high = -(-t.int_min // scale), t.int_max // scale  # the counts on the grid
    constants, body = network_source(emulator, max(-t.int_min, t.int_max))
    return f"""namespace net {{
constexpr int kInputs = {N_REGIONS};
constexpr int kInputShift = {t.fractional};
constexpr int32_t kCountLow = {low}, kCountHigh = {high};
{constants}

inline void network(const Lanes* __restrict q, Lanes* __restrict totals) {{
{body}
}}
}}  // namespace net
"""


def check_counts(n: int = 2048, seed: int = 0) -> NDArray[np.int32]:
    """Region images the kernel checks itself on: sparse and dense, small and saturated counts,
    empty images and images at the 10-bit ceiling everywhere."""
    rng = np.random.default_rng(seed)
    occupancy = rng.choice([0.02, 0.15, 0.5, 1.0], (n, 1))
    scale = rng.choice([3.0, 30.0, 300.0], (n, 1))
    values = np.minimum(rng.exponential(1.0, (n, N_REGIONS)) * scale, REGION_MAX_COUNT).astype(np.int32)
    counts = np.where(rng.random((n, N_REGIONS)) < occupancy, values, 0).astype(np.int32)
    counts[:4] = 0
    counts[4:8] = REGION_MAX_COUNT
    return counts


def _kernel(source: str) -> Any:
    library = compile_kernel(SOURCE, source)
    if isinstance(library, str):
        return library
    library.native_region_scores.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    library.native_region_scores.restype = ctypes.c_int64
    return library


@dataclass(frozen=True)
class RegionFirmware:
    """A region model's firmware: region counts in, the chip's score and accept bit out."""

    emulator: Emulator

    def __post_init__(self) -> None:
        n_inputs = self.emulator.kernels[0].weight.shape[0] if self.emulator.kernels else 0
        if n_inputs != N_REGIONS:
            msg = (f"this firmware reads {n_inputs} inputs, not the {N_REGIONS} region counts "
                   f"({REGION_N_PHI} x {REGION_N_ETA}): not a region model's")
            raise TriggerError(msg)

    @property
    def threshold(self) -> float:
        """Accepted exactly when the score (software units) is above it."""
        return self.emulator.threshold_value

    @cached_property
    def native(self) -> Any | None:
        """The loaded kernel, checked equal to the emulator; None where it cannot be used."""
        def agrees(library: Any) -> bool:
            counts = check_counts()
            return np.array_equal(self._native_scores(library, counts), self.emulator_scores(counts))

        return checked_kernel(lambda: region_source(self.emulator), _kernel, agrees, "the emulator on its check images")

    def emulator_scores(self, counts: NDArray[Any]) -> F64:
        """The numpy emulator's scores (software units): the reference."""
        flat = region_counts(counts).astype(np.float64)
        return np.asarray(self.emulator.scores(self.emulator.predict(flat)), np.float64)

    def _native_scores(self, library: Any, counts: NDArray[Any]) -> F64:
        given = region_counts(counts)
        flat, whole = given, np.ones(len(given), bool)
        if not np.issubdtype(flat.dtype, np.integer):
            whole = np.all(np.isfinite(flat) & (flat == np.round(flat)), axis=1)
            flat = np.where(whole[:, None], flat, 0)
        if not np.can_cast(flat.dtype, np.int32):  # wider integers, or floats: off-grid values stay off it
            flat = np.clip(flat, -(2**31), 2**31 - 1)
        ints = np.ascontiguousarray(flat, dtype=np.int32)  # the file's uint16 counts: one copy
        scores = np.empty(len(ints))
        library.native_region_scores(len(ints), ints.ctypes.data, scores.ctypes.data)
        rows = np.flatnonzero(np.isnan(scores) | ~whole)
        if len(rows):
            scores[rows] = self.emulator_scores(given[rows])
        return scores

    def scores(self, counts: NDArray[Any]) -> F64:
        """The firmware's score of each event's region counts, in the software's units."""
        library = self.native
        return self.emulator_scores(counts) if library is None else self._native_scores(library, counts)

    def accept(self, counts: NDArray[Any]) -> NDArray[np.bool_]:
        """The firmware's accept bit of each event."""
        return self.scores(counts) > self.threshold
