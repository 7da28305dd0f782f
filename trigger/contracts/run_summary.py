"""``summary.json``: what a replay run decided, how fast, and whether every event is accounted for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trigger.contracts.record import Record

__all__ = ("LATENCY_KEYS", "RunSummary")

LATENCY_KEYS = ("p50", "p90", "p99", "max")


@dataclass
class RunSummary(Record):
    """One replay run, written by ``replay.pipeline`` (and by a source role on another host).

    Latencies (``batch_latency_ms``, ``batch_scoring_ms``, ``round_trip_ms``) are ``{"p50", "p90",
    "p99", "max"}`` in milliseconds, None where not known. ``accounting_ok`` is None for a run
    rebuilt from its journal (``recovered``): the source's own count of the events it read died with it.
    """

    FORMAT = "trigger.replay-summary"
    VERSION = 2  # 2: menu, accepted_by_no_seed

    rate: str  # as given: "40MHz-sim", "2MHz", ...
    mode: str
    target_rate_hz: float
    inputs: list[str]
    model: str
    threshold: float | None
    working_point: dict[str, Any]
    reference_threshold: float | None
    workers: int
    transport: str
    batch_size: int
    events_in: int
    events_decided: int
    events_quarantined: int
    events_accepted: int
    accounting_ok: bool | None  # events_in == decided + quarantined, checked against the collector's counts
    accept_rate_hz_at_bx: float  # the accept fraction times the LHC's 40 MHz
    events_per_second: float
    real_time_factor: float
    wall_seconds: float
    reference_backend: str
    reference_events: int
    reference_skipped: int
    reference_prescale: int
    reference_model: str | None
    reference_twin: bool
    reference_disagreements: int
    reference_only_accepts: int
    trigger_only_accepts: int
    reference_missing: int
    reference_max_abs_score_difference: float
    deadline_misses: int
    deadline_s: float | None
    batch_latency_ms: dict[str, float | None]
    batch_scoring_ms: dict[str, float | None] | None
    latency_clock: str
    round_trip_ms: dict[str, float | None]
    quarantine_reasons: dict[str, int]
    rejected_frames: dict[str, int]
    duplicate_batches: int
    restarts: dict[str, int]
    source: dict[str, Any]  # the source's own counters (replay.source.SourceStats)
    held_out: dict[str, Any] | None = None  # replayed events the model never trained on, and their accept rate
    recovered: bool = False
    note: str | None = None
    menu: str | None = None  # the emulated L1 menu tagging accepted events (trigger.menu), None: no tags
    accepted_by_no_seed: int | None = None  # accepted events no seed of that menu takes: the pure accepts

    def problem(self) -> str | None:
        missing = [key for key in LATENCY_KEYS if key not in self.batch_latency_ms]
        return f"batch_latency_ms lacks {', '.join(missing)}" if missing else None

    @property
    def accounted(self) -> bool:
        """Whether decided + quarantined events add up to the events read (the check itself)."""
        return self.events_decided + self.events_quarantined == self.events_in
