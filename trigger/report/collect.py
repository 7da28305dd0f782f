"""Every number of the report, computed from the models and events into one JSON-ready dict.

Per model: scores of each variant (quantized, float twin and, for quantized models, the
bit-exact firmware emulator) on held-out SM events and each signal; AUC and efficiencies
with their intervals (:func:`models.evaluate.summarise_signal`); ROC curves and score
histograms as plotted; float vs fixed-point agreement; the C-simulation vs emulator check;
firmware resources. Plus the replay run and, for several models, a comparison. The plots
and the page are drawn from this dict alone, so ``report.json`` holds every number shown.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_curve

from models.artifact import Artifact
from models.evaluate import FPR_POINTS, background_events, signal_name, summarise_signal
from models.scores import SCORES
from trigger import __version__
from trigger.errors import UsageError
from trigger.events import open_events
from trigger.rates import fpr_for_rate, parse_rate
from trigger.report.inputs import read_firmware, read_replay
from trigger.thresholds import MIN_EXPECTED

__all__ = ("SM", "collect", "pareto_front", "roc_points")

SM = "SM"  # sample name of the held-out background events
ROC_POINTS = 160
SCATTER_PER_SAMPLE = 600
F = NDArray[np.float64]
Progress = Callable[[str], None]


def roc_points(background: F, signal: F, n_points: int = ROC_POINTS) -> dict[str, list[float]]:
    """TPR on a log grid of FPR from 1/N_SM to 1 (the ROC step function, not interpolated)."""
    labels = np.r_[np.zeros(len(background)), np.ones(len(signal))]
    fpr, tpr, _ = roc_curve(labels, np.r_[background, signal])
    grid = np.geomspace(1.0 / len(background), 1.0, n_points)
    index = np.searchsorted(fpr, grid, side="right") - 1
    return {"fpr": _rounded(grid), "tpr": _rounded(tpr[index])}


def _rounded(values: NDArray[Any]) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(values, np.float64)]


def _histograms(scores: dict[str, F], bins: int = 60) -> dict[str, Any]:
    """Score histograms of every sample on shared bins (logarithmic when the scores span decades)."""
    everything = np.concatenate(list(scores.values()))
    low, high = float(everything.min()), float(everything.max())
    log = low > 0 and high / low > 100
    edges = np.geomspace(low, high, bins + 1) if log else np.linspace(low, max(high, low + 1e-9), bins + 1)
    return {"log_bins": log, "edges": _rounded(edges),
            "counts": {name: np.histogram(s, edges)[0].tolist() for name, s in scores.items()},
            "events": {name: len(s) for name, s in scores.items()}}


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


def _emulate(artifact: Artifact, samples: dict[str, NDArray[np.floating]], check_events: int,
             progress: Progress) -> tuple[dict[str, F], dict[str, Any] | None]:
    """Emulator scores of every sample and, on ``check_events`` SM events, the C-sim comparison."""
    from firmware.check import compare_paths, csim_vs_emulator, firmware_scores
    from firmware.convert import to_hls
    from firmware.emulator import Emulator

    name = artifact.config.model.name
    with tempfile.TemporaryDirectory() as tmp:
        if check_events:
            progress(f"  {name}: hls4ml conversion and C-simulation build with g++ (about 10 s)")
        model = to_hls(artifact, Path(tmp) / "hls", compile=check_events > 0)
        emulator = Emulator.from_hls_model(model)
        scores = {}
        for sample, particles in samples.items():
            x = artifact.inputs(particles).astype(np.float64)
            scores[sample] = firmware_scores(artifact, emulator.predict(x), x, particles)
        if not check_events:
            return scores, None
        particles = samples[SM][:check_events]
        progress(f"  {name}: QKeras vs C-simulation vs emulator on {len(particles)} held-out SM events")
        pairs, _ = compare_paths(artifact, model, particles)
    exact = csim_vs_emulator(pairs)
    return scores, {"events": len(particles), "pairs": [p.as_dict() for p in pairs],
                    "csim_vs_emulator_exact": exact.scores_differ == 0 and exact.decisions_differ == 0}


def _model_summary(artifact: Artifact, label: str, background: Path, signals: dict[str, NDArray[np.floating]],
                   wp_fpr: float, check_events: int, max_events: int | None,
                   progress: Progress) -> dict[str, Any]:
    config = artifact.config.model
    bkg, note = background_events(artifact, background, max_events)
    samples = {SM: bkg, **signals}
    scores: dict[str, dict[str, F]] = {}
    for variant in artifact.variants:
        progress(f"scoring {label}/{variant} on {sum(map(len, samples.values()))} events")
        scores[variant] = {name: artifact.score(events, variant) for name, events in samples.items()}
    thresholds = {v: artifact.threshold(v) for v in artifact.variants}
    exactness = None
    if "quantized" in artifact.variants:
        scores["emulator"], exactness = _emulate(artifact, samples, check_events, progress)
        thresholds["emulator"] = thresholds["quantized"]
    variants = {}
    for variant, by_sample in scores.items():
        sm = by_sample[SM]
        stored = artifact.thresholds.get("quantized" if variant == "emulator" else variant)
        variants[variant] = {
            "threshold": thresholds[variant],
            "threshold_note": stored.note if stored else "",
            "signals": {name: {**summarise_signal(sm, s, FPR_POINTS, wp_fpr), "roc": roc_points(sm, s)}
                        for name, s in by_sample.items() if name != SM},
            "histogram": _histograms(by_sample),
        }
    agreement = {}
    if "quantized" in scores:
        every = {v: np.concatenate(list(s.values())) for v, s in scores.items()}
        for other in ("float", "emulator"):
            agreement[f"quantized vs {other}"] = _agreement(every["quantized"], every[other],
                                                            thresholds["quantized"], thresholds[other])
    return {
        "path": str(artifact.path), "name": config.name, "kind": config.kind,
        "baseline": "seed-003 FFN baseline" if config.kind == "ffn-baseline" else None,
        "score": config.score, "score_meaning": SCORES.get(config.score, config.score),
        "architecture": config.parameters_hint,
        "precision": (f"weights {config.weight_bits} bit, activations {config.activation_bits} bit, "
                      f"inputs {config.input_type}") if config.quantized else "float32",
        "parameters": {v: int(artifact.networks[v].trainable.count_params()) for v in artifact.variants},
        "default_variant": artifact.default_variant,
        "background_events": len(bkg), "background": note,
        "statistics": {"min_resolvable_fpr": 1 / len(bkg), "min_supported_fpr": MIN_EXPECTED / len(bkg)},
        "variants": variants,
        "agreement": agreement,
        "scatter": _scatter(scores, "float", "quantized") if "quantized" in scores else None,
        "exactness": exactness,
    }


def _labels(artifacts: Sequence[Artifact]) -> list[str]:
    """Model names, made distinct with the directory name where two share one."""
    names = [a.config.model.name for a in artifacts]
    return [f"{n}@{a.path.name}" if names.count(n) > 1 else n for n, a in zip(names, artifacts, strict=True)]


def pareto_front(costs: Sequence[float], gains: Sequence[float]) -> list[bool]:
    """True where no other point costs no more and gains no less (and is better in one)."""
    points = list(zip(costs, gains, strict=True))
    return [not any(c <= cost and g >= gain and (c, g) != (cost, gain) for c, g in points)
            for cost, gain in points]


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
            "mean_auc": float(np.mean([s["auc"] for s in signals.values()])),
            "tpr_at_wp": {name: s["working_point"]["tpr"] for name, s in signals.items()},
            "mean_tpr_at_wp": float(np.mean([s["working_point"]["tpr"] for s in signals.values()])),
            "wp_supported": all(s["working_point"]["supported"] for s in signals.values()),
            "lut": (fw.get("resources") or {}).get("LUT"), "latency_ns": fw.get("latency_ns"),
            "firmware_source": fw["label"],
        })
    for cost in ("parameters", "lut"):
        have = [r for r in rows if r[cost] is not None]
        front = pareto_front([r[cost] for r in have], [r["mean_tpr_at_wp"] for r in have])
        for row, optimal in zip(have, front, strict=True):
            row[f"pareto_{cost}"] = optimal
    return {"rows": rows}


def _firmware(artifact: Artifact, fw_dir: Path | None) -> dict[str, Any]:
    if fw_dir is not None:
        return read_firmware(fw_dir)
    if "quantized" not in artifact.variants:
        return {"source": None, "label": "not applicable: float-only model, no firmware"}
    return {"source": None, "label": "not available (no --firmware given)"}


def collect(artifacts: Sequence[Artifact], background: str | Path, signals: Sequence[str | Path], *,
            replay: str | Path | None = None, firmware: Sequence[str | Path | None] = (),
            check_events: int = 2000, accept_rate: str = "1kHz", bx_rate: str = "40MHz",
            max_events: int | None = None, progress: Progress = print) -> dict[str, Any]:
    """Compute the whole report as a JSON-ready dict (inputs are read and checked first)."""
    if not artifacts or not signals:
        raise UsageError("a report needs at least one model and one signal file")
    if len(firmware) > len(artifacts):
        raise UsageError(f"{len(firmware)} --firmware directories for {len(artifacts)} models; give at "
                         "most one per --model, in the same order")
    if check_events < 0:
        raise UsageError("--check-events must be >= 0")
    wp_fpr = fpr_for_rate(parse_rate(accept_rate), parse_rate(bx_rate))
    fw_dirs = [Path(d) if d is not None else None for d in firmware]
    fw_dirs += [None] * (len(artifacts) - len(fw_dirs))
    firmware_info = [_firmware(a, d) for a, d in zip(artifacts, fw_dirs, strict=True)]
    replay_info = read_replay(replay) if replay is not None else None
    signal_events = {}
    for path in signals:
        name = signal_name(path)
        if name in signal_events:
            raise UsageError(f"{path}: a second signal file of process {name!r}")
        with open_events(path) as events:
            signal_events[name] = events.read(0, min(events.n_events, max_events or events.n_events))
    models = {}
    for label, artifact, fw in zip(_labels(artifacts), artifacts, firmware_info, strict=True):
        models[label] = _model_summary(artifact, label, Path(background), signal_events, wp_fpr,
                                       check_events, max_events, progress)
        models[label]["firmware"] = fw
    return {
        "title": "Anomaly-detection trigger report",
        "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "trigger_version": __version__,
        "working_point": {"accept_rate": accept_rate, "bx_rate": bx_rate, "fpr": wp_fpr,
                          "bx_rate_hz": parse_rate(bx_rate)},
        "background_file": Path(background).name,
        "signals": {name: {"file": Path(p).name, "events": len(signal_events[name])}
                    for name, p in zip(signal_events, signals, strict=True)},
        "models": models,
        "comparison": _comparison(models) if len(models) > 1 else None,
        "replay": replay_info,
    }
