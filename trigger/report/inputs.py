"""The report's contracts: what each stage leaves on disk, checked as the report reads it.

A replay run (``summary.json``), an open-source estimate (``estimate.json``, written by
:mod:`firmware.estimate`), an architecture search (``sweep.json``, :mod:`models.sweep`) and the report's own ``report.json`` (models summarised by
:mod:`models.summary`, firmware by :mod:`firmware.summary`), from which a report can be
rendered again without TensorFlow. Each reader checks the file against its contract and
returns plain JSON-ready data; anything unusable is an
:class:`~trigger.errors.InputFileError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trigger.errors import InputFileError

__all__ = ("RESOURCES", "read_estimate", "read_replay", "read_report_data", "read_sweep")

#: resources the report shows, in this order
RESOURCES = ("LUT", "FF", "DSP", "BRAM_36K")

_NUMBER = (int, float)
_REPLAY_KEYS: dict[str, tuple[type, ...]] = {
    "rate": (str,), "mode": (str,), "target_rate_hz": _NUMBER, "events_in": (int,),
    "events_decided": (int,), "events_quarantined": (int,), "events_accepted": (int,),
    "accounting_ok": (bool,), "accept_rate_hz_at_bx": _NUMBER, "events_per_second": _NUMBER,
    "real_time_factor": _NUMBER, "reference_backend": (str,), "reference_events": (int,),
    "reference_disagreements": (int,), "deadline_misses": (int,), "batch_latency_ms": (dict,),
    "quarantine_reasons": (dict,), "wall_seconds": _NUMBER, "workers": (int,), "model": (str,),
    "threshold": _NUMBER,
}
_LATENCY_KEYS = ("p50", "p90", "p99", "max")
_ESTIMATE_KEYS: dict[str, tuple[type, ...]] = {
    "label": (str,), "part": (str,), "clock_ns": _NUMBER, "latency_cycles": (int,),
    "latency_ns": _NUMBER, "resources": (dict,), "available": (dict,),
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(path, "missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputFileError(path, f"not readable JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a JSON object, found {type(data).__name__}")
    return data


def _check_keys(path: Path, data: dict[str, Any], keys: dict[str, tuple[type, ...]]) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise InputFileError(path, f"missing key(s) {', '.join(missing)}")
    for key, types in keys.items():
        value = data[key]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            expected = " or ".join(t.__name__ for t in types)
            raise InputFileError(path, f"{key!r} is {value!r}, expected {expected}")


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
    """``summary.json`` of a replay run, checked, plus its latency histogram if recorded."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputFileError(run_dir, "not a replay run directory (expected a directory with summary.json)")
    path = run_dir / "summary.json"
    summary = _read_json(path)
    _check_keys(path, summary, _REPLAY_KEYS)
    latency = summary["batch_latency_ms"]
    bad = [k for k in _LATENCY_KEYS if not isinstance(latency.get(k), _NUMBER)]
    if bad:
        raise InputFileError(path, f"batch_latency_ms lacks number(s) {', '.join(bad)}")
    accounted = summary["events_decided"] + summary["events_quarantined"]
    return {
        "run_dir": run_dir.name,
        "summary": summary,
        "accounting": {"events_in": summary["events_in"], "decided_plus_quarantined": accounted,
                       "holds": accounted == summary["events_in"],
                       "reported_ok": summary["accounting_ok"]},
        "latency_histogram": _latency_histogram(run_dir / "batch_latency_ms.npy"),
    }


def read_estimate(path: str | Path) -> dict[str, Any]:
    """An open-source resource/latency estimate (``estimate.json``), checked."""
    path = Path(path)
    data = _read_json(path)
    _check_keys(path, data, _ESTIMATE_KEYS)
    resources, available = data["resources"], data["available"]
    fractions = data.get("fractions") or {k: resources[k] / available[k] for k in resources
                                          if isinstance(available.get(k), _NUMBER) and available[k]}
    return {
        "source": "estimate", "label": data["label"], "part": data["part"], "clock_ns": data["clock_ns"],
        "latency_cycles": data["latency_cycles"], "latency_ns": data["latency_ns"],
        "resources": resources, "available": available, "fractions": fractions,
        "rtl_check": data.get("rtl_check"), "targets": data.get("targets", []),
        "tools": data.get("tools", {}), "includes_decision": bool(data.get("includes_decision", False)),
    }


_SWEEP_KEYS: dict[str, tuple[type, ...]] = {
    "base": (str,), "epochs": (int,), "working_point_fpr": _NUMBER, "objectives": (list,), "trials": (list,),
    "pareto": (list,), "checked": (list,),
}
_TRIAL_KEYS: dict[str, tuple[type, ...]] = {
    "number": (int,), "params": (dict,), "efficiency": _NUMBER, "cost": _NUMBER, "latency_ns": _NUMBER,
}


def read_sweep(path: str | Path) -> dict[str, Any]:
    """An architecture search's ``sweep.json`` (``trigger sweep``), checked: its trials, the
    numbers of those on the Pareto front, and the front points whose cost yosys checked."""
    path = Path(path)
    data = _read_json(path)
    _check_keys(path, data, _SWEEP_KEYS)
    for trial in data["trials"]:
        if not isinstance(trial, dict):
            raise InputFileError(path, "a trial is not an object")
        _check_keys(path, trial, _TRIAL_KEYS)
    numbers = {t["number"] for t in data["trials"]}
    if not set(data["pareto"]) <= numbers:
        raise InputFileError(path, "the Pareto front names trials the file does not have")
    return {"file": path.name, **{key: data[key] for key in _SWEEP_KEYS},
            "signals": data.get("signals", []), "space": data.get("space", {})}


#: keys of ``report.json`` (``trigger.report.collect.assemble``) and of each of its models
_REPORT_KEYS: dict[str, tuple[type, ...]] = {
    "title": (str,), "working_point": (dict,), "signals": (dict,), "models": (dict,),
}
_MODEL_KEYS: dict[str, tuple[type, ...]] = {
    "name": (str,), "variants": (dict,), "default_variant": (str,), "parameters": (dict,),
    "firmware": (dict,), "background_events": (int,), "agreement": (dict,),
}


def read_report_data(path: str | Path) -> dict[str, Any]:
    """A ``report.json`` written by ``trigger report``, checked, to render again."""
    path = Path(path)
    data = _read_json(path)
    _check_keys(path, data, _REPORT_KEYS)
    for label, model in data["models"].items():
        if not isinstance(model, dict):
            raise InputFileError(path, f"model {label!r} is not an object")
        _check_keys(path, model, _MODEL_KEYS)
    data.pop("images", None)
    return data
