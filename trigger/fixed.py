"""Fixed-point types as the firmware sees them: ``ap_fixed<W,I,Q,O>`` in numpy.

A value of a fixed-point type is an integer times 2**-F (F = W - I fractional bits).
``quantize`` maps real numbers onto that grid with the type's rounding (Q) and
overflow (O) mode, exactly as the Vivado/Vitis HLS ``ap_fixed`` classes do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from trigger.errors import UsageError

__all__ = ("FixedType", "Overflow", "Rounding", "declared_score_type", "round_scaled", "sum_of_squares_type")

_Floats = NDArray[np.floating[Any]]


class Rounding(str, Enum):
    """Quantization (rounding) modes, valued by their ``AP_*`` spelling."""

    TRN = "AP_TRN"  # toward minus infinity
    TRN_ZERO = "AP_TRN_ZERO"  # toward zero
    RND = "AP_RND"  # to nearest, ties toward plus infinity
    RND_ZERO = "AP_RND_ZERO"  # to nearest, ties toward zero
    RND_MIN_INF = "AP_RND_MIN_INF"  # to nearest, ties toward minus infinity
    RND_INF = "AP_RND_INF"  # to nearest, ties away from zero
    RND_CONV = "AP_RND_CONV"  # to nearest, ties to even


class Overflow(str, Enum):
    """Overflow modes, valued by their ``AP_*`` spelling."""

    WRAP = "AP_WRAP"  # keep the low W bits (two's complement wrap)
    SAT = "AP_SAT"  # clip to the largest/smallest value
    SAT_ZERO = "AP_SAT_ZERO"  # out-of-range values become zero
    SAT_SYM = "AP_SAT_SYM"  # clip symmetrically (signed: the most negative value is not used)


_PATTERN = re.compile(
    r"^\s*(?:ap_)?(?P<kind>u?fixed)\s*<\s*(?P<w>-?\d+)\s*,\s*(?P<i>-?\d+)\s*"
    r"(?:,\s*(?P<q>\w+)\s*)?(?:,\s*(?P<o>\w+)\s*)?(?:,\s*\d+\s*)?>\s*$"
)


def _mode(enum: type[Rounding | Overflow], text: str | None, default: Enum) -> Enum:
    if text is None:
        return default
    key = text if text.startswith("AP_") else f"AP_{text}"
    try:
        return enum(key)
    except ValueError:
        known = ", ".join(m.value for m in enum)
        msg = f"unknown {enum.__name__.lower()} mode {text!r}; expected one of {known}"
        raise UsageError(msg) from None


def round_scaled(scaled: _Floats, mode: Rounding) -> _Floats:  # noqa: PLR0911
    """Round values already scaled by 2**F to integers with a quantization mode."""
    if mode is Rounding.TRN:
        return cast(_Floats, np.floor(scaled))
    if mode is Rounding.TRN_ZERO:
        return cast(_Floats, np.trunc(scaled))
    if mode is Rounding.RND:
        return cast(_Floats, np.floor(scaled + 0.5))
    if mode is Rounding.RND_MIN_INF:
        return cast(_Floats, np.ceil(scaled - 0.5))
    if mode is Rounding.RND_ZERO:
        return cast(_Floats, np.sign(scaled) * np.ceil(np.abs(scaled) - 0.5))
    if mode is Rounding.RND_INF:
        return cast(_Floats, np.sign(scaled) * np.floor(np.abs(scaled) + 0.5))
    return cast(_Floats, np.rint(scaled))  # RND_CONV: ties to even


@dataclass(frozen=True)
class FixedType:
    """``ap_fixed<width, integer, rounding, overflow>`` (or ``ap_ufixed`` when not signed)."""

    width: int
    integer: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self) -> None:
        if not 1 <= self.width <= 52:
            msg = f"fixed-point width {self.width} outside 1..52 (exact in float64)"
            raise UsageError(msg)

    @classmethod
    def parse(cls, text: str) -> FixedType:
        """Parse ``ap_fixed<16,6>``, ``ufixed<8,3,RND_CONV,SAT>`` and similar spellings."""
        match = _PATTERN.match(text)
        if not match:
            msg = f"cannot parse fixed-point type {text!r}; expected e.g. ap_fixed<16,6>"
            raise UsageError(msg)
        return cls(
            int(match["w"]),
            int(match["i"]),
            signed=match["kind"] == "fixed",
            rounding=_mode(Rounding, match["q"], Rounding.TRN),  # type: ignore[arg-type]
            overflow=_mode(Overflow, match["o"], Overflow.WRAP),  # type: ignore[arg-type]
        )

    def __str__(self) -> str:
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{kind}<{self.width},{self.integer},{self.rounding.value},{self.overflow.value}>"

    @property
    def fractional(self) -> int:
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.fractional

    @property
    def int_min(self) -> int:
        return -(2 ** (self.width - 1)) if self.signed else 0

    @property
    def int_max(self) -> int:
        return cast(int, 2 ** (self.width - 1) - 1 if self.signed else 2**self.width - 1)

    @property
    def min_value(self) -> float:
        return self.int_min * self.lsb

    @property
    def max_value(self) -> float:
        return self.int_max * self.lsb

    @property
    def kept_range(self) -> tuple[int, int]:
        """The mantissas the overflow mode leaves alone (and saturates to): ``int_min..int_max``,
        but ``-int_max..int_max`` for signed ``SAT_SYM``."""
        symmetric = self.overflow is Overflow.SAT_SYM and self.signed
        return (-self.int_max if symmetric else self.int_min), self.int_max

    def wrap_or_saturate(self, q: _Floats) -> _Floats:
        """Apply the overflow mode to integer mantissas ``q``."""
        lo, hi = self.int_min, self.int_max
        o = self.overflow
        if o in (Overflow.SAT, Overflow.SAT_SYM):
            return np.clip(q, *self.kept_range)
        if o is Overflow.SAT_ZERO:
            return cast(_Floats, np.where((q < lo) | (q > hi), 0.0, q))
        return cast(_Floats, np.mod(q - lo, 2.0**self.width) + lo)  # WRAP

    def to_integers(self, x: ArrayLike) -> NDArray[np.int64]:
        """The integer mantissas ``q`` with ``quantize(x) == q * lsb``."""
        scaled = np.asarray(x, dtype=np.float64) * 2.0**self.fractional
        return self.wrap_or_saturate(round_scaled(scaled, self.rounding)).astype(np.int64)

    def quantize(self, x: ArrayLike) -> NDArray[np.float64]:
        """``x`` cast to this type, as float64 (exact: at most 52 significant bits)."""
        scaled = np.asarray(x, dtype=np.float64) * 2.0**self.fractional
        return self.wrap_or_saturate(round_scaled(scaled, self.rounding)) * self.lsb


def sum_of_squares_type(error: FixedType, terms: int) -> FixedType:
    """The unsigned type that holds the sum of ``terms`` squares of ``error`` values exactly."""
    largest = max(-error.int_min, error.int_max) ** 2 * terms  # in units of lsb**2
    bits = max(int(largest).bit_length(), 1)
    return FixedType(bits, bits - 2 * error.fractional, signed=False)


def declared_score_type(error_type: str, declared: str, terms: int) -> FixedType:
    """An anomaly score's type: ``declared``, else the exact sum of ``terms`` squares of
    ``error_type`` values, truncating and saturating (what the firmware casts the sum to)."""
    if declared:
        return FixedType.parse(declared)
    exact = sum_of_squares_type(FixedType.parse(error_type), terms)
    return FixedType(exact.width, exact.integer, False, Rounding.TRN, Overflow.SAT)
