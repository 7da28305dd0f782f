"""Where the far tail is lost: saturation layer by layer in the firmware, and efficiency at 1 kHz.

For each model: the float twin, the QKeras model (float arithmetic on quantized weights) and the
bit-exact firmware emulator score the SM sample and every signal. The threshold of each is the
working point's (FPR 2.5e-5 = 1 kHz of 40 MHz) on these SM events; efficiencies carry 68 %
Clopper-Pearson intervals. Then the firmware is followed layer by layer (``firmware.emulator``'s
kernels): the input grid, each dense layer's result type (ReLU's saturation at its top), the error
terms of the score (output - input, or mu) and the score type. For each group of events -- all SM,
the SM tail (the ``--tail`` highest-scoring SM events of the float twin and of the firmware) and
each signal -- it reports the fraction of events in which any value of that layer saturated, the
largest value reached and the type's limit. A VAE is also scored by its KL (float and QKeras).

    python benchmarks/tail.py --model DIR [--model DIR ...] [--background SM.h5] [--events N]
                              [--signal S.h5 ...] [--tail 250] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from record import write_result

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = [ROOT / "data" / "sample" / f"{name}.h5" for name in ("ato4l", "leptoquark", "htautau", "htaunu")]
CALIBRATION = ROOT / "data" / "calibration" / "sm_cocktail_calibration.h5"
FPR = 2.5e-5


def working_point(background: np.ndarray, signals: dict[str, np.ndarray], fpr: float) -> dict[str, Any]:
    """AUC and efficiency at the working point (threshold on ``background``) per signal."""
    from sklearn.metrics import roc_auc_score

    from models.evaluate import efficiency
    from trigger.thresholds import threshold_for

    cut = threshold_for(background, fpr)
    out: dict[str, Any] = {"threshold": cut.threshold, "sm_above": int(np.count_nonzero(background > cut.threshold))}
    for name, scores in signals.items():
        found = efficiency(scores, cut)
        labels = np.r_[np.zeros(len(background)), np.ones(len(scores))]
        out[name] = {"eff": found["tpr"], "low": float(found["tpr_low"]), "high": float(found["tpr_high"]),
                     "auc": float(roc_auc_score(labels, np.r_[background, scores]))}
    return out


def summarised_working_point(scores: dict[str, np.ndarray], fpr: float) -> dict[str, Any]:
    """:func:`working_point` of ``scores`` (``"SM"`` and one array per signal) with the signals'
    mean efficiency and mean AUC added."""
    signals = [k for k in scores if k != "SM"]
    wp = working_point(scores["SM"], {k: scores[k] for k in signals}, fpr)
    wp["mean_eff"] = float(np.mean([wp[s]["eff"] for s in signals]))
    wp["mean_auc"] = float(np.mean([wp[s]["auc"] for s in signals]))
    return wp


def efficiency_cells(wp: dict[str, Any], signals: Any) -> str:
    """One line of a working point: per signal, efficiency [68 % interval] in percent and AUC."""
    return "  ".join(f"{s} {100 * wp[s]['eff']:6.2f} [{100 * wp[s]['low']:.2f},{100 * wp[s]['high']:.2f}] "
                     f"{wp[s]['auc']:.3f}" for s in signals)


def network_scores(artifact: Any, variant: str, particles: np.ndarray, score: str) -> np.ndarray:
    """The variant's network scores with ``score`` (the model's own, or a VAE's other one)."""
    from models.scores import anomaly_score

    if score == artifact.config.model.score:
        return artifact.score(particles, variant)
    x = artifact.inputs(particles)
    outputs = artifact.networks[variant].scorer.predict(x, batch_size=8192, verbose=0)
    return anomaly_score(score, x, outputs, None)


