"""Source role (the head of a run): pace the stream, hand batches to workers, re-send what is lost.

Sockets: ``tasks`` ROUTER (workers' DEALERs say READY with credits and send HEARTBEATs),
``acks`` PULL (the collector's READY, ACK, STATS, FINAL; the reference's READY),
``reference`` PUSH (a copy of each new batch for the reference path) and a PUSH to the
collector for END. A batch stays in flight until the collector acknowledges it; it is
sent again, to another worker, when its worker falls silent (missed heartbeats) or when
no acknowledgement came within ``ack_timeout_s``. The collector drops duplicates.

Every event gets a bunch-crossing id (its position in the stream). With a simulated
clock (``40MHz-sim``) the event's time is ``bx * 25 ns`` and batches go out as fast as the
workers take them; with a wall-clock rate a batch leaves when its last event is due and
carries the time its first event was due, so the collector can count deadline misses.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self, TextIO

import numpy as np
import zmq
from numpy.typing import NDArray

from replay.config import MAX_CONTROL_BYTES, Endpoints, ReplayConfig
from replay.journal import SeqSet
from replay.latency import LatencyHistogram, late_events
from replay.process import idle_context, settle_heap
from replay.security import Curve, secure_client, secure_server
from replay.stream import EventStream
from replay.wire import (
    ACK,
    END,
    FINAL,
    HEARTBEAT,
    READY,
    STATS,
    STOP,
    FrameError,
    decode_header,
    encode,
    encode_task,
    message_kind,
)
from trigger.errors import TriggerError
from trigger.rates import BX_RATE_HZ, format_rate

__all__ = ("Interrupt", "RoleError", "SourceStats", "run_source")

#: paced: the reference gets nothing while the latest decision took more than this part of the deadline
STRAINED_FRACTION = 0.25
#: paced: batches queued for the reference at most
PACED_REFERENCE_QUEUE = 2


class RoleError(TriggerError):
    """A pipeline role that did not come up, or died."""


@dataclass
class SourceStats:
    events_in: int = 0
    batches: int = 0
    resent_batches: int = 0
    workers_seen: int = 0
    workers_lost: int = 0
    reference_batches: int = 0  # batches sent to the reference path as well
    reference_events: int = 0
    reference_skipped: int = 0  # events the reference path did not get: prescaled, or it was busy
    reference_busy: int = 0  # of those, events it would have had but could not take without waiting
    reference_behind: int = 0  # of the busy ones, events kept from it while the paced trigger path was behind or slow
    packed_batches: bool = False  # tasks sent without their empty slots (replay.packing)
    interrupted: bool = False
    events_abandoned: int = 0  # in flight when a second Ctrl-C cut the drain short
    resumed_events: int = 0  # decided before the run was resumed: counted in events_in, not sent again
    restarts: dict[str, int] = field(default_factory=dict)  # role -> times it died and was started again
    wall_seconds: float = 0.0
    # on the source's own clock, whatever host the others run on: first sent -> decision acknowledged
    round_trip_ms: dict[str, float | None] = field(default_factory=dict)
    round_trip_deadline_misses: int = 0  # paced runs: events whose acknowledgement came after the deadline
    collector: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Worker:
    credits: int = 0
    last_seen: float = 0.0
    batches: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Batch:
    """A batch read from the stream, not yet sent; ``due_ns``: when its first event is due (paced)."""

    seq: int
    bx0: int
    particles: NDArray[np.floating[Any]]
    due_ns: int | None

    def release_ns(self, rate_hz: float) -> int:
        assert self.due_ns is not None
        return self.due_ns + int((len(self.particles) - 1) * 1e9 / rate_hz)


@dataclass
class _InFlight:
    frames: list[Any]
    n: int
    first_sent_ns: int
    due_ns: int | None = None
    worker: bytes = b""
    sent_at: float = 0.0


class Interrupt:
    """First Ctrl-C: stop reading and drain; second: give up on what is in flight.

    Counting instead of raising also keeps a Ctrl-C during start-up from being lost inside a
    library that catches it; the caller checks ``count`` when it can act on it.
    """

    def __init__(self) -> None:
        self.count = 0
        self._previous: Any = None

    def __enter__(self) -> Self:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def _handle(self, *_: object) -> None:
        self.count += 1

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C came while nothing could act on it."""
        if self.count:
            raise KeyboardInterrupt

    def __exit__(self, *_: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Head:
    """The source's state machine; ``run`` drives it."""

    def __init__(self, sockets: dict[str, zmq.Socket[Any]], config: ReplayConfig, reference: bool,
                 alive: Callable[[str], str | None], progress: TextIO | None, done: SeqSet | None = None,
                 restart: Callable[[str], bool] = lambda _role: False, pack: bool = False) -> None:
        self.s, self.config, self.reference, self.alive, self.progress = sockets, config, reference, alive, progress
        self.pack = pack  # tasks packed without their empty slots
        self.batch_span_ns = int(config.effective_batch_size * 1e9 / config.rate.hz)  # a batch's time in the beam
        self.done = done or SeqSet()  # batches decided before a resume
        self.restart = restart
        self.end: dict[str, Any] | None = None  # END, once sent (again to a restarted collector)
        self.collector_pid: Any = None  # from the collector's READY: only its ACKs count
        self.collector_heard = time.monotonic()  # its last STATS
        self.round_trip = LatencyHistogram()
        self.last_round_trip_ns = 0  # of the latest acknowledged batch
        self._had_workers = time.monotonic()  # when a worker was last known
        self.stats = SourceStats(packed_batches=pack)
        self.workers: dict[bytes, _Worker] = {}
        self.in_flight: dict[int, _InFlight] = {}
        self.resend: deque[int] = deque()
        self.ready: set[str] = set()
        self.collector_stats: dict[str, Any] = {}
        self.final: dict[str, Any] | None = None
        self.started = time.monotonic()
        self._last_progress = self._roles_checked = self._beaten = time.monotonic()
        self._rr: deque[bytes] = deque()

    # -- incoming -----------------------------------------------------------------------
    def receive(self, timeout_ms: int) -> None:
        poller = zmq.Poller()
        poller.register(self.s["tasks"], zmq.POLLIN)
        poller.register(self.s["acks"], zmq.POLLIN)
        events = dict(poller.poll(timeout_ms))
        while events:
            if self.s["tasks"] in events:
                self._from_worker(self.s["tasks"].recv_multipart())
            if self.s["acks"] in events:
                self._from_control(self.s["acks"].recv_multipart())
            events = dict(poller.poll(0))
        self.beat()

    def beat(self) -> None:
        """A HEARTBEAT to every worker each ``heartbeat_s``, so that one waiting for work (while the
        other roles come up, or between paced batches) knows the source is alive."""
        if time.monotonic() - self._beaten < self.config.heartbeat_s:
            return
        self._beaten = time.monotonic()
        for identity in list(self.workers):
            try:
                self.s["tasks"].send_multipart([identity, HEARTBEAT], flags=zmq.NOBLOCK)
            except zmq.ZMQError:  # gone, or its queue is full of work: either way not idle
                continue

    def _from_worker(self, frames: list[bytes]) -> None:
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
        if kind == READY and type(header.get("credits")) is int and 0 < header["credits"] <= 64:
            worker.credits += header["credits"]
        elif kind == HEARTBEAT:
            pass

    def _from_control(self, frames: list[bytes]) -> None:
        try:
            kind = message_kind(frames)
            header = decode_header(frames, {})
        except FrameError:
            return
        if kind == ACK and type(header.get("seq")) is int and header.get("pid") == self.collector_pid:
            done = self.in_flight.pop(header["seq"], None)  # only the collector's, only for batches in flight
            if done is not None:
                self._acknowledged(done)
                owner = self.workers.get(done.worker)
                if owner is not None:
                    owner.batches.discard(header["seq"])
        elif kind == READY and isinstance(header.get("role"), str):
            if header["role"] == "collector" and "collector" in self.ready:  # a restarted collector
                self.resend.extend(seq for seq in sorted(self.in_flight) if seq not in self.resend)
                if self.end is not None:
                    self.s["collector"].send_multipart(encode(END, self.end))
            if header["role"] == "collector":
                self.collector_pid = header.get("pid")
            self.ready.add(header["role"])
        elif kind == STATS:
            self.collector_stats, self.collector_heard = header, time.monotonic()
        elif kind == FINAL:
            self.final = self.collector_stats = header  # the closing progress line shows the final counts

    def _acknowledged(self, item: _InFlight) -> None:
        """A batch's decision is on record: its round trip on this clock, and its late events."""
        now_ns = time.monotonic_ns()
        self.last_round_trip_ns = now_ns - item.first_sent_ns
        self.round_trip.add(self.last_round_trip_ns / 1e6)
        if item.due_ns is not None:
            self.stats.round_trip_deadline_misses += late_events(item.due_ns, item.n, now_ns, self.config.rate.hz,
                                                                 int(self.config.deadline_s * 1e9))

    # -- liveness -----------------------------------------------------------------------
    def expire(self) -> None:
        """Presume silent workers dead and queue their batches (and stale ones) again."""
        now = time.monotonic()
        for identity, worker in list(self.workers.items()):
            if now - worker.last_seen > self.config.heartbeat_s * self.config.liveness:
                self._lose(identity)
        for seq, item in self.in_flight.items():
            if item.worker and now - item.sent_at > self.config.ack_timeout_s and seq not in self.resend:
                self.resend.append(seq)

    def check_roles(self, now: bool = False) -> None:
        """Start a dead collector or reference again (the collector continues its journal; what it
        had not acknowledged is sent again when it says READY); stop with an error when the
        collector cannot be restarted, or when no worker is left and one died. A lost worker
        alone is handled by re-sending its batches, a reference that stays dead by going on
        without it."""
        if not now and time.monotonic() - self._roles_checked < self.config.heartbeat_s:
            return
        self._roles_checked = time.monotonic()
        for role in ("collector", "reference") if self.reference else ("collector",):
            problem = self.alive(role)
            if problem is None:
                continue
            if self.restart(role):
                self.stats.restarts[role] = self.stats.restarts.get(role, 0) + 1
                if self.progress is not None:
                    self.progress.write(f"\nreplay: {problem}; started it again\n")
            elif role == "collector":
                raise RoleError(problem)
            else:
                self.reference = False  # the side check ends; the trigger path goes on
        if self.workers:
            self._had_workers = time.monotonic()
        elif (time.monotonic() - self._had_workers > self.config.heartbeat_s * self.config.liveness * 4
              and (problem := self.alive(""))):  # a live worker reconnecting is back well before that
            raise RoleError(problem)

    def _next_worker(self) -> bytes | None:
        for _ in range(len(self._rr)):
            identity = self._rr[0]
            self._rr.rotate(-1)
            if self.workers[identity].credits > 0:
                return identity
        return None

    # -- outgoing -----------------------------------------------------------------------
    def send(self, seq: int, item: _InFlight) -> bool:
        identity = self._next_worker()
        if identity is None:
            return False
        try:
            self.s["tasks"].send_multipart([identity, *item.frames], copy=False)
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

    def _lose(self, identity: bytes) -> None:
        worker = self.workers.pop(identity)
        self._rr.remove(identity)
        self.stats.workers_lost += 1
        self.resend.extend(seq for seq in sorted(worker.batches) if seq in self.in_flight)

    def reference_takes(self, seq: int, behind: bool = False) -> bool | None:
        """Whether batch ``seq`` goes to the reference path too: one in ``reference_prescale`` (else
        False), when its socket takes it now and the trigger path keeps up (else None: busy). The
        reference is a side check: the trigger path never waits for it, and while a paced run is
        ``behind`` its schedule the reference gets nothing, so the cores are the trigger's."""
        if not self.reference or seq % self.config.reference_prescale:
            return False
        if behind:
            return None
        return True if int(self.s["reference"].getsockopt(zmq.EVENTS)) & zmq.POLLOUT else None

    def send_reference(self, frames: list[Any], n: int, takes: bool | None, behind: bool = False) -> None:
        if takes:
            try:
                self.s["reference"].send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:  # it said it would take it; the collector stops waiting for these scores
                takes = None
            else:
                self.stats.reference_batches += 1
                self.stats.reference_events += n
                return
        if self.reference:
            self.stats.reference_skipped += n
            self.stats.reference_busy += n if takes is None else 0
            self.stats.reference_behind += n if takes is None and behind else 0

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        tty = self.progress is not None and self.progress.isatty()
        every = self.config.progress_s * (1 if tty else 20)  # a log file gets a line every 10 s
        if self.progress is None or (not force and now - self._last_progress < every):
            return
        self._last_progress = now
        c = self.collector_stats
        decided = c.get("events_decided", 0) + c.get("events_quarantined", 0)
        rate = decided / max(now - self.started, 1e-9)
        accept = c.get("events_accepted", 0) / max(c.get("events_decided", 0), 1) * BX_RATE_HZ
        line = (f"{decided:>12,} decided  {format_rate(rate).replace('Hz', 'ev/s'):>12}  "
                f"RTF {rate / BX_RATE_HZ:6.4f}  accept {format_rate(accept):>10} @40MHz  "
                f"in flight {len(self.in_flight):>3}  workers {len(self.workers)}  "
                f"quarantined {c.get('events_quarantined', 0)}  "
                f"ref.disagree {c.get('reference_disagreements', 0)}")
        self.progress.write("\r" + line if tty else line + "\n")
        self.progress.flush()

    # -- the run ------------------------------------------------------------------------
    def wait_ready(self, interrupt: Interrupt, workers: int = 1) -> None:
        """READY from the collector, ``workers`` workers and (if used) the reference, or a clear error.

        A paced run's clock starts here: a worker still importing and loading its model when the
        first batches are due takes the cores from the others, and those batches come late.
        """
        deadline = time.monotonic() + self.config.ready_timeout_s
        while True:
            interrupt.check()
            missing = [r for r in ("collector", "reference" if self.reference else "") if r and r not in self.ready]
            if len(self.workers) < workers:
                missing.append(f"worker ({len(self.workers)} of {workers} ready)" if workers > 1 else "worker")
            if not missing:
                return
            problem = self.alive("")
            if problem:
                raise RoleError(problem)
            if time.monotonic() > deadline:
                msg = (
                    f"no READY from the {', '.join(missing)} within {self.config.ready_timeout_s:.0f} s; "
                    "check that the role is running and its endpoints match"
                )
                raise RoleError(msg)
            self.receive(100)

    def run(self, stream: Iterable[NDArray[np.floating[Any]]], interrupt: Interrupt) -> SourceStats:
        config, rate = self.config, self.config.rate
        batches = iter(stream)
        pending: _Batch | None = None
        exhausted, bx, t0 = False, 0, time.monotonic_ns()
        drain_deadline = None
        while True:
            if interrupt.count and not exhausted:  # Ctrl-C: no new batches, drain those in flight
                exhausted, pending, self.stats.interrupted = True, None, True
                drain_deadline = time.monotonic() + 2 * config.ack_timeout_s
            if interrupt.count > 1 or (drain_deadline and time.monotonic() > drain_deadline):
                self.stats.events_abandoned = sum(i.n for i in self.in_flight.values())
                break
            if pending is None and not exhausted:
                particles = next(batches, None)
                while particles is not None and self.stats.batches in self.done:  # decided before a resume
                    self.stats.batches += 1
                    self.stats.events_in += len(particles)
                    self.stats.resumed_events += len(particles)
                    bx += len(particles)
                    particles = next(batches, None)
                if particles is None:
                    exhausted = True
                else:  # paced: the first batch not yet decided is due now
                    due = None if rate.simulated else t0 + int((bx - self.stats.resumed_events) * 1e9 / rate.hz)
                    pending = _Batch(self.stats.batches, bx, particles, due)
                    bx += len(particles)
            sent_any = self._send_resends()
            wait_ms = int(config.heartbeat_s * 1000)
            if pending is not None and not self.resend:
                early_ns = pending.release_ns(rate.hz) - time.monotonic_ns() if pending.due_ns else 0
                if early_ns > 0:  # paced: a batch leaves when its last event is due
                    wait_ms = min(wait_ms, early_ns // 1_000_000)
                elif self._send_new(pending):
                    pending, sent_any = None, True
            if exhausted and pending is None and not self.in_flight:
                break
            self.receive(0 if sent_any else wait_ms)
            self.expire()
            self.check_roles()
            self.show()
        self.stats.wall_seconds = time.monotonic() - self.started
        return self.stats

    def _send_resends(self) -> bool:
        sent = False
        while self.resend:
            seq = self.resend[0]
            if seq in self.in_flight and not self.send(seq, self.in_flight[seq]):
                break
            self.resend.popleft()
            sent = True
        return sent

    def _send_new(self, batch: _Batch) -> bool:
        n = len(batch.particles)
        now_ns = time.monotonic_ns()
        header = {"seq": batch.seq, "bx0": batch.bx0, "n": n, "t_sent": now_ns}
        if batch.due_ns is not None:
            header["t_due"] = batch.due_ns
        behind = batch.due_ns is not None and self._strained(batch, now_ns)
        takes = self.reference_takes(batch.seq, behind)
        header["ref"] = bool(takes)  # the collector waits for the reference scores of these batches only
        item = _InFlight(encode_task(header, batch.particles, self.pack), n, now_ns, batch.due_ns)
        if not self.send(batch.seq, item):
            return False
        self.in_flight[batch.seq] = item
        self.send_reference(item.frames, n, takes, behind)
        self.stats.batches += 1
        self.stats.events_in += n
        return True

    def _strained(self, batch: _Batch, now_ns: int) -> bool:
        """Whether a paced run's trigger path needs every core now: the batch leaves more than its
        own span after its release (behind schedule), or the latest decision took more than a
        quarter of the deadline (a stall beginning: at 2 MHz on two cores the reference, idle class
        as it is, still slows the workers through the caches and the copies it costs the others)."""
        if now_ns - batch.release_ns(self.config.rate.hz) > self.batch_span_ns:
            return True
        return self.last_round_trip_ns > STRAINED_FRACTION * self.config.deadline_s * 1e9

    def finish(self) -> None:
        """END to the collector, wait for its FINAL, STOP the workers and the reference."""
        s = self.stats
        self.end = {"events_in": s.events_in, "batches": s.batches, "reference_batches": s.reference_batches}
        self.s["collector"].send_multipart(encode(END, self.end))
        # the collector may first wait ack_timeout_s for reference scores that never come
        wait = self.config.ack_timeout_s + 5.0
        deadline = time.monotonic() + wait
        while self.final is None and time.monotonic() < max(deadline, self.collector_heard + wait):
            self.receive(100)  # as long as the collector reports, it is working towards FINAL
            if self.final is None and self.alive("collector"):  # only the collector's death matters here
                restarts = self.stats.restarts.get("collector", 0)
                with contextlib.suppress(RoleError):
                    self.check_roles(now=True)
                if self.stats.restarts.get("collector", 0) == restarts:
                    break
                deadline = time.monotonic() + wait + self.config.ready_timeout_s  # it must come up first
        self.show(force=True)
        if self.progress is not None and self.progress.isatty():
            self.progress.write("\n")
        for identity in list(self.workers):
            self.s["tasks"].send_multipart([identity, STOP])
        if self.reference:
            with contextlib.suppress(zmq.Again):
                self.s["reference"].send_multipart([STOP], flags=zmq.NOBLOCK)
        s.collector = self.final or {}
        s.round_trip_ms = self.round_trip.summary()


def run_source(endpoints: Endpoints, stream: EventStream, config: ReplayConfig, reference: bool,
               alive: Callable[[str], str | None] = lambda _role: None, progress: TextIO | None = sys.stderr,
               context: zmq.Context[Any] | None = None, curve: Curve | None = None,
               interrupt: Interrupt | None = None, done: SeqSet | None = None,
               restart: Callable[[str], bool] = lambda _role: False, workers: int = 1) -> SourceStats:
    """Bind, wait for the roles (``workers`` of the workers), replay the stream, and return the
    source's and collector's counts; the batches in ``done`` (decided before a resume) are counted
    but not sent.

    ``alive(role)`` names a local role process that died (``role`` is a name prefix, "" for
    any); roles on other hosts are known only by their messages, so the default says none.
    ``restart(role)`` starts a dead local role again and says whether it did.
    """
    context = context or zmq.Context.instance()
    # the reference's copies leave through an I/O thread on idle CPU time: a side path's bytes
    # never take the trigger path's cores
    with (idle_context() as side_context, context.socket(zmq.ROUTER) as tasks, context.socket(zmq.PULL) as acks,
          side_context.socket(zmq.PUSH) as feed, context.socket(zmq.PUSH) as collector):
        for sock in (tasks, acks, feed, collector):
            sock.linger = 0
        tasks.sndhwm = acks.rcvhwm = config.hwm * 4
        for sock in (tasks, acks, feed, collector):  # workers and the collector send control messages only
            sock.maxmsgsize = MAX_CONTROL_BYTES
        # what the reference path may lag behind by, in batches; paced, a short queue, so that it
        # stops soon after the trigger path needs the cores
        feed.sndhwm = config.hwm if config.rate.simulated else min(config.hwm, PACED_REFERENCE_QUEUE)
        tasks.router_mandatory = True
        secure_server(curve, tasks, acks, feed)
        secure_client(curve, "collector", collector)
        tasks.bind(endpoints.tasks)
        acks.bind(endpoints.acks)
        feed.bind(endpoints.reference)
        collector.linger = 2000
        collector.connect(endpoints.results)
        pack = endpoints.tasks.startswith("tcp://") if config.pack_batches is None else config.pack_batches
        head = _Head({"tasks": tasks, "acks": acks, "reference": feed, "collector": collector}, config,
                     reference, alive, progress, done, restart, pack)
        try:
            with contextlib.ExitStack() as stack:  # the caller's handler if it installed one
                ctrl_c = interrupt or stack.enter_context(Interrupt())
                head.wait_ready(ctrl_c, workers)
                settle_heap()  # the head may hold TensorFlow and hls4ml, which read the model
                head.started = time.monotonic()
                stats = head.run(stream, ctrl_c)
                head.finish()
        finally:
            if curve is not None:
                curve.close()
        return stats
