"""Worker role: take batches from the source, score them on the emulated firmware path, decide.

Flow control is by credit: the worker's DEALER says READY with the number of batches it may
hold, and says READY again (one credit) after each result it pushes to the collector, so
the source never sends more than a worker can take. Between batches it sends HEARTBEATs;
a worker that falls silent is presumed dead and its batches go to another worker.

``handle_task`` is the whole per-message logic (pure: frames in, frames out) so bad frames
can be fuzzed without sockets: a message that is not a well-formed batch becomes a
REJECTED message with its reason, events with NaN/inf are quarantined individually, and
nothing raises.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from replay.bundle import load_emulated
from replay.config import MAX_CONTROL_BYTES, ReplayConfig
from replay.narrowing import Narrowed, NarrowingError
from replay.packing import PackingError, unpack_events, unpack_regions
from replay.process import settle_heap
from replay.scoring import ScoringPath, rehearsal_events
from replay.security import Curve, secure_client
from replay.stream import Events, RegionEvents
from replay.wire import (
    HEARTBEAT,
    READY,
    REJECTED,
    RESULT,
    STOP,
    TASK,
    FrameError,
    Reject,
    check_events,
    decode_arrays,
    decode_header,
    encode,
    encode_task,
    message_kind,
)
from trigger.errors import TriggerError
from trigger.schema import REGION_N_ETA, REGION_N_PHI, REGIONS_DATASET

__all__ = ("TASK_FIELDS", "Limits", "Task", "events_of", "finite_scores", "handle_task", "parse_task", "region_scores",
           "rejected", "run_worker")

#: header fields a TASK must carry
TASK_FIELDS: dict[str, type | tuple[type, ...]] = {"seq": int, "bx0": int, "n": int, "t_sent": int}


@dataclass(frozen=True)
class Limits:
    max_events: int
    max_bytes: int

    @classmethod
    def of(cls, config: ReplayConfig) -> Limits:
        return cls(config.max_events_per_frame, config.max_frame_bytes)


def rejected(error: FrameError, role: str = "worker") -> list[Any]:
    """A REJECTED message; it names the batch when the header was readable."""
    header = error.header or {}
    known = {k: header[k] for k in ("seq", "n", "bx0", "t_sent") if type(header.get(k)) is int}
    return encode(REJECTED, {"reason": error.reason.value, "detail": str(error)[:200], "role": role, **known})


@dataclass(frozen=True)
class Task:
    """A TASK's header, its (n, 19, 4) events and, as they came, what restores narrowed float64
    events (:mod:`replay.narrowing`) and the region counts of a region model's batch."""

    header: dict[str, Any]
    particles: NDArray[np.floating[Any]]
    narrowed: Narrowed | None
    regions: NDArray[np.uint16] | None  # None: not sent (an object model's batch, or a file without them)


def parse_task(frames: Sequence[Any], limits: Limits) -> Task:
    """A TASK's events, sent as they are or packed (see :mod:`replay.packing`), narrowed or not,
    with their region counts or not; anything else raises :class:`FrameError`."""
    header = None
    try:
        if message_kind(frames) != TASK:
            raise FrameError(Reject.UNKNOWN_KIND, f"{bytes(frames[0])[:8]!r} is not a task")
        header = decode_header(frames, TASK_FIELDS)
        n = header["n"]
        if n < 0:
            raise FrameError(Reject.BAD_HEADER, f"{n} events")
        if n > limits.max_events:  # before the events are unpacked
            raise FrameError(Reject.OVERSIZE, f"{n} events, limit {limits.max_events}")
        if type(header.get("narrowed", False)) is not bool or type(header.get("regions", False)) is not bool:
            raise FrameError(Reject.BAD_HEADER, "narrowed or regions is not a boolean")
        arrays = decode_arrays(frames, header, limits.max_bytes)
        regions = _regions(arrays, n) if header.get("regions") else None
        kept = arrays[-2:] if header.get("narrowed") else []
        arrays = arrays[:len(arrays) - len(kept)]
        if len(arrays) == 1:  # the events as they are
            particles = arrays[0]
        elif len(arrays) == 2:  # packed: the filled-slot bitmap and the filled rows
            try:
                particles = unpack_events(arrays[0], arrays[1], n)
            except PackingError as e:
                raise FrameError(Reject.BAD_SHAPE, str(e)) from None
        else:
            raise FrameError(Reject.BAD_SHAPE, f"{len(arrays)} arrays, expected the events or their packing")
        check_events(particles, limits.max_events)
        if len(particles) != n:
            raise FrameError(Reject.BAD_SHAPE, f"{len(particles)} events, header says {n}")
        narrowed = _narrowed(particles, kept) if kept else None
    except FrameError as e:
        e.header = header
        raise
    return Task(header, particles, narrowed, regions)


