"""HGQ models: a width per weight and per activation, trained, saved, and in firmware bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, synthetic_events, train_quietly

from firmware.bundle import build_bundle
from firmware.check import csim_outputs
from firmware.compiled import CompiledEmulator
from firmware.convert import to_hls
from firmware.element_cast import ElementCast
from firmware.emulator import Emulator
from firmware.hgq import derived_precisions
from firmware.native import NativeScorer, unsupported
from models.artifact import load_artifact
from models.config import load_config
from models.hgq import proxy_network
from trigger.errors import ArtifactError, UsageError
from trigger.fixed import FixedType, Overflow, Rounding

HGQ_MODEL = [*TINY_MODEL, 'model.quantizer="hgq"', "model.hgq_beta=1e-6", 'model.input_type="ap_fixed<12,5>"',
             "training.qat_epochs=2", "model.multiplicity_weight=2.0"]


@pytest.fixture(scope="module")
def hgq_dir(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_quietly(HGQ_MODEL, files["sm"], tmp_path_factory.mktemp("hgq") / "model")


@pytest.fixture(scope="module")
def hgq_hls(hgq_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return to_hls(load_artifact(hgq_dir), tmp_path_factory.mktemp("hgq-fw") / "hls")


def test_hgq_is_only_for_the_dense_autoencoder_and_student_on_an_input_grid() -> None:
    with pytest.raises(UsageError, match="hgq"):
        load_config(None, ['model.quantizer="hgq"', 'model.kind="vae"', 'model.score="mu2"'])
    with pytest.raises(UsageError, match="not a vicreg"):
        load_config(None, ['model.quantizer="hgq"', 'model.kind="vicreg"', 'model.score="residual"'])
    with pytest.raises(UsageError, match="input grid"):
        load_config(None, ['model.quantizer="hgq"', 'model.input_type=""'])
    with pytest.raises(UsageError, match="qkeras or hgq"):
        load_config(None, ['model.quantizer="brevitas"'])


def test_an_hgq_model_keeps_its_ranges_across_save_and_load(hgq_dir: Path) -> None:
    """Keras leaves HGQ's recorded ranges out of the weights: they travel beside them, and the
    loaded model's proxy (its firmware) is the one that was trained."""
    manifest = json.loads((hgq_dir / "manifest.json").read_text())
    assert "quantized.ranges.npz" in manifest["files"]
    first = proxy_network(load_artifact(hgq_dir).networks["quantized"].trainable)
    second = proxy_network(load_artifact(hgq_dir).networks["quantized"].trainable)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    (hgq_dir / "quantized.ranges.npz").rename(hgq_dir / "moved.npz")
    try:
        with pytest.raises(ArtifactError, match="ranges"):
            load_artifact(hgq_dir)
    finally:
        (hgq_dir / "moved.npz").rename(hgq_dir / "quantized.ranges.npz")


def test_hgq_firmware_csim_equals_the_emulator_bit_for_bit(hgq_dir: Path, hgq_hls, tmp_path: Path) -> None:
    artifact = load_artifact(hgq_dir)
    emulator = Emulator.from_hls_model(hgq_hls)
    casts = [k.post for k in emulator.kernels if k.post is not None]
    assert casts, "no per-element quantizer reached the emulator"
    assert any(len(cast.types) > 1 for cast in casts), "the widths are not heterogeneous"
    assert emulator.input_type.width == 12 and emulator.input_type.integer == 5  # the scaler's grid
    x = artifact.inputs(synthetic_events(3000, seed=12)).astype(np.float64)
    x[:4] = np.array([15.9921875, -16.0, 8.0, -0.0078125])[:, None]  # the grid's ends: saturating activations
    csim = csim_outputs(hgq_hls, x)
    np.testing.assert_array_equal(emulator.predict(x), csim)
    emulator.save(tmp_path / "emulator.npz")
    np.testing.assert_array_equal(Emulator.load(tmp_path / "emulator.npz").predict(x), csim)


def test_every_dense_of_the_hgq_firmware_sums_its_products_exactly(hgq_dir: Path) -> None:
    """hls4ml's latency Dense casts each product to accum_t before the sum: the types read off the
    bit-exact flow keep every product's bits, so the sum is the proxy's exact one."""
    artifact = load_artifact(hgq_dir)
    precisions = derived_precisions(proxy_network(artifact.networks["quantized"].trainable),
                                    artifact.scaler.input_type)
    previous = artifact.scaler.input_type
    dense = 0
    for name in [n for n in precisions if "." not in n]:
        if f"{name}.accum" in precisions:
            dense += 1
            product = previous.fractional + FixedType.parse(precisions[f"{name}.weight"]).fractional
            assert FixedType.parse(precisions[f"{name}.accum"]).fractional >= product, name
        if not name.endswith("_linear"):
            previous = FixedType.parse(precisions[name])
    assert dense == 4


