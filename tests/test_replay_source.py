"""The source as a state machine: each row of its transition table, then each transition made by the
head against stand-in peers over inproc sockets (a worker and a collector in a thread, or messages
sent by the test), then real runs whose collector or reference is killed before it is READY."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import zmq
from conftest import expected_accepts

import replay.source.head
from replay.config import Endpoints, ReplayConfig, parse_replay_rate
from replay.pipeline import ReplayRun, _Roles, run_replay
from replay.source import Event, Interrupt, RoleError, State
from replay.source.head import Head
from replay.source.sockets import bound_head
from replay.source.states import TRANSITIONS, Machine
from replay.wire import ACK, END, FINAL, HEARTBEAT, READY, STOP, decode_header, encode

W, S, D, F = State.WAITING_FOR_PEERS, State.STREAMING, State.DRAINING, State.FINISHING
CONFIG = ReplayConfig(batch_size=100, heartbeat_s=0.05, liveness=5, ack_timeout_s=10.0, ready_timeout_s=5.0,
                      progress_s=0.2)
BATCH = np.zeros((100, 19, 4), np.float32)
DEAD = "the collector process exited with status -9"


# -- the table ---------------------------------------------------------------------------------
ROWS = [(state, event, following) for state, row in TRANSITIONS.items() for event, following in row.items()]


@pytest.mark.parametrize(("state", "event", "following"), ROWS, ids=[f"{s.name}-{e.name}" for s, e, _ in ROWS])
def test_each_row_of_the_table_is_a_transition_of_the_machine(state: State, event: Event, following: State) -> None:
    machine = Machine(state)
    if following is State.FAILED:
        with pytest.raises(RoleError, match="the problem"):
            machine.handle(event, "the problem")
    else:
        assert machine.handle(event) is following
    assert machine.state is following and machine.history == [(state, event, following)]


def test_the_run_goes_through_the_four_states_in_order_and_every_state_can_end() -> None:
    machine = Machine()
    for event in (Event.PEERS_READY, Event.STREAM_END, Event.ALL_DECIDED, Event.FINAL):
        machine.handle(event)
    assert [(a, b) for a, _, b in machine.history] == [(W, S), (S, D), (D, F), (F, State.DONE)]
    for state in (W, S, D, F):  # a dead collector ends each state, one way or the other
        assert TRANSITIONS[state][Event.COLLECTOR_LOST] in (State.FAILED, State.DONE)
        assert TRANSITIONS[state][Event.ROLE_RESTARTED] is state  # a restarted peer changes nothing else


@pytest.mark.parametrize(("state", "event"), [(S, Event.FINAL), (F, Event.STREAM_END), (W, Event.STOP),
                                              (State.DONE, Event.PEERS_READY), (State.FAILED, Event.FINAL)])
def test_an_event_the_table_does_not_list_for_a_state_is_a_bug(state: State, event: Event) -> None:
    machine = Machine(state)
    with pytest.raises(RuntimeError, match=f"cannot handle {event.name} while {state.value}"):
        machine.handle(event)
    assert machine.state is state and not machine.history


# -- stand-in peers ----------------------------------------------------------------------------
def _ends() -> Endpoints:
    return Endpoints(*(f"inproc://{name}" for name in ("tasks", "control", "reference", "results")))


class StandIns(threading.Thread):
    """A worker and a collector over inproc. The worker says READY with two credits, then one after
    each batch (unless the collector is ``dead``); the collector acknowledges each batch with its pid
    (unless ``ack`` is False or it is ``dead``) and answers END with FINAL. It dies at its
    ``die_at``-th batch, or at END (``die_at=0``); :meth:`restart` brings a new one (another pid) that
    does not die."""

    def __init__(self, ctx: zmq.Context, ack: bool = True, die_at: int | None = None) -> None:
        super().__init__()
        self.ctx, self.ack, self.die_at = ctx, ack, die_at
        self.pid, self.dead, self.batches, self.decided, self.ends = 1, False, 0, 0, 0
        self._restart, self._quit = threading.Event(), threading.Event()

    def restart(self, _role: str = "collector") -> bool:
        """The source's ``restart``: a new collector, up (it says READY) as soon as this thread can."""
        self.dead = False
        self._restart.set()
        return True

    def run(self) -> None:
        ends = _ends()
        with (self.ctx.socket(zmq.DEALER) as worker, self.ctx.socket(zmq.PUSH) as control,
              self.ctx.socket(zmq.PULL) as results):
            for sock in (worker, control, results):
                sock.linger = 0
            results.bind(ends.results)
            worker.connect(ends.tasks)
            control.connect(ends.control)
            control.send_multipart(encode(READY, {"role": "collector", "pid": self.pid}))
            worker.send_multipart(encode(READY, {"credits": 2}))
            poller, beaten = zmq.Poller(), time.monotonic()
            poller.register(worker, zmq.POLLIN)
            poller.register(results, zmq.POLLIN)
            while not self._quit.is_set():
                if time.monotonic() - beaten > CONFIG.heartbeat_s / 2:
                    worker.send_multipart(encode(HEARTBEAT, {}))
                    beaten = time.monotonic()
                if self._restart.is_set():
                    self._restart.clear()
                    self.pid += 1
                    control.send_multipart(encode(READY, {"role": "collector", "pid": self.pid}))
                    worker.send_multipart(encode(READY, {"credits": 2}))  # the credits it kept while dead
                events = dict(poller.poll(10))
                if worker in events and self._from_source(worker.recv_multipart(), worker, control):
                    return
                if results in events and results.recv_multipart()[0] == END:
                    self.ends += 1
                    self.dead = self.dead or (self.die_at == 0 and self.pid == 1)  # the first one dies
                    if not self.dead:
                        control.send_multipart(encode(FINAL, {"events_decided": self.decided,
                                                              "events_quarantined": 0}))

    def _from_source(self, frames: list[bytes], worker: zmq.Socket, control: zmq.Socket) -> bool:
        if frames[0] == STOP:
            return True
        if frames[0] == HEARTBEAT:
            return False
        header = decode_header(frames, {"seq": int, "n": int})
        self.batches += 1
        self.dead = self.dead or self.batches == self.die_at
        if not self.dead:
            if self.ack:
                control.send_multipart(encode(ACK, {"seq": header["seq"], "pid": self.pid}))
                self.decided += header["n"]
            worker.send_multipart(encode(READY, {"credits": 1}))
        return False

    def stop(self) -> None:
        self._quit.set()
        self.join(10)


