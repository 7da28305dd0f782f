"""The source's batches: read from the stream (each paced one with its due time), then in flight
until the collector acknowledges its decision, queued to be sent again when that is late."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from replay.config import ReplayConfig, ReplayRate
from replay.journal import SeqSet
from replay.latency import LatencyHistogram, late_events
from replay.source.stats import SourceStats
from replay.stream import Events

__all__ = ("Batch", "BatchReader", "InFlight", "Ledger")


@dataclass(frozen=True)
class Batch:
    """A batch read from the stream, not yet sent; ``due_ns``: when its first event is due (paced)."""

    seq: int
    bx0: int
    particles: Events
    due_ns: int | None

    def release_ns(self, rate_hz: float) -> int:
        assert self.due_ns is not None
        return self.due_ns + int((len(self.particles) - 1) * 1e9 / rate_hz)


@dataclass
class InFlight:
    frames: list[Any]
    n: int
    first_sent_ns: int
    due_ns: int | None = None
    worker: bytes = b""
    sent_at: float = 0.0


class BatchReader:
    """The stream as batches, numbered by position; those in ``done`` (decided before a resume)
    are counted in ``stats`` and skipped. A paced run's clock starts at construction: its first
    batch not yet decided is due then."""

    def __init__(self, stream: Iterable[Events], done: SeqSet, rate: ReplayRate,
                 stats: SourceStats) -> None:
        self._batches, self._done, self._rate, self._stats = iter(stream), done, rate, stats
        self._bx, self._t0 = 0, time.monotonic_ns()

    def next(self) -> Batch | None:
        """The next batch to send; None at the stream's end."""
        stats = self._stats
        particles = next(self._batches, None)
        while particles is not None and stats.batches in self._done:
            stats.batches += 1
            stats.events_in += len(particles)
            stats.resumed_events += len(particles)
            self._bx += len(particles)
            particles = next(self._batches, None)
        if particles is None:
            return None
        rate = self._rate
        due = None if rate.simulated else self._t0 + int((self._bx - stats.resumed_events) * 1e9 / rate.hz)
        batch = Batch(stats.batches, self._bx, particles, due)
        self._bx += len(particles)
        return batch


class Ledger:
    """The batches in flight, by sequence number, and the queue of those to send again; an
    acknowledgement closes a batch and measures its round trip on this host's clock."""

    def __init__(self, config: ReplayConfig, stats: SourceStats) -> None:
        self.config, self.stats = config, stats
        self.in_flight: dict[int, InFlight] = {}
        self.resend: deque[int] = deque()
        self.round_trip = LatencyHistogram()
        self.last_round_trip_ns = 0  # of the latest acknowledged batch

    def acknowledged(self, seq: int) -> InFlight | None:
        """Close batch ``seq`` (None: it was not in flight): its round trip, its late events."""
        item = self.in_flight.pop(seq, None)
        if item is None:
            return None
        now_ns = time.monotonic_ns()
        self.last_round_trip_ns = now_ns - item.first_sent_ns
        self.round_trip.add(self.last_round_trip_ns / 1e6)
        if item.due_ns is not None:
            self.stats.round_trip_deadline_misses += late_events(item.due_ns, item.n, now_ns, self.config.rate.hz,
                                                                 int(self.config.deadline_s * 1e9))
        return item

    def requeue_lost(self, seqs: Iterable[int]) -> None:
        """A lost worker's batches, those still in flight, go out again."""
        self.resend.extend(seq for seq in sorted(seqs) if seq in self.in_flight)

    def requeue_all(self) -> None:
        """Every batch in flight goes out again (a restarted collector never saw them decided)."""
        self.resend.extend(seq for seq in sorted(self.in_flight) if seq not in self.resend)

    def requeue_stale(self, now: float) -> None:
        """Batches sent more than ``ack_timeout_s`` ago and not acknowledged go out again."""
        for seq, item in self.in_flight.items():
            if item.worker and now - item.sent_at > self.config.ack_timeout_s and seq not in self.resend:
                self.resend.append(seq)

    def events(self) -> int:
        """Events in flight."""
        return sum(item.n for item in self.in_flight.values())
