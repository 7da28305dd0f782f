"""A batched numpy emulator of an hls4ml network, bit-exact with its fixed-point C-simulation.

Why exact is possible: a fixed-point value is an integer mantissa times 2**-F, so a Dense
layer is an integer matrix product, which floating point computes exactly while every
partial sum stays below 2**53 (float64) or 2**24 (float32). After the product come the
casts hls4ml's latency Dense makes: each product and the bias into ``accum_t``, the sum
wrapped in ``accum_t``, then ``result_t``; an activation then casts (max(x, 0) for ReLU)
to its own ``result_t`` with that type's rounding and overflow. Every type and mode is
read from the converted model graph, never assumed.

The network ends in the firmware's score and decision (``firmware.head``): each error term cast
to its type, the sum of squares (exact) cast to the score type, and the decision kernel, a
Dense + ReLU whose one-bit result is 1 when the score mantissa exceeds the threshold's.

Speed: each Dense and the activation after it run as one kernel on mantissas. The power-
of-two scale into the activation's grid is folded into the weights, integer bounds are
carried through the network so overflow handling is skipped where no value can overflow,
and float32 is used wherever the bounds prove it exact.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from firmware.head import ERROR, score_divisor
from trigger.errors import TriggerError
from trigger.fixed import FixedType, Overflow, Rounding, round_scaled
from trigger.npz import load_arrays, save_arrays

__all__ = ("Emulator", "Kernel", "ScoreHead", "fixed_type")

FORMAT = "trigger.Emulator/2"  # the .npz written by Emulator.save (2: with the score and decision)

F64 = NDArray[np.float64]
Bounds = tuple[F64, F64]  # per-feature min and max of integer mantissas


def fixed_type(precision: Any) -> FixedType:
    """hls4ml's precision object -> :class:`FixedType` (fails on what cannot be emulated)."""
    if type(precision).__name__ not in ("FixedPrecisionType", "APFixedPrecisionType"):
        msg = f"cannot emulate precision {precision} (not a fixed-point type)"
        raise TriggerError(msg)
    if getattr(precision, "saturation_bits", 0):
        msg = f"cannot emulate saturation bits in {precision}"
        raise TriggerError(msg)
    rounding = Rounding[precision.rounding_mode.name]
    overflow = Overflow[precision.saturation_mode.name]
    return FixedType(precision.width, precision.integer, precision.signed, rounding, overflow)


def _round(values: NDArray[Any], mode: Rounding) -> NDArray[Any]:
    """Round to integers, in place for the two modes hls4ml uses most."""
    if mode is Rounding.TRN:
        return cast(NDArray[Any], np.floor(values, out=values))
    if mode is Rounding.RND_CONV:
        return cast(NDArray[Any], np.rint(values, out=values))
    return round_scaled(values, mode)


def _cast(out: NDArray[Any], t: FixedType, may_overflow: bool) -> NDArray[Any]:
    """Round scaled values to ``t``'s mantissas, then its overflow mode where needed."""
    out = _round(out, t.rounding)
    if not may_overflow:
        return out
    if t.overflow is Overflow.SAT:  # in place: the common case
        return np.clip(out, t.int_min, t.int_max, out=out)
    return t.wrap_or_saturate(out)


@dataclass(frozen=True)
class Kernel:
    """Dense (mantissas in, ``accum_t``), its ``result_t`` when that loses bits (``mid``), then
    the activation's cast to ``result`` (ReLU first if ``relu``)."""

    name: str
    weight: NDArray[Any]  # integer weights times 2**(first-stage frac - product frac), float32/64
    bias: NDArray[Any]  # bias in the same units
    accum: FixedType
    accum_scale: float  # accum mantissa = first-stage value * accum_scale
    accum_may_wrap: bool
    mid: FixedType | None  # the Dense result_t, when narrower than accum_t and an activation follows
    mid_may_overflow: bool
    mid_to_result: float  # 2**(result.frac - mid.frac)
    relu: bool
    result: FixedType
    may_overflow: bool  # False when the bounds prove every result is in range
    out_bounds: Bounds

    def __call__(self, q: NDArray[Any]) -> NDArray[Any]:
        return self.finish(q.astype(self.weight.dtype, copy=False) @ self.weight)

    def finish(self, out: NDArray[Any]) -> NDArray[Any]:
        """Everything after the product ``out = q @ weight`` (exact integers; changed in place)."""
        out += self.bias
        if self.accum_may_wrap:  # rare: the accumulator itself can overflow
            acc = self.accum.wrap_or_saturate(np.asarray(out, np.float64) * self.accum_scale)
            out = (acc / self.accum_scale).astype(self.weight.dtype)
        if self.mid is not None:
            out = _cast(out, self.mid, self.mid_may_overflow)
            out *= self.mid_to_result
        if self.relu:
            np.maximum(out, 0, out=out)
            t = self.result
            if self.may_overflow and t.overflow is Overflow.SAT and t.int_min <= 0:
                # rounding keeps values >= 0, so saturation only needs the upper bound
                return np.minimum(_round(out, t.rounding), t.int_max, out=out)
        return _cast(out, self.result, self.may_overflow)


