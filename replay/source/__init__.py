"""Source role (the head of a run): pace the stream, hand batches to workers, re-send what is lost.

Sockets: ``tasks`` ROUTER (workers' DEALERs say READY with credits and send HEARTBEATs),
``control`` PULL (the collector's READY, ACK, STATS, FINAL; the reference's READY),
``reference`` PUSH (a copy of each new batch for the reference path) and a PUSH to the
collector for END. A batch stays in flight until the collector acknowledges it; it is
sent again, to another worker, when its worker falls silent (missed heartbeats) or when
no acknowledgement came within ``ack_timeout_s``. The collector drops duplicates.

Every event gets a bunch-crossing id (its position in the stream). With a simulated
clock (``40MHz-sim``) the event's time is ``bx * 25 ns`` and batches go out as fast as the
workers take them; with a wall-clock rate a batch leaves when its last event is due and
carries the time its first event was due, so the collector can count deadline misses.

The source is a state machine (:mod:`replay.source.states`: waiting for peers, streaming,
draining, finishing) whose head (:mod:`replay.source.head`) keeps its workers
(:mod:`~replay.source.workers`), its batches (:mod:`~replay.source.batches`) and the
collector and the reference (:mod:`~replay.source.peers`).
"""

from __future__ import annotations

from replay.source.sockets import run_source
from replay.source.states import Event, State
from replay.source.stats import Interrupt, RoleError, SourceStats

__all__ = ("Event", "Interrupt", "RoleError", "SourceStats", "State", "run_source")
