"""Physics performance of trained models: ROC AUC and signal efficiency at fixed SM FPR.

Background scores come from SM events the model never trained on: the held-out test
split when the background file is the training file, otherwise the whole file. The trigger
working point is the artifact's calibrated threshold (calibrated on the 1,000,000-event
calibration sample for the bundled models) when it is for the working FPR. Every
efficiency carries a Clopper-Pearson interval, and an FPR that the number of SM events
cannot resolve is reported as such instead of as a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from models.background import background_events, read_background
from models.region_artifact import TriggerModel
from models.supervised import SupervisedArtifact
from trigger.contracts import Evaluation
from trigger.errors import UsageError
from trigger.events import open_events
from trigger.menu import Menu, pure_efficiency
from trigger.rates import BX_RATE_HZ
from trigger.schema import DATASET
from trigger.thresholds import FPR_POINTS, ThresholdEstimate, clopper_pearson, effective_count, rate_at, threshold_for

__all__ = ("FPR_POINTS", "Scorer", "add_menu_view", "efficiency", "evaluate", "menu_rates",
           "network_scorer", "read_signals", "signal_name", "summarise_signal")

F = NDArray[np.float64]
#: how a variant is scored: ``(artifact, variant) -> (what scores it, raw events -> scores)``
Scorer = Callable[[TriggerModel, str], tuple[str, Callable[[NDArray[Any]], F]]]


def network_scorer(artifact: TriggerModel, variant: str) -> tuple[str, Callable[[NDArray[Any]], F]]:
    """The variant's own network: QKeras for the quantized variant, the float twin for the float one.
    (``firmware.bundle.deployed_scorer`` scores the quantized variant as the firmware does.)"""
    return ("qkeras" if variant == "quantized" else variant), partial(artifact.score, variant=variant)


def signal_name(path: str | Path) -> str:
    """The generator's process name from the file attributes, else the file name."""
    with open_events(path) as events:
        process = events.attrs.get("process")
    return str(process) if process else Path(path).stem


def read_signals(paths: Sequence[str | Path], max_events: int | None = None,
                 reads: str = DATASET) -> dict[str, NDArray[Any]]:
    """Events of each signal file (the ``reads`` dataset) by process name; two files of one process
    are refused, not merged."""
    signals: dict[str, NDArray[Any]] = {}
    for path in paths:
        name = signal_name(path)
        if name in signals:
            msg = f"{path}: a second signal file of process {name!r}; give one file per process"
            raise UsageError(msg)
        with open_events(path) as events:
            signals[name] = events.read_input(reads, 0, min(events.n_events, max_events or events.n_events))
    return signals


def hanley_mcneil_error(auc: float, n_signal: int, n_background: int) -> float:
    """Standard error of an AUC (Hanley and McNeil, Radiology 143 (1982) 29)."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_signal - 1) * (q1 - auc * auc)
           + (n_background - 1) * (q2 - auc * auc)) / (n_signal * n_background)
    return float(np.sqrt(max(var, 0.0)))


def efficiency(signal: F, cut: ThresholdEstimate) -> dict[str, Any]:
    """The fraction of ``signal`` scores above the cut, its 68 % Clopper-Pearson interval, and the cut."""
    k = int(np.count_nonzero(signal > cut.threshold))
    low, high = clopper_pearson(k, len(signal))
    return {
        "tpr": k / len(signal), "tpr_low": low, "tpr_high": high,
        "threshold": cut.threshold, "fpr_achieved": cut.achieved.fpr,
        "fpr_low": cut.achieved.fpr_low, "fpr_high": cut.achieved.fpr_high,
        "supported": cut.supported, "note": cut.note,
    }


def _working_point(background: F, signal: F, working_fpr: float, calibrated: ThresholdEstimate | None,
                   weights: F | None = None, recalibrate: bool = False) -> dict[str, Any]:
    """The efficiency at the trigger working point: at the artifact's calibrated threshold when it was
    calibrated for this FPR (its statistics are the calibration sample's, which may be far larger
    than ``background``), else, or with ``recalibrate``, at the threshold for ``working_fpr`` on
    ``background``; then the calibrated threshold's rate on ``background`` is kept beside it."""
    stored = calibrated is not None and math.isclose(calibrated.target_fpr, working_fpr, rel_tol=1e-9)
    if calibrated is not None and stored and not recalibrate:
        return {"fpr": working_fpr, **efficiency(signal, calibrated),
                "threshold_from": f"the artifact's calibration on {calibrated.events or 'SM events'}",
                "fpr_on_these_events": rate_at(background, calibrated.threshold, weights).as_dict()}
    point = {"fpr": working_fpr, **efficiency(signal, threshold_for(background, working_fpr, weights=weights)),
             "threshold_from": "these SM events"}
    if calibrated is not None and stored:
        point["stored_threshold"] = rate_at(background, calibrated.threshold, weights).as_dict()
    return point


