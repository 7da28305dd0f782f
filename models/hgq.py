"""HGQ networks: a bit width per weight and per activation, trained with a resource penalty.

HGQ (PyPI ``hgq`` 0.2, on Keras 2) learns each weight's fractional bits and each activation's
by gradient, with a penalty on the network's effective bit operations (EBOPs, ``model.hgq_beta``)
that tracks the LUTs a distributed-arithmetic FPGA design needs. Integer bits come from the ranges
the activations reach on the training events (times ``model.hgq_cover``): HGQ records them while
training and once more on the chosen weights (:func:`trace_ranges`). Keras does not save those
ranges with the weights, so they are written beside them (:func:`save_ranges`).

The firmware is HGQ's proxy model (:func:`proxy_network`): plain Dense layers with the quantized
weights and a ``FixedPointQuantizer`` after each quantized activation, which hls4ml converts bit
for bit. The input quantizer is the scaler's grid, so the firmware reads the same mantissas as
every other model; the saturation is SAT, so an anomaly beyond the SM's ranges clips, not wraps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.config import ModelConfig
from trigger.errors import ArtifactError
from trigger.fixed import FixedType
from trigger.schema import N_INPUTS

__all__ = ("RANGES_SUFFIX", "callbacks", "copy_dense_weights", "hgq_network", "load_ranges", "proxy_network",
           "save_ranges", "trace_ranges")

RANGES_SUFFIX = ".ranges.npz"  # beside VARIANT.weights.h5
INPUT_QUANTIZER = "inputs_q"


def _quantizer_conf(init_bits: int, trainable: bool = True, per_element: bool = True,
                    activation: bool = True) -> dict[str, Any]:
    from HGQ.utils import get_default_kq_conf, get_default_paq_conf

    conf = get_default_paq_conf() if activation else get_default_kq_conf()
    conf.update(init_bw=init_bits, trainable=trainable)
    if not per_element:
        conf.update(skip_dims="all", regularizer=None)
    return dict(conf)


def hgq_network(cfg: ModelConfig) -> Any:
    """The HGQ twin of ``models.networks``' dense autoencoder or student: the same layer names, each
    Dense with its ReLU in one ``HDense``, after an input quantizer on the scaler's grid."""
    import tensorflow as tf
    from HGQ.layers import HDense, HQuantize

    grid = FixedType.parse(cfg.input_type)
    weight_frac = cfg.weight_bits - cfg.weight_integer - 1
    act_frac = cfg.activation_bits - cfg.activation_integer

    def dense(units: int, name: str, relu: bool) -> Any:
        return HDense(units, activation="relu" if relu else None, beta=cfg.hgq_beta, name=name,
                      kq_conf=_quantizer_conf(weight_frac, activation=False), paq_conf=_quantizer_conf(act_frac))

    inputs = tf.keras.Input((N_INPUTS,), name="inputs")
    x = HQuantize(beta=0.0, name=INPUT_QUANTIZER,
                  paq_conf=_quantizer_conf(grid.fractional, trainable=False, per_element=False))(inputs)
    for i, width in enumerate(cfg.encoder, 1):
        x = dense(width, f"enc_dense{i}", relu=True)(x)
    if cfg.kind == "student":
        from models.networks import DISTILLED

        return tf.keras.Model(inputs, dense(1, DISTILLED, relu=False)(x), name=cfg.name)
    x = dense(cfg.latent, "latent", relu=False)(x)
    for i, width in enumerate(cfg.decoder, 1):
        x = dense(width, f"dec_dense{i}", relu=True)(x)
    return tf.keras.Model(inputs, dense(N_INPUTS, "outputs", relu=False)(x), name=cfg.name)


def callbacks() -> list[Any]:
    """What HGQ's training needs each epoch: the ranges recorded afresh, the EBOPs logged."""
    from HGQ import FreeBOPs, ResetMinMax

    return [ResetMinMax(), FreeBOPs()]


def copy_dense_weights(source: Any, target: Any) -> None:
    """Each Dense layer's kernel and bias from ``source`` (the float twin) into the layer of the
    same name in ``target``: where quantization-aware training starts."""
    for layer in target.layers:
        if hasattr(layer, "kernel"):
            kernel, bias = source.get_layer(layer.name).get_weights()
            layer.kernel.assign(kernel)
            layer.bias.assign(bias)


def _quantized_layers(model: Any) -> list[Any]:
    return [layer for layer in model.layers if hasattr(layer, "paq")]


def trace_ranges(model: Any, inputs: Any, cover: float, grid: FixedType) -> float:
    """Record each activation's range on ``inputs`` (an array, or a dataset of (inputs, targets)
    batches) times ``cover``; the input quantizer's range is the grid's, so the firmware's input
    type is the scaler's. Returns the network's EBOPs with these ranges."""
    from HGQ import trace_minmax

    if not isinstance(inputs, np.ndarray):
        inputs = np.concatenate([batch[0] for batch in inputs.as_numpy_iterator()])
    trace_minmax(model, inputs, cover_factor=cover, verbose=False, no_bops_computation=True)
    q = model.get_layer(INPUT_QUANTIZER).paq
    q._min.assign(np.full(q._min.shape, grid.min_value, np.float32))
    q._max.assign(np.full(q._max.shape, grid.max_value, np.float32))
    ebops = 0.0
    for layer in _quantized_layers(model):
        layer.record_minmax = False
        ebops += float(layer.compute_exact_bops)
    return ebops


def save_ranges(model: Any, path: str | Path) -> None:
    """The recorded ranges of every quantized layer, which Keras' weights leave out."""
    arrays = {}
    for layer in _quantized_layers(model):
        arrays[f"{layer.name}.min"], arrays[f"{layer.name}.max"] = layer.paq._min.numpy(), layer.paq._max.numpy()
    np.savez(path, **arrays)


def load_ranges(model: Any, path: str | Path) -> None:
    """Restore what :func:`save_ranges` wrote; a missing or mismatched file is an ArtifactError."""
    try:
        with np.load(path) as data:
            for layer in _quantized_layers(model):
                layer.paq._min.assign(data[f"{layer.name}.min"])
                layer.paq._max.assign(data[f"{layer.name}.max"])
    except (OSError, KeyError, ValueError) as err:
        msg = f"{path}: cannot restore the HGQ model's activation ranges ({err})"
        raise ArtifactError(msg) from err


def proxy_network(model: Any) -> Any:
    """HGQ's proxy of ``model``: Dense layers and ``FixedPointQuantizer``s that hls4ml converts
    bit-exactly (saturating, not wrapping, where a value leaves its recorded range)."""
    from HGQ.proxy import to_proxy_model

    return to_proxy_model(model, aggressive=False)
