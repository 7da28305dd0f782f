"""One model's part of the report, as JSON-ready data: what the report renders for a model.

Per variant (quantized, float twin, and any extra variant such as the firmware emulator):
the threshold, AUC and efficiencies with their intervals per signal, ROC curves and score
histograms as plotted, and with an L1 menu the Level-1 view (the menu's efficiency and the pure
efficiency per signal, the pure rate on the SM events); float vs fixed-point agreement and a
score scatter. The keys are the
contract :mod:`trigger.report.inputs` checks.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_curve

from models.background import read_background
from models.evaluate import add_menu_view, summarise_signal
from models.region_artifact import RegionArtifact, TriggerModel
from models.scores import SCORES
from trigger.bitmask import encode_mask
from trigger.errors import UsageError
from trigger.menu import Menu
from trigger.rates import BX_RATE_HZ
from trigger.schema import DATASET
from trigger.thresholds import FPR_POINTS, MIN_EXPECTED, effective_count

__all__ = ("SM", "ExtraVariant", "model_summary", "roc_points", "scoring_device")

SM = "SM"  # sample name of the held-out background events
ROC_POINTS = 160
SCATTER_PER_SAMPLE = 600
F = NDArray[np.float64]
Samples = dict[str, NDArray[Any]]
#: (variant name, samples -> (scores per sample, extra information)); e.g. the firmware emulator
ExtraVariant = tuple[str, Callable[[Samples], tuple[dict[str, F], dict[str, Any] | None]]]


def roc_points(background: F, signal: F, n_points: int = ROC_POINTS, weights: F | None = None) -> dict[str, list[float]]:
    """TPR on a log grid of FPR from the smallest SM step (1/N_SM, or the smallest weight's share) to 1
    (the ROC step function, not interpolated); ``weights``: the SM events' (a weighted set)."""
    labels = np.r_[np.zeros(len(background)), np.ones(len(signal))]
    sample_weight = None if weights is None else np.r_[weights, np.ones(len(signal))]
    fpr, tpr, _ = roc_curve(labels, np.r_[background, signal], sample_weight=sample_weight)
    smallest = 1.0 / len(background) if weights is None else float(np.min(weights) / np.sum(weights))
    grid = np.geomspace(smallest, 1.0, n_points)
    index = np.searchsorted(fpr, grid, side="right") - 1
    return {"fpr": _rounded(grid), "tpr": _rounded(tpr[index])}


def _rounded(values: NDArray[Any]) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(values, np.float64)]


def _histograms(scores: dict[str, F], bins: int = 60, weights: F | None = None) -> dict[str, Any]:
    """Score histograms of every sample on shared bins (the SM's weighted by ``weights``, its
    ``events`` then their total weight): logarithmic when positive scores span
    decades, symmetric-logarithmic (linear within ``linthresh`` of 0) when scores that reach zero or
    below, such as a flow's -log p(x), span decades above it; else linear."""
    everything = np.concatenate(list(scores.values()))
    low, high = float(everything.min()), float(everything.max())
    log = low > 0 and high / low > 100
    linthresh = max(-low, 1e-9)
    symlog = low <= 0 and high > 100 * linthresh
    if log:
        edges = np.geomspace(low, high, bins + 1)
    elif symlog:  # uniform in sign(x) log10(1 + |x| / linthresh)
        def forward(x: float) -> float:
            return float(np.sign(x) * np.log10(1 + abs(x) / linthresh))

        grid = np.linspace(forward(low), forward(high), bins + 1)
        edges = np.sign(grid) * (10 ** np.abs(grid) - 1) * linthresh
        edges[0], edges[-1] = low, high
    else:
        edges = np.linspace(low, max(high, low + 1e-9), bins + 1)
    scale = "log" if log else "symlog" if symlog else "linear"
    return {"log_bins": log, "x_scale": scale, "linthresh": linthresh, "edges": _rounded(edges),
            "counts": {name: np.histogram(s, edges, weights=weights if name == SM else None)[0].tolist()
                       for name, s in scores.items()},
            "events": {name: len(s) if name != SM or weights is None else float(np.sum(weights))
                       for name, s in scores.items()}}


