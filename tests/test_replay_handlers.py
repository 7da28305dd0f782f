"""One message at a time, no sockets: the worker's and the collector's handlers called directly,
with valid, damaged and fuzzed messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replay_helpers import LIMITS

from replay.bundle import load_emulated
from replay.collector import Collector
from replay.wire import REJECTED, RESULT, TASK, Reject, decode_arrays, decode_header, encode, encode_task
from replay.worker import finite_scores, handle_task
from trigger.errors import TriggerError


@pytest.mark.parametrize("packed", [True, False])
def test_worker_quarantines_non_finite_events(bundle: Path, packed: bool) -> None:
    path = load_emulated(bundle)
    events = synthetic_events(64, seed=7)
    events[5, 2, 1] = np.nan
    events[9, 0, 0] = np.inf
    out = handle_task(path, encode_task({"seq": 0, "bx0": 100, "n": 64, "t_sent": 0}, events, packed), LIMITS)
    assert bytes(out[0]) == RESULT
    header = decode_header(out, {})
    scores, accepted, acc_events, quarantined, q_events = decode_arrays(out, header, 1 << 24)
    assert list(quarantined) == [5, 9]
    np.testing.assert_array_equal(q_events, events[[5, 9]])
    finite = np.delete(np.arange(64), [5, 9])
    np.testing.assert_array_equal(scores[finite], path.scores(events[finite]))
    assert np.isnan(scores[[5, 9]]).all()
    np.testing.assert_array_equal(accepted, np.flatnonzero(scores > path.threshold))
    np.testing.assert_array_equal(acc_events, events[accepted])


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda f: [*f[:3], bytes(f[3])[:-16]], Reject.BAD_SHAPE),  # a filled row missing: the bitmap disagrees
    (lambda f: [f[0], f[1], f[3]], Reject.BAD_HEADER),  # the bitmap missing: the header describes two arrays
    (lambda f: [f[0], encode(TASK, {**decode_header(f, {}), "n": 10**9})[1], *f[2:]], Reject.OVERSIZE),
    (lambda f: [f[0], encode(TASK, decode_header(f, {}), [np.zeros(8, np.uint8)] * 3)[1],
                *([np.zeros(8, np.uint8)] * 3)], Reject.BAD_SHAPE),  # three arrays
])
def test_worker_rejects_a_damaged_packed_task(bundle: Path, damage, reason: Reject) -> None:
    """A TASK whose bitmap and rows do not agree, or that claims more events than the limit
    (refused before anything is unpacked), comes back REJECTED with its reason and batch."""
    frames = [bytes(f) for f in encode_task({"seq": 4, "bx0": 0, "n": 64, "t_sent": 0}, synthetic_events(64))]
    out = handle_task(load_emulated(bundle), damage(frames), LIMITS)
    assert bytes(out[0]) == b"J"
    header = decode_header(out, {})
    assert header["reason"] == reason.value and header["seq"] == 4


def test_huge_finite_values_are_scored_not_quarantined(bundle: Path) -> None:
    """The batch's quick finite check (a sum of squares) overflows on them; the events are finite."""
    path = load_emulated(bundle)
    events = synthetic_events(64, seed=7)
    events[3, 0, 0] = np.finfo(events.dtype).max
    events[8, 1, 1] = -1e30
    scores = finite_scores(path, events)
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores, path.scores(events))


@pytest.mark.parametrize("native", [True, False])
def test_non_finite_events_get_nan_whichever_path_scores(bundle: Path, native: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With the native kernel (which finds them in its scoring pass) or without it, events with a
    NaN or an infinity anywhere score NaN and the others their scores; float64 values beyond
    float32's range are finite."""
    path = load_emulated(bundle)
    if not native:
        monkeypatch.setattr(type(path), "native", None)
    events = synthetic_events(200, seed=12).astype(np.float64)
    events[5, 0, 2] = np.nan
    events[9, 14, 3] = -np.inf  # the class of an empty jet slot
    events[11, 1, 0] = 1e300  # finite, inf once rounded to float32
    scores = finite_scores(path, events)
    bad = np.zeros(len(events), bool)
    bad[[5, 9]] = True
    assert np.isnan(scores[bad]).all() and np.isfinite(scores[~bad]).all()
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(scores[~bad], load_emulated(bundle).compiled_scores(events[~bad]))


def test_a_worker_rehearses_a_whole_batch(bundle: Path) -> None:
    """The rehearsal events are valid events; the worker scores them packed and not, and would
    refuse to start if its own rehearsal were rejected."""
    from replay.scoring import rehearsal_events
    from replay.worker import rehearse

    events = rehearsal_events(1000)
    assert ((events[..., 0] > 0).sum(axis=1) == 7).all()
    out = handle_task(load_emulated(bundle), encode_task({"seq": 0, "bx0": 0, "n": 1000, "t_sent": 0}, events), LIMITS)
    scores = decode_arrays(out, decode_header(out, {}), max_bytes=1 << 20)[0]
    assert out[0] == RESULT and scores.shape == (1000,) and np.isfinite(scores).all()
    rehearse(load_emulated(bundle), LIMITS, 1000)
    with pytest.raises(TriggerError, match="rejected its own rehearsal batch"):
        rehearse(load_emulated(bundle), LIMITS, 2000)  # more events than the limit


frame_bytes = st.binary(max_size=256)


messages = st.lists(frame_bytes, min_size=0, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=messages, kind=st.sampled_from([TASK, RESULT, b"R", b"", b"\x00"]))
def test_worker_survives_garbage(bundle: Path, frames: list[bytes], kind: bytes) -> None:
    path = load_emulated(bundle)
    out = handle_task(path, [kind, *frames], LIMITS)
    # scored only as a TASK whose msgpack header has this wire version and typed fields describing
    # its array frames: random bytes never make one, so every answer is REJECTED, with its reason
    assert bytes(out[0]) == REJECTED, f"{kind!r} with {len(frames)} random frames was answered {bytes(out[0])!r}"
    reason = decode_header(out, {"reason": str})["reason"]
    expected = {Reject.BAD_HEADER.value, Reject.VERSION.value} if kind == TASK else {Reject.UNKNOWN_KIND.value}
    assert reason in expected, f"{kind!r} with {len(frames)} random frames was rejected as {reason!r}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=messages, kind=st.sampled_from([RESULT, b"F", b"J", b"E", b"A", b"\xff"]),
       header=st.dictionaries(st.sampled_from(["seq", "n", "bx0", "t_sent", "reason", "role", "arrays"]),
                              st.one_of(st.integers(-5, 1 << 40), st.text(max_size=5), st.none(),
                                        st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=3)), max_size=7))
def test_collector_survives_garbage(tmp_path: Path, frames: list[bytes], kind: bytes, header: dict) -> None:
    collector = Collector(tmp_path / "run", threshold=1.0, reference_threshold=1.0)
    try:
        collector.handle([kind, *frames])
        collector.handle(encode(kind, header)[:2] + frames[:2])
        assert collector.counts.events_decided == 0
    finally:
        collector.close()


def test_collector_drops_duplicate_batches(tmp_path: Path, bundle: Path) -> None:
    path = load_emulated(bundle)
    events = synthetic_events(50, seed=8)
    result = handle_task(path, encode_task({"seq": 7, "bx0": 0, "n": 50, "t_sent": 0}, events), LIMITS)
    collector = Collector(tmp_path / "run", threshold=path.threshold, reference_threshold=None)
    assert collector.handle(result) == 7
    assert collector.handle(result) == 7  # acknowledged again, counted once
    collector.close()
    assert collector.counts.events_decided == 50
    assert collector.counts.duplicate_batches == 1