@contextlib.contextmanager
def _said_ready(ctx: zmq.Context, collector: int | None = 1, worker_ready: bool = True) -> Iterator[
        tuple[zmq.Socket, zmq.Socket]]:
    """A worker's DEALER and a PUSH on the control channel, sent from this thread; the worker has
    said READY (two credits) unless ``worker_ready`` is False, the collector unless ``collector``
    (its pid) is None."""
    with ctx.socket(zmq.DEALER) as worker, ctx.socket(zmq.PUSH) as control:
        worker.linger = control.linger = 0
        worker.connect(_ends().tasks)
        control.connect(_ends().control)
        if worker_ready:
            worker.send_multipart(encode(READY, {"credits": 2}))
        if collector is not None:
            control.send_multipart(encode(READY, {"role": "collector", "pid": collector}))
        yield worker, control


def _drive(head: Head, stream: list[np.ndarray] | Iterator[np.ndarray], interrupt: Interrupt | None = None) -> None:
    """What run_source does with its head."""
    interrupt = interrupt or Interrupt()
    head.wait_ready(interrupt)
    head.run(stream, interrupt)
    head.finish()


def _path(head: Head) -> list[tuple[State, Event]]:
    return [(state, event) for state, event, _ in head.machine.history]


def _dies_in(peers: StandIns, head: Callable[[], Head], *states: State) -> Callable[[str], str | None]:
    """``alive`` for the source: the collector is dead once ``peers`` says so and the head is in ``states``."""
    return lambda role: DEAD if role == "collector" and peers.dead and head().machine.state in states else None