def _statistics(weights: F | None, n: int) -> dict[str, float]:
    """The smallest FPR the SM events resolve (one event, or the lightest one's share of the weight)
    and support (``MIN_EXPECTED`` events, in effective counts for a weighted set)."""
    if weights is None:
        return {"min_resolvable_fpr": 1 / n, "min_supported_fpr": MIN_EXPECTED / n}
    return {"min_resolvable_fpr": float(np.min(weights) / np.sum(weights)),
            "min_supported_fpr": MIN_EXPECTED / effective_count(weights)}


def _agreement(first: F, second: F, first_cut: float, second_cut: float) -> dict[str, Any]:
    """How often two score paths decide alike (each at its own threshold) and how far apart they are."""
    differ = int(np.count_nonzero((first > first_cut) != (second > second_cut)))
    return {"events": len(first), "decisions_differ": differ, "identical_decisions": 1 - differ / len(first),
            "scores_differ": int(np.count_nonzero(first != second)),
            "max_abs_difference": float(np.max(np.abs(first - second), initial=0.0))}


def _scatter(scores: dict[str, dict[str, F]], a: str, b: str, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out = {}
    for sample in scores[a]:
        n = len(scores[a][sample])
        pick = np.sort(rng.choice(n, min(n, SCATTER_PER_SAMPLE), replace=False))
        out[sample] = {a: _rounded(scores[a][sample][pick]), b: _rounded(scores[b][sample][pick])}
    return out


def scoring_device() -> str:
    """Where this process scores: TensorFlow's GPU when it sees one, else the CPU (its cores)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return f"GPU ({gpus[0].name})"
    return f"CPU ({platform.machine() or 'unknown'}, {os.cpu_count()} cores)"


def _timing(seconds: float, events: int, device: str) -> dict[str, Any]:
    """A variant's scoring time per event in this run, and where it ran (whole files in one call:
    the per-event cost of batched scoring, not a single event's latency)."""
    return {"ns_per_event": seconds / max(events, 1) * 1e9, "events": events, "device": device,
            "source": "measured in this report's run"}


def _signal_summary(sm: F, signal: F, wp_fpr: float, stored: Any, weights: F | None = None) -> dict[str, Any]:
    """A signal's figures, its ROC, and which of its events pass the working point
    (``score > threshold`` as :func:`trigger.bitmask.encode_mask` text), so models can be compared
    event by event; ``weights``: the SM events' (a weighted set)."""
    summary = {**summarise_signal(sm, signal, FPR_POINTS, wp_fpr, stored, weights),
               "roc": roc_points(sm, signal, weights=weights)}
    accepted = signal > summary["working_point"]["threshold"]
    summary["accepted_at_wp"] = encode_mask(accepted)
    return summary


def _description(artifact: TriggerModel) -> dict[str, Any]:
    """What the model is, in the report's words."""
    if isinstance(artifact, RegionArtifact):
        spec = artifact.spec
        return {"name": spec.name, "kind": artifact.kind, "baseline": None, "score": artifact.score_name,
                "score_meaning": "the student's output squared (it regresses 32 ln of its teacher's MSE)",
                "architecture": (f"18x14 regions: conv {spec.filters} 2x2 stride 2, dense {spec.hidden} + batch norm, "
                                 "dense 1; teacher: conv autoencoder"),
                "precision": (f"weights {spec.weight_bits} bit (convolution {spec.conv_weight_bits or spec.weight_bits}),"
                              f" activations {spec.activation_bits} bit, inputs 10-bit counts")}
    config = artifact.config.model
    return {"name": config.name, "kind": config.kind,
            "baseline": "seed-003 FFN baseline" if config.kind == "ffn-baseline" else None,
            "score": config.score, "score_meaning": SCORES.get(config.score, config.score),
            "architecture": config.parameters_hint,
            "precision": (f"weights {config.weight_bits} bit, activations {config.activation_bits} bit, "
                          f"inputs {config.input_type}") if config.quantized else "float32"}


def model_summary(artifact: TriggerModel, label: str, background: str | Path | Sequence[str | Path], signals: Samples,
                  wp_fpr: float,
                  max_events: int | None = None, extra: ExtraVariant | None = None,
                  progress: Callable[[str], None] = print, menu: Menu | None = None,
                  bx_rate_hz: float = BX_RATE_HZ, signal_objects: Samples | None = None) -> dict[str, Any]:
    """Score every variant of ``artifact`` on held-out SM events and ``signals`` (the events'
    dataset the model reads); the model's report data.

    ``extra`` adds a variant scored elsewhere (the firmware emulator) at the quantized threshold;
    its extra information is stored as ``exactness``. With an L1 ``menu``, each signal of each
    variant gets ``menu`` (:func:`trigger.menu.pure_efficiency` at the working point) and each
    variant ``menu_background``, the same on the SM events with rates at ``bx_rate_hz``; the seeds
    fire on the events' objects (``signal_objects``, for a model that reads regions). Several
    ``background`` files are one set weighted to the stream by process (``models.background``).
    """
    sm_set = read_background(artifact, background, max_events)
    bkg, note, weights = sm_set.events, sm_set.note, sm_set.weights
    if weights is not None and menu is not None:
        msg = "the L1 menu view takes one --background file, not a weighted set"
        raise UsageError(msg)
    samples = {SM: bkg, **signals}
    scores: dict[str, dict[str, F]] = {}
    n_events, device = sum(map(len, samples.values())), scoring_device()
    timing: dict[str, dict[str, Any]] = {}
    for variant in artifact.variants:
        progress(f"scoring {label}/{variant} on {n_events} events")
        started = time.perf_counter()
        scores[variant] = {name: artifact.score(events, variant) for name, events in samples.items()}
        timing[variant] = _timing(time.perf_counter() - started, n_events, device)
    thresholds = {v: artifact.threshold(v) for v in artifact.variants}
    exactness = None
    if extra is not None and "quantized" in artifact.variants:
        name, score_samples = extra  # not timed: it builds and checks the firmware model too
        scores[name], exactness = score_samples(samples)
        thresholds[name] = thresholds["quantized"]
    fires: dict[str, NDArray[np.bool_]] = {}
    if menu is not None:
        objects = samples if signal_objects is None else {
            SM: read_background(artifact, background, max_events, DATASET).events, **signal_objects}
        fires = {name: menu.any(events) for name, events in objects.items()}
    variants = {}
    for variant, by_sample in scores.items():
        sm = by_sample[SM]
        stored = artifact.thresholds.get(variant if variant in artifact.variants else "quantized")
        variants[variant] = {
            "threshold": thresholds[variant],
            "threshold_note": stored.note if stored else "",
            "signals": {name: _signal_summary(sm, s, wp_fpr, stored, weights)
                        for name, s in by_sample.items() if name != SM},
            "histogram": _histograms(by_sample, weights=weights),
            "scoring": timing.get(variant),
        }
        if fires:
            add_menu_view(variants[variant], by_sample, fires, sm, fires[SM], bx_rate_hz)
    agreement = {}
    if "quantized" in scores:
        every = {v: np.concatenate(list(s.values())) for v, s in scores.items()}
        for other in (v for v in every if v != "quantized"):
            agreement[f"quantized vs {other}"] = _agreement(every["quantized"], every[other],
                                                            thresholds["quantized"], thresholds[other])
    return {
        "path": str(artifact.path), "reads": artifact.reads, **_description(artifact),
        "parameters": artifact.parameters,
        "default_variant": artifact.default_variant,
        "background_events": len(bkg), "background": note,
        "statistics": _statistics(weights, len(bkg)),
        "variants": variants,
        "agreement": agreement,
        "scatter": _scatter(scores, "float", "quantized") if {"float", "quantized"} <= set(scores) else None,
        "exactness": exactness,
    }
