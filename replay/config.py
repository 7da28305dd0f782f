"""Replay settings, parsed once at the edge and frozen: the rate, endpoints, limits, timeouts."""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trigger.errors import UsageError
from trigger.menu import load_menu
from trigger.rates import BX_RATE_HZ, format_rate, fpr_for_rate, parse_rate

__all__ = ("MAX_CONTROL_BYTES", "Endpoints", "ReplayConfig", "ReplayRate", "WorkingPoint", "parse_replay_rate")

#: ZeroMQ's MAXMSGSIZE on sockets that receive only control messages (READY, HEARTBEAT, ACK, STATS, FINAL)
MAX_CONTROL_BYTES = 1 << 16


@dataclass(frozen=True)
class ReplayRate:
    """``hz`` events per second; ``simulated``: BX clock only, the pipeline runs flat out."""

    text: str
    hz: float
    simulated: bool

    @property
    def mode(self) -> str:
        return "simulated" if self.simulated else "paced"


@dataclass(frozen=True)
class WorkingPoint:
    """Where the replay decides: a fixed ``threshold``, or one calibrated for ``accept_rate`` of
    ``bx_rate`` on the held-out SM events of ``calibration``; neither: the artifact's own."""

    threshold: float | None = None
    accept_rate: str | None = None
    bx_rate: str = "40MHz"
    calibration: Path | None = None

    def __post_init__(self) -> None:
        if self.threshold is not None and self.accept_rate is not None:
            msg = "give --threshold or --accept-rate, not both"
            raise UsageError(msg)
        if self.threshold is not None and not math.isfinite(self.threshold):
            msg = f"--threshold must be a finite number, got {self.threshold}"
            raise UsageError(msg)
        if self.accept_rate is not None:
            fpr_for_rate(parse_rate(self.accept_rate), parse_rate(self.bx_rate))  # a clear error if bad

    @property
    def fpr(self) -> float:
        if self.accept_rate is None:
            msg = "no --accept-rate to turn into a false-positive rate"
            raise UsageError(msg)
        return fpr_for_rate(parse_rate(self.accept_rate), parse_rate(self.bx_rate))


def parse_replay_rate(text: str) -> ReplayRate:
    """``40MHz-sim`` (simulated bunch-crossing clock) or a wall-clock rate such as ``100kHz``."""
    simulated = bool(re.search(r"-sim\s*$", text, re.IGNORECASE))
    body = re.sub(r"-sim\s*$", "", text, flags=re.IGNORECASE)
    try:
        hz = parse_rate(body)
    except UsageError:
        msg = (
            f"cannot read rate {text!r}; expected e.g. 40MHz-sim (simulated bunch crossings, "
            "as fast as possible) or 100kHz / 1MHz (paced on the wall clock)"
        )
        raise UsageError(msg) from None
    if simulated and hz != BX_RATE_HZ:
        msg = f"a simulated clock runs at the bunch-crossing rate; use 40MHz-sim, not {text!r}"
        raise UsageError(msg)
    return ReplayRate(text, hz, simulated)


@dataclass(frozen=True)
class Endpoints:
    """Where the roles meet. ``tasks``: source ROUTER (workers connect); ``control``: source PULL
    (the collector and the reference connect, for READY, ACK, STATS and FINAL); ``reference``:
    source PUSH (reference connects); ``results``: collector PULL (workers, reference and source
    connect)."""

    tasks: str
    control: str
    reference: str
    results: str

    @classmethod
    def ipc(cls, directory: str | Path | None = None) -> Endpoints:
        d = Path(directory or tempfile.mkdtemp(prefix="replay-"))
        return cls(*(f"ipc://{d / name}.sock" for name in ("tasks", "control", "reference", "results")))

    @classmethod
    def tcp(cls, host: str = "127.0.0.1", base_port: int = 5555) -> Endpoints:
        return cls(*(f"tcp://{host}:{base_port + i}" for i in range(4)))


@dataclass(frozen=True)
class ReplayConfig:
    """Pipeline limits and timeouts; impossible values are rejected here."""

    rate: ReplayRate = field(default_factory=lambda: parse_replay_rate("40MHz-sim"))
    batch_size: int = 32768  # per-batch costs (messages, wake-ups) amortized; 0.8 ms of beam at 40 MHz
    # batches a worker may hold at once: with 4 x 32768 events queued a worker is never idle while
    # the source and ZeroMQ move the next batch (docs/decisions.md, "Batch size and credits")
    credits: int = 4
    hwm: int = 8  # messages queued per socket before a send blocks
    max_events_per_frame: int = 65536
    ack_timeout_s: float = 10.0  # a batch not decided this long after sending is sent again
    heartbeat_s: float = 0.5
    liveness: int = 6  # missed heartbeats before a worker is presumed dead
    ready_timeout_s: float = 60.0  # how long to wait for the roles to come up
    deadline_s: float = 0.1  # paced mode: an event must be decided this long after its BX time
    progress_s: float = 0.5
    reference_prescale: int = 1  # one batch in N goes to the reference path too (when it can take it)
    # tasks without their empty slots (replay.packing); None: when they go over tcp, where bytes cost
    # more than packing them (on one machine over ipc, packing would cost a quarter of the rate)
    pack_batches: bool | None = None
    # the emulated L1 menu (trigger.menu: a bundled name or a TOML file) whose seeds tag each
    # accepted event in accepted.h5; None: no tags
    menu: str | None = "run3"

    def __post_init__(self) -> None:
        if self.menu is not None:
            load_menu(self.menu).tags(np.zeros((0, 19, 4), np.float32))  # a bad menu: an error before anything starts
        if not 1 <= self.batch_size <= self.max_events_per_frame:
            msg = f"batch size {self.batch_size} must be between 1 and {self.max_events_per_frame}"
            raise UsageError(msg)
        for name in ("credits", "hwm", "liveness", "reference_prescale"):
            if getattr(self, name) < 1:
                msg = f"{name} must be at least 1"
                raise UsageError(msg)
        for name in ("ack_timeout_s", "heartbeat_s", "ready_timeout_s", "deadline_s", "progress_s"):
            if not getattr(self, name) > 0:
                msg = f"{name} must be positive"
                raise UsageError(msg)

    @property
    def max_frame_bytes(self) -> int:
        return self.max_events_per_frame * 19 * 4 * 8

    @property
    def max_message_bytes(self) -> int:
        """ZeroMQ's MAXMSGSIZE on sockets that receive batches: a larger frame makes it drop the
        connection before buffering the frame. The largest is a worker's result: scores, indices
        and events, each for every event of the largest batch."""
        return self.max_frame_bytes + 3 * 8 * self.max_events_per_frame + (1 << 16)

    @property
    def effective_batch_size(self) -> int:
        """Paced runs form batches at >= 100 per second so the deadline can be met."""
        if self.rate.simulated:
            return self.batch_size
        return max(1, min(self.batch_size, int(self.rate.hz / 100)))

    def describe(self) -> str:
        how = "simulated BX clock, as fast as possible" if self.rate.simulated else "paced on the wall clock"
        return f"{format_rate(self.rate.hz)} ({how}), batches of {self.effective_batch_size}"
