"""An HGQ model's firmware network: its proxy, with the types hls4ml's bit-exact flow derives.

hls4ml converts an HGQ proxy model with its bit-exact flow, which derives every layer's type from
the quantizers and merges each quantizer whose elements share one type into the layer before it.
That flow re-derives every layer of a model, the score and decision layers of ``firmware.head``
included, whose declared casts (the error type, the one-bit decision) are what the trigger means.
So the proxy is converted alone first (:func:`derived_precisions`, nothing written); then the
network is rebuilt without the merged quantizers (their casts are now the layers' result types)
and converted with the head as every other model is, with those types as precision overrides and
the bit-exact flow off (``network_hls_config``). The quantizers that stay hold a type per element
(``firmware.element_cast``).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from typing import Any

from firmware.kernel import fixed_type
from trigger.errors import TriggerError
from trigger.fixed import FixedType

__all__ = ("derived_precisions", "hgq_firmware_network")

QUANTIZER = "FixedPointQuantizer"
_LAYER_TYPES = {"weight": "weight_t", "bias": "bias_t", "accum": "accum_t"}


def derived_precisions(proxy: Any, input_type: FixedType) -> dict[str, str]:
    """hls4ml's types for every layer of the converted ``proxy`` (``hls_config`` override keys:
    ``LAYER`` its result, ``LAYER.weight`` ...), for the inputs on ``input_type``'s grid."""
    from firmware.convert import convert_network

    with tempfile.TemporaryDirectory(prefix="hgq-proxy-") as tmp:
        model = convert_network(proxy, input_type, tmp, "proxy", bit_exact=True)
    precisions: dict[str, str] = {}
    previous = input_type
    for layer in model.get_layers():
        result = fixed_type(layer.get_output_variable().type.precision)
        if layer.class_name == "Input":
            if (result.width, result.integer, result.signed) != (input_type.width, input_type.integer,
                                                                 input_type.signed):
                msg = f"the HGQ model's input quantizer gives {result}, not the scaler's grid {input_type}"
                raise TriggerError(msg)
        elif layer.class_name == "Dense":
            types = {key: fixed_type(layer.get_attr(attr).precision) for key, attr in _LAYER_TYPES.items()}
            types["accum"] = _exact_products(types["accum"], previous.fractional + types["weight"].fractional)
            precisions |= {f"{layer.name}.{key}": str(t) for key, t in types.items()}
            precisions[f"{layer.name}_linear"] = str(result)  # the linear activation hls4ml adds without the flow
        if layer.class_name != "Input":
            precisions[layer.name] = str(result)
        previous = result
    return precisions


def _exact_products(accum: FixedType, product_fractional: int) -> FixedType:
    """``accum`` with the fractional bits of a product. The bit-exact flow drops the products' low
    bits where the result type drops them after the sum, but hls4ml's latency Dense casts each
    product to ``accum_t`` before adding, and truncated products do not sum to the truncated sum."""
    extra = product_fractional - accum.fractional
    return accum if extra <= 0 else replace(accum, width=accum.width + extra)


def hgq_firmware_network(proxy: Any, input_type: FixedType) -> tuple[Any, dict[str, str]]:
    """The proxy without the quantizers hls4ml merges into the layer before them, and the types
    of its layers (:func:`derived_precisions`)."""
    import tensorflow as tf

    precisions = derived_precisions(proxy, input_type)
    inputs = tf.keras.Input(proxy.input.shape[1:], name=proxy.layers[0].name)
    x, copies = inputs, []
    for layer in proxy.layers[1:]:
        if type(layer).__name__ == QUANTIZER and layer.name not in precisions:
            continue  # merged: its cast is the previous layer's result type
        copy = type(layer).from_config(layer.get_config())  # a quantizer may not be called twice
        x = copy(x)
        copies.append((copy, layer))
    for copy, layer in copies:
        copy.set_weights(layer.get_weights())
    network = tf.keras.Model(inputs, x, name=proxy.name)
    names = {layer.name for layer in network.layers}
    return network, {k: v for k, v in precisions.items() if k.partition(".")[0].removesuffix("_linear") in names}