@dataclass(frozen=True)
class ScoreHead:
    """The firmware's score and decision after the network (see ``firmware.head``)."""

    reconstruction: bool  # mse: errors are output - input; mu2: the outputs (mu) themselves
    error: FixedType  # each error term
    accum: FixedType  # the sum of squares, exact
    score: FixedType
    divisor: int  # software score = firmware score / divisor (the mean for mse)
    threshold: int  # the decision: score mantissa > threshold
    decision: Kernel  # Dense(1) + ReLU into one bit

    def score_mantissas(self, outputs: NDArray[Any], output_type: FixedType, q: NDArray[Any],
                        input_type: FixedType) -> F64:
        """Score mantissas from the network's output mantissas and the input mantissas ``q``."""
        e = np.asarray(outputs, np.float64) * 2.0 ** (self.error.fractional - output_type.fractional)
        if self.reconstruction:
            e = e - np.asarray(q, np.float64) * 2.0 ** (self.error.fractional - input_type.fractional)
        e = self.error.wrap_or_saturate(round_scaled(e, self.error.rounding))
        total = np.einsum("ij,ij->i", e, e) * 2.0 ** (self.accum.fractional - 2 * self.error.fractional)
        total = self.accum.wrap_or_saturate(total)  # exact unless it overflows (WRAP only, checked)
        scaled = total * 2.0 ** (self.score.fractional - self.accum.fractional)
        return self.score.wrap_or_saturate(round_scaled(scaled, self.score.rounding))

    def values(self, score_mantissas: Any) -> Any:
        """Score mantissas in the software's units (the order of operations every path uses)."""
        return score_mantissas * self.score.lsb / self.divisor

    def accept(self, score_mantissas: F64) -> F64:
        """The decision bit (0 or 1) of each score mantissa, through the decision kernel."""
        bits = self.decision(score_mantissas[:, None].astype(self.decision.weight.dtype))
        return np.asarray(bits, np.float64)[:, 0] * self.decision.result.lsb


