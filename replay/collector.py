"""Collector role: join emulated decisions with reference scores, write events, account for all.

It receives RESULT/REJECTED messages from workers, REFERENCE messages from the reference
path and END from the source on one PULL socket. Each batch is decided once: a batch
sequence number seen before is a duplicate (a re-sent batch whose first worker was only
slow) and is dropped. Every decided batch is acknowledged to the source, which re-sends
what is never acknowledged. Accepted events go to ``accepted.h5`` in the input layout with
their BX id, simulated time and scores; quarantined events to ``quarantine.h5`` with the
reason. Malformed messages are counted by reason and never stop the run.

``Collector.handle`` is the per-message logic without sockets, so it can be fuzzed.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import zmq
from numpy.typing import NDArray

from replay.config import ReplayConfig
from replay.security import Curve, secure_client, secure_server
from replay.wire import (
    ACK,
    END,
    FINAL,
    READY,
    REFERENCE,
    REJECTED,
    RESULT,
    STATS,
    FrameError,
    Reject,
    decode_arrays,
    decode_header,
    encode,
    message_kind,
)
from trigger.events import EventWriter
from trigger.rates import BX_RATE_HZ

__all__ = ("Collector", "CollectorCounts", "run_collector")

BX_NS = 1e9 / BX_RATE_HZ  # 25 ns between bunch crossings
_REASONS = tuple(Reject)
_MAX_PENDING = 4096  # batches held waiting for their reference scores


@dataclass
class CollectorCounts:
    """What the collector has seen; ``as_dict`` goes into the run summary."""

    batches_decided: int = 0
    events_decided: int = 0
    events_quarantined: int = 0
    events_accepted: int = 0
    duplicate_batches: int = 0
    reference_events: int = 0
    reference_disagreements: int = 0
    reference_missing: int = 0
    deadline_misses: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    rejected_frames: Counter[str] = field(default_factory=Counter)
    max_abs_score_difference: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["quarantine_reasons"] = dict(self.quarantine_reasons)
        d["rejected_frames"] = dict(self.rejected_frames)
        return d


@dataclass
class _Decided:
    """An emulated batch result kept until its reference scores arrive."""

    bx0: int
    scores: NDArray[np.float64]
    accepted: NDArray[np.int64]
    accepted_events: NDArray[np.floating[Any]]


class Collector:
    """The decision bookkeeping; ``handle`` takes one message and returns the seq to acknowledge."""

    def __init__(self, out_dir: Path, threshold: float, reference_threshold: float | None,
                 rate_hz: float | None = None, deadline_s: float = 0.1, flush_events: int = 4096) -> None:
        self.threshold, self.reference_threshold = threshold, reference_threshold
        self.rate_hz, self.deadline_ns = rate_hz, deadline_s * 1e9
        self.counts = CollectorCounts()
        self.decided: set[int] = set()
        self.pending: dict[int, _Decided] = {}
        self.reference: dict[int, NDArray[np.float64]] = {}
        self.latencies_ms: list[float] = []
        self.end: dict[str, Any] | None = None
        self.closed = False
        self._flush_events = flush_events
        self._accepted: list[tuple[NDArray[Any], ...]] = []
        self._accepted_held = 0  # events in self._accepted (summing them per result grew with the list)
        self._quarantined: list[tuple[NDArray[Any], ...]] = []
        out_dir.mkdir(parents=True, exist_ok=True)
        self.accepted_file = EventWriter(out_dir / "accepted.h5", extras={
            "bx": np.int64, "timestamp_ns": np.float64, "score": np.float64, "reference_score": np.float64})
        self.quarantine_file = EventWriter(out_dir / "quarantine.h5", dtype=np.float64, extras={
            "bx": np.int64, "reason": np.int8})
        self.quarantine_file.set_attrs({"reason_codes": {i: r.value for i, r in enumerate(_REASONS)}})

    # -- one message -------------------------------------------------------------------
    def handle(self, frames: Sequence[Any]) -> int | None:
        """Process one message; the batch seq to acknowledge, if it decided one."""
        try:
            kind = message_kind(frames)
            if kind == RESULT:
                return self._result(frames)
            if kind == REFERENCE:
                self._reference(frames)
            elif kind == REJECTED:
                return self._rejected(frames)
            elif kind == END:
                self.end = decode_header(frames, {"events_in": int, "batches": int, "reference_batches": int})
            else:
                raise FrameError(Reject.UNKNOWN_KIND, f"{kind!r} sent to the collector")
        except FrameError as e:
            self.counts.rejected_frames[e.reason.value] += 1
        return None

    def _result(self, frames: Sequence[Any]) -> int | None:
        fields_ = {"seq": int, "bx0": int, "n": int, "t_sent": int}
        header = decode_header(frames, fields_)
        scores, accepted, accepted_events, quarantined, quarantined_events = _arrays(frames, header, 5)
        n: int
        seq: int
        n, seq = header["n"], header["seq"]
        if (scores.shape != (n,) or scores.dtype != np.float64 or accepted.dtype != np.int64
                or quarantined.dtype != np.int64 or accepted_events.shape[1:] != (19, 4)
                or quarantined_events.shape[1:] != (19, 4) or len(accepted) != len(accepted_events)
                or len(quarantined) != len(quarantined_events)
                or not _indices_within(accepted, n) or not _indices_within(quarantined, n)):
            raise FrameError(Reject.BAD_SHAPE, "result arrays do not match the batch")
        if seq in self.decided:
            self.counts.duplicate_batches += 1
            return seq  # acknowledge again: the source may have missed the first ACK
        self.decided.add(seq)
        c = self.counts
        c.batches_decided += 1
        c.events_quarantined += len(quarantined)
        c.events_decided += n - len(quarantined)
        c.events_accepted += len(accepted)
        if len(quarantined):
            c.quarantine_reasons[Reject.NON_FINITE.value] += len(quarantined)
            self._quarantined.append((np.asarray(quarantined_events, np.float64), header["bx0"] + quarantined,
                                      np.full(len(quarantined), _REASONS.index(Reject.NON_FINITE), np.int8)))
        now = time.monotonic_ns()
        self.latencies_ms.append((now - header["t_sent"]) / 1e6)
        if type(header.get("t_due")) is int:
            self._count_deadline(header["t_due"], n, now)
        decided = _Decided(header["bx0"], np.array(scores), np.array(accepted), np.array(accepted_events))
        if self.reference_threshold is None:
            self._write_accepted(decided, None)
        elif seq in self.reference:
            self._join(decided, self.reference.pop(seq))
        else:
            self.pending[seq] = decided
            if len(self.pending) > _MAX_PENDING:
                self.flush_pending(1)
        self._maybe_flush()
        return seq

    def _reference(self, frames: Sequence[Any]) -> None:
        header = decode_header(frames, {"seq": int, "n": int})
        (scores,) = _arrays(frames, header, 1)
        if scores.shape != (header["n"],) or scores.dtype != np.float64:
            raise FrameError(Reject.BAD_SHAPE, "reference scores do not match the batch")
        seq = header["seq"]
        if seq in self.pending:
            self._join(self.pending.pop(seq), np.array(scores))
        elif seq not in self.decided and len(self.reference) < _MAX_PENDING:
            self.reference[seq] = np.array(scores)

    def _rejected(self, frames: Sequence[Any]) -> int | None:
        header = decode_header(frames, {"reason": str})
        reason = header["reason"] if header["reason"] in {r.value for r in Reject} else "unknown"
        seq, n, bx0 = header.get("seq"), header.get("n"), header.get("bx0")
        if header.get("role") == "reference" or not all(type(v) is int for v in (seq, n, bx0)):
            self.counts.rejected_frames[reason] += 1
            return None
        seq, n = cast(int, seq), cast(int, n)  # all three are ints (checked just above)
        if seq in self.decided or not 0 <= n <= 1 << 20:
            self.counts.duplicate_batches += seq in self.decided
            return seq if seq in self.decided else None
        # a batch whose frame was unusable: all of its events are quarantined (and counted)
        self.decided.add(seq)
        self.counts.batches_decided += 1
        self.counts.events_quarantined += n
        self.counts.quarantine_reasons[reason] += n
        return seq

    # -- joins, counts, files -----------------------------------------------------------
    def _join(self, decided: _Decided, reference: NDArray[np.float64]) -> None:
        assert self.reference_threshold is not None
        ok = ~np.isnan(decided.scores) & ~np.isnan(reference)
        emulated_accepts = decided.scores[ok] > self.threshold
        reference_accepts = reference[ok] > self.reference_threshold
        self.counts.reference_events += int(ok.sum())
        self.counts.reference_disagreements += int(np.count_nonzero(emulated_accepts != reference_accepts))
        if ok.any():
            diff = float(np.abs(decided.scores[ok] - reference[ok]).max())
            self.counts.max_abs_score_difference = max(self.counts.max_abs_score_difference, diff)
        self._write_accepted(decided, reference)

    def _count_deadline(self, t_due: int, n: int, now_ns: int) -> None:
        """Paced runs: events decided later than their BX time plus the deadline."""
        if self.rate_hz is None:
            return
        # event i of the batch arrives at t_due + i / rate and is due a deadline later
        late = (now_ns - t_due - self.deadline_ns) * self.rate_hz / 1e9
        self.counts.deadline_misses += int(np.clip(np.ceil(late), 0, n))

    def _write_accepted(self, decided: _Decided, reference: NDArray[np.float64] | None) -> None:
        if not len(decided.accepted):
            return
        bx = decided.bx0 + decided.accepted
        ref = reference[decided.accepted] if reference is not None else np.full(len(bx), np.nan)
        self._accepted.append((decided.accepted_events, bx, bx * BX_NS, decided.scores[decided.accepted], ref))
        self._accepted_held += len(bx)

    def flush_pending(self, keep: int = 0) -> None:
        """Write pending batches without reference scores (the reference never sent them)."""
        while len(self.pending) > keep:
            seq = min(self.pending)
            decided = self.pending.pop(seq)
            self.counts.reference_missing += int(np.count_nonzero(~np.isnan(decided.scores)))
            self._write_accepted(decided, None)

    def _maybe_flush(self, force: bool = False) -> None:
        if self._accepted and (force or self._accepted_held >= self._flush_events):
            parts = [np.concatenate(column) for column in zip(*self._accepted, strict=False)]
            self.accepted_file.append(parts[0], bx=parts[1], timestamp_ns=parts[2], score=parts[3],
                                      reference_score=parts[4])
            self._accepted.clear()
            self._accepted_held = 0
        if self._quarantined and (force or len(self._quarantined) > 16):
            parts = [np.concatenate(column) for column in zip(*self._quarantined, strict=False)]
            self.quarantine_file.append(parts[0], bx=parts[1], reason=parts[2])
            self._quarantined.clear()

    @property
    def complete(self) -> bool:
        """END received, every batch decided and every reference result joined."""
        if self.end is None or len(self.decided) < self.end["batches"]:
            return False
        return not self.pending or self.end["reference_batches"] < self.end["batches"]

    def close(self) -> None:
        """Write everything still held (reference-less if it never came) and close the files."""
        if self.closed:
            return
        self.closed = True
        self.flush_pending()
        self._maybe_flush(force=True)
        self.accepted_file.close()
        self.quarantine_file.close()


def _indices_within(indices: NDArray[np.int64], n: int) -> bool:
    return indices.size == 0 or (indices.min() >= 0 and indices.max() < n)


def _arrays(frames: Sequence[Any], header: dict[str, Any], count: int) -> list[NDArray[Any]]:
    arrays = decode_arrays(frames, header, max_bytes=1 << 30)
    if len(arrays) != count:
        raise FrameError(Reject.BAD_SHAPE, f"{len(arrays)} arrays, expected {count}")
    return arrays


def run_collector(results: str, acks: str, out_dir: str | Path, threshold: float,
                  reference_threshold: float | None, config: ReplayConfig,
                  context: zmq.Context[Any] | None = None, curve: Curve | None = None) -> dict[str, Any]:
    """Serve until the run is complete (or the source goes silent); returns the counts."""
    context = context or zmq.Context.instance()
    collector = Collector(Path(out_dir), threshold, reference_threshold,
                          None if config.rate.simulated else config.rate.hz, config.deadline_s)
    stats_every = config.progress_s / 2
    try:
        with context.socket(zmq.PULL) as pull, context.socket(zmq.PUSH) as source:
            pull.linger = 0
            source.linger = 2000  # FINAL must leave before the socket closes
            pull.rcvhwm = config.hwm * 4
            secure_server(curve, pull)
            secure_client(curve, source)
            pull.bind(results)
            source.connect(acks)
            source.send_multipart(encode(READY, {"role": "collector", "pid": os.getpid()}))
            last_stats = last_heard = time.monotonic()
            while not collector.complete:
                if pull.poll(int(stats_every * 1000)):
                    seq = collector.handle(pull.recv_multipart(copy=False))
                    last_heard = time.monotonic()
                    if seq is not None:
                        source.send_multipart(encode(ACK, {"seq": seq}))
                elif time.monotonic() - last_heard > config.ready_timeout_s * 10:
                    break  # nobody has sent anything for a long time: give up, keep what was decided
                if (collector.end is not None and collector.pending
                        and time.monotonic() - last_heard > config.ack_timeout_s):
                    collector.flush_pending()  # the reference stopped answering
                if time.monotonic() - last_stats >= stats_every:
                    source.send_multipart(encode(STATS, collector.counts.as_dict()))
                    last_stats = time.monotonic()
            collector.close()
            summary = collector.counts.as_dict()
            summary.update(threshold=threshold, reference_threshold=reference_threshold)
            summary["batch_latency_ms"] = collector.latencies_ms
            np.save(Path(out_dir) / "batch_latency_ms.npy", np.asarray(collector.latencies_ms, np.float64))
            source.send_multipart(encode(FINAL, {k: v for k, v in summary.items() if k != "batch_latency_ms"}))
            return summary
    finally:
        collector.close()
        if curve is not None:
            curve.close()


def collector_main(results: str, acks: str, out_dir: str, threshold: float, reference_threshold: float | None,
                   config: ReplayConfig, curve: Curve | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_collector(results, acks, out_dir, threshold, reference_threshold, config, zmq.Context(), curve)