# -- each transition against the stand-ins -----------------------------------------------------
def test_streaming_draining_finishing_done_with_every_event_decided() -> None:
    with zmq.Context() as ctx, bound_head(_ends(), CONFIG, False, ctx) as head:
        peers = StandIns(ctx)
        peers.start()
        try:
            _drive(head, [BATCH] * 5)
        finally:
            peers.stop()
    assert _path(head) == [(W, Event.PEERS_READY), (S, Event.STREAM_END), (D, Event.ALL_DECIDED), (F, Event.FINAL)]
    assert head.machine.state is State.DONE
    assert head.stats.events_in == 500 and head.stats.collector["events_decided"] == 500
    assert head.stats.resent_batches == 0 and not head.stats.interrupted


def test_waiting_ends_when_the_collector_the_workers_and_the_reference_said_ready() -> None:
    with (zmq.Context() as ctx, bound_head(_ends(), replace(CONFIG, ready_timeout_s=0.3), True, ctx) as head,
          _said_ready(ctx, collector=7) as (_, control)):
        with pytest.raises(RoleError, match=r"no READY from the reference within 0 s"):  # not without it
            head.wait_ready(Interrupt())
        head.machine = Machine()
        control.send_multipart(encode(READY, {"role": "reference", "pid": 8}))
        head.wait_ready(Interrupt())
    assert _path(head) == [(W, Event.PEERS_READY)] and head.peers.collector_pid == 7


def test_waiting_for_a_peer_that_never_comes_fails_with_what_is_missing() -> None:
    with (zmq.Context() as ctx, bound_head(_ends(), replace(CONFIG, ready_timeout_s=0.3), False, ctx) as head,
          pytest.raises(RoleError, match=r"no READY from the collector, worker \(0 of 2 ready\) within 0 s")):
        head.wait_ready(Interrupt(), workers=2)
    assert _path(head) == [(W, Event.READY_TIMEOUT)] and head.machine.state is State.FAILED


def test_a_collector_that_dies_while_waiting_is_started_again_and_its_ready_awaited() -> None:
    """It had said READY, then died: the one started again is waited for, and only its ACKs count."""
    restarted: list[str] = []
    with zmq.Context() as ctx, _said_ready(ctx, collector=None, worker_ready=False) as (worker, control):

        def restart(role: str) -> bool:
            restarted.append(role)
            worker.send_multipart(encode(READY, {"credits": 2}))  # the worker comes up meanwhile
            control.send_multipart(encode(READY, {"role": "collector", "pid": 2}))
            return True

        def alive(role: str) -> str | None:
            return DEAD if role == "collector" and not restarted else None

        with bound_head(_ends(), CONFIG, False, ctx, alive=alive, restart=restart) as head:
            control.send_multipart(encode(READY, {"role": "collector", "pid": 1}))
            while "collector" not in head.peers.ready:
                head.receive(100)  # its READY is in
            head.wait_ready(Interrupt())
    assert restarted == ["collector"] and head.stats.restarts == {"collector": 1}
    assert _path(head) == [(W, Event.ROLE_RESTARTED), (W, Event.PEERS_READY)]
    assert head.peers.collector_pid == 2


@pytest.mark.parametrize("role", ["collector", "worker"])
def test_a_collector_that_cannot_be_started_again_or_a_dead_worker_fails_the_wait(role: str) -> None:
    problem = f"the {role}-0 process exited with status 1"
    alive = lambda r: problem if r and role.startswith(r) else None
    with zmq.Context() as ctx, bound_head(_ends(), CONFIG, False, ctx, alive=alive) as head:
        started = time.monotonic()
        with pytest.raises(RoleError, match=problem):
            head.wait_ready(Interrupt())
        assert time.monotonic() - started < 1  # at once, not after ready_timeout_s
    event = Event.COLLECTOR_LOST if role == "collector" else Event.WORKERS_LOST
    assert head.machine.history == [(W, event, State.FAILED)]


def test_a_reference_that_cannot_be_started_again_is_no_longer_awaited() -> None:
    alive = lambda role: "the reference process exited with status 1" if role == "reference" else None
    with zmq.Context() as ctx, bound_head(_ends(), CONFIG, True, ctx, alive=alive) as head, _said_ready(ctx):
        head.wait_ready(Interrupt())
    assert _path(head) == [(W, Event.REFERENCE_LOST), (W, Event.PEERS_READY)]
    assert not head.peers.reference and head.stats.restarts == {}


