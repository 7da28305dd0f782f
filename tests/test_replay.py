"""The replay pipeline: wire format, scoring paths, fuzzed frames, end-to-end runs, a killed worker."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import zmq
from conftest import decided_batches, expected_accepts, float64_native, synthetic_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.compiled import Casts, CompiledNetwork, FirstProduct, HeadScore, Workspace
from firmware.emulator import Kernel
from replay.collector import Collector
from replay.config import ReplayConfig, WorkingPoint, parse_replay_rate
from replay.paths import grid_mantissas, load_emulated, load_reference, write_bundle
from replay.pipeline import ReplayRun, _Roles, run_replay
from replay.process import idle_context, thread_ids
from replay.source import RoleError, run_source
from replay.stream import EventStream
from replay.wire import RESULT, TASK, FrameError, Reject, decode_arrays, decode_header, encode, encode_task
from replay.worker import Limits, finite_scores, handle_task
from trigger.errors import InputFileError, TriggerError, UsageError
from trigger.fixed import FixedType, Overflow, Rounding

LIMITS = Limits(max_events=1024, max_bytes=1024 * 19 * 4 * 8)
#: short timeouts so the reliability tests take seconds
FAST = {"heartbeat_s": 0.1, "liveness": 5, "ack_timeout_s": 2.0, "ready_timeout_s": 60.0, "progress_s": 0.2}


@pytest.fixture(scope="module")
def bundle(artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    write_bundle(artifact_dir, out)
    return out


# -- rates and wire format ---------------------------------------------------------------
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


# -- scoring paths -----------------------------------------------------------------------
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


# -- one message at a time (no sockets) -------------------------------------------------
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


frame_bytes = st.binary(max_size=256)
messages = st.lists(frame_bytes, min_size=0, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=messages, kind=st.sampled_from([TASK, RESULT, b"R", b"", b"\x00"]))
def test_worker_survives_garbage(bundle: Path, frames: list[bytes], kind: bytes) -> None:
    path = load_emulated(bundle)
    out = handle_task(path, [kind, *frames], LIMITS)
    assert bytes(out[0]) in (RESULT, b"J")


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


# -- whole runs --------------------------------------------------------------------------
def _run(tmp: Path, artifact_dir: Path, data: Path, name: str, **kw) -> dict:
    cfg = kw.pop("config", ReplayConfig(batch_size=512, **FAST))
    roles, progress = kw.pop("roles", None), kw.pop("progress", None)
    run = ReplayRun((data,), artifact_dir, tmp / name, cfg, workers=kw.pop("workers", 2),
                    reference_backend=kw.pop("reference_backend", "numpy"), **kw)
    return run_replay(run, progress=progress, roles=roles)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_replay_decides_every_event_once(tmp_path: Path, artifact_dir: Path, files: dict, bundle: Path,
                                         transport: str) -> None:
    progress = io.StringIO()
    summary = _run(tmp_path, artifact_dir, files["sm"], "run", events=4000, transport=transport, progress=progress)
    assert summary["events_in"] == 4000
    assert summary["accounting_ok"] and summary["events_decided"] == 4000
    assert summary["source"]["packed_batches"] is (transport == "tcp")  # packed where bytes cost more
    with h5py.File(tmp_path / "run" / "accepted.h5") as f:
        bx = np.sort(f["bx"][:])
        assert f["Particles"].shape == (len(bx), 19, 4)
        assert (f["score"][:] > summary["threshold"]).all()
    np.testing.assert_array_equal(bx, expected_accepts(bundle, files["sm"], 4000))
    assert summary["events_accepted"] == len(bx)
    # the reference takes a batch only when it is free (on idle CPU time): all of them on an idle machine
    assert summary["reference_events"] + summary["reference_skipped"] == 4000 and summary["reference_events"] > 0
    assert summary["reference_disagreements"] <= 0.05 * summary["reference_events"]
    # the source's own round trip ends at the ACK, after the collector decided and journaled the batch, so
    # each order statistic of the round trips is at least the latencies' (the histogram's p50 is the
    # nearest-rank one, within its bin's 1.2 %)
    latencies = np.sort(np.load(tmp_path / "run" / "batch_latency_ms.npy"))
    assert summary["round_trip_ms"]["p50"] >= 0.98 * latencies[int(np.ceil(0.5 * len(latencies))) - 1]
    assert summary["round_trip_ms"]["max"] >= summary["batch_latency_ms"]["max"]
    # each batch's scoring, on the worker's clock (this host's too), is a part of its latency
    unsorted = np.load(tmp_path / "run" / "batch_latency_ms.npy")
    scoring = np.load(tmp_path / "run" / "batch_scoring_ms.npy")
    assert scoring.shape == unsorted.shape and (scoring > 0).all() and (scoring <= unsorted).all()
    assert summary["batch_scoring_ms"]["max"] == scoring.max() <= summary["batch_latency_ms"]["max"]
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("events_in", "events_decided", "events_quarantined", "events_accepted", "accept_rate_hz_at_bx",
                "events_per_second", "real_time_factor", "reference_disagreements", "batch_latency_ms",
                "batch_scoring_ms"):
        assert key in written
    last_line = progress.getvalue().splitlines()[-1]  # the live progress ends on the final counts
    assert f"{4000:,} decided" in last_line and "quarantined 0" in last_line
    assert f"ref.disagree {summary['reference_disagreements']}" in last_line
    assert not multiprocessing.active_children()


def test_working_point_from_a_threshold_or_an_accept_rate(tmp_path: Path, artifact_dir: Path, files: dict,
                                                          bundle: Path) -> None:
    """``--threshold`` decides at that score; ``--accept-rate`` calibrates on the emulated path's scores
    of the held-out SM events, between two distinct scores; the summary says which was used."""
    from trigger.thresholds import threshold_for

    path = load_emulated(bundle)
    scores = path.scores(synthetic_events(1500, seed=8)[1200:])  # files["sm"]'s held-out split
    cut = float(np.quantile(scores, 0.9))
    fixed = _run(tmp_path, artifact_dir, files["sm"], "fixed", events=1500, reference_backend="none",
                 working_point=WorkingPoint(threshold=cut))
    assert fixed["threshold"] == cut and fixed["working_point"]["source"] == "--threshold"
    every = path.scores(synthetic_events(1500, seed=8))
    assert fixed["events_accepted"] == np.count_nonzero(every > cut)
    point = WorkingPoint(accept_rate="4MHz", calibration=files["sm"])  # FPR 0.1: 30 of 300
    rated = _run(tmp_path, artifact_dir, files["sm"], "rated", events=1500, reference_backend="none",
                 working_point=point)
    expected = threshold_for(scores, 0.1)
    assert rated["threshold"] == expected.threshold and rated["threshold"] not in set(scores.tolist())
    calibration = rated["working_point"]["calibration"]
    assert rated["working_point"]["source"] == "--accept-rate 4MHz of 40MHz"
    above = np.count_nonzero(scores > rated["threshold"])  # 30 of 300, fewer when SM scores tie at the cut
    assert calibration["path"] == "emulator (replay)" and calibration["achieved"]["accepted"] == above
    assert 30 - np.count_nonzero(scores == np.sort(scores)[-30]) < above <= 30
    assert calibration["events"].startswith("held-out test split [1200, 1500) of the training file")
    default = _run(tmp_path, artifact_dir, files["sm"], "default", events=100, reference_backend="none")
    assert default["working_point"]["source"] == "the artifact's calibration"


def test_the_accept_rate_is_not_called_held_out_on_training_events(tmp_path: Path, artifact_dir: Path,
                                                                   files: dict) -> None:
    """Replaying the model's training file (cycled): the summary counts the events it trained on and
    gives the accept rate on the held-out split alone; another file has no training events."""
    from replay.heldout import held_out_summary

    summary = _run(tmp_path, artifact_dir, files["sm"], "train", events=3300, reference_backend="none",
                   working_point=WorkingPoint(threshold=0.0))  # accept everything: the counts are exact
    held = summary["held_out"]
    assert held["trained_on_events"] == 2 * 1200 + 300 and held["held_out_events"] == 2 * 300
    assert held["held_out_accepted"] == 600 and held["held_out_accept_rate_hz_at_bx"] == pytest.approx(40e6)
    other = _run(tmp_path, artifact_dir, files["signal"], "other", events=400, reference_backend="none")
    assert other["held_out"]["trained_on_events"] == 0 and other["held_out"]["held_out_events"] == 400
    assert held_out_summary([files["sm"]], None, 10, np.arange(3))["trained_on_events"] == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["--threshold", "nan"], "--threshold must be a finite number"),
    (["--threshold", "inf"], "--threshold must be a finite number"),
    (["--accept-rate", "50MHz"], "must be positive and at most the bunch-crossing rate"),
    (["--accept-rate", "fast"], "cannot read"),
    (["--calibration", "x.h5"], "--calibration is for --accept-rate"),
])
def test_bad_working_points_are_one_line_errors(tmp_path: Path, artifact_dir: Path, capsys, argv: list[str],
                                                message: str) -> None:
    from replay.cli import main

    assert main(["--model", str(artifact_dir), "--events", "10", "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_non_finite_events_are_quarantined_not_lost(tmp_path: Path, artifact_dir: Path) -> None:
    from conftest import write_events

    events = synthetic_events(1000, seed=11)
    events[[3, 500, 999], 0, 0] = np.nan
    data = write_events(tmp_path / "nan.h5", events, "sm-cocktail")
    summary = _run(tmp_path, artifact_dir, data, "run", reference_backend="none")
    assert summary["events_quarantined"] == 3 and summary["events_decided"] == 997
    assert summary["accounting_ok"] and summary["quarantine_reasons"] == {"non_finite": 3}
    with h5py.File(tmp_path / "run" / "quarantine.h5") as f:
        assert sorted(f["bx"][:]) == [3, 500, 999]


@pytest.mark.slow
def test_a_killed_worker_loses_nothing(tmp_path: Path, artifact_dir: Path, files: dict, bundle: Path) -> None:
    roles = _Roles()
    killed = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            proc = roles.procs.get("worker-0")
            if proc is not None and proc.pid and decided_batches(tmp_path / "run", proc.pid) >= 3:
                os.kill(proc.pid, signal.SIGKILL)  # mid-run: the paced source needs ~6 s for all events
                killed.append(proc.pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    config = ReplayConfig(rate=parse_replay_rate("4kHz"), **FAST)
    summary = _run(tmp_path, artifact_dir, files["sm"], "run", events=24000, config=config, roles=roles,
                   reference_backend="none")
    killer.join()
    assert killed, "the worker was not killed"
    assert summary["source"]["workers_lost"] >= 1
    assert summary["events_in"] == 24000 and summary["accounting_ok"]
    with h5py.File(tmp_path / "run" / "accepted.h5") as f:
        bx = f["bx"][:]
    assert len(np.unique(bx)) == len(bx)  # no event decided twice
    np.testing.assert_array_equal(np.sort(bx), expected_accepts(bundle, files["sm"], 24000))


@pytest.mark.slow
def test_paced_run_counts_deadline_misses(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    base = ReplayConfig(rate=parse_replay_rate("20kHz"), **FAST)
    relaxed = _run(tmp_path, artifact_dir, files["sm"], "relaxed", config=replace(base, deadline_s=30.0),
                   reference_backend="none")
    strict = _run(tmp_path, artifact_dir, files["sm"], "strict", config=replace(base, deadline_s=1e-6),
                  reference_backend="none")
    assert relaxed["mode"] == "paced" and relaxed["deadline_misses"] == 0
    assert strict["deadline_misses"] == strict["events_decided"] == 1500
    assert relaxed["wall_seconds"] > 0.05 and relaxed["events_per_second"] < 20e3 * 1.5


@pytest.mark.slow
def test_a_paced_run_behind_its_schedule_keeps_the_reference_out(tmp_path: Path, artifact_dir: Path,
                                                                  files: dict) -> None:
    """Paced faster than two workers can decide, the source falls behind at once: the reference,
    a side path, then gets no batch (beyond the first ones, sent on time), and every event is decided."""
    config = ReplayConfig(rate=parse_replay_rate("1GHz"), batch_size=256, **FAST)
    summary = _run(tmp_path, artifact_dir, files["sm"], "run", events=20000, config=config)
    source = summary["source"]
    assert summary["accounting_ok"] and summary["events_decided"] == 20000
    assert source["reference_behind"] >= 0.9 * 20000
    assert source["reference_events"] + source["reference_skipped"] == 20000
    assert source["reference_behind"] <= source["reference_busy"] <= source["reference_skipped"]


@pytest.mark.slow
@pytest.mark.parametrize(("deadline_s", "kept_out"), [(1e-3, True), (30.0, False)])
def test_a_paced_run_keeps_the_reference_out_while_decisions_are_slow(
        tmp_path: Path, artifact_dir: Path, files: dict, deadline_s: float, kept_out: bool) -> None:
    """On schedule but with decisions taking more than a quarter of the deadline (a 1 ms deadline:
    every round trip does), the reference gets no batch after the first decisions; with room to
    spare it gets them all."""
    config = ReplayConfig(rate=parse_replay_rate("20kHz"), batch_size=200, deadline_s=deadline_s, **FAST)
    summary = _run(tmp_path, artifact_dir, files["sm"], "run", events=4000, config=config)
    source = summary["source"]
    assert summary["accounting_ok"] and summary["events_decided"] == 4000
    if kept_out:
        assert source["reference_behind"] >= 0.8 * 4000
    else:
        assert source["reference_behind"] == 0 and source["reference_events"] > 0


def test_unreadable_input_is_a_clear_error_before_anything_starts(tmp_path: Path, artifact_dir: Path) -> None:
    with pytest.raises(InputFileError):
        EventStream([tmp_path / "missing.h5"], 100)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputFileError):
        _run(tmp_path, artifact_dir, tmp_path / "junk.h5", "run")


def test_missing_roles_give_a_clear_error(tmp_path: Path, files: dict) -> None:
    from replay.config import Endpoints

    stream = EventStream([files["sm"]], 100)
    config = ReplayConfig(**{**FAST, "ready_timeout_s": 0.5})
    with pytest.raises(RoleError, match=r"collector.*worker"):
        run_source(Endpoints.ipc(tmp_path), stream, config, reference=False, progress=None)
    stream.close()


def _stand_in_collector(ctx, ends, first_result: threading.Event, final_after_s: float | None) -> None:
    """Acknowledges results; answers END with FINAL after ``final_after_s`` (None: dies at the first result)."""
    import zmq

    from replay.wire import ACK, END, FINAL, READY

    with ctx.socket(zmq.PULL) as pull, ctx.socket(zmq.PUSH) as acks:
        pull.linger = acks.linger = 0  # a FINAL nobody takes must not hold up the context's exit
        pull.bind(ends.results)
        acks.connect(ends.acks)
        acks.send_multipart(encode(READY, {"role": "collector"}))
        decided = 0
        while pull.poll(20_000):
            frames = pull.recv_multipart()
            if frames[0] == RESULT:
                first_result.set()
                if final_after_s is None:
                    return
                header = decode_header(frames, {"seq": int, "n": int})
                decided += header["n"]
                acks.send_multipart(encode(ACK, {"seq": header["seq"]}))
            elif frames[0] == END:
                time.sleep(final_after_s)
                acks.send_multipart(encode(FINAL, {"events_decided": decided, "events_quarantined": 0}))
                return


@pytest.mark.parametrize("collector_dies", [False, True])
def test_source_judges_roles_by_what_they_do(tmp_path: Path, files: dict, bundle: Path, collector_dies: bool) -> None:
    """A dead worker does not cut the wait for the collector's slow FINAL short (a CI run lost
    the counts that way); a dead collector ends the run with a clear error instead of a hang."""
    import zmq

    from replay.config import Endpoints
    from replay.worker import run_worker

    ends = Endpoints.ipc(tmp_path)
    config = ReplayConfig(batch_size=100, **FAST)
    first_result = threading.Event()

    def alive(role: str) -> str | None:  # as _Roles.problem: a killed worker-1 once results flow
        if role == "collector" and collector_dies and not collector.is_alive():
            return "the collector process exited with status -9"
        return "the worker-1 process exited with status -9" if first_result.is_set() and not role else None

    stream = EventStream([files["sm"]], 100, 1000)
    with zmq.Context() as ctx:
        collector = threading.Thread(target=_stand_in_collector,
                                     args=(ctx, ends, first_result, None if collector_dies else 0.6))
        worker = threading.Thread(target=run_worker, args=(ends.tasks, ends.results, bundle, config, ctx),
                                  kwargs={"give_up_s": 3.0})  # once the source is gone
        collector.start()
        worker.start()
        try:
            if collector_dies:
                started = time.monotonic()
                with pytest.raises(RoleError, match="collector"):
                    run_source(ends, stream, config, reference=False, alive=alive, progress=None, context=ctx)
                assert time.monotonic() - started < 10
            else:
                stats = run_source(ends, stream, config, reference=False, alive=alive, progress=None, context=ctx)
                assert stats.events_in == 1000 and stats.collector["events_decided"] == 1000
        finally:
            stream.close()
            collector.join(30)
            worker.join(30)  # it stops on STOP, or when the source falls silent
    assert not worker.is_alive() and not collector.is_alive()


def test_the_source_waits_for_every_worker_it_was_told_of(tmp_path: Path, files: dict, bundle: Path) -> None:
    """The run (a paced run's clock) starts once all the workers it expects are READY: one that
    comes up a second late still gets its share; one that never comes is a clear error."""
    import zmq

    from replay.config import Endpoints
    from replay.wire import READY
    from replay.worker import run_worker

    ends = Endpoints.ipc(tmp_path)
    config = ReplayConfig(batch_size=100, **FAST)
    scored: dict[str, int] = {}

    def worker(name: str, delay_s: float) -> threading.Thread:
        def run() -> None:
            time.sleep(delay_s)
            scored[name] = run_worker(ends.tasks, ends.results, bundle, config, ctx, give_up_s=3.0)
        return threading.Thread(target=run)

    stream = EventStream([files["sm"]], 100, 1000)
    with zmq.Context() as ctx:
        threads = [threading.Thread(target=_stand_in_collector, args=(ctx, ends, threading.Event(), 0.0)),
                   worker("early", 0.0), worker("late", 1.0)]
        for thread in threads:
            thread.start()
        try:
            stats = run_source(ends, stream, config, reference=False, progress=None, context=ctx, workers=2)
        finally:
            stream.close()
            for thread in threads:
                thread.join(30)
    assert stats.workers_seen == 2 and stats.collector["events_decided"] == 1000
    assert scored["late"] > 0 and scored["early"] + scored["late"] == 10

    def collector_ready() -> None:  # and gone: the source fails before it sends anything
        with ctx.socket(zmq.PUSH) as acks:
            acks.linger = 1000
            acks.connect(ends.acks)
            acks.send_multipart(encode(READY, {"role": "collector"}))

    stream = EventStream([files["sm"]], 100, 1000)
    with zmq.Context() as ctx:
        threads = [threading.Thread(target=collector_ready), worker("one", 0.0), worker("two", 0.0)]
        for thread in threads:
            thread.start()
        try:
            with pytest.raises(RoleError, match=r"no READY from the worker \(2 of 3 ready\) within 2 s"):
                run_source(ends, stream, replace(config, ready_timeout_s=2.0), reference=False, progress=None,
                           context=ctx, workers=3)
        finally:
            stream.close()
            for thread in threads:
                thread.join(30)


def test_a_worker_rehearses_a_whole_batch(bundle: Path) -> None:
    """The rehearsal events are valid events; the worker scores them packed and not, and would
    refuse to start if its own rehearsal were rejected."""
    from replay.paths import rehearsal_events
    from replay.worker import rehearse

    events = rehearsal_events(1000)
    assert ((events[..., 0] > 0).sum(axis=1) == 7).all()
    out = handle_task(load_emulated(bundle), encode_task({"seq": 0, "bx0": 0, "n": 1000, "t_sent": 0}, events), LIMITS)
    scores = decode_arrays(out, decode_header(out, {}), max_bytes=1 << 20)[0]
    assert out[0] == RESULT and scores.shape == (1000,) and np.isfinite(scores).all()
    rehearse(load_emulated(bundle), LIMITS, 1000)
    with pytest.raises(TriggerError, match="rejected its own rehearsal batch"):
        rehearse(load_emulated(bundle), LIMITS, 2000)  # more events than the limit


@pytest.fixture(scope="module")
def cnn_artifact(files: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny seed-003 CNN autoencoder trained for one epoch (a float-only model with its threshold)."""
    from models.config import load_config
    from models.train import train

    config = Path(__file__).resolve().parents[1] / "models/configs/cnn_ae.toml"
    out = tmp_path_factory.mktemp("cnn") / "cnn-ae"
    train(load_config(config, ["training.epochs=1", "model.encoder=[4, 8]", "model.decoder=[8, 4]",
                               "model.latent=4"]), files["sm"], out, log=io.StringIO())
    return out


def test_a_reference_only_tensorflow_runs_is_refused_on_numpy(tmp_path: Path, artifact_dir: Path,
                                                              cnn_artifact: Path) -> None:
    from replay.paths import load_reference, reference_backend

    bundle = write_bundle(artifact_dir, tmp_path / "b", reference=cnn_artifact)
    assert bundle["reference_name"] == "cnn-ae/float" and not bundle["reference_numpy"]
    assert reference_backend("auto", bundle) == "tensorflow"
    with pytest.raises(TriggerError, match="only TensorFlow runs; use --reference-backend tensorflow"):
        load_reference(tmp_path / "b", "numpy")


@pytest.mark.slow
def test_replay_with_another_model_as_the_reference(tmp_path: Path, artifact_dir: Path, files: dict,
                                                    cnn_artifact: Path) -> None:
    """``--reference`` a CNN autoencoder: each path decides at its own calibrated threshold, and the
    collector counts, per compared batch, the events only one of them accepts."""
    from models.artifact import load_artifact
    from replay.journal import read_records
    from replay.outputs import DECISION, REFERENCE_JOIN

    summary = _run(tmp_path, artifact_dir, files["sm"], "run", events=1500, reference=cnn_artifact,
                   reference_backend="auto")
    assert summary["accounting_ok"] and summary["reference_backend"] == "tensorflow"
    assert summary["reference_model"] == "cnn-ae/float" and summary["reference_events"] > 0
    records = list(read_records(tmp_path / "run" / "decisions.journal"))
    batches = {r["seq"]: (r["bx0"], r["n"]) for r in records if r["k"] == DECISION}
    compared = [batches[r["seq"]] for r in records if r["k"] == REFERENCE_JOIN and r["compared"]]
    with h5py.File(files["sm"]) as f:
        events = f["Particles"][:1500]
    cnn = load_artifact(cnn_artifact)
    reference = cnn.score(events, "float") > cnn.threshold("float")
    trigger = np.isin(np.arange(1500), expected_accepts(tmp_path / "run" / "model", files["sm"], 1500))
    rows = np.concatenate([np.arange(bx0, bx0 + n) for bx0, n in compared])
    assert summary["reference_only_accepts"] == np.count_nonzero(reference[rows] & ~trigger[rows])
    assert summary["trigger_only_accepts"] == np.count_nonzero(trigger[rows] & ~reference[rows])
    assert summary["reference_disagreements"] == summary["reference_only_accepts"] + summary["trigger_only_accepts"]


@pytest.mark.slow
def test_curve_encrypted_tcp_run(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    summary = _run(tmp_path, artifact_dir, files["sm"], "run", transport="tcp", curve=True)
    assert summary["accounting_ok"] and summary["events_decided"] == 1500
    assert summary["reference_events"] > 0  # the reference's three sockets got through too
    assert not list((tmp_path / "run").rglob("*.key*"))  # the run's keys live in memory only


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("127.3.2.1", False), ("::1", False),
                                              ("localhost", False), ("0.0.0.0", True), ("10.1.2.3", True),
                                              ("hostA", True)])
