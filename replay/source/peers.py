"""The collector and the reference as the source knows them, and what the reference is sent.

Both say READY on the control channel once they are up; the collector then reports STATS
and, after END, FINAL. A local one that dies is started again (the collector continues its
journal and gets what it had not acknowledged again); a reference that cannot be started
again ends the side check, a collector that cannot be started again ends the run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, TextIO

import zmq

from replay.config import ReplayConfig
from replay.source.batches import Batch, Ledger
from replay.source.states import Event
from replay.source.stats import SourceStats
from replay.wire import STOP

__all__ = ("PACED_REFERENCE_QUEUE", "STRAINED_FRACTION", "Peers", "ReferenceFeed")

#: paced: the reference gets nothing while the latest decision took more than this part of the
#: deadline (a stall beginning: at 2 MHz on two cores the reference, idle class as it is, still
#: slows the workers through the caches and the copies it costs the others)
STRAINED_FRACTION = 0.25
#: paced: batches queued for the reference at most, so that it stops soon after the trigger
#: path needs the cores
PACED_REFERENCE_QUEUE = 2


class Peers:
    """Who said READY (since last started), the collector's reports, and dead peers started again.

    ``alive(role)`` names a local role process that died (``role`` is a name prefix, "" for
    any); ``restart(role)`` starts it again and says whether it did.
    """

    def __init__(self, config: ReplayConfig, reference: bool, alive: Callable[[str], str | None],
                 restart: Callable[[str], bool], progress: TextIO | None, stats: SourceStats) -> None:
        self.config, self.alive, self.restart, self.progress, self.stats = config, alive, restart, progress, stats
        self.reference = reference  # the side check runs (False once it died for good)
        self.ready: set[str] = set()
        self.collector_pid: Any = None  # from the collector's READY: only its ACKs count
        self.collector_heard = time.monotonic()  # its last STATS
        self.collector_stats: dict[str, Any] = {}
        self.final: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None  # END, once sent (again to a restarted collector)
        self._collector_came = False  # a collector said READY before: another READY is a restarted one

    def missing(self, workers: int, wanted: int) -> list[str]:
        """The peers whose READY the run still waits for (``workers`` of ``wanted`` workers are)."""
        missing = [role for role in ("collector", "reference" if self.reference else "")
                   if role and role not in self.ready]
        if workers < wanted:
            missing.append(f"worker ({workers} of {wanted} ready)" if wanted > 1 else "worker")
        return missing

    def said_ready(self, role: str, pid: Any) -> bool:
        """``role`` is up; True when it is a collector that was up before (restarted)."""
        restarted = False
        if role == "collector":
            restarted, self._collector_came = self._collector_came, True
            self.collector_pid = pid
        self.ready.add(role)
        return restarted

    def reported(self, header: dict[str, Any], final: bool) -> None:
        """The collector's STATS (it is working) or FINAL (the closing progress line shows these)."""
        self.collector_stats = header
        if final:
            self.final = header
        else:
            self.collector_heard = time.monotonic()

    def check(self, roles: tuple[str, ...] = ("collector", "reference")) -> list[tuple[Event, str]]:
        """Each dead one among ``roles`` (the reference while the side check runs) started again,
        or lost; the events that are, each with its problem."""
        events = []
        for role in roles:
            if role == "reference" and not self.reference:
                continue
            problem = self.alive(role)
            if problem is None:
                continue
            if self.restart(role):
                self.stats.restarts[role] = self.stats.restarts.get(role, 0) + 1
                self.ready.discard(role)  # until the new one says READY
                if self.progress is not None:
                    self.progress.write(f"\nreplay: {problem}; started it again\n")
                events.append((Event.ROLE_RESTARTED, problem))
            elif role == "collector":
                events.append((Event.COLLECTOR_LOST, problem))
                break
            else:
                self.reference = False  # the side check ends; the trigger path goes on
                events.append((Event.REFERENCE_LOST, problem))
        return events


class ReferenceFeed:
    """A copy of the batches the reference path can take without the trigger path waiting."""

    def __init__(self, socket: zmq.Socket[Any], config: ReplayConfig, stats: SourceStats, peers: Peers,
                 ledger: Ledger) -> None:
        self.socket, self.config, self.stats, self.peers, self.ledger = socket, config, stats, peers, ledger
        self.batch_span_ns = int(config.effective_batch_size * 1e9 / config.rate.hz)  # a batch's time in the beam

    def takes(self, seq: int, behind: bool = False) -> bool | None:
        """Whether batch ``seq`` goes to the reference path too: one in ``reference_prescale`` (else
        False), when its socket takes it now and the trigger path keeps up (else None: busy). The
        reference is a side check: the trigger path never waits for it, and while a paced run is
        ``behind`` its schedule the reference gets nothing, so the cores are the trigger's."""
        if not self.peers.reference or seq % self.config.reference_prescale:
            return False
        if behind:
            return None
        return True if int(self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLOUT else None

    def send(self, frames: list[Any], n: int, takes: bool | None, behind: bool = False) -> None:
        if takes:
            try:
                self.socket.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:  # it said it would take it; the collector stops waiting for these scores
                takes = None
            else:
                self.stats.reference_batches += 1
                self.stats.reference_events += n
                return
        if self.peers.reference:
            self.stats.reference_skipped += n
            self.stats.reference_busy += n if takes is None else 0
            self.stats.reference_behind += n if takes is None and behind else 0

    def stop(self) -> None:
        """STOP to the reference, if it is still fed and its queue has room (it stops by itself
        when the source falls silent)."""
        if self.peers.reference:
            with contextlib.suppress(zmq.Again):
                self.socket.send_multipart([STOP], flags=zmq.NOBLOCK)

    def strained(self, batch: Batch, now_ns: int) -> bool:
        """Whether a paced run's trigger path needs every core now: the batch leaves more than its
        own span after its release (behind schedule), or the latest decision took more than
        ``STRAINED_FRACTION`` of the deadline."""
        if now_ns - batch.release_ns(self.config.rate.hz) > self.batch_span_ns:
            return True
        return self.ledger.last_round_trip_ns > STRAINED_FRACTION * self.config.deadline_s * 1e9
