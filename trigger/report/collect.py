"""The report's data: model summaries, firmware and replay results assembled into one dict.

The numbers come from the stages' own files and functions (:mod:`models.summary`,
:mod:`firmware.summary`, :mod:`trigger.report.inputs`); here they are only put together,
with the comparison across models. The plots and the page are drawn from this dict alone,
so ``report.json`` holds every number shown and a report renders again from it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trigger import __version__
from trigger.bitmask import decode_mask
from trigger.pareto import pareto_front
from trigger.rates import parse_rate

__all__ = ("assemble", "distinct_labels")


def distinct_labels(names: Sequence[str], paths: Sequence[Path]) -> list[str]:
    """Model names, made distinct with the directory name where two share one."""
    return [f"{n}@{p.name}" if names.count(n) > 1 else n for n, p in zip(names, paths, strict=True)]


def _comparison(models: dict[str, Any]) -> dict[str, Any]:
    """One row per model (its default variant): physics, size and firmware cost; Pareto flags."""
    rows = []
    for label, model in models.items():
        variant = model["default_variant"]
        signals = model["variants"][variant]["signals"]
        fw = model["firmware"]
        rows.append({
            "model": label, "variant": variant, "baseline": model["baseline"],
            "parameters": model["parameters"][variant], "precision": model["precision"],
            **_means(model["variants"][variant]),
            "tpr_at_wp": {name: s["working_point"]["tpr"] for name, s in signals.items()},
            "wp_supported": all(s["working_point"]["supported"] for s in signals.values()),
            "lut": (fw.get("resources") or {}).get("LUT"), "latency_ns": fw.get("latency_ns"),
            "firmware_source": fw["label"],
        })
    for cost in ("parameters", "lut"):
        have = [r for r in rows if r[cost] is not None]
        front = pareto_front([r[cost] for r in have], [r["mean_tpr_at_wp"] for r in have])
        for row, optimal in zip(have, front, strict=True):
            row[f"pareto_{cost}"] = optimal
    return {"rows": rows, "latency": _latency_points(models), "only_reference": _only_reference(models)}


def _means(variant: dict[str, Any]) -> dict[str, float]:
    signals = variant["signals"].values()
    return {"mean_auc": float(np.mean([s["auc"] for s in signals])),
            "mean_tpr_at_wp": float(np.mean([s["working_point"]["tpr"] for s in signals]))}


def _firmware_variant(model: dict[str, Any]) -> str | None:
    """The variant that scores as the FPGA does: the bit-exact emulator, else the quantized model."""
    return next((v for v in ("emulator", "quantized") if v in model["variants"]), None)


def _latency_points(models: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per model and path: the FPGA's latency from its firmware numbers, and each
    variant's scoring time per event as measured where the report ran; each with its source."""
    points = []
    for label, model in models.items():
        fw, firmware = model["firmware"], _firmware_variant(model)
        if firmware is not None and fw.get("latency_ns") is not None:
            points.append({"model": label, "variant": firmware, "path": "FPGA", "latency_ns": fw["latency_ns"],
                           "source": fw["label"], **_means(model["variants"][firmware])})
        for name, variant in model["variants"].items():
            timing = variant.get("scoring")
            if timing:
                points.append({"model": label, "variant": name, "path": timing["device"],
                               "latency_ns": timing["ns_per_event"], "source": timing["source"], **_means(variant)})
    return points


def _only_reference(models: dict[str, Any]) -> dict[str, Any] | None:
    """Signal events that each reference accepts at the working point and the trigger does not,
    and the reverse. The trigger: the first model with a quantized variant, deciding as its
    firmware does; the references: every float variant (its own float twin included)."""
    trigger = next((label for label, m in models.items() if "quantized" in m["variants"]), None)
    if trigger is None:
        return None
    decider = _firmware_variant(models[trigger])
    assert decider is not None
    chosen = models[trigger]["variants"][decider]["signals"]
    rows = []
    for label, model in models.items():
        variant = "float" if "float" in model["variants"] else model["default_variant"]
        if (label, variant) == (trigger, decider):
            continue
        counts = {}
        for name, signal in model["variants"][variant]["signals"].items():
            if name not in chosen or "accepted_at_wp" not in signal or signal["events"] != chosen[name]["events"]:
                continue
            ours = decode_mask(chosen[name]["accepted_at_wp"], chosen[name]["events"])
            theirs = decode_mask(signal["accepted_at_wp"], signal["events"])
            counts[name] = {"events": int(signal["events"]), "only_reference": int(np.sum(theirs & ~ours)),
                            "only_trigger": int(np.sum(ours & ~theirs)), "both": int(np.sum(ours & theirs))}
        rows.append({"reference": label, "variant": variant, "signals": counts})
    return {"trigger": trigger, "variant": decider, "rows": rows}


def assemble(models: dict[str, dict[str, Any]], background: str | Path | Sequence[str | Path],
             signals: dict[str, tuple[Path, int]],
             wp_fpr: float, accept_rate: str, bx_rate: str, replay: dict[str, Any] | None,
             sweep: dict[str, Any] | None = None, menu: dict[str, Any] | None = None,
             combined: list[dict[str, Any]] | None = None, pileup: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report dict: ``models`` (label -> model summary with its ``firmware`` entry), the signal
    files (name -> (path, events)), the working point, and the replay run, the architecture
    search (``read_sweep``), the L1 menu (``Menu.describe``), the object and region triggers'
    OR (``models.combined.or_of_triggers`` per pair) and the pileup scan (``read_pileup_scan``), if any."""
    return {
        "title": "Anomaly-detection trigger report",
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "trigger_version": __version__,
        "working_point": {"accept_rate": accept_rate, "bx_rate": bx_rate, "fpr": wp_fpr,
                          "bx_rate_hz": parse_rate(bx_rate)},
        "background_file": ", ".join(Path(p).name for p in ([background] if isinstance(background, str | Path)
                                                             else background)),
        "signals": {name: {"file": path.name, "events": n} for name, (path, n) in signals.items()},
        "models": models,
        "comparison": _comparison(models) if len(models) > 1 else None,
        "replay": replay,
        "sweep": sweep,
        "menu": menu,
        "combined": combined or None,
        "pileup": pileup,
    }
