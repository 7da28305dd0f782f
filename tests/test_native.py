"""The native scoring kernel (``firmware.native``): integer SIMD, bit-exact with the emulator on
every event, declining what it cannot prove exact, stepping aside without g++."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import float64_native, synthetic_events

from firmware.compiled import CompiledEmulator
from firmware.emulator import Emulator
from firmware.native import DISABLE, NativeScorer, check_events, unsupported
from replay.bundle import load_emulated, write_bundle
from trigger.fixed import FixedType, Overflow, Rounding
from trigger.sample import default_model


def _events(path: CompiledEmulator) -> np.ndarray:
    """Synthetic events, the scorer's own check events, and the edges: an empty event, NaN and
    infinite values, signed zeros and denormals, values a float32 cast changes."""
    events = np.concatenate([synthetic_events(3000, seed=21), check_events(1000, seed=5)])
    events[0] = 0.0
    events[1, 2, :3] = (np.inf, -np.inf, np.inf)
    events[2, 4, :3] = (1e-45, -0.0, 1e-40)
    events[3, 6, 1] = np.nan  # a NaN angle in a filled slot: rescored on the compiled path
    events[4, 1, 0] = np.nan  # a NaN pT: an empty slot, as everywhere
    rounded = float64_native(events[:400].astype(np.float64), path.scaler)
    return np.concatenate([events.astype(np.float64), rounded])


def _reference(path: CompiledEmulator, events: np.ndarray) -> np.ndarray:
    """The numpy emulator's scores on the scaler's inputs (the reference every path is held to)."""
    outputs = path.emulator.predict(path.scaler.transform(events).astype(np.float64))
    return path.emulator.scores(outputs)


def _assert_exact(path: CompiledEmulator, events: np.ndarray) -> None:
    assert path.native is not None, unsupported(path.scaler, path.emulator)
    native = path.scores(events)
    np.testing.assert_array_equal(native, path.compiled_scores(events))
    finite = np.isfinite(events).all(axis=(1, 2))
    np.testing.assert_array_equal(native[finite], _reference(path, events[finite]))
    assert len(np.unique(native)) > 20  # not a constant: the layers and the score were exercised


def test_native_scores_equal_the_emulator_on_every_event(bundle: Path) -> None:
    path = load_emulated(bundle)
    _assert_exact(path, _events(path))


def test_native_scores_of_the_bundled_default_equal_the_emulator(tmp_path: Path) -> None:
    write_bundle(default_model(), tmp_path)
    path = load_emulated(tmp_path)
    _assert_exact(path, _events(path))


def test_native_says_which_events_are_finite_in_the_pass_that_scores_them(bundle: Path) -> None:
    """Every non-finite value, in a filled or an empty slot, in any feature, flags its event; the
    finite events' scores are the scorer's."""
    path = load_emulated(bundle)
    events = synthetic_events(2000, seed=4)
    rng = np.random.default_rng(4)
    rows = rng.choice(len(events), 300, replace=False)
    for row, value in zip(rows, rng.choice([np.nan, np.inf, -np.inf], len(rows)), strict=True):
        events[row, rng.integers(19), rng.integers(4)] = value
    assert path.native is not None
    scores, finite = path.native.checked(events)
    np.testing.assert_array_equal(finite, np.isfinite(events).all(axis=(1, 2)))
    assert 0 < finite.sum() < len(events)
    np.testing.assert_array_equal(scores[finite], path.compiled_scores(events[finite]))


@pytest.mark.parametrize("reconstruction", [True, False])
@pytest.mark.parametrize("rounding", [Rounding.TRN, Rounding.RND, Rounding.RND_CONV])
def test_native_layers_and_score_round_and_saturate_as_the_emulator(bundle: Path, reconstruction: bool,
                                                                     rounding: Rounding) -> None:
    """Every rounding mode in a layer and in the error terms (ties included), saturation at both
    ends, a score that squares the outputs."""
    path = load_emulated(bundle)
    emulator = path.emulator
    first = emulator.kernels[0]
    narrow = replace(first, result=FixedType(5, 2, False, rounding, Overflow.SAT), may_overflow=True)
    head = replace(emulator.head, reconstruction=reconstruction,
                   error=FixedType(8, 5, True, rounding, Overflow.SAT_SYM))
    varied = CompiledEmulator(path.scaler, replace(emulator, kernels=(narrow, *emulator.kernels[1:]), head=head))
    _assert_exact(varied, _events(varied))


def test_native_declines_what_it_cannot_prove_exact(bundle: Path) -> None:
    """A wrapping layer, an accumulator that may wrap: the kernel says why and the compiled path scores."""
    path = load_emulated(bundle)
    emulator = path.emulator
    first = emulator.kernels[0]
    for kernel, reason in ((replace(first, result=FixedType(5, 1, False, Rounding.TRN, Overflow.WRAP),
                                    may_overflow=True), "overflow"),
                           (replace(first, accum_may_wrap=True), "wrap")):
        declined = CompiledEmulator(path.scaler, replace(emulator, kernels=(kernel, *emulator.kernels[1:])))
        assert reason in (unsupported(declined.scaler, declined.emulator) or "")
        assert declined.native is None
        events = synthetic_events(500, seed=3)
        np.testing.assert_array_equal(declined.scores(events), _reference(declined, events))


def test_native_steps_aside_when_disabled_or_without_gxx(bundle: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = load_emulated(bundle)
    events = synthetic_events(500, seed=9)
    expected = _reference(path, events)
    monkeypatch.setenv(DISABLE, "0")
    assert NativeScorer.of(path.scaler, path.emulator, path.compiled_scores) is None
    monkeypatch.delenv(DISABLE)
    monkeypatch.setenv("TRIGGER_CACHE_DIR", str(tmp_path / "cache"))  # nothing compiled yet
    monkeypatch.setenv("PATH", str(tmp_path))  # and no g++
    bare = CompiledEmulator(path.scaler, Emulator.load(bundle / "emulator.npz"))
    assert bare.native is None
    np.testing.assert_array_equal(bare.scores(events), expected)


def test_a_kernel_that_disagrees_steps_aside_once_with_a_warning(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from firmware.native import NotNative, checked_kernel

    monkeypatch.setenv("TRIGGER_CACHE_DIR", str(tmp_path))  # a cache folder of its own: nothing loaded yet
    loads: list[str] = []

    def load(source: str) -> object:
        loads.append(source)
        return object()

    with pytest.warns(RuntimeWarning, match="disagrees with the reference on its checks; scoring without it"):
        assert checked_kernel(lambda: "model A", load, lambda _: False, "the reference on its checks") is None
    assert checked_kernel(lambda: "model A", load, lambda _: True, "the reference on its checks") is None
    assert loads == ["model A"]  # loaded and checked once; the verdict is kept
    assert checked_kernel(lambda: "model B", load, lambda _: True, "the reference") is not None

    def declined() -> str:
        msg = "not exact"
        raise NotNative(msg)

    assert checked_kernel(declined, load, lambda _: True, "the reference") is None
    monkeypatch.setenv(DISABLE, "0")
    assert checked_kernel(lambda: "model C", load, lambda _: True, "the reference") is None
    assert loads == ["model A", "model B"]
