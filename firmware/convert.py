"""Artifact -> hls4ml model: Vitis backend, io_parallel, latency strategy, C-simulation via g++.

Precisions come from the QKeras quantizers (hls4ml's ``config_from_keras_model`` with
``granularity="name"``); the input precision is the grid the preprocessing projects onto,
so the firmware sees exactly the inputs the model was trained and scored on. For a VAE
only the encoder (inputs -> mu) goes to firmware: the score sum(mu^2) needs nothing else; a
distilled student's one output is squared the same way.
The score and the accept decision are layers of the converted model (``firmware.head``), and so is
a model's multiplicity prior: its two outputs are the score and the trigger bit.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from firmware.head import (
    FIRMWARE_SCORES,
    SCORE,
    HeadTypes,
    PriorTables,
    error_layers,
    score_divisor,
    threshold_mantissa,
    with_decision,
)
from models.artifact import Artifact
from models.region_artifact import RegionArtifact, TriggerModel
from models.regions import REGION_GRID
from trigger.errors import TriggerError
from trigger.fixed import FixedType

__all__ = ("DEFAULT_PART", "convert", "convert_network", "firmware_network", "head_types", "hls_config",
           "network_hls_config", "project_name", "to_hls")

DEFAULT_PART = "xcvu9p-flga2104-2L-e"
DEFAULT_CLOCK_NS = 5.0


def _network(artifact: Artifact) -> tuple[Any, dict[str, str]]:
    """The quantized Keras network whose outputs feed the score -- the AE, the VAE's mu branch, the
    student -- and the types of its layers where hls4ml does not read them off quantizers (HGQ)."""
    if "quantized" not in artifact.networks:
        msg = f"{artifact.path}: a float-only model has no firmware; train a quantized one"
        raise TriggerError(msg)
    score = artifact.config.model.score
    if score not in FIRMWARE_SCORES:
        msg = (f"{artifact.path}: the score {score!r} has no firmware form; "
               f"the firmware computes {' or '.join(FIRMWARE_SCORES)}")
        raise TriggerError(msg)
    nets = artifact.networks["quantized"]
    if artifact.config.model.quantizer == "hgq":
        from firmware.hgq import hgq_firmware_network
        from models.hgq import proxy_network

        return hgq_firmware_network(proxy_network(nets.trainable), _input_grid(artifact))
    if artifact.config.model.kind == "vae":
        import tensorflow as tf

        mu = nets.scorer.get_layer("z_mean").output
        return tf.keras.Model(nets.scorer.input, mu, name=f"{artifact.config.model.name}_mu"), {}
    return nets.trainable, {}


def _reconstruction(artifact: Artifact) -> bool:
    """Whether the score compares outputs with inputs (mse), or squares the outputs (mu2, distilled)."""
    return artifact.config.model.score == "mse"


def head_types(artifact: Artifact, network: Any, precisions: dict[str, str] | None = None) -> HeadTypes:
    """The declared types of the firmware's score: model.error_type and model.score_type, unless
    ``precisions`` (``hls_config``'s overrides) set the error or score layer's type."""
    model, precisions = artifact.config.model, precisions or {}
    error = precisions.get(error_layers(network, _reconstruction(artifact))[0], model.error_type)
    return HeadTypes.declare(error, precisions.get(SCORE, model.score_type),
                             int(network.output.shape[-1]))


def _region_network(artifact: RegionArtifact, threshold: float) -> tuple[Any, dict[str, str]]:
    """A region student's firmware: its one output (on ``spec.output_type``) squared, and the decision."""
    types = HeadTypes.declare(artifact.spec.output_type, "", 1)
    return with_decision(artifact.student, False, types, threshold_mantissa(threshold, types.score, 1))


def firmware_network(artifact: TriggerModel, threshold: float | None = None,
                     precisions: dict[str, str] | None = None) -> tuple[Any, dict[str, str]]:
    """The Keras model the FPGA computes, ``inputs -> (score, accept)``, and the precisions of its
    score layers (those in ``precisions`` override the declared ones). ``threshold`` (default: the
    artifact's calibrated one, else none: no event is accepted) is in the software's score units."""
    if threshold is None:
        threshold = artifact.threshold("quantized") if "quantized" in artifact.thresholds else float("inf")
    if isinstance(artifact, RegionArtifact):
        return _region_network(artifact, threshold)
    network, network_precisions = _network(artifact)
    types = head_types(artifact, network, precisions)
    reconstruction = _reconstruction(artifact)
    divisor = score_divisor(reconstruction, int(network.output.shape[-1]))
    if artifact.prior is None:
        model, head_precisions = with_decision(network, reconstruction, types,
                                               threshold_mantissa(threshold, types.score, divisor))
    else:
        prior = PriorTables.of(artifact.prior, types.score, divisor)
        mantissa = threshold_mantissa(threshold, prior.total_type(types.score), divisor)
        model, head_precisions = with_decision(network, reconstruction, types, mantissa, prior,
                                               artifact.scaler.input_type)
    return model, network_precisions | head_precisions


def hls_config(artifact: TriggerModel, network: Any,
               precisions: dict[str, str] | None = None) -> dict[str, Any]:
    """hls4ml's per-layer configuration; ``precisions`` overrides types: ``{"LAYER": ...}`` a layer's
    result type, ``{"LAYER.accum": ...}`` its accumulator (any of hls4ml's precision names)."""
    return network_hls_config(network, _input_grid(artifact), precisions)


def _input_grid(artifact: TriggerModel) -> FixedType:
    if artifact.scaler is None:  # a region model: the counts themselves
        return FixedType.parse(REGION_GRID)
    if artifact.scaler.input_type is None:
        msg = f"{artifact.path}: the model has no fixed-point input grid (model.input_type); firmware needs one"
        raise TriggerError(msg)
    return artifact.scaler.input_type


def network_hls_config(network: Any, input_type: FixedType, precisions: dict[str, str] | None = None) -> dict[str, Any]:
    """:func:`hls_config` for any Keras ``network`` whose inputs are on ``input_type``'s grid."""
    import hls4ml
    import tensorflow as tf

    config: dict[str, Any] = hls4ml.utils.config_from_keras_model(network, granularity="name", backend="Vitis",
                                                  default_precision="ap_fixed<16,6>")
    config["Model"]["Strategy"] = "Latency"
    for layer in network.layers:  # a convolution fully parallel: one partition, so the top pipelines at II = 1
        if isinstance(layer, tf.keras.layers.Conv1D | tf.keras.layers.Conv2D):
            positions = math.prod(layer.output_shape[1:-1])
            config["LayerName"][layer.name]["ParallelizationFactor"] = positions
    input_layer = network.layers[0].name
    config["LayerName"][input_layer]["Precision"]["result"] = (
        f"{'ap_fixed' if input_type.signed else 'ap_ufixed'}<{input_type.width},{input_type.integer}>")
    for key, precision in (precisions or {}).items():
        layer, _, kind = key.partition(".")
        if layer.endswith("_linear") and layer.removesuffix("_linear") in config["LayerName"]:
            config["LayerName"].setdefault(layer, {"Precision": {}})  # an activation hls4ml adds
        if layer not in config["LayerName"]:
            msg = (
                f"no layer {layer!r} to set a precision on; layers: "
                f"{', '.join(config['LayerName'])}"
            )
            raise TriggerError(msg)
        config["LayerName"][layer]["Precision"][kind or "result"] = precision
    return config


def project_name(artifact: TriggerModel) -> str:
    """The model's name as an HLS/Verilog identifier (``dense-ae`` -> ``dense_ae``)."""
    return artifact.name.replace("-", "_")


def convert(artifact: TriggerModel, out_dir: str | Path, part: str = DEFAULT_PART, clock_ns: float = DEFAULT_CLOCK_NS,
            precisions: dict[str, str] | None = None, threshold: float | None = None) -> Any:
    """The artifact's quantized network with its score and decision as an hls4ml ``ModelGraph``;
    nothing is written yet. ``precisions`` override the score layers' declared types too."""
    network, head_precisions = firmware_network(artifact, threshold, precisions)
    return convert_network(network, _input_grid(artifact), out_dir, project_name(artifact),
                           {**head_precisions, **(precisions or {})}, part, clock_ns)


def convert_network(network: Any, input_type: FixedType, out_dir: str | Path, project: str,
                    precisions: dict[str, str] | None = None, part: str = DEFAULT_PART,
                    clock_ns: float = DEFAULT_CLOCK_NS, compile: bool = False, bit_exact: bool = False) -> Any:
    """Any Keras ``network`` on ``input_type``'s grid as an hls4ml ``ModelGraph``, configured as
    every model here is (:func:`network_hls_config`); nothing is written unless ``compile``, which
    writes the project and builds its C-simulation with g++. ``bit_exact``: hls4ml derives every
    type from an HGQ proxy's quantizers instead (``firmware.hgq``). The working directory is kept
    (hls4ml changes it)."""
    import hls4ml

    cwd = Path.cwd()
    try:
        model = hls4ml.converters.convert_from_keras_model(
            network, hls_config=network_hls_config(network, input_type, precisions), output_dir=str(out_dir),
            backend="Vitis", io_type="io_parallel", part=part, clock_period=clock_ns, project_name=project,
            bit_exact=bit_exact)
        if compile:
            model.compile()
        return model
    finally:
        os.chdir(cwd)


def to_hls(artifact: TriggerModel, out_dir: str | Path, part: str = DEFAULT_PART,
           clock_ns: float = DEFAULT_CLOCK_NS, compile: bool = True,
           precisions: dict[str, str] | None = None, threshold: float | None = None) -> Any:
    """Convert the artifact's quantized network; write the HLS project and build the C-sim."""
    model = convert(artifact, out_dir, part, clock_ns, precisions, threshold)
    cwd = Path.cwd()
    try:
        if compile:
            model.compile()  # writes the project and builds the C-simulation library with g++
        else:
            model.write()
    finally:
        os.chdir(cwd)
    return model
