"""Where the firmware saturates: each stage of the bit-exact emulator followed event by event.

The stages are the input grid, each dense layer's result type (for a ReLU, its top), the error
terms of the score (output - input, or a VAE's mu) and the score type. :func:`layer_saturation`
returns, per stage, which events had any value beyond the type's range (before the cast) and
the largest magnitude each event reached there, so that a tail lost to clipping is seen, not
guessed (``benchmarks/tail.py`` reports it for the SM tail and the signals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.bundle import FirmwareBundle
from trigger.fixed import FixedType, round_scaled

__all__ = ("Stage", "layer_saturation")

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Stage:
    """One stage of the firmware: its type, the events saturating it and each event's largest |value|."""

    name: str
    type: FixedType
    saturated: NDArray[np.bool_]
    largest: F64

    @property
    def limit(self) -> float:
        return float(max(-self.type.kept_range[0], self.type.kept_range[1]) * self.type.lsb)


def _beyond(mantissas: NDArray[Any], t: FixedType) -> NDArray[np.bool_]:
    low, high = t.kept_range
    out = (mantissas > high) | (mantissas < low)
    return out if out.ndim == 1 else np.any(out, axis=1)


def _largest(values: F64) -> F64:
    return np.abs(values) if values.ndim == 1 else np.abs(values).max(axis=1, initial=0.0)


def layer_saturation(bundle: FirmwareBundle, particles: NDArray[np.floating[Any]]) -> list[Stage]:
    """The firmware's stages in order, for raw (N, 19, 4) events; the values are those the
    emulator computes (it is bit-exact with the C-simulation)."""
    emulator, scaler = bundle.emulator, bundle.particle_scaler
    grid = scaler.grid  # truncation and saturation (the emulator's input_type is the C-sim's cast)
    raw = scaler.transform(particles, quantize=False).astype(np.float64)
    wanted = np.floor(raw * 2.0**grid.fractional)  # the grid truncates toward minus infinity
    stages = [Stage("inputs", grid, _beyond(wanted, grid), _largest(raw))]
    q = grid.to_integers(scaler.transform(particles)).astype(np.float64)
    grid = emulator.input_type
    x = q
    for kernel in emulator.kernels:
        out = x @ kernel.weight.astype(np.float64) + kernel.bias.astype(np.float64)
        saturated = np.zeros(len(out), bool)
        if kernel.mid is not None:
            mid = round_scaled(out, kernel.mid.rounding)
            saturated |= _beyond(mid, kernel.mid)
            out = np.clip(mid, *kernel.mid.kept_range) * kernel.mid_to_result
        if kernel.relu:
            out = np.maximum(out, 0)
        cast = kernel.cast_type
        rounded = round_scaled(np.asarray(out, np.float64), cast.rounding)
        saturated |= _beyond(rounded, cast)
        if kernel.post is not None:  # HGQ: each element's own type
            saturated |= kernel.post.beyond(np.clip(rounded, *cast.kept_range))
        stages.append(Stage(kernel.name, kernel.result, saturated, _largest(rounded) * cast.lsb))
        x = np.asarray(kernel(x), np.float64)
    head = emulator.head
    e = x * 2.0 ** (head.error.fractional - emulator.output_type.fractional)
    if head.reconstruction:
        e = e - q * 2.0 ** (head.error.fractional - grid.fractional)
    e = round_scaled(e, head.error.rounding)
    stages.append(Stage("error terms", head.error, _beyond(e, head.error), _largest(e) * head.error.lsb))
    e = head.error.wrap_or_saturate(e)
    squares = head.squares_type
    total = np.einsum("ij,ij->i", e, e) * 2.0 ** (squares.fractional - 2 * head.error.fractional)
    score = round_scaled(total, squares.rounding)
    stages.append(Stage("score" if not head.prior else "sum of squares", squares, _beyond(score, squares),
                        score * squares.lsb))
    if head.prior:  # the multiplicity prior added (firmware.head): the total the decision reads
        score = squares.wrap_or_saturate(score) + head.prior_mantissas(q)
        stages.append(Stage("score", head.score, _beyond(score, head.score), score * head.score.lsb))
    return stages