def _regions(arrays: list[NDArray[Any]], n: int) -> NDArray[np.uint16]:
    """The region counts sent last (taken off ``arrays``): as they are, or packed (a uint8 bitmap,
    then the non-zero uint16 counts)."""
    if len(arrays) > 2 and arrays[-2].dtype == np.uint8 and arrays[-1].dtype == np.uint16:
        values, bitmap = arrays.pop(), arrays.pop()
        try:
            return unpack_regions(bitmap, values, n)
        except PackingError as e:
            raise FrameError(Reject.BAD_SHAPE, str(e)) from None
    counts = arrays.pop() if arrays else np.zeros(0)
    if counts.dtype != np.uint16 or counts.shape != (n, REGION_N_PHI, REGION_N_ETA):
        raise FrameError(Reject.BAD_SHAPE, f"region counts {counts.dtype} {counts.shape}, expected uint16 "
                                           f"({n}, {REGION_N_PHI}, {REGION_N_ETA})")
    return counts.view(np.uint16)


def _narrowed(values: NDArray[np.floating[Any]], kept: Sequence[NDArray[Any]]) -> Narrowed:
    """The narrowed events of float32 ``values`` and the changed values' positions and originals."""
    if len(kept) != 2 or values.dtype != np.float32:
        raise FrameError(Reject.BAD_SHAPE, "narrowed events without float32 values, positions and originals")
    narrowed = Narrowed(values, kept[0], kept[1])
    try:
        narrowed.check()
    except NarrowingError as e:
        raise FrameError(Reject.BAD_SHAPE, str(e)) from None
    return narrowed


def finite_scores(path: ScoringPath, particles: NDArray[np.floating[Any]],
                  narrowed: Narrowed | None = None) -> NDArray[np.float64]:
    """Scores of the events without NaN/inf (in their original values, for narrowed events);
    NaN for the others (they go to quarantine)."""
    with np.errstate(over="ignore"):  # float64 values beyond float32's range: checked below
        scores, finite = path.checked_scores(particles)
    if finite.all():
        return scores
    doubtful = np.flatnonzero(~finite)  # finite values beyond float32's range are finite
    originals = particles[doubtful] if narrowed is None else narrowed.restore(doubtful)
    rescued = doubtful[np.isfinite(originals).all(axis=(1, 2))]
    finite[rescued] = True
    out = np.where(finite, scores, np.nan)
    if len(rescued):
        with np.errstate(all="ignore"):
            out[rescued] = path.scores(particles[rescued])
    return out


def events_of(particles: NDArray[np.floating[Any]], narrowed: Narrowed | None,
              rows: NDArray[np.intp]) -> NDArray[np.floating[Any]]:
    """Events ``rows`` (increasing) as the input file holds them."""
    return particles[rows] if narrowed is None else narrowed.restore(rows)


def region_scores(path: ScoringPath, task: Task) -> NDArray[np.float64]:
    """A region model's scores of the batch's counts; NaN for every event of a batch without them
    (they go to quarantine)."""
    if task.regions is None:
        return np.full(len(task.particles), np.nan)
    return path.scores(task.regions)


def handle_task(path: ScoringPath, frames: Sequence[Any], limits: Limits, worker: int = 0) -> list[Any]:
    """One TASK message -> one RESULT (scores, accepted and quarantined events) or REJECTED."""
    try:
        task = parse_task(frames, limits)
    except FrameError as e:
        return rejected(e)
    header, particles, narrowed = task.header, task.particles, task.narrowed
    started = time.monotonic_ns()
    if path.reads == REGIONS_DATASET:
        scores, reason = region_scores(path, task), Reject.NO_REGIONS
    else:
        scores, reason = finite_scores(path, particles, narrowed), Reject.NON_FINITE
    accepted = np.flatnonzero(scores > path.threshold)
    quarantined = np.flatnonzero(np.isnan(scores))
    out = {k: header[k] for k in (*TASK_FIELDS, "t_due", "ref") if k in header}
    out.update(worker=worker, t_start=started, t_end=time.monotonic_ns(), quarantine_reason=reason.value)
    return encode(RESULT, out, [scores, accepted, events_of(particles, narrowed, accepted), quarantined,
                                events_of(particles, narrowed, quarantined)])


