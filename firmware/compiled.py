"""The firmware emulator compiled where numpy is slow; bit-identical to the numpy form.

:class:`CompiledEmulator` is the fast emulator the check, the report and the replay all score
with: raw events in, the firmware's score out (its accept bit is ``score > threshold_value``).
Where it can, it scores with ``firmware.native``: the whole scoring in one C++ kernel on integer
SIMD lanes. Otherwise, and as that kernel's check, it runs these steps, each tested equal to its
numpy form (``Emulator.predict``, which stays the reference):

- :class:`FirstProduct`: per event, exactly what ``grid_mantissas`` followed by the first
  layer's product ``q @ weight`` computes, several times faster: only the filled slots (about
  3 of 19) are projected, ``log1p`` included, and only their inputs enter the product. Summing
  in another order than BLAS changes nothing: every product and partial sum is an integer
  below 2**53 (the emulator checks that bound when it is built).
- :class:`Casts`: what ``Kernel.finish`` does after each product (bias, ReLU, rounding,
  saturation, the next layer's dtype) in one pass instead of numpy's four or five. The products
  of the later layers stay with BLAS, which is faster on them than per-event loops; they go
  through SciPy's GEMM (its OpenBLAS runs these skinny products faster than numpy's:
  benchmarks/replay.py), exact in any summation order like every product.
- :class:`HeadScore`: the firmware's score (errors cast, squares summed, the score cast) in
  one pass. Every term is an integer whose sums stay exact (checked from the fixed-point
  types), so any summation order gives numpy's result.
- :class:`Workspace`: the arrays all of these write into, kept from one chunk to the next, so
  the hot loop never asks the allocator for the large blocks glibc hands back to the OS.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray
from scipy.linalg.blas import get_blas_funcs

from firmware.emulator import Emulator, Kernel, ScoreHead
from firmware.native import NativeScorer
from trigger.errors import ArtifactError
from trigger.fixed import FixedType, Overflow, Rounding
from trigger.preprocess import Scaler, event_values
from trigger.schema import N_OBJECTS

__all__ = ("Casts", "CompiledEmulator", "CompiledNetwork", "FirstProduct", "HeadScore", "Workspace", "in_chunks")

F64 = NDArray[np.float64]
Floats = NDArray[np.floating[Any]]


def exact_dtype(t: FixedType) -> type:
    """float32 when it holds every value of ``t`` exactly (mantissas of 24 bits or fewer)."""
    return np.float32 if t.width <= 24 else np.float64


class Workspace:
    """Named arrays reused across calls (one thread per workspace); each call gets the first
    ``n`` rows, so a result is only valid until the next call that asks for the same name."""

    def __init__(self) -> None:
        self._arrays: dict[Hashable, NDArray[Any]] = {}

    def rows(self, name: Hashable, n: int, width: int, dtype: Any = np.float64) -> NDArray[Any]:
        key = (name, width, dtype)
        a = self._arrays.get(key)
        if a is None or len(a) < n:
            a = self._arrays[key] = np.empty((n, width), dtype)
        return a[:n]


@numba.njit(cache=True, nogil=True)
def _project_and_multiply(particles: Floats, center: F64, step: F64, log_pt: bool, grid_low: float,
                          grid_high: float, weight: F64, q: Floats,
                          product: F64) -> None:  # pragma: no cover - compiled; tested through FirstProduct
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
    """Raw finite events -> (input mantissas, first layer's product ``q @ weight``); the
    mantissas in float32 when it holds them exactly, the product in float64."""

    center: F64
    step: F64
    log_pt: bool
    grid: FixedType
    weight: F64

    @classmethod
    def build(cls, scaler: Scaler, weight: Floats) -> FirstProduct:
        """From the artifact's scaler and the first kernel's (integer-valued) weights."""
        return cls(
            center=np.ascontiguousarray(scaler.center, np.float64),
            step=np.ascontiguousarray(scaler.mantissa_step, np.float64),
            log_pt=bool(scaler.log_pt),
            grid=scaler.grid,
            weight=np.ascontiguousarray(weight, np.float64),
        )

    @classmethod
    def projection(cls, scaler: Scaler) -> FirstProduct:
        """The grid projection alone (a product of width 0): what the float reference reads."""
        return cls.build(scaler, np.zeros((N_OBJECTS * 3, 0)))

    def __call__(self, particles: Floats, work: Workspace | None = None) -> tuple[F64, F64]:
        particles = event_values(particles)  # the input rule: float32 first, then float64
        work = work or Workspace()
        q = work.rows("q", len(particles), N_OBJECTS * 3, exact_dtype(self.grid))
        product = work.rows(("product", 0), len(particles), self.weight.shape[1])
        _project_and_multiply(particles, self.center, self.step, self.log_pt, float(self.grid.int_min),
                              float(self.grid.int_max), self.weight, q, product)
        return q, product


@numba.njit(cache=True, nogil=True)
def _cast(out: Floats, bias: Floats, lowest: np.floating[Any], floor: bool, low: np.floating[Any],
          high: np.floating[Any], scale: np.floating[Any], dst: Floats) -> None:  # pragma: no cover - compiled
    # branch-free in the product's dtype (the bounds come in it too), so the loop vectorizes
    for e in range(out.shape[0]):
        for j in range(out.shape[1]):
            v = max(out[e, j] + bias[j], lowest)
            v = np.floor(v) if floor else np.rint(v)
            dst[e, j] = min(max(v, low), high) * scale


@dataclass(frozen=True)
class Casts:
    """``Kernel.finish`` in one compiled pass, for the kernels it covers (:meth:`of`): ReLU is a
    lower bound of 0 (else -inf), saturation the bounds ``low``/``high`` (else infinite). The
    bounds are scalars of the product's dtype, so the float32 layers stay in float32."""

    bias: Floats
    lowest: np.floating[Any]
    floor: bool  # TRN; else RND_CONV
    low: np.floating[Any]
    high: np.floating[Any]
    scale: np.floating[Any]  # a power of two applied last (the output lsb, else 1)

    @classmethod
    def of(cls, kernel: Kernel, dtype: Any = None, scale: float = 1.0) -> Casts | None:
        """The compiled form of ``kernel.finish`` for products of ``dtype`` (default: the
        kernel's); None when it needs numpy's general casts (an accumulator that can wrap, a
        narrower Dense result, other rounding or overflow modes, bounds ``dtype`` cannot hold)."""
        t, typed = kernel.result, np.dtype(kernel.weight.dtype if dtype is None else dtype).type
        if (kernel.accum_may_wrap or kernel.mid is not None or kernel.post is not None
                or t.rounding not in (Rounding.TRN, Rounding.RND_CONV)):
            return None
        low, high = -np.inf, np.inf
        if kernel.may_overflow:
            if t.overflow not in (Overflow.SAT, Overflow.SAT_SYM):
                return None
            low, high = (float(v) for v in t.kept_range)
            if float(typed(low)) != low or float(typed(high)) != high:
                return None
        return cls(kernel.bias, typed(0.0 if kernel.relu else -np.inf), t.rounding is Rounding.TRN, typed(low),
                   typed(high), typed(scale))

    def __call__(self, out: Floats, dst: Floats) -> Floats:
        """The cast mantissas of the product ``out``, times ``scale``, written into ``dst``."""
        _cast(out, self.bias, self.lowest, self.floor, self.low, self.high, self.scale, dst)
        return dst


@dataclass(frozen=True)
class _Step:
    kernel: Kernel
    casts: Casts | None  # None: numpy's Kernel.finish
    dtype: Any  # what the casts write: the next product's dtype, or the outputs' (exact) dtype
    gemm: Any  # SciPy's sgemm or dgemm for the kernel's weights

    def product(self, x: Floats, out: Floats) -> Floats:
        """``x @ weight`` into ``out`` (both C-ordered): as Fortran's GEMM sees the transposes,
        ``out.T = weight.T @ x.T``, computed in place without a copy."""
        weight = self.kernel.weight
        x = np.ascontiguousarray(x, weight.dtype)
        if len(x) == 0:
            return out
        self.gemm(1.0, weight.T, x.T, beta=0.0, c=out.T, overwrite_c=1)
        return out


@dataclass(frozen=True)
class CompiledNetwork:
    """The emulator's kernels after the first product: GEMM products, compiled casts."""

    emulator: Emulator
    steps: tuple[_Step, ...]

    @classmethod
    def build(cls, emulator: Emulator) -> CompiledNetwork:
        kernels, output = emulator.kernels, emulator.output_type
        steps = []
        for i, kernel in enumerate(kernels):
            last = i + 1 == len(kernels)
            product = np.float64 if i == 0 else kernel.weight.dtype  # FirstProduct's is float64
            casts = Casts.of(kernel, product, output.lsb if last else 1.0)
            steps.append(_Step(kernel, casts, exact_dtype(output) if last else kernels[i + 1].weight.dtype,
                               get_blas_funcs("gemm", (kernel.weight,))))
        return cls(emulator, tuple(steps))

    @property
    def casts(self) -> tuple[Casts | None, ...]:
        return tuple(step.casts for step in self.steps)

    def outputs(self, first_product: Floats, work: Workspace | None = None) -> Floats:
        """The network's outputs (equal to ``Emulator.predict``'s; float32 when exact) from the
        first kernel's product."""
        work = work or Workspace()
        n, x = len(first_product), first_product
        for i, step in enumerate(self.steps):
            weight = step.kernel.weight
            if i:
                x = step.product(x, work.rows(("product", i), n, weight.shape[1], weight.dtype))
            if step.casts is None:
                x = step.kernel.finish(x)
            else:
                x = step.casts(x, work.rows(("cast", i), n, x.shape[1], step.dtype))
        if self.steps[-1].casts is None:  # mantissas still
            return np.asarray(x, np.float64) * self.emulator.output_type.lsb
        return x


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})  # exact sums: any order, fused or not
def _head_scores(outputs: Floats, q: Floats, out_scale: float, q_scale: float, reconstruction: bool, rounding: int,
                 low: float, high: float, to_score: float, squares_high: float, prior: F64, score_high: float,
                 lsb: float, divisor: float, scores: F64) -> None:  # pragma: no cover - compiled
    for e in range(outputs.shape[0]):
        total = 0.0
        for k in range(outputs.shape[1]):
            v = outputs[e, k] * out_scale
            if reconstruction:
                v -= q[e, k] * q_scale
            if rounding == 0:
                v = np.floor(v)
            elif rounding == 1:
                v = np.floor(v + 0.5)
            else:
                v = np.rint(v)
            v = min(max(v, low), high)
            total += v * v
        m = min(np.floor(total * to_score), squares_high)
        scores[e] = min(m + prior[e], score_high) * lsb / divisor


