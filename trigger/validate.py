"""Check an event file against the ADC2021 conventions and summarise its content.

The checks stream over the file in batches, so multi-GB files need bounded memory.
Each kind of violation is counted per event with the first offending indices kept.
Quantiles come from fine logarithmic histograms (bin width 0.5 %), not from sorting.
A file with ``CaloRegions`` has them checked too (layout, 10-bit range) and summarised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import SchemaError
from trigger.events import DEFAULT_BATCH, open_events
from trigger.schema import BLOCKS, CLASS, ETA, PHI, PT, REGION_LSB_GEV, REGION_MAX_COUNT, REGIONS_DATASET

__all__ = ("FileReport", "RegionSummary", "Violation", "check_batch", "validate_file")

FIRST_INDICES = 5
ANGLE_TOLERANCE = 1e-5  # float32 rounding of eta and phi near their limits
TRIGGER_PT = 23.0
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_BIN_EDGES = np.concatenate([[0.0], np.geomspace(0.01, 1e5, 1 + int(np.log(1e7) / np.log(1.005)))])


class Violation(str, Enum):
    """Every kind of defect the validator reports, with its explanation."""

    NON_FINITE = "NaN or infinite value"
    NEGATIVE_PT = "negative pT"
    CLASS_CODE = "class code does not match the row block (MET 1, e 2, mu 3, jet 4)"
    PADDING = "empty slot (pT = 0) not all zero"
    GAP = "empty slot before a filled one within a block"
    PT_ORDER = "block not ordered by decreasing pT"
    ETA_RANGE = "|eta| outside the block's acceptance (MET 0, e 3, mu 2.1, jets 4)"
    PHI_RANGE = "|phi| > pi"
    REGION_RANGE = "CaloRegions count above the 10-bit maximum 1023"


@dataclass
class RegionSummary:
    """What the ``CaloRegions`` of the events checked hold."""

    events: int = 0
    nonzero: int = 0  # regions with a count above 0
    saturated: int = 0  # regions at the 10-bit maximum
    total_counts: int = 0  # sum over events and regions

    def add(self, regions: NDArray[np.unsignedinteger[Any]]) -> None:
        self.events += len(regions)
        self.nonzero += int(np.count_nonzero(regions))
        self.saturated += int((regions == REGION_MAX_COUNT).sum())
        self.total_counts += int(regions.sum(dtype=np.int64))

    def summary(self) -> dict[str, float]:
        n = max(self.events, 1)
        return {"nonzero_regions_per_event": self.nonzero / n, "sum_et_gev_per_event": self.total_counts
                * REGION_LSB_GEV / n, "saturated_regions": self.saturated}


@dataclass
class _Quantity:
    """A streaming histogram of one positive quantity."""

    counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(len(_BIN_EDGES) - 1, np.int64))

    def add(self, values: NDArray[np.floating[Any]]) -> None:
        values = values[np.isfinite(values)]
        self.counts += np.histogram(np.clip(values, 0, _BIN_EDGES[-1] * 0.999), _BIN_EDGES)[0]

    def quantiles(self) -> list[float] | None:
        total = self.counts.sum()
        if total == 0:
            return None
        cdf = np.cumsum(self.counts) / total
        idx = np.searchsorted(cdf, QUANTILES)
        return [float(np.sqrt(max(_BIN_EDGES[i], 1e-2) * _BIN_EDGES[i + 1])) if i else 0.0
                for i in idx]


@dataclass
class FileReport:
    """Result of validating one file."""

    path: Path
    n_events: int = 0
    dtype: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    extra_datasets: dict[str, str] = field(default_factory=dict)
    schema_error: str | None = None
    violations: dict[Violation, int] = field(default_factory=dict)
    first_events: dict[Violation, list[int]] = field(default_factory=dict)
    multiplicity: dict[str, NDArray[np.int64]] = field(default_factory=dict)
    pt: dict[str, _Quantity] = field(default_factory=dict)
    triggered: int = 0
    regions: RegionSummary | None = None  # None: the file has no CaloRegions

    @property
    def ok(self) -> bool:
        return self.schema_error is None and not any(self.violations.values())

    def add_violation(self, kind: Violation, bad: NDArray[np.bool_], offset: int) -> None:
        where = np.flatnonzero(bad)
        if len(where) == 0:
            return
        self.violations[kind] = self.violations.get(kind, 0) + len(where)
        first = self.first_events.setdefault(kind, [])
        first.extend(int(i) + offset for i in where[: FIRST_INDICES - len(first)])

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest of the report."""
        return {
            "path": str(self.path),
            "ok": self.ok,
            "events": self.n_events,
            "dtype": self.dtype,
            "schema_error": self.schema_error,
            "violations": {
                kind.name.lower(): {"events": n, "first": self.first_events[kind]}
                for kind, n in self.violations.items()
            },
            "mean_multiplicity": {name: _mean(h) for name, h in self.multiplicity.items()},
            "pt_quantiles": {name: q.quantiles() for name, q in self.pt.items()},
            "lepton_trigger_fraction": self.triggered / self.n_events if self.n_events else None,
            "calo_regions": None if self.regions is None else self.regions.summary(),
        }


