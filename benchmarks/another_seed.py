"""Do the working points hold on SM events of another generator seed?

Each model's firmware (the bit-exact emulator of its stored bundle) scores the calibration sample
(the thresholds' events) and an SM sample generated with another seed, which no model and no
selection saw. For each false-positive rate, the threshold set on the calibration sample accepts
some of the other sample's events: observed against expected (rate x events, with the observed
count's 68 % Clopper-Pearson interval as a rate), and the SM processes above it. The signals'
efficiencies at the calibration threshold need nothing else: they hold when the rate does.

    python benchmarks/another_seed.py [--sample SM.h5] [--model DIR ...] [--json out.json]

The default sample is the bundled ``data/validation/sm_cocktail_seed3.h5``: 100,000 SM events of
seed 3 (``make validation-sample`` rebuilds it and checks it against its record).
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
from multiplicity import process_names, processes_above
from record import write_result
from tail import CALIBRATION

ROOT = Path(__file__).resolve().parents[1]
MODELS = [ROOT / "models" / "artifacts" / name for name in ("tiny-ae", "tiny-ae-qat", "student")]
FPRS = (2.5e-5, 1e-4, 1e-3)
VALIDATION = ROOT / "data" / "validation" / "sm_cocktail_seed3.h5"


def held_rates(calibration: np.ndarray, other: np.ndarray, names: np.ndarray | None) -> list[dict[str, Any]]:
    """Per false-positive rate: the calibration threshold's count on the other sample."""
    from trigger.thresholds import rate_at, threshold_for

    rows = []
    for fpr in FPRS:
        threshold = threshold_for(calibration, fpr).threshold
        held = rate_at(other, threshold)
        rows.append({"fpr": fpr, "threshold": threshold, "expected": fpr * len(other), "observed": held.accepted,
                     "observed_fpr": held.fpr, "observed_fpr_low": held.fpr_low, "observed_fpr_high": held.fpr_high,
                     "processes": processes_above(names, other, threshold)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=Path, default=VALIDATION, help="SM events of another generator seed")
    parser.add_argument("--calibration", type=Path, default=CALIBRATION, help="the events the thresholds are set on")
    parser.add_argument("--model", type=Path, action="append", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from firmware.bundle import bundle_for
    from models.artifact import load_artifact
    from trigger.events import open_events

    with open_events(args.calibration) as events:
        calibration = events.read(0, events.n_events)
    with open_events(args.sample) as events:
        other = events.read(0, events.n_events)
        seed = events.attrs.get("seed")
    names = process_names(args.sample)
    results: dict[str, Any] = {"sample": args.sample.name, "sample_seed": seed, "sample_events": len(other),
                               "calibration": args.calibration.name, "calibration_events": len(calibration),
                               "models": {}}
    for path in args.model or MODELS:
        bundle = bundle_for(load_artifact(path))
        rows = held_rates(bundle.scores(calibration), bundle.scores(other), names)
        results["models"][path.name] = rows
        for row in rows:
            print(f"{path.name:<12} FPR {row['fpr']:<8g} expected {row['expected']:8.1f}  observed {row['observed']:5d} "
                  f"(FPR {row['observed_fpr']:.2e} [{row['observed_fpr_low']:.2e}, {row['observed_fpr_high']:.2e}])  "
                  f"{row['processes']}")
    if args.json:
        write_result(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