def summarise_signal(background: F, signal: F, fpr_points: Sequence[float], working_fpr: float,
                     calibrated: ThresholdEstimate | None = None, weights: F | None = None,
                     recalibrate: bool = False) -> dict[str, Any]:
    """AUC with its error, TPR at each resolvable FPR and at the trigger working point (at the
    ``calibrated`` threshold when it is for ``working_fpr``, unless ``recalibrate``: see
    :func:`_working_point`); ``weights``: the SM events' weights
    (``models.background.read_background``), the AUC's error from their effective count."""
    labels = np.r_[np.zeros(len(background)), np.ones(len(signal))]
    sample_weight = None if weights is None else np.r_[weights, np.ones(len(signal))]
    auc = float(roc_auc_score(labels, np.r_[background, signal], sample_weight=sample_weight))
    tpr_at_fpr: dict[str, Any] = {}
    for fpr in fpr_points:
        cut = threshold_for(background, fpr, weights=weights)
        tpr_at_fpr[f"{fpr:g}"] = efficiency(signal, cut) if cut.expected_above >= 1 else {
            "tpr": None, "supported": False, "note": cut.note}
    n_background = len(background) if weights is None else max(round(effective_count(weights)), 1)
    return {
        "auc": auc,
        "auc_error": hanley_mcneil_error(auc, len(signal), n_background),
        "tpr_at_fpr": tpr_at_fpr,
        "working_point": _working_point(background, signal, working_fpr, calibrated, weights, recalibrate),
        "events": len(signal),
    }


def evaluate(artifacts: Sequence[TriggerModel], background_path: str | Path | Sequence[str | Path],
             signal_paths: Sequence[str | Path], working_fpr: float,
             fpr_points: Sequence[float] = FPR_POINTS, max_events: int | None = None,
             supervised: Sequence[SupervisedArtifact] = (), scorer: Scorer = network_scorer,
             menu: Menu | None = None, bx_rate_hz: float = BX_RATE_HZ, recalibrate: bool = False,
             deciding_only: bool = False) -> Evaluation:
    """Evaluate every variant of every artifact on the same events (each scored by ``scorer``), and
    each ``supervised`` classifier on the held-out events of its own signal; the working point is at
    each model's stored calibration, or with ``recalibrate`` at the threshold these SM events give
    (a zero-bias sample at the signals' pileup: each model at the same L1 rate), the stored
    threshold's rate on them kept beside it (``stored_threshold``). With an L1 ``menu``,
    each signal also gets the menu's efficiency and the pure efficiency at the working point, and
    each model ``menu_background``: the same on the SM events, as rates at ``bx_rate_hz``. Several
    background files are one set weighted to the stream by process (``models.background``). With
    ``deciding_only``, each artifact's quantized variant alone (its only variant if it has none)."""
    paths = [background_path] if isinstance(background_path, (str, Path)) else list(background_path)
    if len(paths) > 1 and (menu is not None or supervised):
        msg = "the L1 menu view and the supervised bounds take one --background file, not a weighted set"
        raise UsageError(msg)
    signal_inputs = {reads: read_signals(signal_paths, max_events, reads) for reads in {a.reads for a in artifacts}}
    signal_fires: dict[str, NDArray[np.bool_]] = {}
    if menu is not None:  # the seeds read the objects, whatever the models read
        particles = signal_inputs.get(DATASET) or read_signals(signal_paths, max_events)
        signal_fires = {name: menu.any(events) for name, events in particles.items()}
    models: dict[str, Any] = {}
    background_info: dict[str, Any] = {}
    for artifact in artifacts:
        sm = read_background(artifact, paths, max_events)
        background, note, signal_events = sm.events, sm.note, signal_inputs[artifact.reads]
        background_fires = None if menu is None else menu.any(
            background if artifact.reads == DATASET else read_background(artifact, paths, max_events, DATASET).events)
        name = artifact.name
        if any(label.startswith(name + "/") for label in models):  # two models of one name
            name = f"{name}@{artifact.path.name}"
        variants = artifact.variants
        if deciding_only:
            variants = ["quantized"] if "quantized" in variants else variants[:1]
        for variant in variants:
            label = f"{name}/{variant}"
            scored_by, score = scorer(artifact, variant)
            bkg = score(background)
            scores = {signal: score(events) for signal, events in signal_events.items()}
            signals = {signal: summarise_signal(bkg, s, fpr_points, working_fpr, artifact.thresholds.get(variant),
                                                sm.weights, recalibrate) for signal, s in scores.items()}
            models[label] = {
                "path": str(artifact.path), "variant": variant, "reads": artifact.reads,
                "kind": artifact.kind, "score": artifact.variant_score(variant),
                "scored_by": scored_by, "background_events": len(bkg),
                "background": note, "signals": signals,
            }
            if background_fires is not None:
                add_menu_view(models[label], scores, signal_fires, bkg, background_fires, bx_rate_hz)
            background_info[label] = note
    for classifier in supervised:
        models[f"supervised-{classifier.signal}/supervised"] = _evaluate_supervised(
            classifier, paths[0], signal_paths, working_fpr, fpr_points, max_events)
    first = next(iter(models.values()))
    return Evaluation(background_file=", ".join(Path(p).name for p in paths), working_point_fpr=working_fpr,
                      signals={name: {"auc": s["auc"], "tpr_at_fpr": s["tpr_at_fpr"]}
                               for name, s in first["signals"].items()},
                      models=models)


