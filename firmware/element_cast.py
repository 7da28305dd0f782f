"""hls4ml's ``FixedPointQuantizer`` (an HGQ proxy model's): each element cast to its own type.

HGQ gives every activation its own width, and hls4ml writes the quantizer as one line per
element, ``out[j] = ap_fixed<b_j, i_j, AP_RND|TRN, AP_SAT|WRAP>(in[j])`` (``ap_ufixed`` where
``k_j`` is 0, and 0 where ``b_j`` is 0), the result then held in the layer's ``result_t``, which
covers every element's type. :class:`ElementCast` computes that on integer mantissas: the elements
sharing a type are cast together by :class:`trigger.fixed.FixedType`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import TriggerError
from trigger.fixed import FixedType, Overflow, Rounding

__all__ = ("ElementCast",)

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class ElementCast:
    """Mantissas of ``source`` in, each element cast to ``(keep_sign, bits, integer)`` with one
    rounding and overflow mode, mantissas of ``result`` out."""

    source: FixedType  # the values' type before the cast (the activation's or the Dense's result)
    result: FixedType  # the quantizer's result_t
    keep_sign: NDArray[np.int64]
    bits: NDArray[np.int64]  # 0: the element is 0
    integer: NDArray[np.int64]  # ap_fixed's I (with the sign bit)
    rounding: Rounding
    overflow: Overflow

    @classmethod
    def of(cls, layer: Any, source: FixedType, result: FixedType) -> ElementCast:
        """From a converted ``FixedPointQuantizer`` layer of ``n`` elements."""
        n = int(np.prod(layer.get_output_variable().shape))
        k, b, i = (np.broadcast_to(np.ravel(v), (n,)).astype(np.int64) for v in layer.get_attr("mask_kbi"))
        try:
            rounding, overflow = Rounding[layer.get_attr("RND")], Overflow[layer.get_attr("SAT")]
        except KeyError:
            msg = f"layer {layer.name}: cannot emulate rounding {layer.get_attr('RND')} / {layer.get_attr('SAT')}"
            raise TriggerError(msg) from None
        cast = cls(source, result, k, b, i, rounding, overflow)
        for t in cast.types:
            if t.fractional > result.fractional or t.integer - t.signed > result.integer - result.signed:
                msg = f"layer {layer.name}: its result type {result} does not hold an element's type {t}"
                raise TriggerError(msg)
        return cast

    @cached_property
    def types(self) -> dict[FixedType, NDArray[np.intp]]:
        """The elements (column indices) of each type; elements of 0 bits are left out."""
        groups: dict[FixedType, list[int]] = {}
        for j, (k, b, i) in enumerate(zip(self.keep_sign, self.bits, self.integer, strict=True)):
            if b > 0:
                t = FixedType(int(b), int(i), bool(k), self.rounding, self.overflow)
                groups.setdefault(t, []).append(j)
        return {t: np.asarray(columns, np.intp) for t, columns in groups.items()}

    def __call__(self, mantissas: NDArray[Any]) -> NDArray[Any]:
        """``source`` mantissas (n, elements) -> ``result`` mantissas, in ``mantissas``' dtype."""
        values = np.asarray(mantissas, np.float64) * self.source.lsb
        out = np.zeros_like(values)
        for t, columns in self.types.items():
            out[:, columns] = t.quantize(values[:, columns])
        return (out * 2.0**self.result.fractional).astype(np.asarray(mantissas).dtype)

    def bounds(self, low: F64, high: F64) -> tuple[F64, F64]:
        """Bounds of the result mantissas from bounds of the source mantissas: the casts are
        monotone when they saturate; a wrap can give any value of the element's type."""
        low, high = (np.broadcast_to(v, self.bits.shape).astype(np.float64)[None, :] for v in (low, high))
        out_low, out_high = self(low)[0].astype(np.float64), self(high)[0].astype(np.float64)
        if self.overflow is Overflow.WRAP:
            for t, columns in self.types.items():
                out_low[columns] = t.int_min * 2.0 ** (self.result.fractional - t.fractional)
                out_high[columns] = t.int_max * 2.0 ** (self.result.fractional - t.fractional)
        return out_low, out_high

    def beyond(self, mantissas: NDArray[Any]) -> NDArray[np.bool_]:
        """Per event: whether any element's value lies outside its type's range (it saturates or wraps)."""
        values = np.asarray(mantissas, np.float64) * self.source.lsb
        out = np.zeros(len(values), bool)
        for t, columns in self.types.items():
            low, high = t.kept_range
            scaled = values[:, columns] * 2.0**t.fractional
            out |= np.any((scaled < low) | (scaled >= high + 1), axis=1)
        return out

    def describe(self) -> tuple[dict[str, str], dict[str, NDArray[Any]]]:
        """JSON fields and arrays for ``Emulator.save``."""
        return ({"source": str(self.source), "result": str(self.result), "rounding": self.rounding.name,
                 "overflow": self.overflow.name},
                {"keep_sign": self.keep_sign, "bits": self.bits, "integer": self.integer})

    @classmethod
    def undescribe(cls, fields: dict[str, str], arrays: dict[str, NDArray[Any]]) -> ElementCast:
        return cls(FixedType.parse(fields["source"]), FixedType.parse(fields["result"]),
                   np.asarray(arrays["keep_sign"], np.int64), np.asarray(arrays["bits"], np.int64),
                   np.asarray(arrays["integer"], np.int64), Rounding[fields["rounding"]], Overflow[fields["overflow"]])
