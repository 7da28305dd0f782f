"""AXOL1TL v5's chain: VICReg features of the event, and a latent autoencoder scoring them.

A feature extractor (57 -> ``model.encoder`` -> features, ReLU throughout) is trained
self-supervised with VICReg (Bardes, Ponce, LeCun 2022): two views of each event, each made by
physics augmentations (:func:`augment`), pass through the extractor and a projector; the loss
pulls the two projections together (invariance) while keeping every projected dimension's spread
(variance) and decorrelating them (covariance). A small autoencoder (features -> ``model.decoder``
-> ``model.latent`` -> mirror -> features) then learns the SM's features; the anomaly score is its
squared error summed over the features.

On chip the whole chain is one plain dense network (:func:`residual_weights`): each layer after the
features also carries the features through unchanged (identity weights, exact in fixed point: they
are ReLU outputs on the activation grid), and the last layer subtracts them, so the network's
outputs are the autoencoder's residuals and the firmware squares and sums them as it does a
student's output (score ``residual``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.config import ModelConfig
from models.seeding import seed_training
from trigger.preprocess import Scaler
from trigger.schema import BLOCKS, CLASS, PHI, PT

__all__ = ("augment", "residual_weights", "train_chain", "vicreg_loss")

#: the loss weights of VICReg's paper: invariance, variance, covariance
WEIGHTS = (25.0, 25.0, 1.0)


def augment(particles: NDArray[np.float32], rng: np.random.Generator, mask: float,
            blur: float) -> NDArray[np.float32]:
    """Another view of each event (ADC2021 layout, still valid): each object but the MET dropped with
    probability ``mask``, each pT smeared by a Gaussian of relative width ``blur`` (kept positive),
    and the whole event turned about the beam by one random angle; each block re-ordered by pT."""
    out = np.array(particles, np.float32, copy=True)
    n = len(out)
    filled = out[:, :, PT] > 0
    dropped = filled & (rng.random(filled.shape) < mask)
    dropped[:, 0] = False  # the MET stays: it is the event's balance, not an object
    out[dropped] = 0.0
    smear = np.clip(1.0 + blur * rng.standard_normal(filled.shape), 0.1, None).astype(np.float32)
    out[:, 1:, PT] *= smear[:, 1:]
    turn = rng.uniform(-np.pi, np.pi, (n, 1)).astype(np.float32)
    phi = out[:, :, PHI] + turn
    phi = (phi + np.pi) % (2 * np.pi) - np.pi
    out[:, :, PHI] = np.where(out[:, :, PT] > 0, phi, 0.0)
    for block in BLOCKS[1:]:  # the objects' blocks, pT-ordered with the empty slots last
        rows = out[:, block.start:block.stop]
        order = np.argsort(-rows[:, :, PT], axis=1, kind="stable")
        rows = np.take_along_axis(rows, order[:, :, None], axis=1)
        rows[:, :, CLASS] = np.where(rows[:, :, PT] > 0, block.class_code, 0.0)
        out[:, block.start:block.stop] = rows
    return out


def vicreg_loss(a: Any, b: Any) -> Any:
    """VICReg's loss of two batches of projections (tensors of shape (batch, dimensions))."""
    import tensorflow as tf

    invariance = tf.reduce_mean(tf.square(a - b))
    variance = covariance = 0.0
    for z in (a, b):
        centred = z - tf.reduce_mean(z, 0)
        std = tf.sqrt(tf.math.reduce_variance(z, 0) + 1e-4)
        variance += tf.reduce_mean(tf.nn.relu(1.0 - std)) / 2
        batch, dims = tf.cast(tf.shape(z)[0], z.dtype), tf.cast(tf.shape(z)[1], z.dtype)
        cov = tf.matmul(centred, centred, transpose_a=True) / (batch - 1.0)
        covariance += (tf.reduce_sum(tf.square(cov)) - tf.reduce_sum(tf.square(tf.linalg.diag_part(cov)))) / dims / 2
    wi, wv, wc = WEIGHTS
    return wi * invariance + wv * variance + wc * covariance


