"""The working points from a weighted set: the cocktail plus oversampled single-process samples.

The far tail of the SM scores is mostly ttbar, 0.3 % of the stream: a million cocktail events hold
about 3,000 of them, so the 1 kHz threshold is a ttbar measurement made with 3,000 events. This
benchmark sets each working point's threshold of the default model's firmware (its stored bundle)
twice, on the same cocktail events:

- unweighted, on the calibration cocktail alone (what ``trigger calibrate`` did before);
- weighted, on the cocktail plus samples of single processes (``--extra``: ttbar, Z), every event
  weighted to its process's share of the stream (``trigger calibrate --background COCKTAIL
  --background TTBAR ...``);

and reports for each the threshold's 68 % range, the achieved rate with its interval (effective
counts for the weighted set), the effective number of SM events above it and, per process, its
events above, their share of the weight above and their effective count, and
what each threshold accepts on an unweighted SM sample of another seed that nothing saw (observed
against expected, 68 % Clopper-Pearson), and on each signal.

    python benchmarks/weighted_rates.py --extra TTBAR.h5 [--extra Z.h5] [--calibration SM.h5] [--sample SM3.h5]
                                        [--model DIR] [--signal S.h5 ...] [--json out.json]
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
from another_seed import VALIDATION
from record import write_result
from tail import CALIBRATION, SIGNALS

FPRS = (2.5e-5, 1e-4, 1e-3)


def describe(cut: Any, codes: np.ndarray, scores: np.ndarray, weights: np.ndarray | None) -> dict[str, Any]:
    """A threshold's range, achieved rate and the (effective) SM events above it; per process its
    events above, their share of the weight above and their effective count."""
    from trigger.generator.processes import COCKTAIL_FRACTIONS, GENERATED
    from trigger.thresholds import effective_count

    above = scores > cut.threshold
    w = np.ones(len(scores)) if weights is None else weights
    processes = {}
    for name in COCKTAIL_FRACTIONS:
        mine = above & (codes == GENERATED[name].code)
        processes[name] = {"events": int(np.count_nonzero(mine)), "effective": effective_count(w[mine]),
                           "share": float(w[mine].sum() / w[above].sum()) if above.any() else 0.0}
    return {"threshold": cut.threshold, "threshold_low": cut.threshold_low, "threshold_high": cut.threshold_high,
            "fpr": cut.achieved.fpr, "fpr_low": cut.achieved.fpr_low, "fpr_high": cut.achieved.fpr_high,
            "rate_error": (cut.achieved.fpr_high - cut.achieved.fpr_low) / 2 / cut.achieved.fpr
            if cut.achieved.fpr > 0 else None,  # half the 68 % interval, relative
            "events_above": int(np.count_nonzero(above)), "effective_above": effective_count(w[above]),
            "processes_above": processes}


def process_codes(path: Path) -> np.ndarray:
    from trigger.events import open_events

    with open_events(path) as events:
        return events.read_process_codes()


def held(threshold: float, other: np.ndarray, fpr: float) -> dict[str, Any]:
    """What a threshold accepts on the unweighted sample of another seed."""
    from trigger.thresholds import rate_at

    rate = rate_at(other, threshold)
    return {"expected": fpr * len(other), "observed": rate.accepted, "observed_fpr": rate.fpr,
            "observed_fpr_low": rate.fpr_low, "observed_fpr_high": rate.fpr_high}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", type=Path, action="append", required=True, metavar="SM.h5",
                        help="a sample of one SM process (trigger generate --process ttbar); repeatable")
    parser.add_argument("--calibration", type=Path, default=CALIBRATION, help="the calibration cocktail")
    parser.add_argument("--sample", type=Path, default=VALIDATION, help="unweighted SM events of another seed")
    parser.add_argument("--model", type=Path, default=None, help="artifact (default: the bundled default)")
    parser.add_argument("--signal", type=Path, action="append", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from firmware.bundle import bundle_for
    from models.artifact import load_artifact
    from models.background import read_background
    from models.evaluate import read_signals, signal_name
    from trigger.sample import default_model
    from trigger.thresholds import clopper_pearson, threshold_for

    artifact = load_artifact(args.model or default_model())
    firmware = bundle_for(artifact)
    extras = " + ".join(signal_name(p) for p in args.extra)  # the file's process
    sets = {"unweighted: cocktail": [args.calibration], f"weighted: cocktail + {extras}": [args.calibration, *args.extra]}
    other = firmware.scores(read_background(artifact, args.sample).events)
    signals = {k: firmware.scores(v) for k, v in read_signals(args.signal or [s for s in SIGNALS if s.exists()]).items()}
    results: dict[str, Any] = {"model": artifact.config.model.name, "sample_events": len(other), "sets": {}}
    for label, paths in sets.items():
        sm = read_background(artifact, paths)
        codes = np.concatenate([process_codes(p) for p in paths])
        scores = firmware.scores(sm.events)
        entry = results["sets"][label] = {"events": len(scores), "note": sm.note, "points": []}
        for fpr in FPRS:
            cut = threshold_for(scores, fpr, weights=sm.weights)
            point = {"fpr_target": fpr, **describe(cut, codes, scores, sm.weights),
                     "other_seed": held(cut.threshold, other, fpr), "signals": {}}
            for name, s in signals.items():
                k = int(np.count_nonzero(s > cut.threshold))
                low, high = clopper_pearson(k, len(s))
                point["signals"][name] = {"eff": k / len(s), "low": low, "high": high}
            entry["points"].append(point)
            error = "n/a" if point["rate_error"] is None else f"{100 * point['rate_error']:.1f} %"
            print(f"  {label:<28} FPR {fpr:g}: threshold {cut.threshold:.4g} [{cut.threshold_low:.4g}, "
                  f"{cut.threshold_high:.4g}], rate error ±{error}, effective SM above {point['effective_above']:.1f} ("
                  + ", ".join(f"{k} {100 * v['share']:.0f} % of {v['events']}" for k, v in point["processes_above"].items())
                  + f"), other seed {point['other_seed']['observed']} "
                  f"for {point['other_seed']['expected']:.1f} expected; "
                  + "  ".join(f"{n} {100 * e['eff']:.2f} %" for n, e in point["signals"].items()))
    if args.json:
        write_result(args.json, results, headline(results))
    return 0


def headline(results: dict[str, Any]) -> dict[str, str]:
    """README's rows: the relative error of the 1 kHz threshold's rate on each set; at the weighted
    one, the default's efficiencies and what the sample of another seed accepts."""
    rows = {}
    for label, entry in results["sets"].items():
        point = next(p for p in entry["points"] if p["fpr_target"] == FPRS[0])
        kind = label.split(":")[0]
        if point["rate_error"] is not None:
            rows[f"default's 1 kHz threshold, rate error (68 %), {kind} set"] = (
                f"±{100 * point['rate_error']:.1f} % ({point['effective_above']:.0f} effective SM events above)")
        if kind != "weighted":
            continue
        held = point["other_seed"]
        rows[f"weighted 1 kHz threshold on {results['sample_events']:,} SM events of another seed"] = (
            f"{held['observed']} accepted, {held['expected']:.1f} expected")
        if point["signals"]:
            efficiencies = {name: 100 * e["eff"] for name, e in point["signals"].items()}
            first = next(iter(efficiencies))
            rows[f"default ({results['model']}) at its weighted 1 kHz threshold: {first} / mean of "
                 f"{len(efficiencies)} signals"] = (
                f"{efficiencies[first]:.2f} % / {sum(efficiencies.values()) / len(efficiencies):.2f} %")
    return rows


if __name__ == "__main__":
    sys.exit(main())
