"""float64 events on the wire as float32 plus the values float32 changes (``replay.narrowing``):
exact restores, checked messages, and a replay of a float64 file whose written events are the
file's rows bit for bit."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import float64_native, synthetic_events
from replay_helpers import LIMITS, whole_run

from replay.bundle import load_emulated
from replay.config import WorkingPoint
from replay.narrowing import MAX_CHANGED, Narrowed, NarrowingError, narrow
from replay.wire import RESULT, decode_arrays, decode_header, encode, encode_task
from replay.worker import handle_task


def _public_like(n: int, scaler) -> np.ndarray:
    """float64 events as the public files hold them: values a float32 cast changes, a NaN with a
    payload, a finite value beyond float32's range, signed zeros."""
    events = float64_native(synthetic_events(n, seed=31), scaler)
    events[:, 3, 1] += 1e-12 * (events[:, 3, 0] > 0)  # float64 detail in a filled slot of every event
    payload = np.array([0x7FF8_0000_DEAD_BEEF], np.uint64).view(np.float64)[0]
    events[7, 2, 2] = payload
    events[8, 1, 0] = 1e300
    events[9, 5, 1] = -0.0
    return events


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float64 and np.array_equal(a.view(np.uint64), b.view(np.uint64))


def test_narrow_restores_every_original_bit_for_bit(bundle: Path) -> None:
    events = _public_like(600, load_emulated(bundle).scaler)
    narrowed = narrow(events)
    assert isinstance(narrowed, Narrowed)
    narrowed.check()
    with np.errstate(over="ignore"):  # 1e300 is inf in float32
        np.testing.assert_array_equal(narrowed.values, events.astype(np.float32))
    assert 0 < len(narrowed.where) < 0.05 * events.size  # the filled slots' changed values only
    assert _same_bits(narrowed.restore(np.arange(600)), events)
    rows = np.array([0, 7, 8, 9, 599])
    assert _same_bits(narrowed.restore(rows), events[rows])
    assert _same_bits(narrowed.first(8).restore(np.arange(8)), events[:8])
    assert len(narrowed.restore(np.array([], np.intp))) == 0


def test_narrow_leaves_float32_and_unnarrowable_events_as_they_are() -> None:
    events = synthetic_events(200, seed=2)
    assert narrow(events) is events
    exact = narrow(events.astype(np.float64))  # float32 data in a float64 file: nothing changes
    assert isinstance(exact, Narrowed) and len(exact.where) == 0
    noisy = np.random.default_rng(0).random((200, 19, 4))  # every value changes: above MAX_CHANGED
    assert MAX_CHANGED < 1 and narrow(noisy) is noisy


@pytest.mark.parametrize("packed", [True, False])
def test_a_worker_returns_the_original_rows_of_a_narrowed_task(bundle: Path, packed: bool) -> None:
    """Scores as for the float64 task; accepted and quarantined events bit for bit as sent; a
    finite value beyond float32's range scored, not quarantined."""
    path = load_emulated(bundle)
    events = _public_like(300, path.scaler)
    header = {"seq": 1, "bx0": 0, "n": 300, "t_sent": 0}
    narrowed = narrow(events)
    out = handle_task(path, encode_task(header, narrowed, packed), LIMITS)
    plain = handle_task(path, encode_task(header, events, packed), LIMITS)
    assert bytes(out[0]) == bytes(plain[0]) == RESULT
    got = decode_arrays(out, decode_header(out, {}), 1 << 26)
    expected = decode_arrays(plain, decode_header(plain, {}), 1 << 26)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    scores, accepted, accepted_events, quarantined, quarantined_events = got
    assert list(quarantined) == [7] and np.isfinite(scores[8])
    assert _same_bits(quarantined_events, events[[7]]) and _same_bits(accepted_events, events[accepted])


@pytest.mark.parametrize("damage", [
    lambda h, a: (dict(h, narrowed=1), a),  # not a boolean
    lambda h, a: (h, [*a[:-2], a[-2] + 10**9, a[-1]]),  # positions outside the batch
    lambda h, a: (h, [*a[:-2], a[-2][::-1].copy(), a[-1][::-1].copy()]),  # not increasing
    lambda h, a: (h, [*a[:-1], a[-1] + 1.0]),  # originals that are not what the float32 values stand for
    lambda h, a: (h, [*a[:-2], a[-1]]),  # the positions missing
])
def test_a_damaged_narrowed_task_is_rejected(bundle: Path, damage) -> None:
    path = load_emulated(bundle)
    narrowed = narrow(_public_like(64, path.scaler))
    frames = encode_task({"seq": 3, "bx0": 0, "n": 64, "t_sent": 0}, narrowed, packed=False)
    header, arrays = decode_header(frames, {}), decode_arrays(frames, decode_header(frames, {}), 1 << 26)
    header.pop("arrays")
    header, arrays = damage(header, arrays)
    out = handle_task(path, encode(bytes(frames[0]), header, arrays), LIMITS)
    assert bytes(out[0]) == b"J" and decode_header(out, {})["seq"] == 3


def test_narrowed_check_names_what_is_wrong() -> None:
    values = np.zeros((2, 19, 4), np.float32)
    with pytest.raises(NarrowingError, match="outside"):
        Narrowed(values, np.array([500], np.int64), np.array([0.0])).check()


def test_replay_of_a_float64_file_writes_its_rows_bit_for_bit(tmp_path: Path, artifact_dir: Path,
                                                              bundle: Path) -> None:
    """The public files' float64: accepted and quarantined events in the run's files are the
    input's rows bit for bit, the decisions those of the float32 values (the input rule)."""
    from conftest import write_events

    from trigger.events import read_events

    path = load_emulated(bundle)
    events = _public_like(3000, path.scaler)
    data = write_events(tmp_path / "public.h5", events, "sm-cocktail", np.float64)
    assert _same_bits(read_events(data), events)
    with np.errstate(over="ignore"):  # 1e300 is inf in float32
        scores = path.scores(np.delete(events, 7, axis=0).astype(np.float32))
    threshold = float(np.quantile(scores, 0.9))
    summary = whole_run(tmp_path, artifact_dir, data, "run", reference_backend="none",
                        working_point=WorkingPoint(threshold=threshold))
    assert summary.accounting_ok and summary.events_quarantined == 1 and summary.events_accepted > 200
    with h5py.File(tmp_path / "run" / "accepted.h5") as f:
        bx = f["bx"][:]
        order = np.argsort(bx)
        assert _same_bits(f["Particles"][:][order], events[np.sort(bx)])
    with h5py.File(tmp_path / "run" / "quarantine.h5") as f:
        assert list(f["bx"][:]) == [7] and _same_bits(f["Particles"][:], events[[7]])