_ROUNDINGS = {Rounding.TRN: 0, Rounding.RND: 1, Rounding.RND_CONV: 2}


@dataclass(frozen=True)
class HeadScore:
    """The firmware's score (``ScoreHead.score_mantissas``, then the software's units) in one pass.
    Every error term and square is an integer in float64 and the sum stays below 2**53 (checked),
    so any summation order gives numpy's result."""

    head: ScoreHead
    out_scale: float  # output values -> error mantissas
    q_scale: float  # input mantissas -> error mantissas

    @classmethod
    def of(cls, emulator: Emulator) -> HeadScore | None:
        """None when the head needs numpy's general casts: other rounding or overflow modes, an
        accumulator that wraps, a rounding score type, sums beyond 2**53."""
        head, inp = emulator.head, emulator.input_type
        e = head.error
        largest = max(-e.int_min, e.int_max) ** 2 * emulator.kernels[-1].weight.shape[1]
        exact_score = head.squares_type.fractional >= head.accum.fractional
        if (e.rounding not in _ROUNDINGS or e.overflow not in (Overflow.SAT, Overflow.SAT_SYM)
                or largest * 2.0 ** (head.accum.fractional - 2 * e.fractional) > head.accum.int_max
                or not (exact_score or head.squares_type.rounding is Rounding.TRN)
                or head.squares_type.overflow is not Overflow.SAT or head.score.overflow is not Overflow.SAT
                or largest >= 2.0**53):
            return None
        return cls(head, 2.0**e.fractional, 2.0 ** (e.fractional - inp.fractional) if head.reconstruction else 0.0)

    def __call__(self, outputs: Floats, q: Floats) -> F64:
        """Scores from the network's outputs (real units) and the input mantissas ``q``."""
        h = self.head
        low, high = h.error.kept_range
        scores = np.empty(len(outputs))
        prior = h.prior_by_counts(q) if h.prior else np.zeros(len(outputs))
        _head_scores(outputs, q, self.out_scale, self.q_scale, h.reconstruction, _ROUNDINGS[h.error.rounding],
                     float(low), float(high), 2.0 ** (h.squares_type.fractional - 2 * h.error.fractional),
                     float(h.squares_type.int_max), prior, float(h.score.int_max), h.score.lsb, float(h.divisor),
                     scores)
        return scores


