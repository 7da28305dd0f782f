"""Networks on the calorimeter's 18 x 14 region images (``CaloRegions``): CICADA's student shape.

CMS's CICADA v2 student reads the 252 region energies (10 bits each) through a QConv2D of 4
filters 2 x 2 with stride 2, flattens, then a dense layer of 16 with batch normalization and ReLU,
and a dense output regressing its teacher's log-score. :func:`cicada_student` builds that shape in
QKeras; hls4ml's io_parallel converts it, and ``firmware.emulator`` emulates it bit for bit
(Conv2D and batch norm as Dense kernels, ``firmware.kernel.as_dense``).
"""

from __future__ import annotations

from typing import Any

from trigger.schema import REGION_MAX_COUNT, REGION_N_ETA, REGION_N_PHI

__all__ = ("REGION_GRID", "cicada_student")

REGION_GRID = f"ap_ufixed<{int(REGION_MAX_COUNT).bit_length()},{int(REGION_MAX_COUNT).bit_length()}>"  # the counts


def cicada_student(filters: int = 4, hidden: int = 16, weight_bits: int = 6, activation: tuple[int, int] = (8, 4),
                   name: str = "cicada_student", conv_weight_bits: int | None = None) -> Any:
    """The QKeras student, (18, 14, 1) regions -> one output; weights ``quantized_bits(weight_bits, 1)``
    (the convolution's ``conv_weight_bits`` when given), ReLUs ``quantized_relu(*activation)``."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    bits = quantized_bits(weight_bits, 1, alpha=1)
    conv_bits = quantized_bits(conv_weight_bits or weight_bits, 1, alpha=1)
    x = inputs = tf.keras.Input((REGION_N_PHI, REGION_N_ETA, 1), name="regions")
    x = QConv2D(filters, (2, 2), strides=(2, 2), kernel_quantizer=conv_bits, bias_quantizer=conv_bits, name="conv")(x)
    x = QActivation(quantized_relu(*activation), name="conv_relu")(x)
    x = tf.keras.layers.Flatten(name="flat")(x)
    x = QDense(hidden, kernel_quantizer=bits, bias_quantizer=bits, name="dense")(x)
    x = tf.keras.layers.BatchNormalization(name="norm")(x)
    x = QActivation(quantized_relu(*activation), name="dense_relu")(x)
    outputs = QDense(1, kernel_quantizer=bits, bias_quantizer=bits, name="output")(x)
    return tf.keras.Model(inputs, outputs, name=name)
