"""The source's event stream: batches from one or more HDF5 files, cycled when asked.

Files are opened (and their layout checked) up front, so a missing, truncated or
wrong-layout input is a clear error before anything starts. A batch never spans two
files. float64 batches (the public files) are narrowed to float32 values plus the values
float32 changes (:mod:`replay.narrowing`), so the wire carries half the bytes and the
accepted events still come back as the file holds them. When the inputs are cycled and fit
in ``cache_bytes`` they are kept in memory, narrowed, after the first pass, so a long replay
measures the pipeline, not gzip.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from replay.narrowing import Narrowed, narrow
from trigger.errors import UsageError
from trigger.events import open_events

__all__ = ("EventStream", "Events")

#: a batch as the source sends it: float32 or float64 events, or narrowed float64 ones
Events = NDArray[np.floating[Any]] | Narrowed


def _first(events: Events, n: int) -> Events:
    return events.first(n) if isinstance(events, Narrowed) else np.ascontiguousarray(events[:n])


class EventStream:
    """Batches of at most ``batch_size`` events; ``events`` caps the total, ``loop`` cycles."""

    def __init__(self, paths: Sequence[str | Path], batch_size: int, events: int | None = None,
                 loop: bool = False, cache_bytes: int = 1 << 30) -> None:
        if not paths:
            msg = "no input files"
            raise UsageError(msg)
        if events is not None and events < 1:
            msg = f"--events must be positive, got {events}"
            raise UsageError(msg)
        self._stack = ExitStack()
        self.files = [self._stack.enter_context(open_events(p)) for p in paths]
        self.available = sum(f.n_events for f in self.files)
        if self.available == 0:
            msg = f"the input files hold no events: {', '.join(str(p) for p in paths)}"
            raise UsageError(msg)
        self.batch_size, self.events, self.loop = batch_size, events, loop
        self.cycles = loop or (events is not None and events > self.available)
        self._cache: list[Events] | None = (
            [] if self.cycles and self.available * 19 * 4 * 8 <= cache_bytes else None)

    @property
    def total(self) -> int | None:
        """Events the stream will yield; None when it loops until stopped."""
        if self.loop and self.events is None:
            return None
        return self.events if self.events is not None else self.available

    def preload(self) -> None:
        """Read the inputs into memory now when they are cycled and fit, so that a paced run does
        not fall behind its clock while it reads and decompresses the first pass."""
        if self._cache is not None and not self._cache:
            for _ in self._one_pass():
                pass

    def _one_pass(self) -> Iterator[Events]:
        if self._cache:
            yield from self._cache
            return
        for f in self.files:
            for batch in f.iter_batches(self.batch_size):
                events = narrow(np.ascontiguousarray(batch.particles))
                if self._cache is not None:
                    self._cache.append(events)
                yield events

    def __iter__(self) -> Iterator[Events]:
        remaining = self.total
        while True:
            for batch in self._one_pass():
                events = batch if remaining is None or remaining >= len(batch) else _first(batch, remaining)
                if remaining is not None:
                    remaining -= len(events)
                if len(events):
                    yield events
                if remaining == 0:
                    return
            if not self.cycles:
                return

    def close(self) -> None:
        self._stack.close()