def layer_saturation(bundle: Any, particles: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per firmware stage (``firmware.saturation``): saturating events and each event's largest |value|."""
    from firmware.saturation import layer_saturation as stages

    return {f"{stage.name} {stage.type}": {"saturated": stage.saturated, "max": stage.largest,
                                           "limit": stage.limit} for stage in stages(bundle, particles)}


def weight_clipping(artifact: Any) -> dict[str, Any]:
    """Per dense layer: the float twin's weights outside the quantized range, and the QKeras weights'
    relative RMS difference from the float twin's (how far quantization moved the function)."""
    cfg = artifact.config.model
    step = 2.0 ** (cfg.weight_integer + 1 - cfg.weight_bits)
    low, high = -(2.0 ** cfg.weight_integer), 2.0 ** cfg.weight_integer - step
    out = {}
    floats = {layer.name: layer for layer in artifact.networks["float"].trainable.layers if layer.get_weights()}
    for layer in artifact.networks["quantized"].trainable.layers:
        if layer.name not in floats or not layer.get_weights():
            continue
        w_float = floats[layer.name].get_weights()[0]
        qw = np.asarray(layer.kernel_quantizer_internal(layer.kernel)) if hasattr(layer, "kernel_quantizer_internal") \
            else layer.get_weights()[0]
        out[layer.name] = {
            "float_outside_range": float(np.mean((w_float < low) | (w_float > high))),
            "float_abs_max": float(np.abs(w_float).max()),
            "quantized_zero": float(np.mean(qw == 0)),
            "rms_float": float(np.sqrt(np.mean(w_float**2))),
        }
    return out


def groups(scores: dict[str, np.ndarray], n_tail: int) -> dict[str, np.ndarray]:
    """Indices into the SM sample of its tail by the float twin's and by the firmware's score."""
    return {f"SM tail (top {n_tail}, {variant})": np.argsort(scores[variant])[-n_tail:]
            for variant in ("float", "firmware") if variant in scores}


def diagnose(path: Path, background: np.ndarray, signals: dict[str, np.ndarray], n_tail: int,
             firmware: bool) -> dict[str, Any]:
    from firmware.bundle import build_bundle, stored_bundle
    from models.artifact import load_artifact

    artifact = load_artifact(path)
    cfg = artifact.config.model
    result: dict[str, Any] = {"model": str(path), "name": cfg.name, "shape": cfg.parameters_hint}
    scores_names = ["mu2", "kl"] if cfg.kind == "vae" else [cfg.score]
    sm_scores: dict[str, np.ndarray] = {}
    for score in scores_names:
        for variant in artifact.variants:
            label = variant if score == cfg.score else f"{variant} ({score})"
            sm_scores[label] = network_scores(artifact, variant, background, score)
            sig = {name: network_scores(artifact, variant, events, score) for name, events in signals.items()}
            result.setdefault("efficiency", {})[label] = working_point(sm_scores[label], sig, FPR)
    bundle = None
    if firmware and cfg.quantized:
        bundle = stored_bundle(artifact) or build_bundle(artifact)
        sm_scores["firmware"] = bundle.scores(background)
        sig = {name: bundle.scores(events) for name, events in signals.items()}
        result["efficiency"]["firmware"] = working_point(sm_scores["firmware"], sig, FPR)
    if "quantized" in artifact.variants:
        result["weights"] = weight_clipping(artifact)
    if bundle is not None:
        saturation: dict[str, Any] = {}
        event_sets = {"SM (all)": background[: min(len(background), 200_000)]}
        event_sets |= {name: background[idx] for name, idx in groups(sm_scores, n_tail).items()}
        event_sets |= signals
        if "float" in result["efficiency"]:  # signal the float twin keeps at 1 kHz
            for name, events in signals.items():
                keep = artifact.score(events, "float") > result["efficiency"]["float"]["threshold"]
                event_sets[f"{name} kept by float"] = events[keep]
        for group, events in event_sets.items():
            if not len(events):
                continue
            for layer, values in layer_saturation(bundle, events).items():
                row = saturation.setdefault(layer, {"limit": float(values["limit"])})
                row[group] = {"saturated": float(np.mean(values["saturated"])),
                              "max": float(np.max(values["max"])), "events": len(events)}
        result["saturation"] = saturation
    return result


def print_result(result: dict[str, Any]) -> None:
    print(f"\n== {result['name']} ({result['shape']}): {result['model']}")
    signals = [k for k in next(iter(result["efficiency"].values())) if isinstance(
        next(iter(result["efficiency"].values()))[k], dict)]
    print(f"{'variant':<22}" + "".join(f"{s:>26}" for s in signals) + "   (eff at 1 kHz [68 % CP], AUC)")
    for variant, wp in result["efficiency"].items():
        cells = [f"{100 * wp[s]['eff']:6.2f} [{100 * wp[s]['low']:.2f},{100 * wp[s]['high']:.2f}] "
                 f"{wp[s]['auc']:.3f}" for s in signals]
        print(f"{variant:<22}" + "".join(f"{c:>26}" for c in cells))
    for layer, row in result.get("weights", {}).items():
        print(f"  weights {layer:<12} float outside range {100 * row['float_outside_range']:5.1f} %  "
              f"|w|max {row['float_abs_max']:.2f}  quantized zero {100 * row['quantized_zero']:5.1f} %")
    for layer, row in result.get("saturation", {}).items():
        print(f"  {layer}  (limit {row['limit']:g})")
        for group, cell in row.items():
            if isinstance(cell, dict):
                print(f"      {group:<34} saturated in {100 * cell['saturated']:6.2f} % of {cell['events']:>7} "
                      f"events, max |value| {cell['max']:.3g}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--background", type=Path, default=CALIBRATION, help="SM events (never trained on)")
    parser.add_argument("--events", type=int, default=0, help="SM events to read (0: all)")
    parser.add_argument("--signal", type=Path, action="append", default=None)
    parser.add_argument("--tail", type=int, default=250, help="highest-scoring SM events that form the tail")
    parser.add_argument("--no-firmware", action="store_true", help="float and QKeras only (quick)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from models.evaluate import read_signals
    from trigger.events import open_events

    with open_events(args.background) as events:
        background = events.read(0, args.events or events.n_events)
    signals = read_signals(args.signal or SIGNALS)
    results = []
    for path in args.model:
        result = diagnose(path, background, signals, args.tail, not args.no_firmware)
        print_result(result)
        results.append(result)
    if args.json:
        write_result(args.json, {"background": str(args.background), "sm_events": len(background),
                                 "fpr": FPR, "models": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
