"""AXOL1TL v5's chain: VICReg augmentations, the residual network, and its firmware bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_events, train_quietly

from firmware.bundle import build_bundle
from firmware.check import csim_outputs
from firmware.compiled import CompiledEmulator
from firmware.convert import to_hls
from firmware.emulator import Emulator
from firmware.native import NativeScorer, unsupported
from models.artifact import load_artifact
from models.config import load_config
from models.networks import build_networks
from models.vicreg import augment, residual_weights, vicreg_loss
from trigger.errors import UsageError
from trigger.schema import PHI, PT
from trigger.validate import FileReport, check_batch

VICREG_MODEL = ['model.kind="vicreg"', 'model.score="residual"', "model.encoder=[12, 6]", "model.decoder=[5]",
                "model.latent=2", "model.vicreg_epochs=2", "training.epochs=2", "training.batch_size=128",
                "training.qat_epochs=0", 'model.input_type="ap_fixed<12,5>"']


@pytest.fixture(scope="module")
def vicreg_dir(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_quietly(VICREG_MODEL, files["sm"], tmp_path_factory.mktemp("vicreg") / "model")


def test_augmented_events_stay_valid_and_keep_what_is_not_augmented() -> None:
    events = synthetic_events(2000, seed=3)
    rng = np.random.default_rng(0)
    view = augment(events, rng, mask=0.3, blur=0.2)
    report = FileReport(Path("view"))
    check_batch(report, view, 0)
    assert not report.violations, report.violations  # zero padding, no gaps, pT order, classes, ranges
    filled, kept = events[:, :, PT] > 0, view[:, :, PT] > 0
    assert kept.sum() < filled.sum() and kept[:, 0].sum() == filled[:, 0].sum()  # objects dropped, never the MET
    assert 0.6 < kept[:, 1:].sum() / filled[:, 1:].sum() < 0.8  # about 30 % of the objects
    assert not np.allclose(view[:, 0, PHI], events[:, 0, PHI])  # the event turned
    same = augment(events, np.random.default_rng(0), mask=0.0, blur=0.0)  # no drop, no smear: only the turn
    np.testing.assert_allclose(np.sort(same[:, :, PT], axis=1), np.sort(events[:, :, PT], axis=1))
    turn = (same[:, 0, PHI] - events[:, 0, PHI] + np.pi) % (2 * np.pi) - np.pi
    moved = (same[:, 9, PHI] - events[:, 9, PHI] + np.pi) % (2 * np.pi) - np.pi
    has_jet = events[:, 9, PT] > 0
    np.testing.assert_allclose(moved[has_jet], turn[has_jet], atol=1e-5)  # one angle for the whole event


def test_the_vicreg_loss_rewards_agreeing_spread_out_decorrelated_views() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(1)
    spread = rng.standard_normal((256, 8)).astype(np.float32) * 2
    agree = float(vicreg_loss(tf.constant(spread), tf.constant(spread)))
    collapsed = float(vicreg_loss(tf.constant(spread * 0.01), tf.constant(spread * 0.01)))
    disagree = float(vicreg_loss(tf.constant(spread), tf.constant(rng.standard_normal((256, 8)).astype(np.float32))))
    assert agree < collapsed and agree < disagree


def test_the_residual_network_is_the_autoencoders_error_on_the_features() -> None:
    rng = np.random.default_rng(2)
    cfg = load_config(None, VICREG_MODEL).model
    features = [[rng.normal(size=(57, 12)), rng.normal(size=12)], [rng.normal(size=(12, 6)), rng.normal(size=6)]]
    latent_ae = [[rng.normal(size=(6, 5)), rng.normal(size=5)], [rng.normal(size=(5, 2)), rng.normal(size=2)],
                 [rng.normal(size=(2, 5)), rng.normal(size=5)], [rng.normal(size=(5, 6)), rng.normal(size=6)]]
    network = build_networks(cfg, quantized=False).scorer
    network.set_weights(residual_weights(features, latent_ae))
    x = rng.normal(size=(50, 57)).astype(np.float32)
    f = np.maximum(np.maximum(x @ features[0][0] + features[0][1], 0) @ features[1][0] + features[1][1], 0)
    h = np.maximum(f @ latent_ae[0][0] + latent_ae[0][1], 0)
    z = h @ latent_ae[1][0] + latent_ae[1][1]  # the linear bottleneck
    h = np.maximum(z @ latent_ae[2][0] + latent_ae[2][1], 0)
    expected = h @ latent_ae[3][0] + latent_ae[3][1] - f
    np.testing.assert_allclose(network.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_a_vicreg_model_is_scored_by_its_residuals_and_its_firmware_matches_on_every_path(
        vicreg_dir: Path, tmp_path: Path) -> None:
    from da4ml.trace import comb_trace

    from firmware.rtl import trace_network

    artifact = load_artifact(vicreg_dir)
    assert artifact.config.model.kind == "vicreg" and set(artifact.networks) == {"quantized", "float"}
    history = json.loads((vicreg_dir / "history.json").read_text())["float"]
    assert len(history["vicreg_loss"]) == 2 and history["val_loss"]
    events = synthetic_events(3000, seed=5)
    events[::7, 9:, PT] *= 40.0  # far beyond the SM: activations and error terms saturate
    x = artifact.scaler.transform(events)
    outputs = artifact.networks["quantized"].scorer.predict(x, verbose=0)
    np.testing.assert_allclose(artifact.score(events, "quantized"), np.sum(np.square(outputs.astype(np.float64)), 1),
                               rtol=1e-6)
    hls_model = to_hls(artifact, tmp_path / "hls")
    np.testing.assert_array_equal(Emulator.from_hls_model(hls_model).predict(x), csim_outputs(hls_model, x))
    bundle = build_bundle(artifact)
    expected = bundle.emulator.predict(x.astype(np.float64))
    compiled = CompiledEmulator(bundle.particle_scaler, bundle.emulator)
    np.testing.assert_array_equal(compiled.scores(events), bundle.emulator.scores(expected))
    native = NativeScorer.of(bundle.particle_scaler, bundle.emulator, compiled.compiled_scores)
    assert native is not None, unsupported(bundle.particle_scaler, bundle.emulator)
    np.testing.assert_array_equal(native(events), compiled.compiled_scores(events))
    np.testing.assert_array_equal(comb_trace(*trace_network(bundle.emulator)).predict(x.astype(np.float64)),
                                  expected)


def test_a_vicreg_model_refuses_what_it_cannot_do() -> None:
    with pytest.raises(UsageError, match="does not fit kind 'vicreg'"):
        load_config(None, ['model.kind="vicreg"', 'model.score="mse"'])
    with pytest.raises(UsageError, match="vicreg_mask"):
        load_config(None, [*VICREG_MODEL, "model.vicreg_mask=1.5"])
