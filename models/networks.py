"""Keras/QKeras networks built from a :class:`ModelConfig`: the quantized model and its float twin.

Only layers hls4ml converts exactly are used: Dense/QDense, ReLU/quantized_relu and a
linear bottleneck; no BatchNorm (it left small C-sim differences, DESIGN 4), and no
quantized linear activation (hls4ml drops it, keeping the accumulator precision).
A VAE is trained whole; only its encoder (57 -> mu) is meant for the firmware. A student is a
dense net to one linear output that regresses its teacher's score (models.distill). A vicreg
model is its feature extractor and latent autoencoder as one network (models.vicreg). The float
references add the seed-003 CNN and Transformer autoencoders and a RealNVP normalizing flow.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from models.config import ModelConfig
from trigger.schema import N_INPUTS, N_OBJECTS

__all__ = ("DISTILLED", "Networks", "build_networks", "coupling_masks")

DISTILLED = "distilled"  # a student's output layer


class Networks(NamedTuple):
    """``trainable`` maps inputs to reconstructions; ``scorer`` to what the score needs."""

    trainable: Any  # keras.Model
    scorer: Any  # keras.Model: the same model (AE) or the encoder (VAE: [mu, log_var])


def _keras() -> Any:
    import tensorflow as tf

    return tf.keras


def _sampling_layer() -> Any:
    keras = _keras()
    import tensorflow as tf

    Layer: Any = keras.layers.Layer

    class Sampling(Layer):  # type: ignore[misc]  # Keras ships no type information: the base is Any
        """z = mu + exp(log_var / 2) * eps; adds the weighted KL divergence to the loss."""

        def __init__(self, kl_weight: float = 1.0, free_bits: float = 0.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.kl_weight, self.free_bits = kl_weight, free_bits

        def call(self, inputs: Any) -> Any:
            mu, log_var = inputs
            per_dimension = -0.5 * tf.reduce_mean(1 + log_var - tf.square(mu) - tf.exp(log_var), 0)
            kl = tf.reduce_sum(per_dimension)
            # free bits: no dimension is pushed below free_bits nats, so none collapses onto the prior
            penalised = tf.reduce_sum(tf.maximum(per_dimension, self.free_bits)) if self.free_bits else kl
            self.add_loss(self.kl_weight * penalised / N_INPUTS)  # per input, like the MSE term
            self.add_metric(kl, name="kl")
            eps = tf.random.normal(tf.shape(mu))
            return mu + tf.exp(0.5 * log_var) * eps

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "kl_weight": self.kl_weight, "free_bits": self.free_bits}

    return Sampling


class _LayerFactory:
    """Dense layers and activations, quantized (QKeras) or float, named for hls4ml."""

    def __init__(self, cfg: ModelConfig, quantized: bool) -> None:
        self.cfg, self.quantized = cfg, quantized
        self.keras = _keras()
        self.l2 = self.keras.regularizers.l2(cfg.l2) if cfg.l2 > 0 else None

    def dense(self, units: int, name: str, init_scale: float = 1.0) -> Any:
        # the default initialiser unless a scale is asked for (the quantized model starts from the twin's weights)
        init = {} if init_scale == 1.0 else {"kernel_initializer": self.keras.initializers.VarianceScaling(
            init_scale, mode="fan_avg", distribution="uniform")}
        if not self.quantized:
            return self.keras.layers.Dense(units, name=name, kernel_regularizer=self.l2, **init)
        from qkeras import QDense, quantized_bits

        q = quantized_bits(self.cfg.weight_bits, self.cfg.weight_integer, alpha=1)
        return QDense(units, name=name, kernel_quantizer=q, bias_quantizer=q,
                      kernel_regularizer=self.l2, **init)

    def relu(self, name: str) -> Any:
        if not self.quantized:
            if self.cfg.float_activation == "leaky_relu":
                return self.keras.layers.LeakyReLU(0.3, name=name)
            return self.keras.layers.ReLU(name=name)
        from qkeras import QActivation, quantized_relu

        return QActivation(quantized_relu(self.cfg.activation_bits, self.cfg.activation_integer),
                           name=name)


def _cnn_ae(cfg: ModelConfig, make: _LayerFactory) -> Any:
    """Seed 003's convolutional autoencoder: the event as a 19 x 3 image (slots x pT, eta, phi),
    3 x 3 convolutions (``encoder`` filters), a dense bottleneck, transposed convolutions back
    (``decoder`` filters) to one channel."""
    keras, layers = make.keras, make.keras.layers
    inputs = keras.Input((N_INPUTS,), name="inputs")
    x = layers.Reshape((N_OBJECTS, 3, 1), name="image")(inputs)
    for i, filters in enumerate(cfg.encoder, 1):
        x = layers.Conv2D(filters, 3, padding="same", kernel_regularizer=make.l2, name=f"enc_conv{i}")(x)
        x = make.relu(f"enc_act{i}")(x)
    x = make.dense(cfg.latent, "latent")(layers.Flatten(name="flatten")(x))
    first = cfg.decoder[0] if cfg.decoder else 1
    x = make.relu("dec_act0")(make.dense(N_OBJECTS * 3 * first, "dec_dense")(x))
    x = layers.Reshape((N_OBJECTS, 3, first), name="unflatten")(x)
    for i, filters in enumerate(cfg.decoder[1:], 1):
        x = layers.Conv2DTranspose(filters, 3, padding="same", kernel_regularizer=make.l2, name=f"dec_conv{i}")(x)
        x = make.relu(f"dec_act{i}")(x)
    x = layers.Conv2DTranspose(1, 3, padding="same", kernel_regularizer=make.l2, name="dec_out")(x)
    return keras.Model(inputs, layers.Reshape((N_INPUTS,), name="outputs")(x), name=f"{cfg.name}_float")


def _slot_embedding_layer() -> Any:
    keras = _keras()
    Layer: Any = keras.layers.Layer

    class SlotEmbedding(Layer):  # type: ignore[misc]  # Keras ships no type information: the base is Any
        """Adds a learned vector per slot: which object type (MET, e, mu, jet) and rank a row is."""

        def build(self, input_shape: Any) -> None:
            self.table = self.add_weight(name="table", shape=tuple(input_shape[1:]), initializer="zeros")

        def call(self, inputs: Any) -> Any:
            return inputs + self.table

    return SlotEmbedding


def _attention_blocks(cfg: ModelConfig, make: _LayerFactory, x: Any, prefix: str) -> Any:
    """``cfg.blocks`` post-norm transformer blocks over the 19 slots: self-attention (Q = K = V)
    and a feed-forward layer, each with a residual connection and layer normalisation."""
    layers = make.keras.layers
    width, hidden = cfg.encoder
    for i in range(1, cfg.blocks + 1):
        name = f"{prefix}{i}"
        attention = layers.MultiHeadAttention(cfg.attention_heads, max(1, width // cfg.attention_heads),
                                              kernel_regularizer=make.l2, name=f"{name}_attention")(x, x)
        x = layers.LayerNormalization(name=f"{name}_norm1")(layers.Add(name=f"{name}_res1")([x, attention]))
        y = make.relu(f"{name}_act")(make.dense(hidden, f"{name}_ff1")(x))
        y = make.dense(width, f"{name}_ff2")(y)
        x = layers.LayerNormalization(name=f"{name}_norm2")(layers.Add(name=f"{name}_res2")([x, y]))
    return x


def _transformer_ae(cfg: ModelConfig, make: _LayerFactory) -> Any:
    """Seed 003's transformer autoencoder: each slot embedded (plus a learned slot vector),
    attention blocks, a dense bottleneck of ``latent``, attention blocks again, and each slot's
    pT, eta, phi read back out."""
    keras, layers = make.keras, make.keras.layers
    width = cfg.encoder[0]
    inputs = keras.Input((N_INPUTS,), name="inputs")
    x = make.dense(width, "embed")(layers.Reshape((N_OBJECTS, 3), name="slots")(inputs))
    x = _attention_blocks(cfg, make, _slot_embedding_layer()(name="slot_embedding")(x), "enc_block")
    x = make.dense(cfg.latent, "latent")(layers.Flatten(name="flatten")(x))
    x = layers.Reshape((N_OBJECTS, width), name="unflatten")(make.dense(N_OBJECTS * width, "dec_dense")(x))
    x = _attention_blocks(cfg, make, _slot_embedding_layer()(name="dec_slot_embedding")(x), "dec_block")
    outputs = layers.Reshape((N_INPUTS,), name="outputs")(make.dense(3, "readout")(x))
    return keras.Model(inputs, outputs, name=f"{cfg.name}_float")


def coupling_masks(blocks: int) -> list[NDArray[np.float32]]:
    """Which of the 57 inputs each coupling keeps (1) and transforms (0): alternately every other
    input and every other slot, each pattern followed by its complement, so every input is
    transformed, conditioned on different neighbours."""
    index = np.arange(N_INPUTS)
    patterns = [index % 2, (index // 3) % 2]
    masks = []
    for k in range(blocks):
        pattern = patterns[(k // 2) % 2]
        masks.append((pattern if k % 2 == 0 else 1 - pattern).astype(np.float32))
    return masks


def _coupling_layer() -> Any:
    keras = _keras()
    import tensorflow as tf

    Layer: Any = keras.layers.Layer

    class AffineCoupling(Layer):  # type: ignore[misc]  # Keras ships no type information: the base is Any
        """RealNVP's affine coupling: the inputs ``mask`` keeps condition a dense net whose outputs
        scale (log-scale soft-clamped to ±3) and shift the others; also adds the log-determinant."""

        def __init__(self, mask: NDArray[np.float32], widths: tuple[int, ...], l2: float, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.keep = tf.constant(mask[None, :])
            regularizer = keras.regularizers.L2(l2) if l2 else None
            self.hidden = [keras.layers.Dense(w, activation="relu", kernel_regularizer=regularizer) for w in widths]
            self.log_scale = keras.layers.Dense(len(mask), kernel_initializer="zeros")  # starts as the identity
            self.shift = keras.layers.Dense(len(mask), kernel_initializer="zeros")

        def call(self, inputs: Any) -> Any:
            x, log_det = inputs
            h = x * self.keep
            for layer in self.hidden:
                h = layer(h)
            s = 3.0 * tf.tanh(self.log_scale(h) / 3.0) * (1.0 - self.keep)
            y = x * self.keep + (1.0 - self.keep) * (x * tf.exp(s) + self.shift(h))
            return y, log_det + tf.reduce_sum(s, 1, keepdims=True)

    return AffineCoupling


def _flow(cfg: ModelConfig) -> Any:
    """A RealNVP normalizing flow on the 57 scaled inputs: x -> z, N(0, 1) for SM events. Outputs
    z and log|det dz/dx| side by side (58 columns): -log p(x) is the anomaly score."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((N_INPUTS,), name="inputs")
    x = layers.GaussianNoise(cfg.flow_noise, name="dequantize")(inputs) if cfg.flow_noise else inputs
    log_det = layers.Lambda(lambda t: t[:, :1] * 0.0, name="log_det0")(inputs)
    coupling = _coupling_layer()
    for k, mask in enumerate(coupling_masks(cfg.blocks), 1):
        x, log_det = coupling(mask, cfg.encoder, cfg.l2, name=f"coupling{k}")([x, log_det])
    outputs = layers.Concatenate(name="z_and_log_det")([x, log_det])
    return keras.Model(inputs, outputs, name=f"{cfg.name}_float")


