"""The report's inputs: each stage's file read through its contract (``trigger.contracts``),
plus what the report derives from it.

A replay run (``summary.json``), an architecture search (``sweep.json``), a pileup scan and the report's own
``report.json``, from which a report can be rendered again without TensorFlow. Anything
unusable is an :class:`~trigger.errors.InputFileError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trigger.contracts import PileupScan, ReportData, RunSummary, Sweep
from trigger.errors import InputFileError

__all__ = ("RESOURCES", "read_pileup_scan", "read_replay", "read_report_data", "read_sweep")

#: resources the report shows, in this order
RESOURCES = ("LUT", "FF", "DSP", "BRAM_36K")


def _latency_histogram(path: Path) -> dict[str, Any] | None:
    """Per-batch latencies binned for the plot; None when the file is absent."""
    if not path.is_file():
        return None
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputFileError(path, f"not a numpy array file ({err})") from None
    if values.ndim != 1 or values.dtype.kind not in "fiu" or len(values) == 0:
        raise InputFileError(path, f"expected a non-empty 1-D array of ms, found {values.dtype} "
                                   f"of shape {values.shape}")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)) or values.min() < 0:
        raise InputFileError(path, "latencies must be finite and non-negative")
    low, high = float(values.min()), float(values.max())
    log = low > 0 and high / low > 30
    edges = np.geomspace(low, high, 51) if log else np.linspace(low, max(high, low + 1e-3), 51)
    counts, edges = np.histogram(values, edges)
    return {"batches": len(values), "log_bins": log, "edges_ms": edges.tolist(), "counts": counts.tolist(),
            "mean_ms": float(values.mean())}


def read_replay(run_dir: str | Path) -> dict[str, Any]:
    """``summary.json`` of a replay run, checked, plus its latency histogram if recorded; a run
    rebuilt from its journal (``replay --recover``) reads too: its accounting is not known."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputFileError(run_dir, "not a replay run directory (expected a directory with summary.json)")
    summary = RunSummary.load(run_dir / "summary.json")
    return {
        "run_dir": run_dir.name,
        "summary": summary.as_dict(),
        "accounting": {"events_in": summary.events_in,
                       "decided_plus_quarantined": summary.events_decided + summary.events_quarantined,
                       "holds": summary.accounted, "reported_ok": summary.accounting_ok},
        "latency_histogram": _latency_histogram(run_dir / "batch_latency_ms.npy"),
    }


def read_sweep(path: str | Path) -> dict[str, Any]:
    """An architecture search's ``sweep.json`` (``trigger sweep``), checked: its trials, the
    numbers of those on the Pareto front, and the front points whose cost yosys checked."""
    path = Path(path)
    return {"file": path.name, **Sweep.load(path).as_dict()}


def read_pileup_scan(path: str | Path) -> dict[str, Any]:
    """A pileup scan's JSON (``trigger pileup-scan --json``), checked."""
    path = Path(path)
    return {"file": path.name, **PileupScan.load(path).as_dict()}


def read_report_data(path: str | Path) -> dict[str, Any]:
    """A ``report.json`` written by ``trigger report``, checked, to render again."""
    data = ReportData.load(path).as_dict()
    data.pop("images", None)
    return data