def test_binding_beyond_loopback_without_curve_is_warned(host: str, warned: bool) -> None:
    from replay.cli import exposure_warning

    warning = exposure_warning(host)
    assert (warning is not None) == warned
    assert warning is None or (host in warning and "--curve" in warning and "replay keys" in warning)


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


def test_role_help_shows_the_default_addresses_as_typed(capsys) -> None:
    from replay.cli import build_parser

    for role, default in (("source", "127.0.0.1:5555"), ("collector", "127.0.0.1:5558")):
        with pytest.raises(SystemExit):
            build_parser().parse_args([role, "--help"])
        assert f"(default: {default})" in capsys.readouterr().out
    assert build_parser().parse_args(["source", "--collector", "h:1"]).bind == ("127.0.0.1", 5555)


def test_each_role_makes_its_own_private_pair_and_says_what_to_copy(tmp_path: Path, capsys) -> None:
    from replay.cli import main

    keys = tmp_path / "keys"
    assert main(["keys", str(keys), "worker"]) == 0
    said = capsys.readouterr().out
    assert keys.stat().st_mode & 0o777 == 0o700
    assert (keys / "worker.key_secret").stat().st_mode & 0o777 == 0o600
    assert "authorized_clients/ of the source" in said and "authorized_clients/ of the collector" in said
    assert "servers/" in said and "worker.key_secret" not in said  # only the public key is ever copied
    assert main(["keys", str(keys), "worker"]) == 2  # an existing pair is never overwritten
    assert "not overwriting" in capsys.readouterr().err