@dataclass(frozen=True)
class Emulator:
    """The network as a chain of kernels, then its score and decision; ``predict`` runs a batch."""

    input_type: FixedType
    kernels: tuple[Kernel, ...]
    head: ScoreHead

    @classmethod
    def from_hls_model(cls, model: Any) -> Emulator:
        """Read layers, weights and precisions from a converted hls4ml ``ModelGraph``."""
        layers = list(model.get_layers())
        if not layers or layers[0].class_name != "Input":
            msg = "hls4ml model has no Input layer first"
            raise TriggerError(msg)
        input_type = fixed_type(layers[0].get_output_variable().type.precision)
        current = input_type
        bounds = (np.full(1, float(input_type.int_min)), np.full(1, float(input_type.int_max)))
        kernels = []
        i = 1
        while i < len(layers) and layers[i].class_name == "Dense":
            layer = layers[i]
            dense_result = fixed_type(layer.get_output_variable().type.precision)
            activation, result = None, dense_result
            if i + 1 < len(layers) and layers[i + 1].class_name == "Activation":
                activation = layers[i + 1]
                name = activation.get_attr("activation")
                if name not in ("relu", "linear", None):
                    msg = f"cannot emulate activation {name!r} of {activation.name}"
                    raise TriggerError(msg)
                result = fixed_type(activation.get_output_variable().type.precision)
            kernel = _kernel(layer, current, bounds, dense_result, activation, result)
            kernels.append(kernel)
            current, bounds = result, kernel.out_bounds
            i += 2 if activation is not None else 1
        if not kernels:
            msg = "hls4ml model has no Dense layer after its input"
            raise TriggerError(msg)
        return cls(input_type, tuple(kernels), _head(layers[i:], kernels[-1]))

    def save(self, path: str | Path) -> None:
        """Write the kernels to one ``.npz`` (arrays plus a JSON description; no pickle)."""
        arrays: dict[str, NDArray[Any]] = {}
        kernels = [_describe(kernel, str(n), arrays) for n, kernel in enumerate(self.kernels)]
        head = {f.name: str(getattr(self.head, f.name)) if isinstance(getattr(self.head, f.name), FixedType)
                else getattr(self.head, f.name) for f in fields(self.head) if f.name != "decision"}
        head["decision"] = _describe(self.head.decision, "decision", arrays)
        save_arrays(path, FORMAT, {"input_type": str(self.input_type), "kernels": kernels, "head": head}, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Emulator:
        """Read what :meth:`save` wrote; anything else is a :class:`TriggerError`."""
        meta, data = load_arrays(path, FORMAT)
        try:
            kernels = tuple(_undescribe(described, str(n), data) for n, described in enumerate(meta["kernels"]))
            head: dict[str, Any] = dict(meta["head"])
            head.update({k: FixedType.parse(head[k]) for k in ("error", "accum", "score")},
                        decision=_undescribe(head["decision"], "decision", data))
            return cls(FixedType.parse(meta["input_type"]), kernels, ScoreHead(**head))
        except (KeyError, TypeError, ValueError) as e:
            msg = f"{path}: damaged emulator file ({e})"
            raise TriggerError(msg) from None

    @property
    def output_type(self) -> FixedType:
        """The network's output type (the reconstruction, or mu), before the score."""
        return self.kernels[-1].result

    @property
    def threshold(self) -> int:
        """The decision's threshold as a score mantissa."""
        return self.head.threshold

    @property
    def threshold_value(self) -> float:
        """The threshold in the software's units: a score (from :meth:`scores`) is above it exactly
        when the firmware's accept bit is 1."""
        return float(self.head.values(self.head.threshold))

    def with_threshold(self, mantissa: int) -> Emulator:
        """The same firmware deciding at another threshold (a score mantissa, ``-1 .. int_max``):
        only the decision's bias changes, to what a conversion at that threshold reads (tested)."""
        if not -1 <= mantissa <= self.head.score.int_max:
            msg = f"threshold mantissa {mantissa} outside -1 .. {self.head.score.int_max} of {self.head.score}"
            raise TriggerError(msg)
        decision = self.head.decision
        # the Keras bias -T, cast to accum_t and expressed in the kernel's first-stage units
        bias = np.full_like(decision.bias, -mantissa * 2.0**decision.accum.fractional / decision.accum_scale)
        score = self.head.score
        low = decision.weight.ravel()[0] * float(score.int_min) + bias[0]
        high = decision.weight.ravel()[0] * float(score.int_max) + bias[0]
        out_low, out_high = np.full(1, np.floor(max(low, 0))), np.full(1, np.ceil(max(high, 0)))
        result = decision.result
        decision = replace(decision, bias=bias, may_overflow=_may_overflow(out_low, out_high, result),
                           out_bounds=(np.clip(out_low, result.int_min, result.int_max),
                                       np.clip(out_high, result.int_min, result.int_max)))
        return replace(self, head=replace(self.head, threshold=mantissa, decision=decision))

    def predict(self, x: NDArray[np.floating[Any]]) -> F64:
        """(score, accept) of a batch of float inputs, cast to the input type first as the C-sim does."""
        t = self.input_type
        q = _round(np.asarray(x, dtype=np.float64) * 2.0**t.fractional, t.rounding)
        if len(q) and (q.min() < t.int_min or q.max() > t.int_max):
            q = t.wrap_or_saturate(q)
        return self.predict_mantissas(q)

    def network_mantissas(self, q: NDArray[np.floating[Any]]) -> NDArray[Any]:
        """The network's output mantissas for input mantissas ``q`` (already in range)."""
        for kernel in self.kernels:
            q = kernel(q)
        return q

    def predict_mantissas(self, q: NDArray[np.floating[Any]]) -> F64:
        """(score, accept) for inputs given as integer mantissas of ``input_type`` (already in range):
        the firmware's two outputs, the score in its type's units and the bit as 0 or 1."""
        m = self.head.score_mantissas(self.network_mantissas(q), self.output_type, q, self.input_type)
        return np.column_stack([m * self.head.score.lsb, self.head.accept(m)])

    def scores(self, outputs: NDArray[np.floating[Any]]) -> F64:
        """The software's anomaly score from the firmware's outputs (C-sim, RTL or ``predict``)."""
        return np.asarray(outputs, np.float64)[:, 0] / self.head.divisor

    def network_scores(self, network_outputs: NDArray[np.floating[Any]], q: NDArray[np.floating[Any]]) -> F64:
        """The software's anomaly score from the network's outputs (real values) and input mantissas."""
        out = self.output_type
        m = self.head.score_mantissas(np.asarray(network_outputs, np.float64) * 2.0**out.fractional, out, q,
                                      self.input_type)
        return np.asarray(self.head.values(m), np.float64)


def _describe(kernel: Kernel, key: str, arrays: dict[str, NDArray[Any]]) -> dict[str, Any]:
    """A kernel's JSON description; its arrays go into ``arrays`` under ``key``."""
    described: dict[str, Any] = {}
    for f in fields(kernel):
        value = getattr(kernel, f.name)
        if isinstance(value, np.ndarray):
            arrays[f"{key}.{f.name}"] = value
        elif f.name == "out_bounds":
            arrays[f"{key}.low"], arrays[f"{key}.high"] = value
        else:
            described[f.name] = str(value) if isinstance(value, FixedType) else value
    return described


def _undescribe(described: dict[str, Any], key: str, data: dict[str, NDArray[Any]]) -> Kernel:
    kw: dict[str, Any] = {k: FixedType.parse(v) if k in ("accum", "mid", "result") and v else v
                          for k, v in described.items()}
    kw.update(weight=data[f"{key}.weight"], bias=data[f"{key}.bias"],
              out_bounds=(data[f"{key}.low"], data[f"{key}.high"]))
    return Kernel(**kw)


def _head(layers: list[Any], last: Kernel) -> ScoreHead:
    """The score and decision layers that follow the network (``firmware.head``'s); without a
    Subtract, the errors are the network's outputs (the VAE's mu, cast by its last activation)."""
    kinds = [layer.class_name for layer in layers]
    reconstruction = kinds[:1] == ["Merge"]
    expected = (["Merge"] if reconstruction else []) + ["Dot", "Dense", "Activation"]
    if kinds != expected or (reconstruction and (layers[0].name, layers[0].get_attr("op")) != (ERROR, "subtract")):
        msg = (f"cannot emulate the layers after the network ({', '.join(kinds) or 'none'}): expected the "
               "score and decision of firmware.head (Subtract, Dot, Dense, ReLU)")
        raise TriggerError(msg)
    if reconstruction:
        error, dot = fixed_type(layers[0].get_output_variable().type.precision), layers[1]
    else:
        error, dot = last.result, layers[0]
    accum = fixed_type(dot.get_attr("accum_t").precision)
    score = fixed_type(dot.get_output_variable().type.precision)
    terms = int(np.prod(layers[0].get_output_variable().shape)) if reconstruction else last.weight.shape[1]
    largest = max(-error.int_min, error.int_max) ** 2 * terms * 2.0 ** (accum.fractional - 2 * error.fractional)
    if accum.fractional < 2 * error.fractional or (largest > accum.int_max and accum.overflow is not Overflow.WRAP):
        msg = (f"layer {dot.name}: accum_t {accum} does not hold the sum of squares of {error} exactly; "
               "widen it or let it wrap")
        raise TriggerError(msg)
    score_bounds = (np.full(1, float(score.int_min)), np.full(1, float(score.int_max)))
    dense, relu = layers[-2], layers[-1]
    decision = _kernel(dense, score, score_bounds, fixed_type(dense.get_output_variable().type.precision), relu,
                       fixed_type(relu.get_output_variable().type.precision))
    threshold = -round(float(np.asarray(dense.weights["bias"].data).ravel()[0]))
    return ScoreHead(reconstruction, error, accum, score, score_divisor(reconstruction, terms), threshold, decision)


def _kernel(layer: Any, x_type: FixedType, bounds: Bounds, dense_result: FixedType,
            activation: Any, result: FixedType) -> Kernel:
    weight_type = fixed_type(layer.weights["weight"].type.precision)
    bias_type = fixed_type(layer.weights["bias"].type.precision)
    accum = fixed_type(layer.get_attr("accum_t").precision)
    w_int = weight_type.to_integers(layer.weights["weight"].data).astype(np.float64)
    product_frac = x_type.fractional + weight_type.fractional
    if product_frac > accum.fractional:
        msg = (
            f"layer {layer.name}: accum_t {accum} truncates each product; "
            "widen accum_t (hls4ml's auto precision does) to emulate it"
        )
        raise TriggerError(msg)
    lossless = (dense_result.fractional >= accum.fractional
                and dense_result.integer >= accum.integer and dense_result.signed >= accum.signed)
    mid = dense_result if activation is not None and not lossless else None
    # bias cast to accum_t, in product units
    bias_acc = accum.to_integers(bias_type.quantize(layer.weights["bias"].data)).astype(np.float64)
    bias_prod = bias_acc * 2.0 ** (product_frac - accum.fractional)
    low, high = np.broadcast_to(bounds[0], (w_int.shape[0],)), np.broadcast_to(bounds[1], (w_int.shape[0],))
    acc_low = np.minimum(w_int * low[:, None], w_int * high[:, None]).sum(0) + bias_prod
    acc_high = np.maximum(w_int * low[:, None], w_int * high[:, None]).sum(0) + bias_prod
    magnitude = max(np.abs(acc_low).max(), np.abs(acc_high).max(), 1.0)
    if magnitude >= 2.0**53:
        msg = f"layer {layer.name}: sums of {np.log2(magnitude):.0f} bits are not exact"
        raise TriggerError(msg)
    dtype = np.float32 if magnitude < 2.0**24 and np.abs(bounds).max() < 2.0**24 else np.float64
    accum_limit = 2.0 ** (accum.width - 1) * 2.0 ** (product_frac - accum.fractional)
    may_wrap = bool(acc_low.min() < -accum_limit or acc_high.max() >= accum_limit)
    if may_wrap and accum.overflow is not Overflow.WRAP:
        # wrapping is modular, so one wrap of the final sum is exact; saturation happens at each
        # addition, in the order the HLS adder tree adds, which this emulator does not follow
        msg = (f"layer {layer.name}: accum_t {accum} saturates and its sums can leave its range, "
               "which is saturated at every addition in the firmware's order; widen accum_t (hls4ml's "
               "auto precision does) or let it wrap (AP_WRAP)")
        raise TriggerError(msg)
    first = mid or result
    scale = 2.0 ** (first.fractional - product_frac)  # product units -> first-stage mantissas
    low_1, high_1 = np.floor(acc_low * scale) - 1, np.ceil(acc_high * scale) + 1
    mid_may_overflow, mid_to_result = False, 1.0
    if mid is not None:
        mid_may_overflow = _may_overflow(low_1, high_1, mid)
        mid_to_result = 2.0 ** (result.fractional - mid.fractional)
        low_1 = np.clip(low_1, mid.int_min, mid.int_max) * mid_to_result - 1
        high_1 = np.clip(high_1, mid.int_min, mid.int_max) * mid_to_result + 1
    relu = activation is not None and activation.get_attr("activation") == "relu"
    out_low = np.floor(np.maximum(low_1, 0) if relu else low_1)
    out_high = np.ceil(np.maximum(high_1, 0) if relu else high_1)
    return Kernel(
        name=layer.name,
        weight=(w_int * scale).astype(dtype),
        bias=(bias_prod * scale).astype(dtype),
        accum=accum,
        accum_scale=2.0 ** (accum.fractional - first.fractional),
        accum_may_wrap=may_wrap,
        mid=mid,
        mid_may_overflow=mid_may_overflow,
        mid_to_result=mid_to_result,
        relu=relu,
        result=result,
        may_overflow=_may_overflow(out_low, out_high, result),
        out_bounds=(np.clip(out_low, result.int_min, result.int_max),
                    np.clip(out_high, result.int_min, result.int_max)),
    )


def _may_overflow(low: F64, high: F64, t: FixedType) -> bool:
    kept_low, kept_high = t.kept_range
    return bool(low.min() < kept_low or high.max() > kept_high)
