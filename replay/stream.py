"""The source's event stream: batches from one or more HDF5 files, cycled when asked.

Files are opened (and their layout checked) up front, so a missing, truncated or
wrong-layout input is a clear error before anything starts. A batch never spans two
files. float64 batches (the public files) are narrowed to float32 values plus the values
float32 changes (:mod:`replay.narrowing`), so the wire carries half the bytes and the
accepted events still come back as the file holds them. When the inputs are cycled and fit
in ``cache_bytes`` they are kept in memory, narrowed, after the first pass, so a long replay
measures the pipeline, not gzip. For a region model the stream reads each batch's
``CaloRegions`` too (:class:`RegionEvents`); a file without them gives batches without
regions, which the workers quarantine (``no_regions``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from replay.narrowing import Narrowed, narrow
from trigger.errors import UsageError
from trigger.events import open_events
from trigger.schema import REGIONS_DATASET

__all__ = ("EventStream", "Events", "RegionEvents")

#: the objects of a batch: float32 or float64 events, or narrowed float64 ones
Particles = NDArray[np.floating[Any]] | Narrowed


@dataclass(frozen=True)
class RegionEvents:
    """A batch for a region model: its events' objects and their region counts, (n, 18, 14)
    unsigned integers as the file holds them; None when the file has none."""

    particles: Particles
    regions: NDArray[np.unsignedinteger[Any]] | None

    def __len__(self) -> int:
        return len(self.particles)

    def first(self, n: int) -> RegionEvents:
        return RegionEvents(_first(self.particles, n), None if self.regions is None else self.regions[:n])


#: a batch as the source sends it
Events = Particles | RegionEvents


def _first(events: Events, n: int) -> Any:
    return events.first(n) if isinstance(events, Narrowed | RegionEvents) else np.ascontiguousarray(events[:n])


class EventStream:
    """Batches of at most ``batch_size`` events; ``events`` caps the total, ``loop`` cycles;
    ``regions``: each batch is a :class:`RegionEvents`, with the files' ``CaloRegions``."""

    def __init__(self, paths: Sequence[str | Path], batch_size: int, events: int | None = None,
                 loop: bool = False, cache_bytes: int = 1 << 30, regions: bool = False) -> None:
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
        self.batch_size, self.events, self.loop, self.regions = batch_size, events, loop, regions
        for f in self.files if regions else ():
            f.check_regions()  # malformed regions: a clear error before anything starts
        self.without_regions = [f.path for f in self.files if regions and not f.has_regions]
        self.cycles = loop or (events is not None and events > self.available)
        event_bytes = 19 * 4 * 8 + (18 * 14 * 2 if regions else 0)
        self._cache: list[Events] | None = (
            [] if self.cycles and self.available * event_bytes <= cache_bytes else None)

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
            extras = (REGIONS_DATASET,) if self.regions and f.has_regions else ()
            for batch in f.iter_batches(self.batch_size, extras=extras):
                particles = narrow(np.ascontiguousarray(batch.particles))
                events: Events = RegionEvents(particles, batch.extras.get(REGIONS_DATASET)) if self.regions \
                    else particles
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