def _host_keys(root: Path, roles: Sequence[str]) -> dict[str, Path]:
    """One key folder per role as on separate hosts, the public keys copied as `replay keys` says."""
    from replay.security import create_keys, share_public_keys

    folders = {role: root / f"{role}-host" for role in roles}
    for role in roles:
        create_keys(folders[role], role)
    share_public_keys(folders)
    return folders


def test_secret_keys_stay_private_and_key_folders_are_checked(tmp_path: Path) -> None:
    from replay.security import Curve

    keys = _host_keys(tmp_path, ("source", "collector", "worker"))
    curve = Curve.load(keys["worker"], "worker")
    assert set(curve.servers) == {"source", "collector"}
    assert len(Curve.load(keys["source"], "source").authorized) == 2
    (keys["worker"] / "worker.key_secret").chmod(0o644)
    with pytest.raises(UsageError, match=r"worker\.key_secret can be read by other users \(mode 644\); .*chmod 600"):
        Curve.load(keys["worker"], "worker")
    (keys["worker"] / "worker.key_secret").chmod(0o600)
    (keys["worker"] / "servers" / "collector.key").unlink()
    with pytest.raises(UsageError, match=r"no CurveZMQ key .*servers/collector\.key: copy the collector's public key there"):
        Curve.load(keys["worker"], "worker")
    (keys["source"] / "authorized_clients" / "spy.key_secret").write_bytes(
        (keys["worker"] / "worker.key_secret").read_bytes())
    with pytest.raises(UsageError, match="secret keys never leave their host"):
        Curve.load(keys["source"], "source")
    for key in (keys["collector"] / "authorized_clients").iterdir():
        key.unlink()
    with pytest.raises(UsageError, match="no client keys in"):
        Curve.load(keys["collector"], "collector")


