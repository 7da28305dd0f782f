"""A batched numpy emulator of an hls4ml network, bit-exact with its fixed-point C-simulation.

Why exact is possible: a fixed-point value is an integer times 2**-F, so a Dense layer is an
integer matrix product, which float64 computes exactly while every partial sum stays below
2**53 (checked when the emulator is built). After the product come the casts hls4ml's
latency Dense makes: each product and the bias into ``accum_t``, the sum wrapped in
``accum_t``, then ``result_t`` with its rounding and overflow modes. ReLU casts
max(x, 0) to its ``result_t``. Every type and mode is read from the converted model
graph, never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import TriggerError
from trigger.fixed import FixedType, Overflow, Rounding

__all__ = ("Dense", "Emulator", "ReLU", "fixed_type")

F64 = NDArray[np.float64]
EXACT_BITS = 53  # float64 mantissa


def fixed_type(precision: Any) -> FixedType:
    """hls4ml's precision object -> :class:`FixedType` (fails on what cannot be emulated)."""
    if type(precision).__name__ not in ("FixedPrecisionType", "APFixedPrecisionType"):
        raise TriggerError(f"cannot emulate precision {precision} (not a fixed-point type)")
    if getattr(precision, "saturation_bits", 0):
        raise TriggerError(f"cannot emulate saturation bits in {precision}")
    rounding = Rounding[precision.rounding_mode.name]
    overflow = Overflow[precision.saturation_mode.name]
    return FixedType(precision.width, precision.integer, precision.signed, rounding, overflow)


@dataclass(frozen=True)
class Dense:
    """y = cast<result_t>(wrap<accum_t>(sum_i cast<accum_t>(x_i w_ij) + cast<accum_t>(b_j)))."""

    name: str
    weight: F64  # values on the weight grid
    weight_type: FixedType
    bias: F64  # bias already cast to accum_t
    accum: FixedType
    result: FixedType

    def __call__(self, x: F64, x_type: FixedType) -> F64:
        product_frac = x_type.fractional + self.weight_type.fractional
        if product_frac <= self.accum.fractional:
            acc = x @ self.weight  # every product lands on the accum grid exactly
        else:  # each product is cast to accum_t before the sum: do it one by one
            acc = self.accum.quantize(x[:, :, None] * self.weight[None, :, :]).sum(axis=1)
        # a wrapping sum equals the wrapped total; (a saturating accum would need the running sum)
        return self.result.quantize(self.accum.quantize(acc + self.bias))


@dataclass(frozen=True)
class ReLU:
    name: str
    result: FixedType

    def __call__(self, x: F64, x_type: FixedType) -> F64:
        return self.result.quantize(np.maximum(x, 0.0))


@dataclass(frozen=True)
class Linear:
    name: str
    result: FixedType

    def __call__(self, x: F64, x_type: FixedType) -> F64:
        return self.result.quantize(x)


Step = Dense | ReLU | Linear


@dataclass(frozen=True)
class Emulator:
    """The layers of an hls4ml model in order; ``predict`` runs a batch through them."""

    input_type: FixedType
    steps: tuple[Step, ...]

    @classmethod
    def from_hls_model(cls, model: Any) -> Emulator:
        """Read layers, weights and precisions from a converted hls4ml ``ModelGraph``."""
        steps: list[Step] = []
        input_type: FixedType | None = None
        current: FixedType | None = None
        for layer in model.get_layers():
            result = fixed_type(layer.get_output_variable().type.precision)
            kind = layer.class_name
            if kind == "Input":
                input_type = current = result
                continue
            if current is None:
                raise TriggerError("hls4ml model has no Input layer first")
            if kind == "Dense":
                steps.append(_dense(layer, current, result))
            elif kind in ("Activation", "ReLU") and layer.get_attr("activation") == "relu":
                steps.append(ReLU(layer.name, result))
            elif kind in ("Activation", "Linear") and layer.get_attr("activation") in ("linear", None):
                steps.append(Linear(layer.name, result))
            else:
                raise TriggerError(f"cannot emulate layer {layer.name} ({kind}, "
                                   f"activation {layer.get_attr('activation')})")
            current = result
        assert input_type is not None
        return cls(input_type, tuple(steps))

    @property
    def output_type(self) -> FixedType:
        return self.steps[-1].result if self.steps else self.input_type

    def predict(self, x: NDArray[np.floating]) -> F64:
        """Outputs for a batch of float inputs, cast to the input type first as the C-sim does."""
        values = self.input_type.quantize(np.asarray(x, dtype=np.float64))
        value_type = self.input_type
        for step in self.steps:
            values = step(values, value_type)
            value_type = step.result
        return values


def _dense(layer: Any, x_type: FixedType, result: FixedType) -> Dense:
    weight_type = fixed_type(layer.weights["weight"].type.precision)
    bias_type = fixed_type(layer.weights["bias"].type.precision)
    accum = fixed_type(layer.get_attr("accum_t").precision)
    weight = weight_type.quantize(layer.weights["weight"].data)
    bias = accum.quantize(bias_type.quantize(layer.weights["bias"].data))
    n_in = weight.shape[0]
    bits = x_type.width + weight_type.width + int(np.ceil(np.log2(max(n_in, 1)))) + 1
    if bits > EXACT_BITS:
        raise TriggerError(f"layer {layer.name}: {bits}-bit sums are not exact in float64")
    return Dense(layer.name, weight, weight_type, bias, accum, result)