@pytest.mark.parametrize("state", [S, D, F])
def test_a_collector_restarted_in_each_state_loses_nothing(state: State) -> None:
    """Streaming: it dies at the 3rd batch of 8; draining: at the last; finishing: at END. The one
    started again gets what was not acknowledged (and END) again; every event is decided once."""
    with zmq.Context() as ctx:
        peers = StandIns(ctx, die_at={S: 3, D: 8, F: 0}[state])
        with bound_head(_ends(), CONFIG, False, ctx, alive=_dies_in(peers, lambda: head, state),
                        restart=peers.restart) as head:
            peers.start()
            try:
                _drive(head, [BATCH] * 8)
            finally:
                peers.stop()
    assert (state, Event.ROLE_RESTARTED) in _path(head) and head.stats.restarts == {"collector": 1}
    assert head.machine.state is State.DONE and _path(head)[-1] == (F, Event.FINAL)
    assert head.stats.events_in == 800 and head.stats.collector["events_decided"] == 800
    assert peers.decided == 800  # each batch acknowledged once
    assert peers.ends == (2 if state is F else 1)  # END again to the collector started again
    # what it was sent while dead went out again (F: nothing was in flight)
    assert head.stats.resent_batches == 0 if state is F else head.stats.resent_batches >= 1


@pytest.mark.parametrize("state", [S, D, F])
def test_a_collector_that_cannot_be_started_again_ends_the_run(state: State) -> None:
    """Before END it fails the run at once; after END it ends it without the collector's counts."""
    with zmq.Context() as ctx:
        peers = StandIns(ctx, die_at={S: 3, D: 8, F: 0}[state])
        with bound_head(_ends(), CONFIG, False, ctx, alive=_dies_in(peers, lambda: head, state)) as head:
            peers.start()
            try:
                if state is F:
                    _drive(head, [BATCH] * 8)
                else:
                    with pytest.raises(RoleError, match=DEAD):
                        _drive(head, [BATCH] * 8)
            finally:
                peers.stop()
    assert head.machine.history[-1] == (state, Event.COLLECTOR_LOST, State.DONE if state is F else State.FAILED)
    if state is F:
        assert head.stats.collector == {} and head.stats.events_in == 800


def test_a_collector_silent_after_end_ends_the_run_without_its_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay.source.head, "FINAL_GRACE_S", 0.1)
    with zmq.Context() as ctx, bound_head(_ends(), replace(CONFIG, ack_timeout_s=0.2), False, ctx) as head:
        peers = StandIns(ctx, die_at=0)  # alive, but it never answers END
        peers.start()
        try:
            started = time.monotonic()
            _drive(head, [BATCH] * 2)
            assert time.monotonic() - started < 3
        finally:
            peers.stop()
    assert _path(head)[-1] == (F, Event.COLLECTOR_SILENT) and head.stats.collector == {}


def _interrupted(interrupt: Interrupt, count: int) -> Iterator[np.ndarray]:
    """Two batches; Ctrl-C (``count`` times) comes while the second is read."""
    yield BATCH
    interrupt.count = count
    yield BATCH


@pytest.mark.parametrize(("decides", "ctrl_c", "ending"), [(True, 1, Event.ALL_DECIDED), (False, 2, Event.ABANDON),
                                                         (False, 1, Event.ABANDON)],
                         ids=["drained", "second Ctrl-C", "drain took too long"])
def test_ctrl_c_stops_the_streaming_and_the_drain_decides_or_abandons(decides: bool, ctrl_c: int, ending: Event) -> None:
    config = replace(CONFIG, ack_timeout_s=0.2)  # the drain gets 2 x 0.2 s
    with zmq.Context() as ctx, bound_head(_ends(), config, False, ctx) as head:
        peers, interrupt = StandIns(ctx, ack=decides), Interrupt()
        peers.start()
        try:
            _drive(head, _interrupted(interrupt, ctrl_c), interrupt)
        finally:
            peers.stop()
    assert _path(head) == [(W, Event.PEERS_READY), (S, Event.STOP), (D, ending), (F, Event.FINAL)]
    stats = head.stats
    assert stats.interrupted and stats.events_in == 200  # both sent before the Ctrl-C was seen
    assert stats.events_abandoned == (0 if decides else 200)
    assert stats.collector["events_decided"] + stats.events_abandoned == stats.events_in


