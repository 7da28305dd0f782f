"""Float64 events on the wire at float32's cost, with every original value kept.

Every scoring path rounds events to float32 first (the input rule), so the workers and the
reference need only the float32 values. What they send back (accepted and quarantined events)
must be the input file's rows bit for bit, though. :func:`narrow` therefore splits a float64
batch into its float32 values and the few values the cast changes, each with its position:
in files made from float32 data (Delphes, this project's generator) none changes; where all
do, only the filled slots' ones (about 12 of an event's 76 values) travel twice.
:meth:`Narrowed.restore` gives back the original rows of the events that need them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ("Narrowed", "NarrowingError", "narrow")

#: above this fraction of changed values a batch travels as float64, as it is
MAX_CHANGED = 0.25


class NarrowingError(ValueError):
    """The changed values of a narrowed batch do not fit its float32 values."""


@numba.njit(cache=True, nogil=True)
def _narrow(flat: NDArray[np.float64], values: NDArray[np.float32], where: NDArray[np.int64],
            originals: NDArray[np.float64], most: int) -> int:  # pragma: no cover - compiled; tested through narrow
    """float32 values of ``flat``, and the positions and values of those the cast changes (NaN
    included, so its payload survives); stops, returning -1, after ``most`` of them."""
    changed = 0
    for i in range(flat.size):
        v = flat[i]
        f = np.float32(v)
        values[i] = f
        if np.float64(f) != v:
            if changed == most:
                return -1
            where[changed] = i
            originals[changed] = v
            changed += 1
    return changed


@dataclass(frozen=True)
class Narrowed:
    """A float64 batch as its float32 ``values`` (n, 19, 4) and the float64 ``originals`` of the
    values at flat positions ``where`` (increasing), which the cast to float32 changed."""

    values: NDArray[np.float32]
    where: NDArray[np.int64]
    originals: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.values)

    def first(self, n: int) -> Narrowed:
        """The first ``n`` events."""
        kept = int(np.searchsorted(self.where, n * self.values[0].size)) if len(self.values) else 0
        return Narrowed(self.values[:n], self.where[:kept], self.originals[:kept])

    def check(self) -> None:
        """Raises :class:`NarrowingError` unless the parts fit: positions inside the batch and
        increasing, one original each, each original the value its float32 stands for."""
        where, originals, flat = self.where, self.originals, self.values.reshape(-1)
        if where.ndim != 1 or originals.shape != where.shape or where.dtype != np.int64:
            msg = f"{where.shape} positions for {originals.shape} originals"
            raise NarrowingError(msg)
        if len(where) and (where[0] < 0 or where[-1] >= flat.size or np.any(np.diff(where) <= 0)):
            msg = f"positions outside 0..{flat.size - 1} or not increasing"
            raise NarrowingError(msg)
        with np.errstate(over="ignore", invalid="ignore"):
            narrowed = originals.astype(np.float32)
        if not np.array_equal(narrowed, flat[where], equal_nan=True):
            msg = "originals that do not round to their float32 values"
            raise NarrowingError(msg)

    def restore(self, rows: NDArray[np.intp]) -> NDArray[np.float64]:
        """The original float64 events ``rows`` (increasing indices into the batch), bit for bit."""
        out = self.values[rows].astype(np.float64)
        if len(self.where) and len(rows):
            event, offset = np.divmod(self.where, self.values[0].size)
            position = np.minimum(np.searchsorted(rows, event), len(rows) - 1)
            wanted = rows[position] == event
            out.reshape(len(rows), -1)[position[wanted], offset[wanted]] = self.originals[wanted]
        return out


def narrow(particles: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]] | Narrowed:
    """float64 events as :class:`Narrowed`; float32 events, and float64 ones where more than
    :data:`MAX_CHANGED` of the values change, as they are."""
    if particles.dtype != np.float64:
        return particles
    flat = np.ascontiguousarray(particles).reshape(-1)
    most = int(flat.size * MAX_CHANGED)
    values = np.empty(particles.shape, np.float32)
    where, originals = np.empty(most, np.int64), np.empty(most, np.float64)
    changed = _narrow(flat, values.reshape(-1), where, originals, most)
    if changed < 0:
        return particles
    return Narrowed(values, where[:changed].copy(), originals[:changed].copy())
