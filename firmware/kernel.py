"""One Dense layer and its activation as a kernel on integer mantissas, read from hls4ml.

A Conv2D (channels last, no padding) and a BatchNormalization are Dense layers too, with the
convolution's matrix and the scale's diagonal (:func:`as_dense`): hls4ml's io_parallel computes
each output of either as a Dense layer computes it, so the same kernel emulates all three.

Why exact is possible: a fixed-point value is an integer mantissa times 2**-F, so a Dense
layer is an integer matrix product, which floating point computes exactly while every
partial sum stays below 2**53 (float64) or 2**24 (float32). After the product come the
casts hls4ml's latency Dense makes: each product and the bias into ``accum_t``, the sum
wrapped in ``accum_t``, then ``result_t``; an activation then casts (max(x, 0) for ReLU)
to its own ``result_t`` with that type's rounding and overflow. Every type and mode is
read from the converted model graph, never assumed.

Speed: the power-of-two scale into the activation's grid is folded into the weights, and
integer bounds are carried through so overflow handling is skipped where no value can
overflow, and float32 is used wherever the bounds prove it exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from firmware.element_cast import ElementCast
from trigger.errors import TriggerError
from trigger.fixed import FixedType, Overflow, Rounding, round_scaled

__all__ = ("Bounds", "Kernel", "as_dense", "dense_kernel", "fixed_type", "may_overflow", "round_to")

F64 = NDArray[np.float64]
Bounds = tuple[F64, F64]  # per-feature min and max of integer mantissas
SPARSE_MIN_SIZE, SPARSE_DENSITY = 4096, 0.1  # kernels this large and this empty multiply sparsely


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


def round_to(values: NDArray[Any], mode: Rounding) -> NDArray[Any]:
    """Round to integers, in place for the two modes hls4ml uses most."""
    if mode is Rounding.TRN:
        return cast(NDArray[Any], np.floor(values, out=values))
    if mode is Rounding.RND_CONV:
        return cast(NDArray[Any], np.rint(values, out=values))
    return round_scaled(values, mode)


def _cast(out: NDArray[Any], t: FixedType, may_overflow: bool) -> NDArray[Any]:
    """Round scaled values to ``t``'s mantissas, then its overflow mode where needed."""
    out = round_to(out, t.rounding)
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
    may_overflow: bool  # False when the bounds prove every cast (to ``cast_type``) is in range
    out_bounds: Bounds
    post: ElementCast | None = None  # an HGQ quantizer after the activation: ``result`` is its type

    @property
    def cast_type(self) -> FixedType:
        """The type the activation casts to: ``result``, or the per-element quantizer's source."""
        return self.result if self.post is None else self.post.source

    def with_post(self, post: ElementCast) -> Kernel:
        """This kernel followed by an HGQ quantizer (cast from ``cast_type``)."""
        low, high = post.bounds(*self.out_bounds)
        return replace(self, post=post, result=post.result, out_bounds=(low, high))

    def __call__(self, q: NDArray[Any]) -> NDArray[Any]:
        q = q.astype(self.weight.dtype, copy=False)
        sparse = self._sparse_weight
        return self.finish(q @ self.weight if sparse is None else np.asarray(sparse.T @ q.T).T)

    @cached_property
    def _sparse_weight(self) -> Any:
        """The weights as a SciPy sparse matrix where most are zero (a convolution's matrix): the
        same exact integer sums, without the zeros' products."""
        if self.weight.size < SPARSE_MIN_SIZE or np.count_nonzero(self.weight) > SPARSE_DENSITY * self.weight.size:
            return None
        from scipy import sparse

        return sparse.csr_matrix(self.weight)

    def finish(self, out: NDArray[Any]) -> NDArray[Any]:
        """Everything after the product ``out = q @ weight`` (exact integers; changed in place)."""
        out += self.bias
        if self.accum_may_wrap:  # rare: the accumulator itself can overflow
            acc = self.accum.wrap_or_saturate(np.asarray(out, np.float64) * self.accum_scale)
            out = (acc / self.accum_scale).astype(self.weight.dtype)
        if self.mid is not None:
            out = _cast(out, self.mid, self.mid_may_overflow)
            out *= self.mid_to_result
        t = self.cast_type
        if self.relu:
            np.maximum(out, 0, out=out)
        if self.relu and self.may_overflow and t.overflow is Overflow.SAT and t.int_min <= 0:
            # rounding keeps values >= 0, so saturation only needs the upper bound
            out = np.minimum(round_to(out, t.rounding), t.int_max, out=out)
        else:
            out = _cast(out, t, self.may_overflow)
        return out if self.post is None else self.post(out)


