"""The source's live progress line: on a terminal rewritten in place, in a log file a line at a time."""

from __future__ import annotations

import time
from typing import TextIO

from replay.config import ReplayConfig
from replay.source.batches import Ledger
from replay.source.peers import Peers
from replay.source.workers import WorkerPool
from trigger.rates import BX_RATE_HZ, format_rate

__all__ = ("LOG_EVERY", "Progress")

#: a log file (not a terminal) gets a line this many times less often: every 10 s at the default progress_s
LOG_EVERY = 20


class Progress:
    """Decided events, rate, accept rate and what is in flight, every ``progress_s``."""

    def __init__(self, out: TextIO | None, config: ReplayConfig, peers: Peers, ledger: Ledger,
                 pool: WorkerPool) -> None:
        self.out, self.config, self.peers, self.ledger, self.pool = out, config, peers, ledger, pool
        self._last = time.monotonic()

    def show(self, started: float, force: bool = False) -> None:
        """The line, if one is due (or ``force``); rates since ``started``."""
        now = time.monotonic()
        tty = self.out is not None and self.out.isatty()
        every = self.config.progress_s * (1 if tty else LOG_EVERY)
        if self.out is None or (not force and now - self._last < every):
            return
        self._last = now
        c = self.peers.collector_stats
        decided = c.get("events_decided", 0) + c.get("events_quarantined", 0)
        rate = decided / max(now - started, 1e-9)
        accept = c.get("events_accepted", 0) / max(c.get("events_decided", 0), 1) * BX_RATE_HZ
        line = (f"{decided:>12,} decided  {format_rate(rate).replace('Hz', 'ev/s'):>12}  "
                f"RTF {rate / BX_RATE_HZ:6.4f}  accept {format_rate(accept):>10} @40MHz  "
                f"in flight {len(self.ledger.in_flight):>3}  workers {len(self.pool)}  "
                f"quarantined {c.get('events_quarantined', 0)}  "
                f"ref.disagree {c.get('reference_disagreements', 0)}")
        self.out.write("\r" + line if tty else line + "\n")
        self.out.flush()

    def close(self, started: float) -> None:
        """The last line, with the final counts; a terminal's line ended."""
        self.show(started, force=True)
        if self.out is not None and self.out.isatty():
            self.out.write("\n")