def add_menu_view(summary: dict[str, Any], signal_scores: dict[str, F], signal_fires: dict[str, NDArray[np.bool_]],
                  background_scores: F, background_fires: NDArray[np.bool_], bx_rate_hz: float) -> None:
    """The Level-1 view of one scored variant at its working point, into ``summary`` (whose
    ``signals`` hold ``summarise_signal``'s figures): per signal ``menu``
    (:func:`trigger.menu.pure_efficiency`), and ``menu_background``, the same on the SM events as rates."""
    signals = summary["signals"]
    for name, figures in signals.items():
        figures["menu"] = pure_efficiency(signal_scores[name] > figures["working_point"]["threshold"],
                                          signal_fires[name])
    if signals:
        threshold = next(iter(signals.values()))["working_point"]["threshold"]  # one per variant: the SM's
        summary["menu_background"] = menu_rates(pure_efficiency(background_scores > threshold, background_fires),
                                                bx_rate_hz)


def menu_rates(fractions: dict[str, Any], bx_rate_hz: float) -> dict[str, Any]:
    """``pure_efficiency``'s figures with their fractions also as rates at ``bx_rate_hz``."""
    for key in ("menu", "anomaly", "pure"):
        part = fractions[key]
        part.update(rate_hz=part["fraction"] * bx_rate_hz, rate_low_hz=part["low"] * bx_rate_hz,
                    rate_high_hz=part["high"] * bx_rate_hz)
    return fractions


def _evaluate_supervised(classifier: SupervisedArtifact, background_path: str | Path,
                         signal_paths: Sequence[str | Path], working_fpr: float, fpr_points: Sequence[float],
                         max_events: int | None) -> dict[str, Any]:
    """A supervised classifier on the held-out SM events and the held-out events of its signal."""
    paths = [p for p in signal_paths if signal_name(p) == classifier.signal]
    if not paths:
        msg = f"{classifier.path} is the supervised classifier for {classifier.signal}: give its --signal file"
        raise UsageError(msg)
    background, note = background_events(classifier, background_path, max_events)
    events = classifier.held_out_signal(paths[0], read_signals(paths[:1], None)[classifier.signal])
    bkg = classifier.score(background)
    return {"path": str(classifier.path), "variant": "supervised", "kind": "supervised", "supervised": True,
            "note": classifier.manifest["note"], "score": "log-odds of signal (supervised)",
            "background_events": len(bkg), "background": note,
            "signals": {classifier.signal: summarise_signal(bkg, classifier.score(events[:max_events]), fpr_points,
                                                            working_fpr, classifier.threshold)}}
