"""Collector role: decide each batch once, journal it before acknowledging it, compare with the reference.

It receives RESULT/REJECTED messages from workers, REFERENCE messages from the reference
path and END from the source on one PULL socket. Each batch is decided once: a batch
sequence number seen before is a duplicate (a re-sent batch whose first worker was only
slow) and is dropped. Every decision is appended to the run's journal (:mod:`replay.journal`)
and only then acknowledged to the source, which re-sends what is never acknowledged: whatever
process dies, every acknowledged decision is on disk. The reference path is a side check
that never holds a decision back: a decided batch the reference also scores waits (in a
bounded table) for its scores, and the comparison is journaled when they come. When the run
ends, ``accepted.h5``, ``quarantine.h5`` and the latencies are written from the journal
(:mod:`replay.outputs`). Malformed messages are counted by reason and never stop the run.

``Collector.handle`` is the per-message logic without sockets, so it can be fuzzed. A
collector started on a folder whose journal already holds decisions (a restarted collector, a
resumed run) continues it: what was decided is not decided again.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import zmq
from numpy.typing import NDArray

from replay.config import ReplayConfig
from replay.journal import JOURNAL, Journal, pack_array
from replay.latency import late_events
from replay.outputs import (
    DECISION,
    DUPLICATE,
    FRAME_REJECTED,
    REFERENCE_JOIN,
    REJECTED_BATCH,
    CollectorCounts,
    journal_state,
    write_outputs,
)
from replay.process import settle_heap
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

__all__ = ("Collector", "CollectorCounts", "run_collector")

MAX_PENDING = 256  # decided batches waiting for their reference scores (and early reference scores)


@dataclass
class _Decided:
    """A decided batch the reference also scores, kept until its reference scores arrive."""

    scores: NDArray[np.float64]
    accepted: NDArray[np.int64]


class Collector:
    """The decision bookkeeping; ``handle`` takes one message and returns the seq to acknowledge."""

    def __init__(self, out_dir: Path, threshold: float, reference_threshold: float | None,
                 rate_hz: float | None = None, deadline_s: float = 0.1, menu: str | None = None) -> None:
        self.out_dir, self.menu = out_dir, menu
        self.threshold, self.reference_threshold = threshold, reference_threshold
        self.rate_hz, self.deadline_ns = rate_hz, int(deadline_s * 1e9)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.counts, self.decided = journal_state(out_dir)  # empty unless the run is continued
        self.journal = Journal(out_dir / JOURNAL)
        self.pending: dict[int, _Decided] = {}
        self.reference: dict[int, NDArray[np.float64]] = {}
        self.end: dict[str, Any] | None = None
        self.closed = False

    def _record(self, record: dict[str, Any]) -> None:
        self.journal.append(record)
        self.counts.add(record)

    # -- one message -------------------------------------------------------------------
    def handle(self, frames: Sequence[Any]) -> int | None:
        """Process one message; the batch seq to acknowledge, if it decided one (journaled first)."""
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
            self._record({"k": FRAME_REJECTED, "reason": e.reason.value})
        return None

    def _result(self, frames: Sequence[Any]) -> int | None:
        fields_ = {"seq": int, "bx0": int, "n": int, "t_sent": int}
        header = decode_header(frames, fields_)
        scores, accepted, accepted_events, quarantined, quarantined_events = _arrays(frames, header, 5)
        n: int
        seq: int
        n, seq = header["n"], header["seq"]
        if (seq < 0 or scores.shape != (n,) or scores.dtype != np.float64 or accepted.dtype != np.int64
                or quarantined.dtype != np.int64 or accepted_events.shape[1:] != (19, 4)
                or quarantined_events.shape[1:] != (19, 4) or len(accepted) != len(accepted_events)
                or len(quarantined) != len(quarantined_events)
                or not _indices_within(accepted, n) or not _indices_within(quarantined, n)):
            raise FrameError(Reject.BAD_SHAPE, "result arrays do not match the batch")
        if seq in self.decided:
            self._record({"k": DUPLICATE, "seq": seq})
            return seq  # acknowledge again: the source may have missed the first ACK
        now = time.monotonic_ns()
        late = (late_events(header["t_due"], n, now, self.rate_hz, self.deadline_ns)
                if self.rate_hz is not None and type(header.get("t_due")) is int else 0)
        self._record({"k": DECISION, "seq": seq, "bx0": header["bx0"], "n": n, "accepted": pack_array(accepted),
                      "scores": pack_array(scores[accepted]), "events": pack_array(accepted_events),
                      "quarantined": pack_array(quarantined), "qevents": pack_array(
                          np.asarray(quarantined_events, np.float64)),
                      "latency_ms": (now - header["t_sent"]) / 1e6, "late": late, "scoring_ms": _scoring_ms(header),
                      "worker": header["worker"] if type(header.get("worker")) is int else None,
                      "qreason": _quarantine_reason(header)})
        self.decided.add(seq)
        if self.reference_threshold is not None and header.get("ref") is True:
            decided = _Decided(np.array(scores), np.array(accepted))
            if seq in self.reference:
                self._join(seq, decided, self.reference.pop(seq))
            else:
                self.pending[seq] = decided
                if len(self.pending) > MAX_PENDING:
                    self.flush_pending(MAX_PENDING)
        return seq

    def _reference(self, frames: Sequence[Any]) -> None:
        header = decode_header(frames, {"seq": int, "n": int})
        (scores,) = _arrays(frames, header, 1)
        if scores.shape != (header["n"],) or scores.dtype != np.float64:
            raise FrameError(Reject.BAD_SHAPE, "reference scores do not match the batch")
        seq = header["seq"]
        if seq in self.pending:
            self._join(seq, self.pending.pop(seq), np.array(scores))
        elif seq not in self.decided and len(self.reference) < MAX_PENDING:
            self.reference[seq] = np.array(scores)

    def _rejected(self, frames: Sequence[Any]) -> int | None:
        header = decode_header(frames, {"reason": str})
        reason = header["reason"] if header["reason"] in {r.value for r in Reject} else "unknown"
        seq, n, bx0 = header.get("seq"), header.get("n"), header.get("bx0")
        if header.get("role") == "reference" or not all(type(v) is int for v in (seq, n, bx0)):
            self._record({"k": FRAME_REJECTED, "reason": reason})
            return None
        seq, n = cast(int, seq), cast(int, n)  # all three are ints (checked just above)
        if seq < 0 or seq in self.decided or not 0 <= n <= 1 << 20:
            if seq in self.decided:
                self._record({"k": DUPLICATE, "seq": seq})
                return seq
            return None
        # a batch whose frame was unusable: all of its events are quarantined (and counted)
        self._record({"k": REJECTED_BATCH, "seq": seq, "bx0": bx0, "n": n, "reason": reason})
        self.decided.add(seq)
        return seq

    # -- the reference comparison ----------------------------------------------------------
    def _join(self, seq: int, decided: _Decided, reference: NDArray[np.float64]) -> None:
        assert self.reference_threshold is not None
        if reference.shape != decided.scores.shape:
            self._record({"k": FRAME_REJECTED, "reason": Reject.BAD_SHAPE.value})
            return
        ok = ~np.isnan(decided.scores) & ~np.isnan(reference)
        emulated_accepts = decided.scores[ok] > self.threshold
        reference_accepts = reference[ok] > self.reference_threshold
        diff = float(np.abs(decided.scores[ok] - reference[ok]).max()) if ok.any() else 0.0
        only_reference = int(np.count_nonzero(reference_accepts & ~emulated_accepts))
        only_trigger = int(np.count_nonzero(emulated_accepts & ~reference_accepts))
        self._record({"k": REFERENCE_JOIN, "seq": seq, "compared": int(ok.sum()),
                      "disagreements": only_reference + only_trigger, "only_reference": only_reference,
                      "only_trigger": only_trigger, "max_diff": diff, "missing": 0, "accepted_reference": pack_array(reference[decided.accepted])})

    def flush_pending(self, keep: int = 0) -> None:
        """Give up on the reference scores of the oldest waiting batches (the reference never sent them)."""
        while len(self.pending) > keep:
            seq = min(self.pending)
            decided = self.pending.pop(seq)
            self._record({"k": REFERENCE_JOIN, "seq": seq, "compared": 0, "disagreements": 0, "max_diff": 0.0,
                          "missing": int(np.count_nonzero(~np.isnan(decided.scores))),
                          "accepted_reference": pack_array(np.zeros(0))})

    @property
    def complete(self) -> bool:
        """END received, exactly the batches 0 .. END's count - 1 decided, every reference result joined."""
        return self.end is not None and self.decided.is_range(self.end["batches"]) and not self.pending

    def close(self) -> CollectorCounts:
        """Give up on missing reference scores, close the journal and write the run's files from it."""
        if not self.closed:
            self.closed = True
            self.flush_pending()
            self.journal.close()
            self.counts.accepted_by_no_seed = write_outputs(self.out_dir, self.menu).accepted_by_no_seed
        return self.counts


