"""The scoring paths a replay runs: the compiled (numba) emulator step by step against the
numpy emulator, the emulated path on float64 inputs, the reference backends, the bundle's files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import float64_native, synthetic_events

from firmware.compiled import Casts, CompiledNetwork, FirstProduct, HeadScore, Workspace
from firmware.emulator import Kernel
from replay.bundle import load_emulated, load_reference
from replay.scoring import grid_mantissas
from trigger.fixed import FixedType, Overflow, Rounding


def test_fused_input_transform_equals_the_scaler(bundle: Path) -> None:
    path = load_emulated(bundle)
    events = synthetic_events(3000, seed=4)
    events[0] = 0.0  # an empty event
    events[1, :, 0] = 1e6  # saturating pT
    events[2, 3, 0] = -5.0  # negative pT in a filled slot is treated as empty by the mask
    expected = path.scaler.transform(events).astype(np.float64) * 2.0**path.scaler.input_type.fractional
    np.testing.assert_array_equal(grid_mantissas(path.scaler, events), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_first_product_equals_the_numpy_path(bundle: Path, dtype: type) -> None:
    """Grid projection and first product (numba, filled slots only) == grid_mantissas, then q @ W."""
    path = load_emulated(bundle)
    events = synthetic_events(3000, seed=8).astype(dtype)
    events[0] = 0.0  # an empty event
    events[1, :, 0] = 1e6  # saturating pT
    events[2, 3, 0] = -5.0  # negative pT: an empty slot
    events[3, 9, :3] = (1e-30, -1e6, 1e6)  # saturating the grid downwards and upwards
    events[4, 12, 0] = np.nan  # NaN pT: an empty slot, as for the numpy path
    q, product = path.first_product(events)
    expected = grid_mantissas(path.scaler, events)
    np.testing.assert_array_equal(q, expected)
    assert q.min() == path.scaler.input_type.int_min and q.max() == path.scaler.input_type.int_max
    np.testing.assert_array_equal(product, expected @ path.emulator.kernels[0].weight.astype(np.float64))
    projection_only, _ = FirstProduct.projection(path.scaler)(events)  # the reference path's inputs
    np.testing.assert_array_equal(projection_only, expected)


def _kernel(result: FixedType, relu: bool, dtype: type, width: int = 7, **changes: object) -> Kernel:
    """A one-layer kernel with ``result`` as its activation type (for the casts alone)."""
    bias = (np.random.default_rng(1).integers(-50, 50, width) / 4).astype(dtype)
    bounds = (np.full(width, float(result.int_min)), np.full(width, float(result.int_max)))
    kernel = Kernel(name="k", weight=np.ones((1, width), dtype), bias=bias, accum=result, accum_scale=1.0,
                    accum_may_wrap=False, mid=None, mid_may_overflow=False, mid_to_result=1.0, relu=relu,
                    result=result, may_overflow=True, out_bounds=bounds)
    return replace(kernel, **changes)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("rounding", [Rounding.TRN, Rounding.RND_CONV])
@pytest.mark.parametrize(("overflow", "signed"), [(Overflow.SAT, True), (Overflow.SAT, False),
                                              (Overflow.SAT_SYM, True), (Overflow.SAT_SYM, False)])
def test_compiled_casts_equal_kernel_finish(dtype: type, relu: bool, rounding: Rounding, overflow: Overflow,
                                            signed: bool) -> None:
    """Bias, ReLU, rounding (ties included) and saturation in one compiled pass == numpy's casts."""
    result = FixedType(6, 2, signed, rounding, overflow)
    products = np.random.default_rng(2).integers(-1600, 1600, (4000, 7)) / 16  # halves: rounding ties
    kernel = _kernel(result, relu, dtype)
    expected = kernel.finish(products.astype(dtype))
    got = Casts.of(kernel)(products.astype(dtype), np.empty(products.shape))
    np.testing.assert_array_equal(got, expected)
    low = 0 if relu else (-result.int_max if overflow is Overflow.SAT_SYM and signed else result.int_min)
    assert got.max() == result.int_max and got.min() == low  # saturated at both ends
    unchecked = replace(kernel, may_overflow=False)  # no saturation when the bounds rule it out
    in_range = np.clip(products, -30, 30).astype(dtype)
    np.testing.assert_array_equal(Casts.of(unchecked, scale=0.25)(in_range, np.empty(products.shape)),
                                  unchecked.finish(in_range.copy()) * 0.25)


