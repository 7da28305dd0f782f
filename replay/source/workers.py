"""The workers as the source knows them: by their DEALER's identity, with their credits, the
batches they hold, and when they were last heard (zguide's Paranoid Pirate)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import zmq

from replay.config import ReplayConfig
from replay.source.batches import InFlight, Ledger
from replay.source.stats import SourceStats
from replay.wire import HEARTBEAT, READY, STOP, FrameError, decode_header, message_kind

__all__ = ("MAX_CREDITS_PER_READY", "NO_WORKER_LIVENESSES", "WorkerPool")

#: batches one READY may claim: more than a worker asks for (``ReplayConfig.credits`` at first,
#: one after each result), few enough that a confused or hostile peer cannot draw the whole
#: stream onto its connection
MAX_CREDITS_PER_READY = 64
#: with no worker left, how many liveness periods pass before the run fails: a live worker that
#: lost its connection is back within its own liveness plus its reconnect back-off (capped at
#: 16 heartbeats), 22 heartbeats at the default liveness of 6, inside 4 x 6
NO_WORKER_LIVENESSES = 4


@dataclass
class _Worker:
    credits: int = 0
    last_seen: float = 0.0
    batches: set[int] = field(default_factory=set)


class WorkerPool:
    """Round robin over the workers with credits; a worker silent for ``liveness`` heartbeats,
    or whose connection is gone, is lost and its batches go to the ``ledger``'s re-send queue."""

    def __init__(self, tasks: zmq.Socket[Any], config: ReplayConfig, stats: SourceStats, ledger: Ledger) -> None:
        self.tasks, self.config, self.stats, self.ledger = tasks, config, stats, ledger
        self.workers: dict[bytes, _Worker] = {}
        self._rr: deque[bytes] = deque()
        self._beaten = self._had_workers = time.monotonic()

    def __len__(self) -> int:
        return len(self.workers)

    def heard(self, frames: list[bytes]) -> None:
        """A worker's READY (a new worker, or more credits) or HEARTBEAT: it is alive."""
        identity, body = frames[0], frames[1:]
        try:
            kind = message_kind(body)
            header = decode_header(body, {})
        except FrameError:
            return  # counted nowhere useful: a worker only ever sends READY and HEARTBEAT
        worker = self.workers.get(identity)
        if worker is None:
            if kind != READY:
                return
            worker = self.workers[identity] = _Worker()
            self.stats.workers_seen += 1
            self._rr.append(identity)
        worker.last_seen = time.monotonic()
        credits = header.get("credits")
        if kind == READY and type(credits) is int and 0 < credits <= MAX_CREDITS_PER_READY:
            worker.credits += credits

    def beat(self) -> None:
        """A HEARTBEAT to every worker each ``heartbeat_s``, so that one waiting for work (while the
        other roles come up, or between paced batches) knows the source is alive."""
        if time.monotonic() - self._beaten < self.config.heartbeat_s:
            return
        self._beaten = time.monotonic()
        for identity in list(self.workers):
            try:
                self.tasks.send_multipart([identity, HEARTBEAT], flags=zmq.NOBLOCK)
            except zmq.ZMQError:  # gone, or its queue is full of work: either way not idle
                continue

    def send(self, seq: int, item: InFlight) -> bool:
        """Batch ``seq`` to the next worker with a credit; False if none can take it now."""
        identity = self._next()
        if identity is None:
            return False
        try:
            self.tasks.send_multipart([identity, *item.frames], copy=False)
        except zmq.ZMQError:  # the worker's connection is gone: it is lost, the batch waits
            self._lose(identity)
            return False
        worker = self.workers[identity]
        worker.credits -= 1
        worker.batches.add(seq)
        if item.worker:
            self.stats.resent_batches += 1
            old = self.workers.get(item.worker)
            if old is not None:
                old.batches.discard(seq)
        item.worker, item.sent_at = identity, time.monotonic()
        return True

    def decided(self, seq: int, item: InFlight) -> None:
        """Batch ``seq`` (``item``) is acknowledged: its worker no longer holds it."""
        owner = self.workers.get(item.worker)
        if owner is not None:
            owner.batches.discard(seq)

    def expire(self) -> None:
        """Workers silent for ``liveness`` heartbeats are presumed dead."""
        now = time.monotonic()
        for identity, worker in list(self.workers.items()):
            if now - worker.last_seen > self.config.heartbeat_s * self.config.liveness:
                self._lose(identity)

    def none_left(self) -> bool:
        """Whether no worker has been known for ``NO_WORKER_LIVENESSES`` liveness periods."""
        now = time.monotonic()
        if self.workers:
            self._had_workers = now
            return False
        return now - self._had_workers > self.config.heartbeat_s * self.config.liveness * NO_WORKER_LIVENESSES

    def stop(self) -> None:
        """STOP to every worker: the run is over."""
        for identity in list(self.workers):
            self.tasks.send_multipart([identity, STOP])

    def _next(self) -> bytes | None:
        for _ in range(len(self._rr)):
            identity = self._rr[0]
            self._rr.rotate(-1)
            if self.workers[identity].credits > 0:
                return identity
        return None

    def _lose(self, identity: bytes) -> None:
        worker = self.workers.pop(identity)
        self._rr.remove(identity)
        self.stats.workers_lost += 1
        self.ledger.requeue_lost(worker.batches)