def _residual_layers(cfg: ModelConfig, make: _LayerFactory, features: Any) -> Any:
    """A vicreg model's latent autoencoder after its ``features``, as the firmware computes it: each
    layer also carries the features (``models.vicreg.residual_weights``), the outputs are AE(f) - f."""
    n = cfg.encoder[-1]
    x = features
    for i, width in enumerate(cfg.decoder, 1):
        x = make.relu(f"ae_act{i}")(make.dense(width + n, f"ae_dense{i}")(x))
    x = make.dense(cfg.latent + n, "latent")(x)  # linear, like the autoencoders' bottleneck
    for i, width in enumerate(reversed(cfg.decoder), 1):
        x = make.relu(f"dec_act{i}")(make.dense(width + n, f"dec_dense{i}")(x))
    return make.dense(n, "outputs")(x)


def build_networks(cfg: ModelConfig, quantized: bool) -> Networks:
    """The networks of ``cfg``; ``quantized=False`` gives the float twin of the same shape."""
    keras = _keras()
    if cfg.kind == "flow":  # the density reference: float only
        model = _flow(cfg)
        return Networks(model, model)
    if cfg.kind in ("cnn-ae", "transformer-ae"):  # float references: no quantized variant
        model = (_cnn_ae if cfg.kind == "cnn-ae" else _transformer_ae)(cfg, _LayerFactory(cfg, quantized=False))
        return Networks(model, model)
    if quantized and cfg.quantized and cfg.quantizer == "hgq":  # a width per weight and activation
        from models.hgq import hgq_network

        model = hgq_network(cfg)
        return Networks(model, model)
    make = _LayerFactory(cfg, quantized and cfg.quantized)
    inputs = keras.Input((N_INPUTS,), name="inputs")
    x = inputs
    for i, width in enumerate(cfg.encoder, 1):
        scale = cfg.input_init_scale if i == 1 else 1.0
        x = make.relu(f"enc_act{i}")(make.dense(width, f"enc_dense{i}", scale)(x))
    if cfg.kind == "student":  # one linear output, the firmware's score is its square
        model = keras.Model(inputs, make.dense(1, DISTILLED)(x), name=cfg.name + ("" if make.quantized else "_float"))
        return Networks(model, model)
    if cfg.kind == "vicreg":
        model = keras.Model(inputs, _residual_layers(cfg, make, x), name=cfg.name + ("" if make.quantized else "_float"))
        return Networks(model, model)
    if cfg.kind == "vae":
        mu = make.dense(cfg.latent, "z_mean")(x)
        log_var = make.dense(cfg.latent, "z_log_var")(x)
        z = _sampling_layer()(cfg.kl_weight, cfg.kl_free_bits, name="sampling")([mu, log_var])
        encoder = keras.Model(inputs, [mu, log_var], name=f"{cfg.name}_encoder")
        x = z
    else:
        # A linear bottleneck: hls4ml keeps its full-precision accumulator, as QKeras does.
        x = make.dense(cfg.latent, "latent")(x)
    for i, width in enumerate(cfg.decoder, 1):
        x = make.relu(f"dec_act{i}")(make.dense(width, f"dec_dense{i}")(x))
    outputs = make.dense(N_INPUTS, "outputs")(x)
    model = keras.Model(inputs, outputs, name=cfg.name + ("" if make.quantized else "_float"))
    return Networks(model, encoder if cfg.kind == "vae" else model)

