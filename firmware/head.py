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

With a multiplicity prior (``models.multiplicity``) four more layers read the inputs beside the
network and their result is added to the score before the decision (``total``, a Keras ``Add``):

- ``prior_sign``: Dense (weights ``±2**F``, F the input grid's fractional bits) + ReLU into one
  bit: per input, one bit for a positive and one for a negative mantissa;
- ``prior_filled``: Dense + ReLU into one bit: 1 exactly when any of a slot's six sign bits is,
  i.e. when any of its three input mantissas is non-zero;
- ``prior_count``: Dense + ReLU into one bit: unit ``k`` is 1 exactly when at least ``k + 1``
  lepton (or jet) slots are filled (the count minus ``k``, saturated);
- ``prior``: Dense, linear: the prior table's value at count 0 plus each step of the table
  whose count is reached, in the score's units (whole mantissas, summed exactly).

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
from trigger.fixed import FixedType, Overflow, Rounding, declared_score_type, sum_of_squares_type

__all__ = ("ACCEPT", "DECISION", "ERROR", "FIRMWARE_SCORES", "PRIOR_LAYERS", "SCORE", "TOTAL", "HeadTypes",
           "PriorTables", "error_layers", "score_divisor", "threshold_mantissa", "with_decision")

ERROR, SCORE, DECISION, TOTAL = "error", "score", "decision", "total"
PRIOR_LAYERS = ("prior_sign", "prior_filled", "prior_count", "prior")
ACCEPT = f"{DECISION}_relu"  # the name hls4ml gives the Dense's ReLU
#: the scores the firmware computes; the others need what is not on chip
FIRMWARE_SCORES = ("mse", "mu2", "distilled", "residual")
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
        score = declared_score_type(error_type, score_type, terms)
        if score.signed or score.width > MAX_SCORE_BITS:
            msg = (f"score type {score}: the score must be unsigned and at most {MAX_SCORE_BITS} bits "
                   f"wide; declare a narrower model.error_type or model.score_type")
            raise TriggerError(msg)
        return cls(error, sum_of_squares_type(error, terms), score)


@dataclass(frozen=True)
class PriorTables:
    """A multiplicity prior as score mantissas, by lepton count (0..8) and by jet count (0..10)."""

    leptons: tuple[int, ...]
    jets: tuple[int, ...]

    @classmethod
    def of(cls, prior: Any, score: FixedType, divisor: int) -> PriorTables:
        """A ``models.multiplicity.MultiplicityPrior`` (software units) on the score's grid, exactly."""
        def mantissas(values: tuple[float, ...]) -> tuple[int, ...]:
            m = [round(v * divisor / score.lsb) for v in values]
            if any(not math.isclose(k * score.lsb / divisor, v, rel_tol=1e-9, abs_tol=1e-12)
                   for k, v in zip(m, values, strict=True)):
                msg = f"the multiplicity prior's values are not on the score's grid ({score}, divisor {divisor})"
                raise TriggerError(msg)
            return tuple(m)

        return cls(mantissas(prior.leptons), mantissas(prior.jets))

    @property
    def largest(self) -> int:
        return max(self.leptons) + max(self.jets)

    def total_type(self, score: FixedType) -> FixedType:
        """The signed type of score + prior: same resolution, wide enough that the sum never saturates."""
        bits = max(int(score.int_max + self.largest).bit_length(), 1) + 1
        return FixedType(bits, bits - score.fractional, True, Rounding.TRN, Overflow.SAT)


def score_divisor(reconstruction: bool, terms: int) -> int:
    """The firmware score (a sum of squares) over this is the software's: the mean over the
    ``terms`` errors for a reconstruction (mse), the sum itself for mu2, distilled and residual."""
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


def with_decision(network: Any, reconstruction: bool, types: HeadTypes, threshold: int,
                  prior: PriorTables | None = None, input_type: FixedType | None = None) -> tuple[Any, dict[str, str]]:
    """The Keras model ``inputs -> (score, accept)`` around ``network`` and the hls4ml precisions
    its new layers need (``hls_config``'s ``precisions``). With ``prior`` (on ``input_type``'s
    grid) the score is the total of the sum of squares and the prior, and ``threshold`` is a
    mantissa of ``prior.total_type(types.score)``."""
    import tensorflow as tf

    x, y = network.input, network.output
    error = tf.keras.layers.Subtract(name=ERROR)([y, x]) if reconstruction else y
    score = tf.keras.layers.Dot(axes=1, name=SCORE)([error, error])
    precisions = {
        **dict.fromkeys(error_layers(network, reconstruction), str(types.error)),
        f"{SCORE}.accum": str(types.accum), SCORE: str(types.score),
    }
    decided, decided_type = score, types.score
    if prior is not None:
        if input_type is None:
            msg = "a multiplicity prior in firmware needs the input grid's type"
            raise TriggerError(msg)
        value, prior_precisions = _prior_branch(x, prior, input_type, types.score)
        decided_type = prior.total_type(types.score)
        decided = tf.keras.layers.Add(name=TOTAL)([score, value])
        precisions |= prior_precisions | {TOTAL: str(decided_type)}
    accept = tf.keras.layers.Dense(1, activation="relu", name=DECISION)(decided)
    model = tf.keras.Model(x, [decided, accept], name=network.name)
    f, width = decided_type.fractional, decided_type.width + 2  # m - T for m, T in the type's range
    model.get_layer(DECISION).set_weights([np.array([[2.0**f]]), np.array([-float(threshold)])])
    precisions |= {
        f"{DECISION}.weight": f"ap_ufixed<1,{f + 1}>",  # 2**f exactly: products are integers
        f"{DECISION}.bias": f"ap_fixed<{width},{width}>",
        f"{DECISION}.accum": f"ap_fixed<{width},{width}>", DECISION: f"ap_fixed<{width},{width}>",
        ACCEPT: ACCEPT_TYPE,
    }
    return model, precisions


def _prior_branch(x: Any, prior: PriorTables, grid: FixedType, score: FixedType) -> tuple[Any, dict[str, str]]:
    """The prior's four layers on the inputs ``x`` (see the module's docstring) and their precisions."""
    import tensorflow as tf

    from models.multiplicity import JET_SLOTS, LEPTON_SLOTS

    n_inputs = int(x.shape[-1])
    n_slots = n_inputs // 3
    groups = ((LEPTON_SLOTS, prior.leptons), (JET_SLOTS, prior.jets))
    sign_w = np.hstack([np.eye(n_inputs), -np.eye(n_inputs)]) * 2.0**grid.fractional
    filled_w = np.zeros((2 * n_inputs, n_slots))
    for j in range(2 * n_inputs):
        filled_w[j, (j % n_inputs) // 3] = 1.0
    units = sum(len(table) - 1 for _, table in groups)
    count_w, count_b, value_w = np.zeros((n_slots, units)), np.zeros(units), np.zeros((units, 1))
    unit = 0
    for slots, table in groups:
        for k in range(1, len(table)):
            count_w[list(slots), unit] = 1.0
            count_b[unit] = -(k - 1)  # n - (k - 1) >= 1 exactly when n >= k
            value_w[unit, 0] = (table[k] - table[k - 1]) * score.lsb
            unit += 1
    base = (prior.leptons[0] + prior.jets[0]) * score.lsb
    sign_layer = tf.keras.layers.Dense(2 * n_inputs, activation="relu", name="prior_sign")
    filled_layer = tf.keras.layers.Dense(n_slots, activation="relu", name="prior_filled")
    count_layer = tf.keras.layers.Dense(units, activation="relu", name="prior_count")
    value_layer = tf.keras.layers.Dense(1, name="prior")
    value = value_layer(count_layer(filled_layer(sign_layer(x))))
    sign_layer.set_weights([sign_w, np.zeros(2 * n_inputs)])
    filled_layer.set_weights([filled_w, np.zeros(n_slots)])
    count_layer.set_weights([count_w, count_b])
    value_layer.set_weights([value_w, np.array([base])])
    f = grid.fractional
    steps = [abs(round(v / score.lsb)) for v in (*value_w[:, 0], base)]
    value_bits = max(int(max(steps)).bit_length(), int(prior.largest).bit_length(), 1) + 2
    total_bits = value_bits + int(units + 1).bit_length()
    mantissa_bits = grid.width + 2  # +-x * 2**F: the input's mantissa, negated
    return value, {
        "prior_sign.weight": f"ap_fixed<2,{f + 2}>", "prior_sign.bias": "ap_fixed<2,2>",
        "prior_sign.accum": f"ap_fixed<{mantissa_bits},{mantissa_bits}>",
        "prior_sign": f"ap_fixed<{mantissa_bits},{mantissa_bits}>", "prior_sign_relu": ACCEPT_TYPE,
        "prior_filled.weight": "ap_fixed<2,2>", "prior_filled.bias": "ap_fixed<2,2>",
        "prior_filled.accum": "ap_fixed<5,5>", "prior_filled": "ap_fixed<5,5>", "prior_filled_relu": ACCEPT_TYPE,
        "prior_count.weight": "ap_fixed<2,2>", "prior_count.bias": "ap_fixed<6,6>",
        "prior_count.accum": "ap_fixed<8,8>", "prior_count": "ap_fixed<8,8>", "prior_count_relu": ACCEPT_TYPE,
        "prior.weight": f"ap_fixed<{value_bits},{value_bits - score.fractional}>",
        "prior.bias": f"ap_fixed<{value_bits},{value_bits - score.fractional}>",
        "prior.accum": f"ap_fixed<{total_bits},{total_bits - score.fractional}>",
        "prior": f"ap_fixed<{total_bits},{total_bits - score.fractional}>",
        "prior_linear": f"ap_fixed<{total_bits},{total_bits - score.fractional}>",
    }