def rehearse(path: ScoringPath, limits: Limits, batch_size: int) -> None:
    """Two tasks of the run's batch size, packed and not, through the whole worker path (decoding,
    checks, scoring, the result) before READY, so that the first use of every buffer and compiled
    step is paid before the clock starts and a paced run's first batches are not late."""
    particles = rehearsal_events(batch_size)
    events: Events = particles if path.reads != REGIONS_DATASET else RegionEvents(
        particles, np.zeros((batch_size, REGION_N_PHI, REGION_N_ETA), np.uint16))
    for packed in (False, True):
        out = handle_task(path, encode_task({"seq": 0, "bx0": 0, "n": batch_size, "t_sent": 0}, events, packed), limits)
        if message_kind(out) != RESULT:
            msg = f"the worker rejected its own rehearsal batch: {decode_header(out, {})}"
            raise TriggerError(msg)


def run_worker(tasks: str, results: str, bundle: str | Path, config: ReplayConfig,
               context: zmq.Context[Any] | None = None, curve: Curve | None = None,
               say: Callable[[str], None] | None = None, give_up_s: float | None = None) -> int:
    """Serve until the source says STOP; returns the number of batches scored.

    A source that falls silent (not started yet, restarted, or gone) is waited for as in zguide's
    Paranoid Pirate: after ``liveness`` heartbeats without a word the worker drops its connection,
    waits (back-off doubling up to 16 heartbeats) and connects again with a fresh READY, for up to
    ``give_up_s`` (default ``10 * ready_timeout_s``) of silence; ``say`` is told once per wait."""
    path = load_emulated(bundle)
    limits = Limits.of(config)
    rehearse(path, limits, config.effective_batch_size)
    settle_heap()
    context = context or zmq.Context.instance()
    give_up_s = config.ready_timeout_s * 10 if give_up_s is None else give_up_s
    done, heard, backoff, told = 0, time.monotonic(), config.heartbeat_s, False
    with context.socket(zmq.PUSH) as collector:
        collector.linger = 0
        collector.maxmsgsize = MAX_CONTROL_BYTES  # it only sends
        collector.sndhwm = config.hwm
        collector.sndtimeo = int(config.ack_timeout_s * 1000)  # a dead collector must not block the worker
        secure_client(curve, "collector", collector)
        collector.connect(results)
        while True:
            stopped, served, last_heard = _serve(context, tasks, collector, path, limits, config, curve)
            done += served
            if stopped:
                return done
            if last_heard is not None:  # it was there: a new silence starts
                heard, backoff, told = last_heard, config.heartbeat_s, False
            silent = time.monotonic() - heard
            if silent > give_up_s:
                return done
            if say is not None and not told:
                say(f"no word from the source at {tasks} for {silent:.0f} s; connecting again until it answers "
                    f"(giving up after {give_up_s:.0f} s)")
                told = True
            time.sleep(backoff)
            backoff = min(2 * backoff, 16 * config.heartbeat_s)


def _serve(context: zmq.Context[Any], tasks: str, collector: zmq.Socket[Any], path: ScoringPath, limits: Limits,
           config: ReplayConfig, curve: Curve | None) -> tuple[bool, int, float | None]:
    """One connection to the source, until it says STOP or falls silent: (whether it said STOP,
    batches scored, when it was last heard, None if never)."""
    worker, beat_ms, done = os.getpid(), int(config.heartbeat_s * 1000), 0
    with context.socket(zmq.DEALER) as source:  # a new socket, a new identity: the source sees a new worker
        source.linger = 0
        source.maxmsgsize = config.max_message_bytes  # ZeroMQ drops a source that sends more
        secure_client(curve, "source", source)
        source.connect(tasks)
        source.send_multipart(encode(READY, {"credits": config.credits, "worker": worker}))
        connected, last_heard = time.monotonic(), None
        while True:
            if not source.poll(beat_ms):
                if time.monotonic() - (last_heard or connected) > config.heartbeat_s * config.liveness:
                    return False, done, last_heard  # the source is silent: connect again
                source.send_multipart(encode(HEARTBEAT, {"worker": worker}))
                continue
            frames = source.recv_multipart(copy=False)
            last_heard = time.monotonic()
            if frames and bytes(frames[0]) == STOP:
                return True, done, last_heard
            if frames and bytes(frames[0]) == HEARTBEAT:
                continue
            with contextlib.suppress(zmq.Again):  # unacknowledged, so the source sends the batch again
                collector.send_multipart(handle_task(path, frames, limits, worker), copy=False)
            source.send_multipart(encode(READY, {"credits": 1, "worker": worker}))
            done += 1


def worker_main(tasks: str, results: str, bundle: str, config: ReplayConfig, curve: Curve | None = None) -> None:
    """Process entry point for a local worker: Ctrl-C is the head process's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threadpool_limits(1)  # K workers share the cores: one BLAS thread each
    run_worker(tasks, results, bundle, config, zmq.Context(), curve)
