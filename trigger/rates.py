"""Rates with units ("1kHz", "40MHz", "2.5e-5 Hz") and the accept-rate <-> FPR relation."""

from __future__ import annotations

import re

from trigger.errors import UsageError

__all__ = ("BX_RATE_HZ", "format_rate", "fpr_for_rate", "parse_rate")

BX_RATE_HZ = 40e6  # LHC bunch-crossing rate
_UNITS = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgG]?[hH][zZ])\s*$")


def parse_rate(text: str) -> float:
    """``"1kHz"`` -> 1000.0; anything else that is not a positive rate is a :class:`UsageError`."""
    match = _PATTERN.match(text)
    if not match:
        msg = f"cannot read rate {text!r}; expected a number and a unit, e.g. 1kHz, 40MHz"
        raise UsageError(msg)
    value = float(match[1]) * _UNITS[match[2].lower()]
    if value <= 0:
        msg = f"rate {text!r} must be positive"
        raise UsageError(msg)
    return value


def format_rate(hz: float) -> str:
    for unit, factor in (("GHz", 1e9), ("MHz", 1e6), ("kHz", 1e3)):
        if hz >= factor:
            return f"{hz / factor:.4g} {unit}"
    return f"{hz:.4g} Hz"


def fpr_for_rate(accept_hz: float, bx_hz: float = BX_RATE_HZ) -> float:
    """The background false-positive rate that fills an accept budget: accept / bunch crossings."""
    if not 0 < accept_hz <= bx_hz:
        msg = (
            f"accept rate {format_rate(accept_hz)} must be positive and at most the "
            f"bunch-crossing rate {format_rate(bx_hz)}"
        )
        raise UsageError(msg)
    return accept_hz / bx_hz
