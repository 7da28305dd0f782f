"""The emulated path's first step compiled with numba: grid projection and the first product.

Per event it computes exactly what ``grid_mantissas`` followed by the first layer's product
``q @ weight`` computes (tested on every bundled model), several times faster: only the filled
slots (about 3 of 19) are projected, ``log1p`` included, and only their inputs enter the
product. The layer's casts and the wider products after it stay with numpy (``Kernel.finish``
and the emulator's other kernels), which is faster there. Summing in another order than BLAS
changes nothing: every product and partial sum is an integer below 2**53 (the emulator checks
that bound when it is built).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from trigger.fixed import FixedType
from trigger.preprocess import Scaler
from trigger.schema import N_OBJECTS

__all__ = ("FirstProduct",)

F64 = NDArray[np.float64]


@numba.njit(cache=True, nogil=True)
def _project_and_multiply(particles, center, step, log_pt, grid_low, grid_high, weight,
                          q, product):  # pragma: no cover - compiled; tested through FirstProduct
    n, slots, width = particles.shape[0], particles.shape[1], weight.shape[1]
    for e in range(n):
        for j in range(width):
            product[e, j] = 0.0
        for s in range(slots):
            k = 3 * s
            if not particles[e, s, 0] > 0:  # an empty slot: its inputs are 0
                q[e, k] = q[e, k + 1] = q[e, k + 2] = 0.0
                continue
            for f in range(3):
                v = np.float64(particles[e, s, f])  # as grid_mantissas: float64 before log1p
                if f == 0 and log_pt:
                    v = np.log1p(v)
                m = np.floor((v - center[k + f]) / step[k + f])
                if m < grid_low:
                    m = grid_low
                elif m > grid_high:
                    m = grid_high
                q[e, k + f] = m
                if m != 0.0:
                    for j in range(width):
                        product[e, j] += m * weight[k + f, j]


@dataclass(frozen=True)
class FirstProduct:
    """Raw finite events -> (input mantissas, first layer's product ``q @ weight``)."""

    center: F64
    step: F64
    log_pt: bool
    grid: FixedType
    weight: F64

    @classmethod
    def build(cls, scaler: Scaler, weight: NDArray[np.floating]) -> FirstProduct:
        """From the artifact's scaler and the first kernel's (integer-valued) weights."""
        return cls(
            center=np.ascontiguousarray(scaler.center, np.float64),
            step=np.ascontiguousarray(scaler.mantissa_step, np.float64),
            log_pt=bool(scaler.log_pt),
            grid=scaler.grid,
            weight=np.ascontiguousarray(weight, np.float64),
        )

    def __call__(self, particles: NDArray[np.floating]) -> tuple[F64, F64]:
        particles = np.ascontiguousarray(particles)
        q = np.empty((len(particles), N_OBJECTS * 3))
        product = np.empty((len(particles), self.weight.shape[1]))
        _project_and_multiply(particles, self.center, self.step, self.log_pt, float(self.grid.int_min),
                              float(self.grid.int_max), self.weight, q, product)
        return q, product
