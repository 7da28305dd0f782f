"""Issue 29: the firmware's widths at both ends are watched (no SM or signal value saturates
unnoticed), and a trained VAE keeps information in every latent dimension (no collapsed posterior)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from models.scores import kl_per_dimension
from trigger.events import read_events
from trigger.schema import ETA, PT

ROOT = Path(__file__).resolve().parents[1]
#: nats per latent dimension; the collapsed dimension of the first bundled VAE had 0.000
KL_FLOOR = 0.1


def test_every_firmware_stage_reports_saturation_at_both_ends_and_ends_in_the_firmwares_score(
        artifact_dir: Path, files: dict[str, Path]) -> None:
    from firmware.bundle import build_bundle
    from firmware.saturation import layer_saturation
    from models.artifact import load_artifact

    bundle = build_bundle(load_artifact(artifact_dir))
    sm, signal = read_events(files["sm"], 0, 300), read_events(files["signal"], 0, 300)
    extreme = sm[:4].copy()
    extreme[:2, 1, PT] = 1e30  # a leading electron pT (log1p: 69) beyond the grid's top
    extreme[2:, 1, ETA] = -1e4  # and an eta far below its bottom
    events = np.concatenate([sm, signal, extreme])
    stages = layer_saturation(bundle, events)

    assert [s.name for s in stages] == ["inputs", *(k.name for k in bundle.emulator.kernels), "error terms", "score"]
    inputs, score = stages[0], stages[-1]
    assert inputs.saturated[-4:].all()  # both ends of the input grid are seen
    assert inputs.largest[-4:].min() > inputs.limit
    assert not inputs.saturated[:-4].any()  # SM and signal fit the grid
    assert not score.saturated.any()  # the score's type holds every sum of squares exactly
    # the last stage is the firmware's own score, bit for bit
    np.testing.assert_array_equal(score.largest / bundle.emulator.head.divisor, bundle.scores(events))
    for stage in stages:  # what is not flagged is inside the type's range
        assert len(stage.saturated) == len(events)
        assert np.all(stage.largest[~stage.saturated] <= stage.limit), stage.name


def test_kl_per_dimension_finds_a_collapsed_dimension() -> None:
    rng = np.random.default_rng(0)
    mu, log_var = rng.normal(0, 2, (5000, 3)), np.full((5000, 3), -2.0)
    mu[:, 2], log_var[:, 2] = 0.0, 0.0  # the posterior of dimension 2 is the prior: no information
    kl = kl_per_dimension(mu, log_var)
    assert kl[2] == 0.0
    assert kl[:2].min() > 1.0
    np.testing.assert_allclose(kl[:2], 0.5 * (4 + np.exp(-2) - 1 + 2), rtol=0.05)


def test_the_vae_keeps_information_in_every_latent_dimension(files: dict[str, Path], tmp_path: Path) -> None:
    from models.config import load_config
    from models.train import train

    config = load_config(ROOT / "models" / "configs" / "vae.toml",
                         ["training.epochs=6", "training.batch_size=128"])
    artifact = train(config, files["sm"], tmp_path / "vae", log=io.StringIO())
    x = artifact.inputs(read_events(files["sm"], 1200))
    for variant in artifact.variants:
        mu, log_var = artifact.networks[variant].scorer.predict(x, verbose=0)
        kl = kl_per_dimension(mu, log_var)
        assert kl.min() > KL_FLOOR, f"{variant}: KL per latent dimension {np.round(kl, 3)}"


def test_post_training_quantization_is_the_float_twin_quantized(files: dict[str, Path], tmp_path: Path) -> None:
    """``training.qat_epochs = 0``: the quantized model's weights are its float twin's, quantized, untrained."""
    from conftest import TINY_MODEL

    from models.config import load_config
    from models.train import train

    config = load_config(ROOT / "models" / "configs" / "tiny_ae.toml", [*TINY_MODEL, "training.epochs=1"])
    artifact = train(config, files["sm"], tmp_path / "ptq", log=io.StringIO())
    quantized, twin = artifact.networks["quantized"].trainable, artifact.networks["float"].trainable
    layers = [layer for layer in quantized.layers if layer.get_weights()]
    assert layers
    for layer in layers:
        kernel, bias = twin.get_layer(layer.name).get_weights()
        np.testing.assert_array_equal(np.asarray(layer.kernel_quantizer_internal(layer.kernel)),
                                      np.asarray(layer.kernel_quantizer_internal(kernel)))
        np.testing.assert_array_equal(np.asarray(layer.bias_quantizer_internal(layer.bias)),
                                      np.asarray(layer.bias_quantizer_internal(bias)))
