"""The replay's inputs and messages, without scoring: rates and settings, the wire format
(frames, their checks), the event stream, the latency histogram."""

from __future__ import annotations

import numpy as np
import pytest

from replay.config import ReplayConfig, parse_replay_rate
from replay.stream import EventStream
from replay.wire import TASK, FrameError, Reject, decode_arrays, decode_header, encode
from trigger.errors import UsageError


@pytest.mark.parametrize(("text", "hz", "simulated"), [("40MHz-sim", 40e6, True), ("100kHz", 1e5, False),
                                                 ("1MHz", 1e6, False), ("40mhz-SIM", 40e6, True)])
def test_replay_rates_parse(text: str, hz: float, simulated: bool) -> None:
    rate = parse_replay_rate(text)
    assert (rate.hz, rate.simulated) == (hz, simulated)


@pytest.mark.parametrize("text", ["fast", "40MHz-simulated", "-1kHz", "10kHz-sim", "", "1 parsec"])
def test_malformed_rates_are_rejected(text: str) -> None:
    with pytest.raises(UsageError):
        parse_replay_rate(text)


def test_config_rejects_impossible_values() -> None:
    with pytest.raises(UsageError):
        ReplayConfig(batch_size=0)
    with pytest.raises(UsageError):
        ReplayConfig(ack_timeout_s=0)


def test_frames_round_trip_without_copy() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    frames = encode(TASK, {"seq": 3}, [a])
    header = decode_header(frames, {"seq": int})
    (back,) = decode_arrays(frames, header, max_bytes=1 << 20)
    np.testing.assert_array_equal(back, a)
    assert header["seq"] == 3


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda f: [f[0], b"\xc1garbage", *f[2:]], Reject.BAD_HEADER),
    (lambda f: [f[0], f[1], f[2][:-4]], Reject.BAD_SHAPE),
    (lambda f: [f[0], f[1], b"x" * (1 << 21)], Reject.OVERSIZE),
    (lambda f: [f[0], f[1]], Reject.BAD_HEADER),
])
def test_bad_frames_are_rejected_with_a_reason(mutate, reason) -> None:
    frames = encode(TASK, {"seq": 1}, [np.zeros((4, 19, 4), np.float32)])
    bad = mutate([bytes(x) for x in frames])
    with pytest.raises(FrameError) as err:
        decode_arrays(bad, decode_header(bad, {"seq": int}), max_bytes=1 << 20)
    assert err.value.reason is reason


def test_disallowed_dtype_is_rejected() -> None:
    frames = encode(TASK, {"seq": 1}, [np.zeros((4, 19, 4), np.float32)])
    header = decode_header(frames, {})
    header["arrays"][0][0] = "|O"
    with pytest.raises(FrameError) as err:
        decode_arrays(frames, header, max_bytes=1 << 20)
    assert err.value.reason is Reject.BAD_DTYPE


def test_a_preloaded_stream_yields_the_same_batches(files: dict) -> None:
    """Paced runs read cycled inputs into memory first: the batches are the same, the file is not read again."""
    plain, preloaded = EventStream([files["sm"]], 400, 3500), EventStream([files["sm"]], 400, 3500)
    preloaded.preload()
    preloaded.files[0].close()  # everything it yields now comes from memory
    for a, b in zip(plain, preloaded, strict=True):
        np.testing.assert_array_equal(a, b)
    plain.close()
    preloaded.close()


def test_latency_histogram_percentiles_hold_within_half_a_bin() -> None:
    from replay.latency import LatencyHistogram

    latencies = np.random.default_rng(3).lognormal(np.log(20), 1.5, 20_000)
    histogram = LatencyHistogram()
    for ms in latencies:
        histogram.add(float(ms))
    assert len(histogram) == len(latencies) and histogram.max_ms == latencies.max()
    for p in (50, 90, 99):
        assert histogram.percentile(p) == pytest.approx(np.percentile(latencies, p), rel=0.02)
    assert LatencyHistogram().summary() == {"p50": None, "p90": None, "p99": None, "max": None}
