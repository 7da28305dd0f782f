from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from trigger.errors import UsageError
from trigger.fixed import FixedType, Overflow, Rounding

HALF = Fraction(1, 2)


def reference(x: Fraction, t: FixedType) -> Fraction:
    """ap_fixed semantics written out with exact rationals, one case at a time."""
    s = x * 2**t.fractional
    nearest_ties = {
        Rounding.RND: lambda: math.floor(s + HALF),
        Rounding.RND_MIN_INF: lambda: math.ceil(s - HALF),
        Rounding.RND_ZERO: lambda: math.ceil(s - HALF) if s > 0 else math.floor(s + HALF),
        Rounding.RND_INF: lambda: math.floor(s + HALF) if s >= 0 else math.ceil(s - HALF),
        Rounding.RND_CONV: lambda: round(s),  # Fraction rounds half to even
        Rounding.TRN: lambda: math.floor(s),
        Rounding.TRN_ZERO: lambda: math.trunc(s),
    }
    q = nearest_ties[t.rounding]()
    lo = -(2 ** (t.width - 1)) if t.signed else 0
    hi = 2 ** (t.width - 1) - 1 if t.signed else 2**t.width - 1
    # ap_fixed_base treats the most negative value as an underflow under AP_SAT_SYM
    symmetric_min = t.overflow is Overflow.SAT_SYM and t.signed and q == lo
    if lo <= q <= hi and not symmetric_min:
        pass
    elif t.overflow is Overflow.SAT:
        q = min(max(q, lo), hi)
    elif t.overflow is Overflow.SAT_SYM:
        q = min(max(q, -hi if t.signed else lo), hi)
    elif t.overflow is Overflow.SAT_ZERO:
        q = 0
    else:
        q = (q - lo) % 2**t.width + lo
    return Fraction(q, 2**t.fractional)


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("overflow", list(Overflow), ids=lambda o: o.name)
@pytest.mark.parametrize("rounding", list(Rounding), ids=lambda r: r.name)
def test_quantize_matches_exact_reference_on_every_edge(rounding: Rounding, overflow: Overflow,
                                                        signed: bool) -> None:
    t = FixedType(5, 2, signed, rounding, overflow)
    # every multiple of a quarter LSB over four times the range: ties, saturation and wrap
    grid = [Fraction(k, 2 ** (t.fractional + 2)) for k in range(-2**(t.width + 3), 2**(t.width + 3))]
    expected = np.array([float(reference(x, t)) for x in grid])
    got = t.quantize(np.array([float(x) for x in grid]))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(t.to_integers([float(x) for x in grid]) * t.lsb, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ap_fixed<16,6>", FixedType(16, 6)),
        ("fixed<16,6>", FixedType(16, 6)),
        ("ap_ufixed<8,3,AP_RND_CONV,AP_SAT>", FixedType(8, 3, False, Rounding.RND_CONV, Overflow.SAT)),
        ("ufixed<8, 3, RND_CONV, SAT>", FixedType(8, 3, False, Rounding.RND_CONV, Overflow.SAT)),
        ("ap_fixed<8,-2,AP_RND,AP_SAT_SYM,0>", FixedType(8, -2, True, Rounding.RND, Overflow.SAT_SYM)),
    ],
)
def test_parse_reads_hls_spellings(text: str, expected: FixedType) -> None:
    assert FixedType.parse(text) == expected
    assert FixedType.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["ap_int<8>", "fixed<8>", "ap_fixed<8,3,AP_ROUND>", "ap_fixed<99,3>"])
def test_parse_rejects_what_it_cannot_represent(text: str) -> None:
    with pytest.raises(UsageError):
        FixedType.parse(text)


def test_range_and_lsb() -> None:
    t = FixedType.parse("ap_fixed<16,6>")
    assert (t.lsb, t.min_value, t.max_value) == (2**-10, -32.0, 32.0 - 2**-10)
    u = FixedType.parse("ap_ufixed<8,3>")
    assert (u.min_value, u.max_value) == (0.0, 8.0 - 2**-5)
