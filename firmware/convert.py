"""Artifact -> hls4ml model: Vitis backend, io_parallel, latency strategy, C-simulation via g++.

Precisions come from the QKeras quantizers (hls4ml's ``config_from_keras_model`` with
``granularity="name"``); the input precision is the grid the preprocessing projects onto,
so the firmware sees exactly the inputs the model was trained and scored on. For a VAE
only the encoder (inputs -> mu) goes to firmware: the score sum(mu^2) needs nothing else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from firmware.emulator import Emulator
from models.artifact import Artifact
from trigger.errors import TriggerError

__all__ = ("DEFAULT_PART", "convert", "emulator_for", "firmware_network", "hls_config", "project_name", "to_hls")

DEFAULT_PART = "xcvu9p-flga2104-2L-e"
DEFAULT_CLOCK_NS = 5.0


def firmware_network(artifact: Artifact) -> Any:
    """The Keras model whose outputs the FPGA computes: the AE, or the VAE's mu branch."""
    if "quantized" not in artifact.networks:
        msg = f"{artifact.path}: a float-only model has no firmware; train a quantized one"
        raise TriggerError(msg)
    nets = artifact.networks["quantized"]
    if artifact.config.model.kind == "vae":
        import tensorflow as tf

        mu = nets.scorer.get_layer("z_mean").output
        return tf.keras.Model(nets.scorer.input, mu, name=f"{artifact.config.model.name}_mu")
    return nets.trainable


def hls_config(artifact: Artifact, network: Any,
               precisions: dict[str, str] | None = None) -> dict[str, Any]:
    """hls4ml's per-layer configuration; ``precisions`` overrides types: ``{"LAYER": ...}`` a layer's
    result type, ``{"LAYER.accum": ...}`` its accumulator (any of hls4ml's precision names)."""
    import hls4ml

    config: dict[str, Any] = hls4ml.utils.config_from_keras_model(network, granularity="name", backend="Vitis",
                                                  default_precision="ap_fixed<16,6>")
    config["Model"]["Strategy"] = "Latency"
    input_type = artifact.scaler.input_type
    if input_type is None:
        msg = (
            f"{artifact.path}: the model has no fixed-point input grid "
            "(model.input_type); firmware needs one"
        )
        raise TriggerError(msg)
    input_layer = network.layers[0].name
    config["LayerName"][input_layer]["Precision"]["result"] = (
        f"{'ap_fixed' if input_type.signed else 'ap_ufixed'}<{input_type.width},{input_type.integer}>")
    for key, precision in (precisions or {}).items():
        layer, _, kind = key.partition(".")
        if layer not in config["LayerName"]:
            msg = (
                f"no layer {layer!r} to set a precision on; layers: "
                f"{', '.join(config['LayerName'])}"
            )
            raise TriggerError(msg)
        config["LayerName"][layer]["Precision"][kind or "result"] = precision
    return config


def project_name(artifact: Artifact) -> str:
    """The model's name as an HLS/Verilog identifier (``dense-ae`` -> ``dense_ae``)."""
    return artifact.config.model.name.replace("-", "_")


def convert(artifact: Artifact, out_dir: str | Path, part: str = DEFAULT_PART, clock_ns: float = DEFAULT_CLOCK_NS,
            precisions: dict[str, str] | None = None) -> Any:
    """The artifact's quantized network as an hls4ml ``ModelGraph``; nothing is written yet."""
    import hls4ml

    network = firmware_network(artifact)
    cwd = Path.cwd()
    try:
        return hls4ml.converters.convert_from_keras_model(
            network, hls_config=hls_config(artifact, network, precisions), output_dir=str(out_dir),
            backend="Vitis", io_type="io_parallel", part=part, clock_period=clock_ns,
            project_name=project_name(artifact))
    finally:
        os.chdir(cwd)


def to_hls(artifact: Artifact, out_dir: str | Path, part: str = DEFAULT_PART,
           clock_ns: float = DEFAULT_CLOCK_NS, compile: bool = True,
           precisions: dict[str, str] | None = None) -> Any:
    """Convert the artifact's quantized network; write the HLS project and build the C-sim."""
    model = convert(artifact, out_dir, part, clock_ns, precisions)
    cwd = Path.cwd()
    try:
        if compile:
            model.compile()  # writes the project and builds the C-simulation library with g++
        else:
            model.write()
    finally:
        os.chdir(cwd)
    return model


def emulator_for(artifact: Artifact, part: str = DEFAULT_PART, clock_ns: float = DEFAULT_CLOCK_NS) -> Emulator:
    """The bit-exact emulator of the artifact's firmware, read from the converted graph (no project written)."""
    with tempfile.TemporaryDirectory() as tmp:
        return Emulator.from_hls_model(convert(artifact, Path(tmp) / "hls", part, clock_ns))