def test_a_client_whose_key_is_not_authorized_is_refused(tmp_path: Path) -> None:
    import zmq

    from replay.security import Curve, create_keys

    keys = _host_keys(tmp_path, ("source", "collector", "worker"))
    intruder = tmp_path / "intruder"  # a pair made by `replay keys`, but never authorized
    create_keys(intruder, "worker")
    for server in ("source", "collector"):
        (intruder / "servers" / f"{server}.key").write_bytes((keys[server] / f"{server}.key").read_bytes())
    server = Curve.load(keys["collector"], "collector")
    ctx = zmq.Context()
    try:
        with ctx.socket(zmq.PULL) as pull:
            server.server(pull)
            port = pull.bind_to_random_port("tcp://127.0.0.1")
            received = {}
            for name, folder in (("intruder", intruder), ("worker", keys["worker"])):
                with ctx.socket(zmq.PUSH) as push:
                    push.linger = 0
                    Curve.load(folder, "worker").client(push, "collector")
                    push.connect(f"tcp://127.0.0.1:{port}")
                    push.send(name.encode(), zmq.NOBLOCK) if push.poll(2000, zmq.POLLOUT) else None
                    received[name] = pull.recv() if pull.poll(2000) else None
            assert received == {"intruder": None, "worker": b"worker"}
    finally:
        server.close()
        ctx.term()


