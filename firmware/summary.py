"""The firmware's part of the report: emulator scores with the C-simulation check, and what a
firmware directory holds (vendor reports, else the open-source ``estimate.json``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.bundle import bundle_for
from firmware.check import compare_paths, csim_and_bundle, csim_vs_emulator
from firmware.reports import read_reports
from models.region_artifact import TriggerModel
from models.summary import SM, ExtraVariant
from trigger.contracts import Estimate
from trigger.errors import InputFileError

__all__ = ("emulated_variant", "firmware_info", "read_firmware")

F = NDArray[np.float64]


def emulated_variant(artifact: TriggerModel, check_events: int,
                     progress: Callable[[str], None] = print) -> ExtraVariant:
    """The ``emulator`` variant for :func:`models.summary.model_summary`: the firmware bundle's scores
    of every sample and, on ``check_events`` SM events, QKeras vs a fresh C-simulation vs the bundle."""
    name = artifact.name

    def score(samples: dict[str, NDArray[Any]]) -> tuple[dict[str, F], dict[str, Any] | None]:
        if not check_events:
            firmware = bundle_for(artifact)
            return {sample: firmware.scores(events) for sample, events in samples.items()}, None
        particles = samples[SM][:check_events]
        with tempfile.TemporaryDirectory() as tmp:
            progress(f"  {name}: hls4ml conversion and C-simulation build with g++ (about 10 s)")
            model, firmware = csim_and_bundle(artifact, Path(tmp) / "hls")
            progress(f"  {name}: QKeras vs C-simulation vs emulator on {len(particles)} held-out SM events")
            pairs, _ = compare_paths(artifact, model, particles, firmware)
        scores = {sample: firmware.scores(events) for sample, events in samples.items()}
        exact = csim_vs_emulator(pairs)
        return scores, {"events": len(particles), "pairs": [p.as_dict() for p in pairs],
                        "csim_vs_emulator_exact": exact.exact}

    return "emulator", score


def firmware_info(artifact: TriggerModel, fw_dir: Path | None) -> dict[str, Any]:
    """The report's firmware entry of a model: its directory's results, or why there are none."""
    if fw_dir is not None:
        return read_firmware(fw_dir)
    if "quantized" not in artifact.variants:
        return {"source": None, "label": "not applicable: float-only model, no firmware"}
    return {"source": None, "label": "not available (no --firmware given)"}


def _from_vendor(reports: dict[str, Any]) -> dict[str, Any]:
    """Vendor numbers: Vivado utilization when present (post-synthesis), else the HLS estimates."""
    hls = reports.get("hls")
    util = reports.get("vivado_synth.rpt") or reports.get("util.rpt")
    timing = reports.get("timing.rpt")
    info: dict[str, Any] = {"source": "vendor report", "part": None, "clock_ns": None,
                            "latency_cycles": None, "latency_ns": None, "resources": {}, "available": {},
                            "fractions": {}, "rtl_check": None, "targets": [], "tools": {}}
    parts = []
    if hls is not None:
        parts.append("HLS C-synthesis")
        info.update(clock_ns=hls.target_clock_ns, latency_cycles=hls.latency_worst,
                    latency_ns=hls.latency_ns, estimated_clock_ns=hls.estimated_clock_ns,
                    interval=hls.interval_max)
        info["resources"] = dict(hls.resources)
        info["available"] = dict(hls.available)
    if util is not None:
        parts.append("Vivado synthesis utilization")
        info["resources"] = {k: int(v) for k, v in util.used.items()}
        info["available"] = {k: int(v) for k, v in util.available.items()}
    measured = util or hls
    if measured is not None:
        info["fractions"] = {k: measured.fraction(k) for k in info["resources"] if info["available"].get(k)}
    if timing is not None:
        parts.append("Vivado timing summary")
        info["timing"] = {"wns_ns": timing.wns_ns, "whs_ns": timing.whs_ns, "met": timing.met}
    info["label"] = "vendor report (" + ", ".join(parts) + ")"
    return info


def _from_estimate(estimate: Estimate) -> dict[str, Any]:
    """The report's firmware entry of an open-source estimate."""
    fractions = estimate.fractions or {k: v / estimate.available[k] for k, v in estimate.resources.items()
                                       if estimate.available.get(k)}
    return {"source": "estimate", "label": estimate.label, "part": estimate.part, "clock_ns": estimate.clock_ns,
            "latency_cycles": estimate.latency_cycles, "latency_ns": estimate.latency_ns,
            "resources": estimate.resources, "available": estimate.available, "fractions": fractions,
            "rtl_check": estimate.rtl_check, "targets": estimate.targets, "tools": estimate.tools,
            "includes_decision": estimate.includes_decision}


def read_firmware(fw_dir: str | Path) -> dict[str, Any]:
    """Vendor reports under ``fw_dir`` if any, else its ``estimate.json``, else 'not available'."""
    fw_dir = Path(fw_dir)
    if not fw_dir.is_dir():
        raise InputFileError(fw_dir, "not a firmware directory")
    reports = read_reports(fw_dir)
    if set(reports) - {"timing.rpt"}:  # resources or latency from the vendor
        info = _from_vendor(reports)
    elif (fw_dir / "estimate.json").is_file():
        info = _from_estimate(Estimate.load(fw_dir / "estimate.json"))
    else:
        return {"source": None,
                "label": f"not available: no vendor reports or estimate.json in {fw_dir.name}"}
    info["dir"] = fw_dir.name
    return info