def dense_kernel(layer: Any, x_type: FixedType, bounds: Bounds, dense_result: FixedType,
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
        mid_may_overflow = may_overflow(low_1, high_1, mid)
        mid_to_result = 2.0 ** (result.fractional - mid.fractional)
        # exact bounds: the Dense result's mantissas, scaled by a power of two (floored and ceiled below)
        low_1 = np.clip(low_1, mid.int_min, mid.int_max) * mid_to_result
        high_1 = np.clip(high_1, mid.int_min, mid.int_max) * mid_to_result
    relu = activation is not None and (activation.get_attr("activation") or "").lower() == "relu"
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
        may_overflow=may_overflow(out_low, out_high, result),
        out_bounds=(np.clip(out_low, result.int_min, result.int_max),
                    np.clip(out_high, result.int_min, result.int_max)),
    )


def may_overflow(low: F64, high: F64, t: FixedType) -> bool:
    kept_low, kept_high = t.kept_range
    return bool(low.min() < kept_low or high.max() > kept_high)


@dataclass(frozen=True)
class _Weights:
    data: NDArray[Any]
    type: Any  # hls4ml's NamedType: .precision


@dataclass(frozen=True)
class _Precision:
    precision: Any


class _DenseView:
    """A Conv2D or BatchNormalization layer of hls4ml seen as the Dense layer it equals: the same
    name, result, weight and bias precisions and accumulator, a (inputs, outputs) weight matrix."""

    def __init__(self, layer: Any, weight: NDArray[Any], weight_type: Any, bias: NDArray[Any], bias_type: Any,
                 accum: Any) -> None:
        self.name, self._layer = layer.name, layer
        self.weights = {"weight": _Weights(weight, weight_type), "bias": _Weights(bias, bias_type)}
        self._accum = _Precision(accum)

    def get_attr(self, key: str) -> Any:
        return self._accum if key == "accum_t" else self._layer.get_attr(key)

    def get_output_variable(self) -> Any:
        return self._layer.get_output_variable()


def _conv2d_matrix(layer: Any) -> NDArray[np.float64]:
    """The (H*W*C_in, H_out*W_out*C_out) matrix of a channels-last Conv2D without padding, in the
    order io_parallel holds its arrays: (row, column, channel), channel fastest."""
    a = layer.get_attr
    if a("data_format") != "channels_last" or any(a(k) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")):
        msg = f"layer {layer.name}: only channels-last Conv2D without padding is emulated"
        raise TriggerError(msg)
    kernel = np.asarray(layer.weights["weight"].data, np.float64)  # (filter h, filter w, in, out)
    width, n_in, n_out, stride_h, stride_w = a("in_width"), a("n_chan"), a("n_filt"), a("stride_height"), a("stride_width")
    out_h, out_w = a("out_height"), a("out_width")
    matrix = np.zeros((a("in_height") * width * n_in, out_h * out_w * n_out))
    for i in range(out_h):
        for j in range(out_w):
            for fh in range(a("filt_height")):
                for fw in range(a("filt_width")):
                    row = ((i * stride_h + fh) * width + j * stride_w + fw) * n_in
                    column = (i * out_w + j) * n_out
                    matrix[row:row + n_in, column:column + n_out] = kernel[fh, fw]
    return matrix


def as_dense(layer: Any) -> Any:
    """hls4ml's ``Dense`` as it is; a ``Conv2D`` (each output pixel's products into ``accum_t``, then
    ``result_t``, as a Dense layer does) as a Dense layer with its convolution matrix; a
    ``BatchNormalization`` (``x * scale + bias``, exact, cast to ``result_t``) as a Dense layer with
    the diagonal matrix of its scale, summed in its result type."""
    if layer.class_name == "Dense":
        return layer
    if layer.class_name == "Conv2D":
        matrix = _conv2d_matrix(layer)
        bias = np.tile(np.asarray(layer.weights["bias"].data, np.float64), layer.get_attr("out_height")
                       * layer.get_attr("out_width"))
        return _DenseView(layer, matrix, layer.weights["weight"].type, bias,
                          layer.weights["bias"].type, layer.get_attr("accum_t").precision)
    if layer.class_name == "BatchNormalization":
        scale = np.asarray(layer.weights["scale"].data, np.float64).ravel()
        return _DenseView(layer, np.diag(scale), layer.weights["scale"].type,
                          np.asarray(layer.weights["bias"].data, np.float64).ravel(), layer.weights["bias"].type,
                          layer.get_output_variable().type.precision)
    msg = f"cannot emulate layer {layer.name} ({layer.class_name})"
    raise TriggerError(msg)

