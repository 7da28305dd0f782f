"""Batch latencies in bounded memory, and the events of a batch that missed their deadline.

Both are measured on one clock: the collector's for decisions it makes on the source's host,
the source's own for the round trip (a batch sent, its decision acknowledged), which holds
whichever hosts the roles run on.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ("LatencyHistogram", "late_events")


def late_events(t_due_ns: int, n: int, now_ns: int, rate_hz: float, deadline_ns: int) -> int:
    """How many of a paced batch's ``n`` events are decided (at ``now_ns``) later than their BX
    time plus the deadline: event i is due at ``t_due_ns + i / rate_hz``."""
    late = (now_ns - t_due_ns - deadline_ns) * rate_hz / 1e9
    return int(np.clip(np.ceil(late), 0, n))


class LatencyHistogram:
    """Latencies in milliseconds, binned logarithmically (``per_decade`` bins a decade from 1 µs
    to 10⁶ ms), so percentiles cost the same memory for a minute or a week of replay; a
    percentile is its bin's geometric centre (within half a bin: 1.2 % at 100 a decade)."""

    lowest_ms = 1e-3
    decades = 9

    def __init__(self, per_decade: int = 100) -> None:
        self.per_decade = per_decade
        self.counts = np.zeros(self.decades * per_decade + 1, np.int64)
        self.max_ms: float | None = None

    def add(self, ms: float) -> None:
        position = math.log10(max(ms, self.lowest_ms) / self.lowest_ms) * self.per_decade
        self.counts[min(int(position), len(self.counts) - 1)] += 1
        self.max_ms = ms if self.max_ms is None else max(self.max_ms, ms)

    def __len__(self) -> int:
        return int(self.counts.sum())

    def percentile(self, p: float) -> float | None:
        total = len(self)
        if not total:
            return None
        rank = max(1, math.ceil(p / 100 * total))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        centre = self.lowest_ms * 10 ** ((index + 0.5) / self.per_decade)
        return min(centre, self.max_ms) if self.max_ms is not None else centre

    def summary(self) -> dict[str, float | None]:
        """p50, p90, p99 and the exact maximum (all None when empty)."""
        return {"p50": self.percentile(50), "p90": self.percentile(90), "p99": self.percentile(99),
                "max": self.max_ms}
