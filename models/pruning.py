"""Magnitude pruning of a QKeras network's large layers while it trains (TensorFlow Model Optimization).

A weight the firmware multiplies by zero costs no logic: hls4ml's and da4ml's constant
multiplications drop it. :func:`pruned_fit` wraps every ``QDense``/``QConv2D`` with at least
``min_weights`` kernel entries in ``tfmot.sparsity.keras.prune_low_magnitude`` at a constant
``sparsity`` (the smallest weights zeroed at the first step, the mask refreshed every ``frequency``
steps), trains the wrapped copy, and writes its stripped weights back into the original network,
which keeps its layers and names. Small layers (the convolution's 16 weights, the output's 16) are
left whole: each of their weights is shared by many products.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ("kernel_sparsity", "pruned_fit")

MIN_WEIGHTS = 256


def _prunable(layer: Any, min_weights: int) -> bool:
    from qkeras import QConv2D, QDense

    return isinstance(layer, QDense | QConv2D) and int(np.prod(layer.kernel.shape)) >= min_weights


def pruned_fit(model: Any, sparsity: float, fit: Callable[[Any, list[Any]], None], min_weights: int = MIN_WEIGHTS,
               frequency: int = 20) -> Any:
    """Train ``model`` with its large layers pruned to ``sparsity``: ``fit(network, callbacks)`` compiles
    and fits the wrapped network with the pruning callbacks added. Returns ``model``, trained."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    from qkeras.utils import _add_supported_quantized_objects

    if not 0.0 < sparsity < 1.0:
        msg = f"sparsity must be in (0, 1), got {sparsity}"
        raise ValueError(msg)
    # the wrapper counts steps from 1: pruned at the first training step, so every epoch early stopping may
    # restore is already at the sparsity
    schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=1, frequency=frequency)

    def wrap(layer: Any) -> Any:
        copy = layer.__class__.from_config(layer.get_config())
        if _prunable(layer, min_weights):
            return tfmot.sparsity.keras.prune_low_magnitude(copy, pruning_schedule=schedule)
        return copy

    objects: dict[str, Any] = {}
    _add_supported_quantized_objects(objects)
    with tf.keras.utils.custom_object_scope(objects):
        wrapped = tf.keras.models.clone_model(model, clone_function=wrap)
        fit(wrapped, [tfmot.sparsity.keras.UpdatePruningStep()])
        stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    model.set_weights(stripped.get_weights())
    return model


def kernel_sparsity(model: Any) -> dict[str, float]:
    """The fraction of each ``QDense``/``QConv2D`` layer's quantized kernel entries that are zero (the
    products the firmware drops), by layer name."""
    return {layer.name: float(np.mean(np.asarray(layer.kernel_quantizer_internal(layer.kernel)) == 0))
            for layer in model.layers if _prunable(layer, 0)}
