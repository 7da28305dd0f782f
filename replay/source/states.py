"""The source's states and the events that move it between them, in one table.

As in zguide's Binary Star (``bstarsrv.py``): the state is one named value, every event is
named, and :data:`TRANSITIONS` lists each (state, event) that can happen with the state it
leads to. Reading the table is reading the protocol::

    WAITING_FOR_PEERS --PEERS_READY--> STREAMING --STREAM_END | STOP--> DRAINING
        --ALL_DECIDED | ABANDON--> FINISHING --FINAL | COLLECTOR_SILENT | COLLECTOR_LOST--> DONE

A peer can die in any state. The collector and the reference are started again
(ROLE_RESTARTED: the state stays; a restarted collector gets what it had not acknowledged
again, and END if it was sent); a reference that cannot be started again ends the side check
(REFERENCE_LOST: the state stays). Before FINISHING, a collector that cannot be started
again, a worker that dies before it is ready, or the last worker gone, fail the run
(FAILED: :class:`~replay.source.stats.RoleError` with the problem); once END is sent, only
the collector matters, and losing it ends the run without its FINAL.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from replay.source.stats import RoleError

__all__ = ("TRANSITIONS", "Event", "Machine", "State")


class State(Enum):
    WAITING_FOR_PEERS = "waiting for peers"  # bound: until READY from the collector, the workers, the reference
    STREAMING = "streaming"  # reading the stream, sending batches, sending lost ones again
    DRAINING = "draining"  # nothing more is read: the last batches are sent and decided
    FINISHING = "finishing"  # END sent: until the collector's FINAL
    DONE = "done"
    FAILED = "failed"


class Event(Enum):
    PEERS_READY = "READY from every peer the run waits for"
    READY_TIMEOUT = "no READY from some peer within ready_timeout_s"
    STREAM_END = "the stream is read to its end"
    STOP = "the first Ctrl-C: read no more, drain what is in flight"
    ALL_DECIDED = "every batch sent is decided and acknowledged"
    ABANDON = "a second Ctrl-C, or the first one's drain took too long: give up on what is in flight"
    FINAL = "the collector's FINAL counts"
    COLLECTOR_SILENT = "no FINAL in time since the collector's last report"
    ROLE_RESTARTED = "the collector or the reference died and was started again"
    REFERENCE_LOST = "the reference died and cannot be started again: the side check ends"
    COLLECTOR_LOST = "the collector died and cannot be started again"
    WORKERS_LOST = "a worker died before it was ready, or none is left mid-run and one died"


_PEER_DIED: Final = {  # the same in every state before END
    Event.COLLECTOR_LOST: State.FAILED,
    Event.WORKERS_LOST: State.FAILED,
}

#: state -> {event -> next state}: every transition of the source; anything else is a bug
TRANSITIONS: Final[dict[State, dict[Event, State]]] = {
    State.WAITING_FOR_PEERS: {
        Event.PEERS_READY: State.STREAMING,
        Event.ROLE_RESTARTED: State.WAITING_FOR_PEERS,  # and its READY is waited for
        Event.REFERENCE_LOST: State.WAITING_FOR_PEERS,  # and no longer waited for
        Event.READY_TIMEOUT: State.FAILED,
        **_PEER_DIED,
    },
    State.STREAMING: {
        Event.STREAM_END: State.DRAINING,
        Event.STOP: State.DRAINING,
        Event.ROLE_RESTARTED: State.STREAMING,
        Event.REFERENCE_LOST: State.STREAMING,
        **_PEER_DIED,
    },
    State.DRAINING: {
        Event.ALL_DECIDED: State.FINISHING,
        Event.ABANDON: State.FINISHING,
        Event.ROLE_RESTARTED: State.DRAINING,
        Event.REFERENCE_LOST: State.DRAINING,
        **_PEER_DIED,
    },
    State.FINISHING: {  # the workers are done: only the collector matters
        Event.FINAL: State.DONE,
        Event.COLLECTOR_SILENT: State.DONE,
        Event.COLLECTOR_LOST: State.DONE,
        Event.ROLE_RESTARTED: State.FINISHING,
    },
    State.DONE: {},
    State.FAILED: {},
}


class Machine:
    """The current state; :meth:`handle` applies :data:`TRANSITIONS` and keeps the ``history``."""

    def __init__(self, state: State = State.WAITING_FOR_PEERS) -> None:
        self.state = state
        self.history: list[tuple[State, Event, State]] = []

    def handle(self, event: Event, problem: str = "") -> State:
        """The state ``event`` leads to (now the current one); entering FAILED raises
        :class:`RoleError` with ``problem``."""
        following = TRANSITIONS[self.state].get(event)
        if following is None:
            msg = f"the source cannot handle {event.name} while {self.state.value}"
            raise RuntimeError(msg)
        self.history.append((self.state, event, following))
        self.state = following
        if following is State.FAILED:
            raise RoleError(problem or event.value)
        return following