def test_casts_leave_other_modes_to_numpy(bundle: Path) -> None:
    """Wrapping, other rounding modes, a narrower Dense result, saturation bounds float32 cannot
    hold: numpy's casts, same outputs."""
    saturating = FixedType(6, 2, True, Rounding.TRN, Overflow.SAT)
    for kernel in (_kernel(FixedType(5, 1, False, Rounding.RND, Overflow.SAT), False, np.float32),
                   _kernel(FixedType(5, 1, False, Rounding.TRN, Overflow.WRAP), False, np.float32),
                   _kernel(saturating, False, np.float32, mid=FixedType(8, 2, True, Rounding.TRN, Overflow.SAT)),
                   _kernel(saturating, False, np.float32, accum_may_wrap=True),
                   _kernel(FixedType(30, 10, True, Rounding.TRN, Overflow.SAT), False, np.float32)):  # 2**29 in f32
        assert Casts.of(kernel) is None
    assert Casts.of(_kernel(FixedType(5, 1, False, Rounding.TRN, Overflow.WRAP), False, np.float32,
                            may_overflow=False)) is not None  # wrap that cannot happen
    path = load_emulated(bundle)
    wrapping = replace(path.emulator.kernels[0], result=FixedType(5, 1, False, Rounding.RND, Overflow.WRAP),
                       may_overflow=True)
    emulator = replace(path.emulator, kernels=(wrapping, *path.emulator.kernels[1:]))
    network = CompiledNetwork.build(emulator)
    assert network.casts[0] is None and all(c is not None for c in network.casts[1:])
    q, product = path.first_product(synthetic_events(3000, seed=12))
    np.testing.assert_array_equal(network.outputs(product, Workspace()),
                                  emulator.network_mantissas(q) * emulator.output_type.lsb)


@pytest.mark.parametrize("reconstruction", [True, False])
@pytest.mark.parametrize("rounding", [Rounding.TRN, Rounding.RND, Rounding.RND_CONV])
def test_compiled_score_equals_the_emulator_head_and_declines_what_it_cannot_do(
        bundle: Path, reconstruction: bool, rounding: Rounding) -> None:
    """The firmware's score compiled (error casts with ties and saturation at both ends, the sum,
    the score type saturating at the top) == the emulator's numpy head."""
    path = load_emulated(bundle)
    head = replace(path.emulator.head, reconstruction=reconstruction,
                   error=FixedType(8, 5, True, rounding, Overflow.SAT_SYM),
                   score=FixedType(14, 10, False, Rounding.TRN, Overflow.SAT))  # saturates at 1024
    emulator = replace(path.emulator, head=head)
    rng = np.random.default_rng(3)
    out_t, in_t = emulator.output_type, emulator.input_type
    q = rng.integers(in_t.int_min, in_t.int_max + 1, (3000, 57)).astype(np.float64)
    noise = rng.integers(-2000, 2000, q.shape) * 2.0 ** (out_t.fractional - 8)  # within +-8
    near = np.round(q * 2.0 ** (out_t.fractional - in_t.fractional)) if reconstruction else 0.0
    out_m = np.clip(near + noise, out_t.int_min, out_t.int_max)
    out_m[:5] = out_t.int_max  # errors saturated at the top, and the score
    out_m[5:10] = out_t.int_min
    compiled = HeadScore.of(emulator)
    assert compiled is not None
    got = compiled((out_m * out_t.lsb).astype(np.float32), q)
    expected = emulator.network_scores(out_m * out_t.lsb, q)
    np.testing.assert_array_equal(got, expected)
    mantissas = head.score_mantissas(out_m, out_t, q, in_t)
    assert mantissas.max() == head.score.int_max and mantissas.min() >= 0
    assert len(np.unique(got)) > 100
    for declined in (replace(head, error=replace(head.error, overflow=Overflow.WRAP)),
                     replace(head, error=replace(head.error, rounding=Rounding.RND_ZERO)),
                     replace(head, score=replace(head.score, rounding=Rounding.RND, width=10, integer=10))):
        assert HeadScore.of(replace(emulator, head=declined)) is None


