"""What the object counts say at the working point, beside a model's firmware score.

The inputs standardize each filled slot over the SM events that fill it and write an empty slot as
0, so a third lepton near its mean pT, eta and phi looks like no third lepton at all: an
autoencoder's reconstruction error barely sees *how many* objects an event has. The counts are
nonetheless where the SM cocktail is rarest (three or more leptons in 2e-4 of its events). This
measures that directly, with nothing trained on a signal:

- ``multiplicity``: the surprise of the event's counts under the SM (``models.multiplicity``:
  ``S = -ln P(n_leptons) - ln P(n_jets)`` less its smallest value, both frequencies counted on
  the model's own training events, its manifest's split);
- the model's firmware score alone (the bit-exact emulator of its stored bundle), and the two
  together: ``S + score`` and ``S + ln score``;

each at the working point (FPR 2.5e-5 on the SM events, 68 % Clopper-Pearson intervals) with the
AUC, and the SM process of the events above each threshold where the file records it.

The model must not carry a prior of its own (the bundled default does; ``tiny-ae-qat`` and the
other references do not).

    python benchmarks/multiplicity.py [--model models/artifacts/tiny-ae-qat] [--json out.json]
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
from numpy.typing import NDArray
from record import write_result
from tail import CALIBRATION, FPR, SIGNALS, efficiency_cells, summarised_working_point

ROOT = Path(__file__).resolve().parents[1]
F64 = NDArray[np.float64]


def training_events(artifact: Any) -> NDArray[Any]:
    """The events the model trained on: its manifest's training split of its data file."""
    from trigger.events import open_events

    data = artifact.manifest["data"]
    start, stop = data["split"]["train"]
    path = ROOT / "data" / "sample" / data["file"]
    with open_events(path) as events:
        return events.read(start, stop)


def process_names(path: Path) -> NDArray[Any] | None:
    """Each event's SM process name from the generator's ``process_code`` dataset (None without it)."""
    import json

    import h5py

    with h5py.File(path, "r") as h5:
        if "process_code" not in h5 or "process_codes" not in h5.attrs:
            return None
        codes = h5["process_code"][:]
        names = json.loads(h5.attrs["process_codes"])
    lookup = np.full(int(codes.max()) + 1 if len(codes) else 1, "unknown", dtype=object)
    for name, code in names.items():
        lookup[code] = name
    return lookup[codes]


def processes_above(names: NDArray[Any] | None, scores: F64, threshold: float) -> dict[str, int]:
    """How many SM events of each process score above the threshold (empty without process names)."""
    if names is None:
        return {}
    kept, n = np.unique(names[scores > threshold], return_counts=True)
    return {str(k): int(v) for k, v in zip(kept, n, strict=True)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "artifacts" / "tiny-ae-qat")
    parser.add_argument("--background", type=Path, default=CALIBRATION, help="SM events (never trained on)")
    parser.add_argument("--signal", type=Path, action="append", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from firmware.bundle import bundle_for
    from models.artifact import load_artifact
    from models.evaluate import read_signals
    from models.multiplicity import MultiplicityPrior
    from trigger.events import open_events

    artifact = load_artifact(args.model)
    if artifact.prior is not None:
        print(f"{args.model}: its score already adds a multiplicity prior; give a model without one", file=sys.stderr)
        return 2
    prior = MultiplicityPrior.fit(artifact.inputs(training_events(artifact)), weight=1.0, step=1e-9)
    bundle = bundle_for(artifact)
    with open_events(args.background) as events:
        background = events.read(0, events.n_events)
    process = process_names(args.background)
    signals = read_signals(args.signal or SIGNALS)
    firmware = {"SM": bundle.scores(background)} | {k: bundle.scores(v) for k, v in signals.items()}
    surprise = {"SM": prior.values(artifact.inputs(background))} | {
        k: prior.values(artifact.inputs(v)) for k, v in signals.items()}
    tie = 1e-6  # orders events of equal counts by the model, below any difference of counts
    scores = {
        "firmware": firmware,
        "multiplicity": {k: surprise[k] + tie * firmware[k] for k in firmware},
        "multiplicity + score": {k: surprise[k] + firmware[k] for k in firmware},
        "multiplicity + ln score": {k: surprise[k] + np.log(np.maximum(firmware[k], 1e-9))
                                    for k in firmware},
    }
    start, stop = artifact.manifest["data"]["split"]["train"]
    results: dict[str, Any] = {"model": artifact.config.model.name, "training_events": stop - start,
                               "sm_events": len(background), "fpr": FPR,
                               "surprise_leptons": [round(v, 3) for v in prior.leptons],
                               "surprise_jets": [round(v, 3) for v in prior.jets], "scores": {}}
    print(f"{args.model.name}: efficiency at FPR {FPR:g} [68 % CP], AUC")
    for name, values in scores.items():
        wp = results["scores"][name] = summarised_working_point(values, FPR)
        wp["sm_above_by_process"] = processes_above(process, values["SM"], wp["threshold"])
        print(f"  {name:<24} mean {100 * wp['mean_eff']:5.2f} %  {efficiency_cells(wp, signals)}  "
              f"SM above: {wp['sm_above_by_process']}")
    if args.json:
        write_result(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
