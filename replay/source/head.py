"""The source's head: what it does in each state of :mod:`replay.source.states`.

:meth:`Head.wait_ready` is WAITING_FOR_PEERS, :meth:`Head.run` STREAMING and DRAINING,
:meth:`Head.finish` FINISHING; every change of state goes through ``Head.machine``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import zmq

from replay.config import ReplayConfig
from replay.journal import SeqSet
from replay.source.batches import Batch, BatchReader, InFlight, Ledger
from replay.source.peers import Peers, ReferenceFeed
from replay.source.progress import Progress
from replay.source.states import Event, Machine, State
from replay.source.stats import Interrupt, SourceStats
from replay.source.workers import WorkerPool
from replay.stream import Events
from replay.wire import ACK, END, FINAL, READY, STATS, FrameError, decode_header, encode, encode_task, message_kind

__all__ = ("DRAIN_ACK_TIMEOUTS", "FINAL_GRACE_S", "POLL_MS", "Head")

#: after the first Ctrl-C, what is in flight gets this many ``ack_timeout_s`` to be decided: time
#: for a batch whose worker died to be sent once more and decided
DRAIN_ACK_TIMEOUTS = 2
#: after END the collector may wait ``ack_timeout_s`` for reference scores that never come, then
#: writes its files from the journal without a word; its FINAL gets this long on top
FINAL_GRACE_S = 5.0
#: while waiting for READY or FINAL, how long one wait on the sockets lasts between checks of the peers
POLL_MS = 100


class Head:
    """The source's sockets (``tasks``, ``control``, ``reference``, ``collector``), its peers and
    its batches, moved through its states by ``machine``."""

    def __init__(self, sockets: dict[str, zmq.Socket[Any]], config: ReplayConfig, reference: bool,
                 alive: Callable[[str], str | None] = lambda _role: None, progress: TextIO | None = None,
                 done: SeqSet | None = None, restart: Callable[[str], bool] = lambda _role: False,
                 pack: bool = False) -> None:
        self.s, self.config, self.alive = sockets, config, alive
        self.pack = pack  # tasks packed without their empty slots
        self.done = done or SeqSet()  # batches decided before a resume
        self.stats = SourceStats(packed_batches=pack)
        self.machine = Machine()
        self.ledger = Ledger(config, self.stats)
        self.pool = WorkerPool(sockets["tasks"], config, self.stats, self.ledger)
        self.peers = Peers(config, reference, alive, restart, progress, self.stats)
        self.feed = ReferenceFeed(sockets["reference"], config, self.stats, self.peers, self.ledger)
        self.progress = Progress(progress, config, self.peers, self.ledger, self.pool)
        self.started = self._peers_checked = time.monotonic()

    # -- incoming -----------------------------------------------------------------------
    def receive(self, timeout_ms: int) -> None:
        """Whatever the workers and the control channel sent, waiting up to ``timeout_ms`` for it."""
        poller = zmq.Poller()
        poller.register(self.s["tasks"], zmq.POLLIN)
        poller.register(self.s["control"], zmq.POLLIN)
        events = dict(poller.poll(timeout_ms))
        while events:
            if self.s["tasks"] in events:
                self.pool.heard(self.s["tasks"].recv_multipart())
            if self.s["control"] in events:
                self._from_control(self.s["control"].recv_multipart())
            events = dict(poller.poll(0))
        self.pool.beat()

    def _from_control(self, frames: list[bytes]) -> None:
        try:
            kind = message_kind(frames)
            header = decode_header(frames, {})
        except FrameError:
            return
        if kind == ACK and type(header.get("seq")) is int and header.get("pid") == self.peers.collector_pid:
            item = self.ledger.acknowledged(header["seq"])  # only the collector's, only for batches in flight
            if item is not None:
                self.pool.decided(header["seq"], item)
        elif kind == READY and isinstance(header.get("role"), str):
            if self.peers.said_ready(header["role"], header.get("pid")):  # a restarted collector
                self.ledger.requeue_all()
                if self.peers.end is not None:
                    self.s["collector"].send_multipart(encode(END, self.peers.end))
        elif kind in (STATS, FINAL):
            self.peers.reported(header, final=kind == FINAL)

    def check_peers(self) -> None:
        """Each ``heartbeat_s``: dead peers started again or lost; the run fails when no worker is
        left and one died (a lost worker alone costs only the re-sending of its batches)."""
        if time.monotonic() - self._peers_checked < self.config.heartbeat_s:
            return
        self._peers_checked = time.monotonic()
        for event, problem in self.peers.check():
            self.machine.handle(event, problem)
        if self.pool.none_left() and (dead := self.alive("")):  # none came back
            self.machine.handle(Event.WORKERS_LOST, dead)

    # -- WAITING_FOR_PEERS --------------------------------------------------------------
    def wait_ready(self, interrupt: Interrupt, workers: int = 1) -> None:
        """READY from the collector, ``workers`` workers and (if used) the reference, or a clear error.

        A collector or reference that dies meanwhile is started again, as in a run, and gets
        ``ready_timeout_s`` to come up; a worker that dies is an error. A paced run's clock starts
        after this: a worker still importing and loading its model when the first batches are due
        takes the cores from the others, and those batches come late.
        """
        deadline = time.monotonic() + self.config.ready_timeout_s
        while True:
            interrupt.check()
            missing = self.peers.missing(len(self.pool), workers)
            if not missing:
                self.machine.handle(Event.PEERS_READY)
                return
            for event, problem in self.peers.check():
                self.machine.handle(event, problem)
                if event is Event.ROLE_RESTARTED:  # it must come up first
                    deadline = max(deadline, time.monotonic() + self.config.ready_timeout_s)
            dead = self.alive("worker")
            if dead:
                self.machine.handle(Event.WORKERS_LOST, dead)
            if time.monotonic() > deadline:
                self.machine.handle(Event.READY_TIMEOUT, (
                    f"no READY from the {', '.join(missing)} within {self.config.ready_timeout_s:.0f} s; "
                    "check that the role is running and its endpoints match"))
            self.receive(POLL_MS)

    # -- STREAMING and DRAINING ---------------------------------------------------------
    def run(self, stream: Iterable[Events], interrupt: Interrupt) -> SourceStats:
        """Send the stream's batches (paced ones when their last event is due) and those lost,
        until every batch is decided or abandoned."""
        config, rate, machine, ledger = self.config, self.config.rate, self.machine, self.ledger
        reader = BatchReader(stream, self.done, rate, self.stats)
        batch: Batch | None = None  # read, not yet sent
        drain_deadline = math.inf
        while True:
            state = machine.state
            if state is State.STREAMING:
                if interrupt.count:
                    batch, self.stats.interrupted = None, True
                    drain_deadline = time.monotonic() + DRAIN_ACK_TIMEOUTS * config.ack_timeout_s
                    state = machine.handle(Event.STOP)
                elif batch is None and (batch := reader.next()) is None:
                    state = machine.handle(Event.STREAM_END)
            if state is State.DRAINING and (interrupt.count > 1 or time.monotonic() > drain_deadline):
                self.stats.events_abandoned = ledger.events()
                machine.handle(Event.ABANDON)
                break
            sent_any = self._send_resends()
            wait_ms = int(config.heartbeat_s * 1000)
            if batch is not None and not ledger.resend:
                early_ns = batch.release_ns(rate.hz) - time.monotonic_ns() if batch.due_ns else 0
                if early_ns > 0:  # paced: a batch leaves when its last event is due
                    wait_ms = min(wait_ms, early_ns // 1_000_000)
                elif self._send_new(batch):
                    batch, sent_any = None, True
            if state is State.DRAINING and batch is None and not ledger.in_flight:
                machine.handle(Event.ALL_DECIDED)
                break
            self.receive(0 if sent_any else wait_ms)
            self.pool.expire()
            ledger.requeue_stale(time.monotonic())
            self.check_peers()
            self.progress.show(self.started)
        self.stats.wall_seconds = time.monotonic() - self.started
        return self.stats

    def _send_resends(self) -> bool:
        sent, resend, in_flight = False, self.ledger.resend, self.ledger.in_flight
        while resend:
            seq = resend[0]
            if seq in in_flight and not self.pool.send(seq, in_flight[seq]):
                break
            resend.popleft()
            sent = True
        return sent

    def _send_new(self, batch: Batch) -> bool:
        n = len(batch.particles)
        now_ns = time.monotonic_ns()
        header = {"seq": batch.seq, "bx0": batch.bx0, "n": n, "t_sent": now_ns}
        if batch.due_ns is not None:
            header["t_due"] = batch.due_ns
        behind = batch.due_ns is not None and self.feed.strained(batch, now_ns)
        takes = self.feed.takes(batch.seq, behind)
        header["ref"] = bool(takes)  # the collector waits for the reference scores of these batches only
        item = InFlight(encode_task(header, batch.particles, self.pack), n, now_ns, batch.due_ns)
        if not self.pool.send(batch.seq, item):
            return False
        self.ledger.in_flight[batch.seq] = item
        self.feed.send(item.frames, n, takes, behind)
        self.stats.batches += 1
        self.stats.events_in += n
        return True

    # -- FINISHING ----------------------------------------------------------------------
    def finish(self) -> None:
        """END to the collector, its FINAL awaited (as long as it reports, it is working towards
        it; a dead one is started again), then STOP to the workers and the reference."""
        s, peers = self.stats, self.peers
        peers.end = {"events_in": s.events_in, "batches": s.batches, "reference_batches": s.reference_batches}
        self.s["collector"].send_multipart(encode(END, peers.end))
        wait = self.config.ack_timeout_s + FINAL_GRACE_S
        deadline, ending = time.monotonic() + wait, (Event.FINAL, "")
        while peers.final is None:
            if time.monotonic() >= max(deadline, peers.collector_heard + wait):
                ending = (Event.COLLECTOR_SILENT, "")
                break
            self.receive(POLL_MS)
            dead = None if peers.final is not None else self.alive("collector")  # only its death matters now
            if dead:
                event, problem = (peers.check(("collector",)) or [(Event.COLLECTOR_LOST, dead)])[0]
                if event is not Event.ROLE_RESTARTED:
                    ending = (event, problem)
                    break
                self.machine.handle(event, problem)
                deadline = time.monotonic() + wait + self.config.ready_timeout_s  # it must come up first
        self.machine.handle(*ending)
        self.progress.close(self.started)
        self.pool.stop()
        self.feed.stop()
        s.collector = peers.final or {}
        s.round_trip_ms = self.ledger.round_trip.summary()
