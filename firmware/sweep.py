"""A multi-objective architecture search with Optuna: trigger efficiency against firmware logic.

Each trial trains the base configuration with the trial's widths, latent size and quantization
(quantization-aware, as ``trigger train`` does), then measures, on the path that decides:

- the **mean signal efficiency at the working point**: the bit-exact emulator's scores, the
  threshold for the working FPR calibrated on held-out SM events (the calibration sample
  when given), averaged over the signal files;
- the **logic**: da4ml's cost of the network with its score and decision (adder bits, the
  quantity the open-source estimate's LUT count follows), and the latency of its pipeline.

A trial quantizes with QKeras (one width per layer: the weight and activation bits are searched)
or with HGQ (a width per weight and per activation, trained: the weight of its resource penalty,
``hgq_beta``, is searched on a log scale); a sweep may mix both, the quantizer then being one
more choice of each trial.

Optuna's NSGA-II sampler looks for the Pareto front of (efficiency up, cost down). Models trained
elsewhere (the bundled ones, other kinds than the search's) can join the front: each is measured as a
trial is, on the same events, and listed with its name. ``check`` synthesizes some of the front's
points with yosys (the full open-source estimate) so the cost is checked against LUTs where it matters.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from models.config import Config
from trigger.contracts import Sweep
from trigger.errors import UsageError

if TYPE_CHECKING:
    import optuna

    from firmware.bundle import FirmwareBundle
    from models.artifact import Artifact

__all__ = ("HGQ_SPACE", "QKERAS_SPACE", "SHAPE_SPACE", "TrialResult", "pareto_front", "point_name", "run_sweep")

#: parameter -> (low, high, step) of the search, whatever the quantizer
SHAPE_SPACE: dict[str, tuple[int, int, int]] = {
    "width": (8, 32, 4),  # the hidden layer(s) of encoder and decoder
    "latent": (2, 6, 1),
}
#: QKeras's one width per layer: parameter -> (low, high, step)
QKERAS_SPACE: dict[str, tuple[int, int, int]] = {
    "weight_bits": (4, 8, 1),  # QKeras re-seeds its initializer identically below 4 bits
    "activation_bits": (4, 8, 1),
}
#: HGQ's trained widths: the resource penalty's weight, (low, high) searched log-uniformly
HGQ_SPACE: dict[str, tuple[float, float]] = {"hgq_beta": (1e-7, 1e-4)}


@dataclass(frozen=True)
class TrialResult:
    number: int
    params: dict[str, int | float | str]  # the shape, "quantizer", and that quantizer's parameters
    efficiency: float  # mean over the signals at the working point
    efficiencies: dict[str, float]
    cost: float  # da4ml's adder-bit cost, score and decision included
    latency_ns: float
    auc: dict[str, float]
    artifact: str = ""  # a model measured beside the trials (its directory), not trained by the sweep


def suggest(trial: optuna.Trial, quantizers: Sequence[str]) -> dict[str, int | float | str]:
    """The trial's shape, quantizer (the only one given, else a choice) and that quantizer's parameters."""
    params: dict[str, int | float | str] = {
        name: trial.suggest_int(name, low, high, step=step) for name, (low, high, step) in SHAPE_SPACE.items()}
    quantizer = quantizers[0] if len(quantizers) == 1 else trial.suggest_categorical("quantizer", list(quantizers))
    params["quantizer"] = quantizer
    if quantizer == "hgq":
        params.update({name: trial.suggest_float(name, low, high, log=True) for name, (low, high) in HGQ_SPACE.items()})
    else:
        params.update({name: trial.suggest_int(name, low, high, step=step)
                       for name, (low, high, step) in QKERAS_SPACE.items()})
    return params


def _config(base: Config, params: dict[str, Any], epochs: int) -> Config:
    depth = len(base.model.encoder)
    quantization = {name: params[name] for name in (*QKERAS_SPACE, *HGQ_SPACE) if name in params}
    model = replace(base.model, name=f"{base.model.name}-sweep", encoder=(params["width"],) * depth,
                    decoder=(params["width"],) * depth, latent=params["latent"], quantizer=params["quantizer"],
                    **quantization)
    return Config(model, replace(base.training, epochs=epochs))


def _chunked_scores(score: Callable[[NDArray[Any]], NDArray[np.float64]], events: NDArray[Any],
                    chunk: int = 100_000) -> NDArray[np.float64]:
    return np.concatenate([score(events[i:i + chunk]) for i in range(0, max(len(events), 1), chunk)])


def evaluate_trial(config: Config, data: Path, signals: dict[str, NDArray[Any]], calibration: Path | None,
                   fpr: float, out: Path, latency_cutoff: float, clock_ns: float) -> dict[str, Any]:
    """Train ``config`` into ``out`` and measure its efficiency, cost and latency (see module doc)."""
    from firmware.bundle import build_bundle
    from models.train import train

    artifact = train(config, data, out, log=io.StringIO())
    return measure(artifact, build_bundle(artifact, clock_ns=clock_ns), data, signals, calibration, fpr,
                   latency_cutoff, clock_ns)


def measure(artifact: Artifact, firmware: FirmwareBundle, data: Path, signals: dict[str, NDArray[Any]],
            calibration: Path | None, fpr: float, latency_cutoff: float, clock_ns: float) -> dict[str, Any]:
    """A model's efficiency at the working point on its firmware's scores, its cost and its latency."""
    from sklearn.metrics import roc_auc_score

    from firmware.rtl import pipelined
    from models.background import background_events
    from trigger.thresholds import threshold_for

    score = firmware.scores
    background, _ = background_events(artifact, calibration or data)
    sm = _chunked_scores(score, background)
    threshold = threshold_for(sm, fpr).threshold
    efficiencies, auc = {}, {}
    for name, events in signals.items():
        signal = score(events)
        efficiencies[name] = float(np.mean(signal > threshold))
        auc[name] = float(roc_auc_score(np.r_[np.zeros(len(sm)), np.ones(len(signal))], np.r_[sm, signal]))
    design = pipelined(firmware.emulator, latency_cutoff, clock_ns)
    return {"efficiencies": efficiencies, "auc": auc, "cost": float(design.comb.cost),
            "latency_ns": design.latency_cycles * clock_ns}


def _result(number: int, params: dict[str, int | float | str], measured: dict[str, Any],
            artifact: str = "") -> TrialResult:
    efficiencies = measured["efficiencies"]
    return TrialResult(number, params, float(np.mean(list(efficiencies.values()))), efficiencies, measured["cost"],
                       measured["latency_ns"], measured["auc"], artifact)


def point_name(point: dict[str, Any]) -> str:
    """A point of ``sweep.json`` as tables and plots name it: an included model by its name, a trial by number."""
    return str(point["params"]["model"]) if point.get("artifact") else f"trial {point['number']}"


def pareto_front(results: Sequence[TrialResult]) -> list[TrialResult]:
    """The trials no other trial beats on both efficiency (higher) and cost (lower), by cost."""
    from trigger.pareto import pareto_front as on_front

    flags = on_front([r.cost for r in results], [r.efficiency for r in results])
    return sorted((r for r, optimal in zip(results, flags, strict=True) if optimal), key=lambda r: r.cost)


def included_models(paths: Sequence[Path]) -> list[Artifact]:
    """The models to measure beside the trials: each must have firmware (a quantized object model)."""
    from models.artifact import load_artifact

    models = []
    for path in paths:
        artifact = load_artifact(path)
        if not artifact.config.model.quantized:
            msg = f"--include {path}: {artifact.name} is a float model; the front holds models with firmware"
            raise UsageError(msg)
        models.append(artifact)
    return models


def run_sweep(base: Config, data: Path, signal_paths: Sequence[Path], out: Path, trials: int, epochs: int,
              fpr: float, calibration: Path | None = None, seed: int = 1, latency_cutoff: float = 5.0,
              clock_ns: float = 5.0, check: int = 0, quantizers: Sequence[str] = (),
              progress: Callable[[str], None] = print, include: Sequence[Path] = ()) -> Sweep:
    """Run ``trials`` trials; write ``sweep.json`` (every trial, the Pareto front, the ``check``
    cheapest front points' yosys estimates) into ``out``. ``quantizers``: those the trials may
    use (default: the base configuration's); ``include``: trained models measured beside them
    (numbered after the trials)."""
    import optuna

    from firmware.bundle import bundle_for
    from models.evaluate import read_signals

    if base.model.kind not in ("ae", "vae") or not base.model.quantized:
        msg = f"the sweep searches quantized autoencoders; {base.model.name} is a {base.model.kind}"
        raise UsageError(msg)
    quantizers = tuple(dict.fromkeys(quantizers or (base.model.quantizer,)))
    for quantizer in quantizers:  # the configuration's own check (an unknown name too), before any trial trains
        replace(base.model, quantizer=quantizer)  # type: ignore[arg-type]
    if trials < 1 or epochs < 1:
        msg = "--trials and --epochs must be at least 1"
        raise UsageError(msg)
    included = included_models(include)  # refused before any trial trains
    signals = read_signals(signal_paths)
    results: list[TrialResult] = []

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        params = suggest(trial, quantizers)
        measured = evaluate_trial(_config(base, params, epochs), data, signals, calibration, fpr,
                                  out / f"trial-{trial.number}", latency_cutoff, clock_ns)
        result = _result(trial.number, params, measured)
        results.append(result)
        progress(f"trial {trial.number}: {describe(params)} -> mean efficiency {result.efficiency:.4f}, "
                 f"da4ml cost {result.cost:,.0f}, latency {result.latency_ns:.0f} ns")
        return result.efficiency, result.cost

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=("maximize", "minimize"),
                                sampler=optuna.samplers.NSGAIISampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    for number, artifact in enumerate(included, start=trials):
        measured = measure(artifact, bundle_for(artifact), data, signals, calibration, fpr, latency_cutoff, clock_ns)
        model = artifact.config.model
        result = _result(number, {"model": model.name, "kind": model.kind, "quantizer": model.quantizer}, measured,
                         str(artifact.path))
        results.append(result)
        progress(f"{model.name} (included): mean efficiency {result.efficiency:.4f}, "
                 f"da4ml cost {result.cost:,.0f}, latency {result.latency_ns:.0f} ns")
    front = pareto_front(results)
    checked = [_check(r, data, out, latency_cutoff, clock_ns, progress) for r in front[:check]]
    space: dict[str, Any] = {k: list(v) for k, v in SHAPE_SPACE.items()}
    space["quantizer"] = list(quantizers)
    space.update({k: list(v) for k, v in QKERAS_SPACE.items()} if "qkeras" in quantizers else {})
    space.update({k: [*v, "log"] for k, v in HGQ_SPACE.items()} if "hgq" in quantizers else {})
    summary = Sweep(base=base.model.name, space=space, epochs=epochs, working_point_fpr=fpr,
                    background=str(calibration or data), signals=list(signals),
                    objectives=["mean efficiency at the working point (emulator)", "da4ml cost (adder bits)"],
                    trials=[r.__dict__ for r in results], pareto=[r.number for r in front], checked=checked)
    out.mkdir(parents=True, exist_ok=True)
    summary.save(out / "sweep.json")
    return summary


def describe(params: dict[str, Any]) -> str:
    """A trial's parameters in one short line (HGQ's beta in scientific notation)."""
    return ", ".join(f"{k} {v:.1e}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())


def _check(result: TrialResult, data: Path, out: Path, latency_cutoff: float, clock_ns: float,
           progress: Callable[[str], None]) -> dict[str, Any]:
    """The full open-source estimate (RTL checked on 300 events, yosys) of one trial's (or included) model."""
    from firmware.estimate import estimate
    from models.artifact import load_artifact
    from trigger.events import open_events

    with open_events(data) as events:
        particles = events.read(0, min(300, events.n_events))
    progress(f"checking trial {result.number}'s cost with yosys (minutes)")
    folder = out / (Path(result.artifact).name if result.artifact else f"trial-{result.number}")
    found = estimate(load_artifact(result.artifact or folder), folder / "estimate", particles, clock_ns=clock_ns,
                     latency_cutoff=latency_cutoff, progress=lambda _: None)
    return {"trial": result.number, "cost": result.cost, "LUT": found.resources["LUT"],
            "lut_per_cost": found.resources["LUT"] / result.cost, "latency_ns": found.latency_ns,
            "rtl_mismatches": found.rtl_check["mismatches"]}