def test_hgq_firmware_scores_alike_on_every_path(hgq_dir: Path) -> None:
    """The compiled scorer falls back to the emulator's casts for per-element types, the native
    kernel shifts and clamps each element, the da4ml trace casts it: every path gives the
    emulator's scores."""
    from da4ml.trace import comb_trace

    from firmware.rtl import trace_network

    bundle = build_bundle(load_artifact(hgq_dir))
    events = synthetic_events(2000, seed=13)
    x = bundle.particle_scaler.transform(events).astype(np.float64)
    expected = bundle.emulator.predict(x)
    compiled = CompiledEmulator(bundle.particle_scaler, bundle.emulator)
    np.testing.assert_array_equal(compiled.scores(events), bundle.emulator.scores(expected))
    native = NativeScorer.of(bundle.particle_scaler, bundle.emulator, compiled.compiled_scores)
    assert native is not None, unsupported(bundle.particle_scaler, bundle.emulator)
    np.testing.assert_array_equal(native(events), compiled.compiled_scores(events))
    np.testing.assert_array_equal(comb_trace(*trace_network(bundle.emulator)).predict(x), expected)


def test_element_cast_rounds_saturates_and_zeroes_each_element_by_its_own_type() -> None:
    source = FixedType(12, 6)  # mantissas in units of 2**-6
    result = FixedType(10, 6)  # 4 fractional bits hold every element's type
    cast = ElementCast(source, result, keep_sign=np.array([0, 1, 1]), bits=np.array([3, 4, 0]),
                       integer=np.array([1, 2, 0]), rounding=Rounding.RND, overflow=Overflow.SAT)
    values = np.array([[0.40625, -0.59375, 5.0], [9.0, -9.0, -1.0], [0.15625, 1.71875, 0.5]])
    out = cast(np.round(values * 64)) / 16
    # element 0: ap_ufixed<3,1> (steps of 1/4, 0..1.75); element 1: ap_fixed<4,2> (steps of 1/4,
    # -2..1.75); element 2: no bits, always 0
    np.testing.assert_array_equal(out, [[0.5, -0.5, 0.0], [1.75, -2.0, 0.0], [0.25, 1.75, 0.0]])
    assert cast.beyond(np.round(values * 64)).tolist() == [False, True, False]
    low, high = cast.bounds(np.array([-640.0, -640.0, -640.0]), np.array([640.0, 640.0, 640.0]))
    assert low.tolist() == [0.0, -32.0, 0.0] and high.tolist() == [28.0, 28.0, 0.0]


@pytest.mark.slow
def test_an_hgq_sweep_trial_is_trained_with_its_beta_and_measured_on_its_firmware(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from firmware import sweep

    monkeypatch.setattr(sweep, "SHAPE_SPACE", {"width": (4, 4, 1), "latent": (2, 2, 1)})
    summary = sweep.run_sweep(load_config(None, HGQ_MODEL), files["sm"], [files["signal"]], tmp_path / "sweep",
                              trials=1, epochs=1, fpr=0.01, quantizers=("hgq",), progress=lambda _: None)
    trial = summary.trials[0]
    assert trial["params"]["quantizer"] == "hgq" and 1e-7 <= trial["params"]["hgq_beta"] <= 1e-4
    trained = load_artifact(tmp_path / "sweep" / "trial-0").config
    assert trained.model.quantizer == "hgq" and trained.model.hgq_beta == trial["params"]["hgq_beta"]
    assert 0 <= trial["efficiency"] <= 1 and trial["cost"] > 0 and summary.space["quantizer"] == ["hgq"]
    with pytest.raises(UsageError, match="'hqg': choose qkeras or hgq"):
        sweep.run_sweep(load_config(None, HGQ_MODEL), files["sm"], [files["signal"]], tmp_path / "x", trials=1,
                        epochs=1, fpr=0.01, quantizers=("hqg",))


def test_an_hgq_student_goes_to_firmware_bit_for_bit(artifact_dir: Path, files: dict[str, Path],
                                                      tmp_path: Path) -> None:
    """A student's one output is both the network's end and the term the head squares: HGQ's type for
    it reaches the firmware, and C-sim, emulator, compiled and native scorers agree."""
    student_dir = train_quietly(['model.kind="student"', 'model.score="distilled"', "model.encoder=[8]",
                                 "model.latent=1", "model.decoder=[]", 'model.quantizer="hgq"', "model.hgq_beta=1e-6",
                                 'model.input_type="ap_fixed<12,5>"', "training.epochs=3", "training.qat_epochs=2",
                                 "training.batch_size=64", f"training.teacher={artifact_dir}"],
                                files["sm"], tmp_path / "student")
    student = load_artifact(student_dir)
    events = synthetic_events(3000, seed=17)
    events[::9, 9:, 0] *= 30.0  # beyond the training range: the output saturates where HGQ says
    x = student.inputs(events).astype(np.float64)
    hls_model = to_hls(student, tmp_path / "hls", threshold=float(np.median(student.score(events))))
    csim = csim_outputs(hls_model, x)
    np.testing.assert_array_equal(Emulator.from_hls_model(hls_model).predict(x), csim)
    assert 0.2 < csim[:, 1].mean() < 0.8  # the decision near the median score
    bundle = build_bundle(student)
    compiled = CompiledEmulator(bundle.particle_scaler, bundle.emulator)
    np.testing.assert_array_equal(compiled.scores(events), bundle.emulator.scores(bundle.emulator.predict(x)))
    native = NativeScorer.of(bundle.particle_scaler, bundle.emulator, compiled.compiled_scores)
    if native is None:  # a weight's fine fraction can widen an accumulator past what the kernel holds
        assert "int32" in str(unsupported(bundle.particle_scaler, bundle.emulator))
    else:
        np.testing.assert_array_equal(native(events), compiled.compiled_scores(events))