def _mean(hist: NDArray[np.int64]) -> float | None:
    total = hist.sum()
    return float((hist * np.arange(len(hist))).sum() / total) if total else None


def check_batch(report: FileReport, particles: NDArray[np.floating[Any]], offset: int) -> None:
    """Add the violations and statistics of one batch of events to ``report``."""
    x = particles.astype(np.float64, copy=False)
    report.add_violation(Violation.NON_FINITE, ~np.isfinite(x).all(axis=(1, 2)), offset)
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    pt, eta, phi, code = x[..., PT], x[..., ETA], x[..., PHI], x[..., CLASS]
    filled = pt != 0  # a negative pT is a filled slot with a bad value
    report.add_violation(Violation.NEGATIVE_PT, (pt < 0).any(axis=1), offset)
    report.add_violation(Violation.PADDING, (~filled & ((eta != 0) | (phi != 0) | (code != 0))).any(axis=1),
                         offset)
    report.add_violation(Violation.PHI_RANGE, (np.abs(phi) > np.pi + ANGLE_TOLERANCE).any(axis=1), offset)
    bad_code = np.zeros(len(x), bool)
    bad_gap = np.zeros(len(x), bool)
    bad_order = np.zeros(len(x), bool)
    bad_eta = np.zeros(len(x), bool)
    for block in BLOCKS:
        rows = block.rows
        f = filled[:, rows]
        bad_code |= (f & (code[:, rows] != block.class_code)).any(axis=1)
        bad_gap |= (~f[:, :-1] & f[:, 1:]).any(axis=1)
        bad_order |= (f[:, :-1] & (np.diff(pt[:, rows], axis=1) > 0)).any(axis=1)
        bad_eta |= (f & (np.abs(eta[:, rows]) > block.max_abs_eta + ANGLE_TOLERANCE)).any(axis=1)
        n_filled = f.sum(axis=1)
        hist = report.multiplicity.setdefault(block.name, np.zeros(block.size + 1, np.int64))
        hist += np.bincount(n_filled, minlength=block.size + 1)
        lead = pt[:, block.start]
        report.pt.setdefault(f"leading {block.name.rstrip('s')}" if block.size > 1 else block.name,
                             _Quantity()).add(lead[lead > 0])
    report.add_violation(Violation.CLASS_CODE, bad_code, offset)
    report.add_violation(Violation.GAP, bad_gap, offset)
    report.add_violation(Violation.PT_ORDER, bad_order, offset)
    report.add_violation(Violation.ETA_RANGE, bad_eta, offset)
    leptons = pt[:, BLOCKS[1].start:BLOCKS[2].stop]
    report.triggered += int((leptons.max(axis=1) > TRIGGER_PT).sum())


def validate_file(path: str | Path, batch_size: int = DEFAULT_BATCH,
                  max_events: int | None = None) -> FileReport:
    """Validate a file; layout problems go to ``schema_error``, unreadable files raise."""
    report = FileReport(Path(path))
    try:
        events = open_events(path)
    except SchemaError as err:
        report.schema_error = err.problem
        return report
    with events:
        report.n_events = events.n_events
        report.dtype = str(events.dtype)
        report.attrs = events.attrs
        report.extra_datasets = {name: f"{shape} {dtype}"
                                 for name, (shape, dtype) in events.extra_datasets.items()}
        try:
            events.check_regions()
        except SchemaError as err:
            report.schema_error = err.problem
            return report
        extras = (REGIONS_DATASET,) if events.has_regions else ()
        report.regions = RegionSummary() if extras else None
        stop = None if max_events is None else min(max_events, events.n_events)
        for batch in events.iter_batches(batch_size, 0, stop, extras=extras):
            check_batch(report, batch.particles, batch.start)
            if report.regions is not None:
                regions = batch.extras[REGIONS_DATASET]
                report.regions.add(regions)
                report.add_violation(Violation.REGION_RANGE, (regions > REGION_MAX_COUNT).any(axis=(1, 2)),
                                     batch.start)
        if stop is not None:
            report.n_events = stop
    return report
