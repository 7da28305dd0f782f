"""What the source reports and how it stops: its counts, its error, and Ctrl-C."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any, Self

from trigger.errors import TriggerError

__all__ = ("Interrupt", "RoleError", "SourceStats")


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