def in_chunks(score: Callable[[NDArray[np.floating[Any]]], F64], particles: NDArray[np.floating[Any]],
              chunk: int = 2048) -> F64:
    """``score`` over chunks of ``chunk`` events, so every intermediate array stays in cache."""
    particles = np.asarray(particles)
    out = np.empty(len(particles))
    for start in range(0, len(particles), chunk):
        out[start:start + chunk] = score(particles[start:start + chunk])
    return out


@dataclass(frozen=True)
class CompiledEmulator:
    """Scaling onto the input grid, the firmware emulator and its score, compiled: raw events in,
    the firmware's score out. One thread per instance: its steps write into one :class:`Workspace`."""

    scaler: Scaler
    emulator: Emulator

    def __post_init__(self) -> None:
        grid, fw = self.scaler.input_type, self.emulator.input_type
        if grid is None or (grid.width, grid.integer, grid.signed) != (fw.width, fw.integer, fw.signed):
            msg = f"scaler grid {grid} differs from the firmware input {fw}"
            raise ArtifactError(msg)

    @cached_property
    def first_product(self) -> FirstProduct:
        return FirstProduct.build(self.scaler, self.emulator.kernels[0].weight)

    @cached_property
    def network(self) -> CompiledNetwork:
        return CompiledNetwork.build(self.emulator)

    @cached_property
    def head_score(self) -> HeadScore | None:
        return HeadScore.of(self.emulator)

    @cached_property
    def workspace(self) -> Workspace:
        return Workspace()

    @cached_property
    def native(self) -> NativeScorer | None:
        """The whole scoring in one compiled integer kernel (``firmware.native``), where it applies."""
        return NativeScorer.of(self.scaler, self.emulator, self.compiled_scores)

    def scores(self, particles: NDArray[np.floating[Any]]) -> F64:
        """The firmware's scores (software units) of raw events; above ``emulator.threshold_value``
        exactly where the firmware's accept bit is 1."""
        values = event_values(particles)  # the input rule: float32 first
        return self.compiled_scores(values) if self.native is None else self.native(values)

    def compiled_scores(self, particles: NDArray[np.floating[Any]]) -> F64:
        """:meth:`scores` on the numpy-based compiled steps below, without the native kernel."""
        return in_chunks(self._scores, event_values(particles))

    def _scores(self, particles: NDArray[np.floating[Any]]) -> F64:
        q, product = self.first_product(particles, self.workspace)  # grid_mantissas, q @ first weight
        outputs = self.network.outputs(product, self.workspace)  # the emulator's kernels, casts compiled
        if self.head_score is not None:  # the firmware's score, compiled
            return self.head_score(outputs, q)
        return self.emulator.network_scores(outputs, q)
