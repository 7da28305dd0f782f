"""A float Keras network (Dense and ReLU-type layers) as a numpy forward pass.

The replay's reference path runs the float twin on CPU without TensorFlow: the layer
graph and weights are read once from the Keras model (``from_keras``), saved to one
``.npz`` with a JSON description (no pickle), and evaluated in float32 like Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import TriggerError
from trigger.npz import load_arrays, save_arrays

__all__ = ("NumpyNetwork",)

FORMAT = "trigger.NumpyNetwork/1"
F32 = NDArray[np.float32]


@dataclass(frozen=True)
class Step:
    """One layer: ``kind`` is dense, relu, leaky_relu or linear; ``source`` the layer it reads."""

    name: str
    kind: str
    source: str
    alpha: float = 0.0
    relu_after: bool = False  # a Dense with activation="relu"


@dataclass(frozen=True)
class NumpyNetwork:
    """Layers in topological order, their weights, and the names of the output layers."""

    input_name: str
    steps: tuple[Step, ...]
    weights: dict[str, tuple[F32, F32]]
    outputs: tuple[str, ...]

    @classmethod
    def from_keras(cls, model: Any) -> NumpyNetwork:
        """Read a functional Keras model made of Dense, ReLU, LeakyReLU and Activation layers."""
        if len(model.inputs) != 1:
            msg = f"{model.name}: expected one input, found {len(model.inputs)}"
            raise TriggerError(msg)
        steps, weights = [], {}
        input_name = model.layers[0].name
        for layer in model.layers[1:]:
            kind, alpha, relu_after = _layer_kind(layer)
            inbound = layer.inbound_nodes[0].inbound_layers
            if isinstance(inbound, list):
                msg = f"{model.name}: layer {layer.name} has several inputs"
                raise TriggerError(msg)
            if kind == "dense":
                kernel, bias = layer.get_weights()
                weights[layer.name] = (kernel.astype(np.float32), bias.astype(np.float32))
            steps.append(Step(layer.name, kind, inbound.name, alpha, relu_after))
        outputs = tuple(t.name.split("/")[0] for t in model.outputs)
        return cls(input_name, tuple(steps), weights, outputs)

    def predict(self, x: NDArray[np.floating[Any]]) -> list[F32]:
        """The outputs for a batch of inputs (float32, as Keras computes them)."""
        values: dict[str, F32] = {self.input_name: np.asarray(x, np.float32)}
        for step in self.steps:
            v = values[step.source]
            if step.kind == "dense":
                kernel, bias = self.weights[step.name]
                v = v @ kernel
                v += bias
                if step.relu_after:
                    np.maximum(v, 0, out=v)
            elif step.kind == "relu":
                v = np.maximum(v, 0)
            elif step.kind == "leaky_relu":
                v = np.where(v >= 0, v, v * np.float32(step.alpha))
            values[step.name] = v
        return [values[name] for name in self.outputs]

    def save(self, path: str | Path) -> None:
        meta = {"input": self.input_name, "outputs": list(self.outputs), "steps": [s.__dict__ for s in self.steps]}
        arrays = {f"{name}.{part}": w for name, pair in self.weights.items() for part, w in zip("kb", pair, strict=False)}
        save_arrays(path, FORMAT, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> NumpyNetwork:
        meta, data = load_arrays(path, FORMAT)
        try:
            steps = tuple(Step(**s) for s in meta["steps"])
            weights = {s.name: (data[f"{s.name}.k"], data[f"{s.name}.b"]) for s in steps if s.kind == "dense"}
            return cls(meta["input"], steps, weights, tuple(meta["outputs"]))
        except (KeyError, TypeError) as e:
            msg = f"{path}: damaged numpy network ({e})"
            raise TriggerError(msg) from None


def _layer_kind(layer: Any) -> tuple[str, float, bool]:
    cls = type(layer).__name__
    if cls == "Dense":
        activation = layer.get_config()["activation"]
        if activation not in ("linear", "relu"):
            msg = f"layer {layer.name}: activation {activation!r} not supported"
            raise TriggerError(msg)
        return "dense", 0.0, activation == "relu"
    if cls == "ReLU":
        config = layer.get_config()
        if config.get("max_value") is not None or config.get("threshold", 0) or config.get("negative_slope", 0):
            msg = f"layer {layer.name}: only a plain ReLU is supported"
            raise TriggerError(msg)
        return "relu", 0.0, False
    if cls == "LeakyReLU":
        return "leaky_relu", float(layer.get_config()["alpha"]), False
    if cls == "Activation" and layer.get_config()["activation"] in ("relu", "linear"):
        return layer.get_config()["activation"], 0.0, False
    msg = f"layer {layer.name} ({cls}) has no numpy forward pass here"
    raise TriggerError(msg)