def _run_roles_over_tcp(python: str, model: list[str], data: Path, out: Path, env: dict | None = None,
                        curve: bool = False) -> None:
    """``replay collector|worker|source`` as three processes of ``python``, as on three hosts
    (with ``curve``: each with its own key folder, as `replay keys` makes them)."""
    import subprocess

    from replay.pipeline import free_tcp_base

    keys = _host_keys(out / "keys", ("source", "collector", "worker")) if curve else {}
    def role(name: str) -> list[str]:
        return [*replay, name, *(["--curve", str(keys[name])] if curve else [])]

    base = free_tcp_base(8)
    source, collector = f"127.0.0.1:{base}", f"127.0.0.1:{base + 4}"
    replay = [python, "-c", "import sys; from replay.cli import main; sys.exit(main())"]
    out.mkdir(parents=True, exist_ok=True)  # the roles run there: the package comes from python's install
    procs = [
        subprocess.Popen([*role("collector"), *model, "--bind", collector, "--source", source, "--no-reference",
                          "--out", str(out / "collector")], env=env, cwd=out),
        subprocess.Popen([*role("worker"), *model, "--source", source, "--collector", collector], env=env,
                         cwd=out),
    ]
    try:
        head = subprocess.run([*role("source"), "--input", str(data), "--events", "3000", "--batch-size",
                               "256", "--bind", source, "--collector", collector, "--no-reference",
                               "--out", str(out / "head")], check=False, capture_output=True, text=True,
                              timeout=300, env=env, cwd=out)
        assert head.returncode == 0, head.stderr
        summary = json.loads((out / "head" / "summary.json").read_text())
        assert summary["events_in"] == 3000 and summary["accounting_ok"]
        assert summary["batch_latency_ms"]["p50"] > 0 and "source's" in summary["latency_clock"]  # its own clock
        assert procs[0].wait(timeout=60) == 0
        with h5py.File(out / "collector" / "accepted.h5") as f:
            assert len(f["bx"]) == summary["events_accepted"]
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.slow
def test_roles_run_as_separate_commands_over_tcp(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    import sys

    _run_roles_over_tcp(sys.executable, ["--model", str(artifact_dir)], files["sm"], tmp_path)


@pytest.mark.slow
def test_roles_run_from_a_bundle_with_the_replay_extra_only(tmp_path: Path, bundle: Path, files: dict) -> None:
    """A worker host with ``pip install trigger-anomaly[replay]``: no TensorFlow, hls4ml or QKeras there,
    and every role runs from a bundle written by ``replay bundle``, encrypted with its own CurveZMQ keys."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    source = tmp_path / "src"  # setuptools builds in the source tree: a copy keeps build/ out of the checkout
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(".*", "runs", "build", "*.egg-info", "__pycache__",
                                                                "data", "tests"))
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "-c", str(root / "constraints.txt"),
                              f"{source}[replay]"], capture_output=True, text=True, check=False, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    heavy = ["tensorflow", "hls4ml", "qkeras", "keras", "sklearn", "pythia8mc"]
    probe = f"import importlib.util as u; print(*[m for m in {heavy!r} if u.find_spec(m) is None])"
    missing = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert missing.stdout.split() == heavy
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run_roles_over_tcp(python, ["--bundle", str(bundle)], files["sm"], tmp_path / "run", env=env, curve=True)


def test_running_collector_survives_garbage_on_its_socket(tmp_path: Path, bundle: Path) -> None:
    """Random frames on the results socket are counted as rejected; the run still completes."""
    import random

    import zmq

    from replay.collector import run_collector
    from replay.config import Endpoints
    from replay.wire import END, FINAL

    ends = Endpoints.ipc(tmp_path)
    path = load_emulated(bundle)
    events = synthetic_events(300, seed=12)
    result = handle_task(path, encode_task({"seq": 0, "bx0": 0, "n": 300, "t_sent": 0}, events), LIMITS)
    config = ReplayConfig(**FAST)
    out: dict = {}
    with zmq.Context() as ctx, ctx.socket(zmq.PULL) as acks, ctx.socket(zmq.PUSH) as push:
        acks.bind(ends.acks)
        thread = threading.Thread(target=lambda: out.update(run_collector(
            ends.results, ends.acks, tmp_path / "run", path.threshold, None, config, ctx)))
        thread.start()
        push.connect(ends.results)
        rng = random.Random(0)
        for _ in range(200):
            push.send_multipart([bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
                                 for _ in range(rng.randint(1, 4))])
        push.send_multipart([bytes(x) for x in result])
        push.send_multipart(encode(END, {"events_in": 300, "batches": 1, "reference_batches": 0}))
        final = None
        while final is None and acks.poll(30_000):
            frames = acks.recv_multipart()
            if frames[0] == FINAL:
                final = decode_header(frames, {})
        thread.join(30)
    assert final is not None and not thread.is_alive()
    assert final["events_decided"] == 300
    assert sum(final["rejected_frames"].values()) >= 150  # most random frames are not even a known kind


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


def _looping_replay(out: Path, artifact_dir: Path, data: Path, *extra: str, stdout_pipe: bool = True) -> tuple:
    """``replay --loop`` in its own session, returned once decisions flow (the live line on stderr
    says so, however long start-up takes): the process, the stderr read so far, its reader thread."""
    import subprocess
    import sys

    cmd = [sys.executable, "-c", "import sys; from replay.cli import main; sys.exit(main())", "--loop",
           "--input", str(data), "--model", str(artifact_dir), "--batch-size", "256", "--out", str(out), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if stdout_pipe else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(64), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    while " decided " not in "".join(seen):
        assert time.monotonic() < deadline and proc.poll() is None, "".join(seen)
        time.sleep(0.1)
    return proc, seen, reader


def _children(pid: int) -> dict[int, str]:
    """pid -> command line of the processes whose parent is ``pid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")
def test_the_side_paths_bytes_move_on_idle_cpu_time_only(tmp_path: Path) -> None:
    """The context the source feeds the reference through: its threads (the I/O thread copies each
    message into the kernel) are SCHED_IDLE, the caller's thread keeps its class, messages pass."""
    before = thread_ids()
    with idle_context() as context, context.socket(zmq.PUSH) as push, context.socket(zmq.PULL) as pull:
        threads = thread_ids() - before
        assert len(threads) >= 2  # its I/O thread and its reaper
        assert all(os.sched_getscheduler(t) == os.SCHED_IDLE for t in threads)
        assert os.sched_getscheduler(0) != os.SCHED_IDLE
        push.linger = pull.linger = 0
        pull.bind(f"ipc://{tmp_path}/side.sock")
        push.connect(f"ipc://{tmp_path}/side.sock")
        push.send_multipart([b"batch", bytes(1 << 20)], copy=False)
        assert pull.poll(10_000) and [len(f) for f in pull.recv_multipart()] == [5, 1 << 20]


@pytest.mark.slow
def test_no_role_outlives_a_killed_replay_and_ps_names_them(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    """SIGKILL of the process that started the roles: the kernel kills every role (PR_SET_PDEATHSIG)."""
    out = tmp_path / "run"
    proc, _, reader = _looping_replay(out, artifact_dir, files["sm"], stdout_pipe=False)
    roles = {pid: line for pid, line in _children(proc.pid).items() if line.startswith("replay ")}
    names = sorted(line.split(" (run")[0] for line in roles.values())
    assert names == ["replay collector", "replay reference", "replay worker-0", "replay worker-1"]
    assert all(f"(run {out})" in line for line in roles.values())
    proc.kill()
    proc.wait(timeout=30)
    try:
        deadline = time.monotonic() + 10
        while any("(run " in _cmdline(pid) for pid in roles):
            assert time.monotonic() < deadline, f"still alive 10 s after the kill: {roles}"
            time.sleep(0.1)
    finally:
        for pid in roles:  # survivors of a failed check would hold the test's pipes open
            if "(run " in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)
        reader.join(timeout=10)
        proc.stderr.close()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
def test_ctrl_c_drains_and_accounts_for_everything(tmp_path: Path, artifact_dir: Path, files: dict) -> None:
    out = tmp_path / "run"
    proc, seen, reader = _looping_replay(out, artifact_dir, files["sm"], "--reference-backend", "none")
    time.sleep(1)  # a few more batches
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    stdout = proc.stdout.read()
    proc.wait(timeout=120)
    reader.join(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    stderr = "".join(seen)
    assert proc.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"]["interrupted"] and summary["accounting_ok"]
    assert summary["events_in"] > 0 and summary["events_in"] == summary["events_decided"]
    assert "accounting OK" in stdout


def test_a_preloaded_stream_yields_the_same_batches(files: dict) -> None:
    """Paced runs read cycled inputs into memory first: the batches are the same, the file is not read again."""
    plain, preloaded = EventStream([files["sm"]], 400, 3500), EventStream([files["sm"]], 400, 3500)
    preloaded.preload()
    preloaded.files[0].close()  # everything it yields now comes from memory
    for a, b in zip(plain, preloaded, strict=True):
        np.testing.assert_array_equal(a, b)
    plain.close()
    preloaded.close()
