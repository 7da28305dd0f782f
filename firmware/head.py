"""The anomaly score and the accept decision as layers of the firmware network.

The network's outputs go through three more layers that hls4ml converts as they are, so the
C-simulation, the emulator and the RTL all end in the same two outputs, the score and the bit:

- ``error``: for an autoencoder a Keras ``Subtract`` (reconstruction - input), cast to the
  declared ``error_type``; for a VAE the latent mu (a student: its one output), its Dense layer's
  result cast to that type.
- ``score``: a Keras ``Dot`` of the errors with themselves, i.e. the sum of squares, summed
  exactly and cast to ``score_type`` (unsigned, saturating at the top).
- ``decision``: ``Dense(1)`` with weight ``2**F`` and bias ``-T`` (``F`` the score's fractional
  bits, ``T`` the threshold as a score mantissa), then ReLU into ``ap_ufixed<1,1,AP_TRN,AP_SAT>``:
  ``max(m - T, 0)`` saturated to one bit is 1 exactly when the score mantissa ``m`` exceeds ``T``.

The software's score is the firmware's divided by the number of error terms for the ``mse`` score
(a mean) and by 1 for ``mu2`` and ``distilled``; :func:`threshold_mantissa` turns a threshold in those units into
``T`` so that ``m > T`` holds exactly when ``value > threshold`` does in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from trigger.errors import TriggerError
from trigger.fixed import FixedType, Overflow, Rounding

__all__ = ("ACCEPT", "DECISION", "ERROR", "FIRMWARE_SCORES", "SCORE", "HeadTypes", "error_layers",
           "score_divisor", "threshold_mantissa", "with_decision")

ERROR, SCORE, DECISION = "error", "score", "decision"
ACCEPT = f"{DECISION}_relu"  # the name hls4ml gives the Dense's ReLU
#: the scores the firmware computes; the others need what is not on chip
FIRMWARE_SCORES = ("mse", "mu2", "distilled")
ACCEPT_TYPE = "ap_ufixed<1,1,AP_TRN,AP_SAT>"
MAX_SCORE_BITS = 24  # the threshold travels as a float32 Keras bias: exact below 2**24


@dataclass(frozen=True)
class HeadTypes:
    """The declared fixed-point types of the score: each error term, the exact sum, the score."""

    error: FixedType
    accum: FixedType
    score: FixedType

    @classmethod
    def declare(cls, error_type: str, score_type: str, terms: int) -> HeadTypes:
        """``error_type`` and ``score_type`` (``""``: the sum's exact width) for ``terms`` squares."""
        error = FixedType.parse(error_type)
        largest = max(-error.int_min, error.int_max) ** 2 * terms  # in units of lsb**2
        bits = max(int(largest).bit_length(), 1)
        accum = FixedType(bits, bits - 2 * error.fractional, signed=False)
        score = FixedType.parse(score_type) if score_type else FixedType(
            accum.width, accum.integer, False, Rounding.TRN, Overflow.SAT)
        if score.signed or score.width > MAX_SCORE_BITS:
            msg = (f"score type {score}: the score must be unsigned and at most {MAX_SCORE_BITS} bits "
                   f"wide; declare a narrower model.error_type or model.score_type")
            raise TriggerError(msg)
        return cls(error, accum, score)


def score_divisor(reconstruction: bool, terms: int) -> int:
    """The firmware score (a sum of squares) over this is the software's: the mean over the
    ``terms`` errors for a reconstruction (mse), the sum itself for mu2 and distilled."""
    return terms if reconstruction else 1


def threshold_mantissa(threshold: float, score: FixedType, divisor: int) -> int:
    """The largest score mantissa ``m`` with ``m * lsb / divisor <= threshold`` (in float64),
    clipped to ``-1 .. int_max``: -1 accepts every event, ``int_max`` none."""
    def value(m: int) -> float:
        return m * score.lsb / divisor

    if not math.isfinite(threshold):
        return -1 if threshold < 0 else score.int_max
    m = math.floor(threshold * divisor / score.lsb)
    m = min(max(m, -1), score.int_max)
    while m < score.int_max and value(m + 1) <= threshold:
        m += 1
    while m >= 0 and value(m) > threshold:
        m -= 1
    return m


def error_layers(network: Any, reconstruction: bool) -> tuple[str, ...]:
    """The hls4ml layers whose result type is the error type: ``error``; for a VAE its mu layer
    and the linear activation hls4ml appends to it (same type, so hls4ml drops it)."""
    if reconstruction:
        return (ERROR,)
    mu = network.layers[-1].name
    return mu, f"{mu}_linear"


def with_decision(network: Any, reconstruction: bool, types: HeadTypes,
                  threshold: int) -> tuple[Any, dict[str, str]]:
    """The Keras model ``inputs -> (score, accept)`` around ``network`` and the hls4ml precisions
    its new layers need (``hls_config``'s ``precisions``)."""
    import tensorflow as tf

    x, y = network.input, network.output
    error = tf.keras.layers.Subtract(name=ERROR)([y, x]) if reconstruction else y
    score = tf.keras.layers.Dot(axes=1, name=SCORE)([error, error])
    accept = tf.keras.layers.Dense(1, activation="relu", name=DECISION)(score)
    model = tf.keras.Model(x, [score, accept], name=network.name)
    f, width = types.score.fractional, types.score.width + 2  # m - T for m, T in 0 .. 2**W - 1
    model.get_layer(DECISION).set_weights([np.array([[2.0**f]]), np.array([-float(threshold)])])
    precisions = {
        **dict.fromkeys(error_layers(network, reconstruction), str(types.error)),
        f"{SCORE}.accum": str(types.accum), SCORE: str(types.score),
        f"{DECISION}.weight": f"ap_ufixed<1,{f + 1}>",  # 2**f exactly: products are integers
        f"{DECISION}.bias": f"ap_fixed<{width},{width}>",
        f"{DECISION}.accum": f"ap_fixed<{width},{width}>", DECISION: f"ap_fixed<{width},{width}>",
        ACCEPT: ACCEPT_TYPE,
    }
    return model, precisions