def _scoring_ms(header: dict[str, Any]) -> float | None:
    """The worker's time from the decoded batch to its scores, on the worker's own clock (so it
    holds across hosts); None when the worker did not say."""
    start, end = header.get("t_start"), header.get("t_end")
    return (end - start) / 1e6 if type(start) is int and type(end) is int and end >= start else None


def _quarantine_reason(header: dict[str, Any]) -> str:
    """Why a RESULT's quarantined events were not decided: non-finite values, or no region counts."""
    reason = header.get("quarantine_reason")
    return reason if reason in (Reject.NON_FINITE.value, Reject.NO_REGIONS.value) else Reject.NON_FINITE.value


def _indices_within(indices: NDArray[np.int64], n: int) -> bool:
    return indices.size == 0 or (indices.min() >= 0 and indices.max() < n)


def _arrays(frames: Sequence[Any], header: dict[str, Any], count: int) -> list[NDArray[Any]]:
    arrays = decode_arrays(frames, header, max_bytes=1 << 30)
    if len(arrays) != count:
        raise FrameError(Reject.BAD_SHAPE, f"{len(arrays)} arrays, expected {count}")
    return arrays


def run_collector(results: str, control: str, out_dir: str | Path, threshold: float,
                  reference_threshold: float | None, config: ReplayConfig,
                  context: zmq.Context[Any] | None = None, curve: Curve | None = None) -> dict[str, Any]:
    """Serve until the run is complete (or the source goes silent); returns the counts. Decisions
    come on ``results``; READY, ACK, STATS and FINAL go to the source's ``control`` channel."""
    context = context or zmq.Context.instance()
    collector = Collector(Path(out_dir), threshold, reference_threshold,
                          None if config.rate.simulated else config.rate.hz, config.deadline_s, config.menu)
    stats_every = config.progress_s / 2
    settle_heap()  # after the journal's state is restored
    try:
        with context.socket(zmq.PULL) as pull, context.socket(zmq.PUSH) as control_push:
            pull.linger = 0
            control_push.linger = 2000  # FINAL must leave before the socket closes
            pull.rcvhwm = config.hwm * 4
            pull.maxmsgsize = config.max_message_bytes  # ZeroMQ drops a peer that sends more
            secure_server(curve, pull)
            secure_client(curve, "source", control_push)
            pull.bind(results)
            control_push.connect(control)
            control_push.send_multipart(encode(READY, {"role": "collector", "pid": os.getpid(),
                                                       "decided": len(collector.decided)}))
            last_stats = last_heard = time.monotonic()
            ended_at: float | None = None  # when END came: the reference gets ack_timeout_s from then on
            while not collector.complete:
                if pull.poll(int(stats_every * 1000)):
                    seq = collector.handle(pull.recv_multipart(copy=False))
                    last_heard = time.monotonic()
                    if seq is not None:
                        control_push.send_multipart(encode(ACK, {"seq": seq, "pid": os.getpid()}))
                elif time.monotonic() - last_heard > config.ready_timeout_s * 10:
                    break  # nobody has sent anything for a long time: give up, keep what was decided
                if collector.end is not None and ended_at is None:
                    ended_at = time.monotonic()
                if (ended_at is not None and collector.pending
                        and time.monotonic() - ended_at > config.ack_timeout_s):
                    collector.flush_pending()  # the side check gets no longer than that to catch up
                if time.monotonic() - last_stats >= stats_every:
                    control_push.send_multipart(encode(STATS, collector.counts.as_dict()))
                    last_stats = time.monotonic()
            control_push.send_multipart(encode(STATS, {**collector.counts.as_dict(), "closing": True}))
            summary = collector.close().as_dict()  # writes the files from the journal: may take a while
            summary.update(threshold=threshold, reference_threshold=reference_threshold)
            control_push.send_multipart(encode(FINAL, summary))
            return summary
    finally:
        collector.close()
        if curve is not None:
            curve.close()


def collector_main(results: str, control: str, out_dir: str, threshold: float, reference_threshold: float | None,
                   config: ReplayConfig, curve: Curve | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_collector(results, control, out_dir, threshold, reference_threshold, config, zmq.Context(), curve)