def test_emulated_scores_do_not_depend_on_the_chunks(bundle: Path) -> None:
    """The workspace is reused across chunks of any size: results never leak between calls."""
    path = load_emulated(bundle)
    events = synthetic_events(5000, seed=14)
    whole = path.scores(events)
    pieces = [path.scores(events[i:j]) for i, j in ((0, 1), (1, 4000), (4000, 4003), (4003, 5000))]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert len(np.unique(whole)) > 1000


def test_float64_native_events_follow_the_input_rule_on_every_replay_step(bundle: Path) -> None:
    """Values a float32 cast changes (as in the public float64 files): the numpy projection, the
    compiled first step and the emulated path all score them as the software does."""
    from firmware.emulator import Emulator

    path = load_emulated(bundle)
    events = float64_native(synthetic_events(400, seed=12), path.scaler)
    fraction = path.scaler.input_type.fractional
    software = path.scaler.transform(events).astype(np.float64) * 2.0**fraction
    rounded = events.astype(np.float32)
    direct = np.floor((events[:50, 1, 1] - path.scaler.center[4]) / path.scaler.mantissa_step[4])
    assert np.all(direct == software[:50, 4] - 1)  # projected without the rule: one grid step lower
    np.testing.assert_array_equal(software, path.scaler.transform(rounded).astype(np.float64) * 2.0**fraction)
    np.testing.assert_array_equal(grid_mantissas(path.scaler, events), software)
    q, _ = path.first_product(events)
    np.testing.assert_array_equal(q, software)
    x = software * 2.0**-fraction
    emulator = Emulator.load(bundle / "emulator.npz")
    np.testing.assert_array_equal(path.scores(events), emulator.scores(emulator.predict(x)))
    np.testing.assert_array_equal(path.scores(events), path.scores(rounded))


def test_emulated_path_matches_the_emulator_on_the_scaler_inputs(bundle: Path, artifact_dir: Path) -> None:
    from firmware.emulator import Emulator

    path = load_emulated(bundle)
    events = synthetic_events(2000, seed=5)
    x = path.scaler.transform(events).astype(np.float64)
    reloaded = Emulator.load(bundle / "emulator.npz")
    outputs = reloaded.predict(x)
    np.testing.assert_array_equal(path.scores(events), reloaded.scores(outputs))
    np.testing.assert_array_equal(path.scores(events) > path.threshold, outputs[:, 1] == 1)  # the firmware's bit


@pytest.mark.parametrize("backend", ["numpy", "tensorflow"])
def test_reference_backends_match_the_keras_float_twin(bundle: Path, artifact_dir: Path, backend: str) -> None:
    from models.artifact import load_artifact

    events = synthetic_events(2000, seed=6)
    reference = load_reference(bundle, backend)
    keras_scores = load_artifact(artifact_dir).score(events, "float")
    np.testing.assert_allclose(reference.scores(events), keras_scores, rtol=1e-4, atol=1e-6)
    assert reference.threshold == load_artifact(artifact_dir).threshold("float")


def test_bundle_files_are_checked(tmp_path: Path, bundle: Path) -> None:
    from firmware.emulator import Emulator
    from models.numpy_forward import NumpyNetwork
    from trigger.errors import TriggerError

    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for loader in (Emulator.load, NumpyNetwork.load):
        with pytest.raises(TriggerError, match="cannot read"):
            loader(tmp_path / "junk.npz")
    with pytest.raises(TriggerError, match=r"not a trigger\.Emulator"):
        Emulator.load(bundle / "reference.npz")
