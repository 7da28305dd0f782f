"""Seed 000's supervised DNN: three dense layers of 746 selu units, RMSprop at 3e-4, batches of 1024.

A classifier in scikit-learn's manner (``decision_function`` gives the log-odds of signal, the
output's logit) on the supervised features, standardized with the training events' mean and
spread. Saved as Keras weights and a JSON file of the standardization: loading unpickles nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.seeding import seed_training

__all__ = ("SeedDNN",)

HIDDEN = (746, 746, 746)
WEIGHTS, STANDARDIZATION = "dnn.weights.h5", "dnn.json"


def _network(n_features: int) -> Any:
    import tensorflow as tf

    layers = tf.keras.layers
    hidden = [layers.Dense(w, activation="selu", kernel_initializer="lecun_normal", name=f"dense{i}")
              for i, w in enumerate(HIDDEN, 1)]
    return tf.keras.Sequential([tf.keras.Input((n_features,)), *hidden, layers.Dense(1, name="logit")],
                               name="seed000_dnn")


@dataclass
class SeedDNN:
    """The trained network and the standardization of its inputs."""

    mean: NDArray[np.float32]
    scale: NDArray[np.float32]
    network: Any
    epochs: int

    @classmethod
    def fit(cls, x: NDArray[np.float32], y: NDArray[np.float64], weights: NDArray[np.float64],
            validation: tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]],
            seed: int = 1, max_epochs: int = 100, patience: int = 10) -> SeedDNN:
        """Train on ``(x, y)`` with per-event ``weights``; stop when the weighted loss on
        ``validation`` has not improved for ``patience`` epochs, keeping the best epoch."""
        import tensorflow as tf

        seed_training(seed)
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        network = _network(x.shape[1])
        network.compile(tf.keras.optimizers.RMSprop(3e-4), tf.keras.losses.BinaryCrossentropy(from_logits=True))
        x_val, y_val, w_val = validation
        stop = tf.keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
        history = network.fit((x - mean) / scale, y, sample_weight=weights, batch_size=1024, epochs=max_epochs,
                              validation_data=((x_val - mean) / scale, y_val, w_val), callbacks=[stop], verbose=0)
        return cls(mean.astype(np.float32), scale, network, len(history.history["loss"]))

    def decision_function(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        """The log-odds of signal of each event."""
        logits = self.network.predict((x - self.mean) / self.scale, batch_size=8192, verbose=0)
        return np.asarray(logits[:, 0], np.float64)

    def save(self, folder: Path) -> None:
        self.network.save_weights(folder / WEIGHTS)
        (folder / STANDARDIZATION).write_text(json.dumps(
            {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "hidden": list(HIDDEN),
             "epochs": self.epochs}) + "\n")

    @classmethod
    def load(cls, folder: Path) -> SeedDNN:
        data = json.loads((folder / STANDARDIZATION).read_text())
        mean, scale = (np.asarray(data[k], np.float32) for k in ("mean", "scale"))
        network = _network(len(mean))
        network.load_weights(folder / WEIGHTS)
        return cls(mean, scale, network, int(data["epochs"]))