def test_no_worker_left_fails_the_run() -> None:
    """The only worker falls silent and its process is gone: lost after 5 heartbeats, the run fails
    4 liveness periods later (a live one reconnects within that)."""
    alive = lambda role: "the worker-0 process exited with status -9" if role == "" else None
    with zmq.Context() as ctx, bound_head(_ends(), CONFIG, False, ctx, alive=alive) as head, _said_ready(ctx):
        head.wait_ready(Interrupt())
        started = time.monotonic()
        with pytest.raises(RoleError, match="worker-0"):
            head.run([BATCH] * 8, Interrupt())
        took = time.monotonic() - started
    assert head.machine.history[-1] == (S, Event.WORKERS_LOST, State.FAILED)
    assert head.stats.workers_lost == 1 and head.stats.events_in == 200  # its two credits
    assert 4 * 5 * 0.05 - 0.1 < took < 5


def test_a_reference_lost_mid_run_ends_the_side_check_and_the_run_goes_on() -> None:
    def alive(role: str) -> str | None:
        return "the reference process exited with status 1" if role == "reference" and head.stats.batches else None

    def slowly() -> Iterator[np.ndarray]:  # a batch every heartbeat: the peers are checked while streaming
        for _ in range(8):
            yield BATCH
            time.sleep(CONFIG.heartbeat_s)

    with zmq.Context() as ctx, bound_head(_ends(), CONFIG, True, ctx, alive=alive) as head:
        peers = StandIns(ctx)
        head.peers.ready.add("reference")  # it said READY (nothing reads its feed here: it is always busy)
        peers.start()
        try:
            _drive(head, slowly())
        finally:
            peers.stop()
    assert (S, Event.REFERENCE_LOST) in _path(head) and head.stats.restarts == {}
    assert not head.peers.reference and head.stats.collector["events_decided"] == 800
    assert 0 < head.stats.reference_skipped < 800  # the batches after it died are no longer the side check's


# -- real runs: a role killed before it is READY ------------------------------------------------
def never_ready(*_args: object) -> None:
    """A role process that never says READY (still loading, say) until it is killed."""
    time.sleep(600)


class _FirstNeverReady(_Roles):
    """Starts ``victim`` the first time as a process that never says READY; a restart starts the real one."""

    def __init__(self, out: Path, victim: str) -> None:
        super().__init__(out)
        self.victim, self.stalled = victim, False

    def start(self, name: str, target: object, *args: object) -> None:
        if name == self.victim and not self.stalled:
            self.stalled = True
            super().start(name, never_ready, *args)
            self.specs[name] = (target, args)
        else:
            super().start(name, target, *args)


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["collector", "reference"])
def test_a_role_killed_before_it_is_ready_is_started_again_and_nothing_is_lost(
        tmp_path: Path, artifact_dir: Path, files: dict, victim: str) -> None:
    """SIGKILL of the collector (or the reference) while the source waits for its READY: it is
    started again, the run ends normally with every event decided once and the accepted set of an
    uninterrupted run, and the summary counts the restart."""
    run, events = tmp_path / "run", 3000
    roles, killed = _FirstNeverReady(run, victim), []

    def kill() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            proc = roles.procs.get(victim)
            if proc is not None and proc.pid and len(roles.procs) == 4:  # every role started: the source waits
                time.sleep(0.5)
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill)
    killer.start()
    config = ReplayConfig(rate=parse_replay_rate("40MHz-sim"), batch_size=250, heartbeat_s=0.1, ack_timeout_s=2.0)
    try:
        summary = run_replay(ReplayRun((files["sm"],), artifact_dir, run, config, events=events,
                                       reference_backend="numpy"), progress=None, roles=roles)
    finally:
        killer.join()
    assert killed, f"the {victim} was not killed"
    assert summary.restarts == {victim: 1}
    assert summary.accounting_ok and summary.events_in == events
    assert summary.events_decided + summary.events_quarantined == events
    with h5py.File(run / "accepted.h5") as f:
        bx = np.sort(f["bx"][:])
    assert len(np.unique(bx)) == len(bx)  # none decided twice
    np.testing.assert_array_equal(bx, expected_accepts(run / "model", files["sm"], events))
    assert roles.procs[victim].pid != killed[0]