def _dense_stack(keras: Any, widths: tuple[int, ...], prefix: str, last_relu: bool = True) -> list[Any]:
    return [keras.layers.Dense(w, activation="relu" if (i < len(widths) - 1 or last_relu) else None,
                               name=f"{prefix}{i + 1}") for i, w in enumerate(widths)]


def _apply(layers: list[Any], x: Any) -> Any:
    for layer in layers:
        x = layer(x)
    return x


def _train_features(mc: ModelConfig, views: Any, validation: tuple[NDArray[Any], NDArray[Any]], epochs: int,
                    batch: int, rate: float, seed: int, log: Any) -> tuple[list[Any], list[float], list[float]]:
    """The extractor's layers trained with VICReg; ``views()`` gives each epoch's two views."""
    import tensorflow as tf

    keras = tf.keras
    extractor = _dense_stack(keras, mc.encoder, "feature")
    projector = _dense_stack(keras, (mc.vicreg_projector, mc.vicreg_projector), "projector", last_relu=False)
    optimizer = keras.optimizers.Adam(rate)

    def project(x: Any) -> Any:
        return _apply(projector, _apply(extractor, x))

    project(tf.zeros((1, validation[0].shape[1])))  # builds the weights
    variables = [v for layer in (*extractor, *projector) for v in layer.trainable_variables]

    @tf.function  # type: ignore[untyped-decorator]  # TensorFlow is untyped
    def step(a: Any, b: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = vicreg_loss(project(a), project(b))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    best, best_weights, losses, val_losses = np.inf, [layer.get_weights() for layer in extractor], [], []
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        start = time.monotonic()
        a, b = views()
        order = rng.permutation(len(a))
        total = [float(step(a[idx], b[idx])) for idx in np.array_split(order, max(1, len(a) // batch))]
        val = float(vicreg_loss(*(project(v) for v in validation)))
        losses.append(float(np.mean(total)))
        val_losses.append(val)
        if val < best:
            best, best_weights = val, [layer.get_weights() for layer in extractor]
        print(f"  [vicreg] epoch {epoch + 1:>3}/{epochs}  loss {losses[-1]:.4f}  val_loss {val:.4f}  "
              f"({time.monotonic() - start:.1f} s)", file=log, flush=True)
    for layer, weights in zip(extractor, best_weights, strict=True):
        layer.set_weights(weights)
    return [layer.get_weights() for layer in extractor], losses, val_losses


def _latent_widths(mc: ModelConfig) -> tuple[int, ...]:
    """The latent autoencoder's layer widths after the features: down to the latent, back up."""
    return (*mc.decoder, mc.latent, *reversed(mc.decoder), mc.encoder[-1])


def _train_latent_ae(mc: ModelConfig, features: dict[str, NDArray[np.float32]], epochs: int, batch: int, rate: float,
                     patience: int, log: Any, start: list[Any] | None = None,
                     label: str = "latent AE") -> tuple[list[Any], dict[str, list[float]]]:
    """The latent autoencoder on the SM's features (hidden ReLU, linear bottleneck and output),
    from ``start``'s weights if given."""
    import tensorflow as tf

    keras = tf.keras
    widths = _latent_widths(mc)
    bottleneck = len(mc.decoder)
    inputs = keras.Input((mc.encoder[-1],))
    layers = [keras.layers.Dense(w, activation=None if i in (bottleneck, len(widths) - 1) else "relu")
              for i, w in enumerate(widths)]
    model = keras.Model(inputs, _apply(layers, inputs))
    for layer, weights in zip(layers, start or [], strict=False):
        layer.set_weights(weights)
    model.compile(keras.optimizers.Adam(rate), "mse")
    fit = model.fit(features["train"], features["train"], batch_size=batch, epochs=epochs, verbose=0,
                    validation_data=(features["validation"], features["validation"]),
                    callbacks=[keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)])
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    print(f"  [{label}] {len(history['loss'])} epochs, best val_loss {min(history['val_loss']):.5f}", file=log,
          flush=True)
    return [layer.get_weights() for layer in layers], history


def residual_weights(features: list[Any], latent_ae: list[Any]) -> list[NDArray[np.float32]]:
    """The weights of the one dense network computing ``AE(f) - f`` (f = the features): the extractor's
    layers as they are, then each autoencoder layer widened to carry f along (identity weights; through
    the linear bottleneck too), the last one subtracting it."""
    out: list[NDArray[np.float32]] = [np.asarray(w, np.float32) for layer in features for w in layer]
    n = features[-1][0].shape[1]
    carry = np.eye(n, dtype=np.float32)
    for i, (kernel, bias) in enumerate(latent_ae):
        last = i == len(latent_ae) - 1
        rows = kernel.shape[0] if i == 0 else kernel.shape[0] + n  # the input: f, then [h, f]
        big = np.zeros((rows, kernel.shape[1] + (0 if last else n)), np.float32)
        big[:kernel.shape[0] if i else n, :kernel.shape[1]] = kernel
        if last:
            big[kernel.shape[0]:, :] = -carry
        else:
            big[-n:, kernel.shape[1]:] = carry
        out += [big, np.concatenate([bias, np.zeros(0 if last else n, np.float32)]).astype(np.float32)]
    return out


def train_chain(mc: ModelConfig, scaler: Scaler, particles: dict[str, NDArray[np.float32]], epochs: int,
                batch: int, rate: float, patience: int, seed: int,
                log: Any) -> tuple[dict[str, list[NDArray[np.float32]]], dict[str, list[float]]]:
    """Train the extractor (VICReg, ``model.vicreg_epochs``) and the latent autoencoder (at most
    ``epochs``) on the raw training events: the residual network's weights per variant, and the
    history. The quantized network's autoencoder is the float one trained on further on the
    features as the quantized extractor computes them (rounded to the activations' grid), which
    its residuals are measured against on chip."""
    seed_training(seed)
    rng = np.random.default_rng(seed)

    def views() -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        raw = particles["train"]
        return (scaler.transform(augment(raw, rng, mc.vicreg_mask, mc.vicreg_blur)),
                scaler.transform(augment(raw, rng, mc.vicreg_mask, mc.vicreg_blur)))

    val_rng = np.random.default_rng(seed + 1)
    first, second = (scaler.transform(augment(particles["validation"], val_rng, mc.vicreg_mask, mc.vicreg_blur))
                     for _ in range(2))
    extractor, losses, val_losses = _train_features(mc, views, (first, second), mc.vicreg_epochs, batch, rate, seed, log)
    inputs = {name: scaler.transform(raw) for name, raw in particles.items()}
    features = {name: _forward(extractor, x) for name, x in inputs.items()}
    latent_ae, history = _train_latent_ae(mc, features, epochs, batch, rate, patience, log)
    history |= {"vicreg_loss": losses, "vicreg_val_loss": val_losses}
    weights = {"float": residual_weights(extractor, latent_ae)}
    if mc.quantized:
        quantized = _quantized_features(mc, weights["float"], inputs)
        tuned, tuned_history = _train_latent_ae(mc, quantized, epochs, batch, rate, patience, log, start=latent_ae,
                                                label="latent AE on the quantized features")
        weights["quantized"] = residual_weights(extractor, tuned)
        history |= {f"quantized_features_{k}": v for k, v in tuned_history.items()}
    return weights, history


def _quantized_features(mc: ModelConfig, weights: list[NDArray[np.float32]],
                        inputs: dict[str, NDArray[np.float32]]) -> dict[str, NDArray[np.float32]]:
    """The features as the quantized network computes them (QKeras's own quantizers)."""
    import tensorflow as tf

    from models.networks import build_networks

    network = build_networks(mc, quantized=True).scorer
    network.set_weights(weights)
    extractor = tf.keras.Model(network.input, network.get_layer(f"enc_act{len(mc.encoder)}").output)
    return {name: extractor.predict(x, batch_size=4096, verbose=0) for name, x in inputs.items()}


def _forward(layers: list[Any], x: NDArray[np.float32]) -> NDArray[np.float32]:
    """The extractor (ReLU after every layer) in numpy."""
    for kernel, bias in layers:
        x = np.maximum(x @ kernel + bias, 0.0).astype(np.float32)
    return x
