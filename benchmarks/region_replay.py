"""A region model through the replay beside an object model on the same events: exact, and how fast.

Replays each ``--input`` file (events with ``CaloRegions``) with the region model (``--model``, a
``trigger train-regions`` directory, calibrated) and with the object model (``--object-model``,
default the bundled default) on the same events: the whole pipeline on this machine, simulated
40 MHz clock, emulated decision only (no reference path), ``--workers`` workers, ``--repeat`` runs
of each, interleaved, each model at ``--accept-rate`` (calibrated on ``--calibration``'s held-out
events: a high rate, so that many events are accepted). For the first run of each it checks that
the accepted events are exactly those the run's firmware accepts (its bundle's
``FirmwareBundle.accept`` on the file: for the region model its native kernel, for the object
model its compiled emulator) and for every run that every event is accounted for,
and it reports the median events/s of each and their ratio: what reading, sending and scoring 252
region counts per event costs against the 19 objects. Loops over each file's events until
``--events`` are replayed (the exactness check is on the first pass of the first file).

    python benchmarks/region_replay.py --model DIR --input SM_REGIONS.h5 [--input ...] [--object-model DIR]
                                       [--events 2000000] [--workers 2] [--repeat 3] [--accept-rate 400kHz]
                                       [--calibration SM_REGIONS.h5] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py
import numpy as np
from record import write_result


def replay_once(model: Path, path: Path, events: int, workers: int, out: Path, point: Any) -> dict[str, Any]:
    """One simulated-clock replay of ``events`` events of ``path`` (cycled past its end) deciding at
    the working point ``point``: its summary's figures."""
    from replay.config import ReplayConfig
    from replay.pipeline import ReplayRun, run_replay

    run = ReplayRun((path,), model, out, ReplayConfig(), workers=workers, reference_backend="none", events=events,
                    working_point=point)
    summary = run_replay(run, progress=None)
    return {"events_in": summary.events_in, "events_per_second": summary.events_per_second,
            "accounting_ok": summary.accounting_ok, "quarantined": summary.events_quarantined,
            "accepted": summary.events_accepted}


def exact(path: Path, out: Path) -> dict[str, Any]:
    """The run's accepted events of ``path``'s first pass against the accept bits of the firmware
    the run decided with (its bundle, at the run's working point) scoring the file here."""
    from firmware.bundle import FirmwareBundle
    from trigger.events import open_events

    firmware = FirmwareBundle.load(out / "model")
    with open_events(path) as events:
        n = events.n_events
        expected = np.flatnonzero(firmware.accept(events.read_input(firmware.reads)))
    with h5py.File(out / "accepted.h5") as accepted:
        bx = np.sort(accepted["bx"][:])
    first_pass = bx[bx < n]
    return {"events": n, "accepted": len(expected), "differ": len(np.setxor1d(first_pass, expected))}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a calibrated region model")
    parser.add_argument("--object-model", type=Path, default=None, help="default: the bundled default")
    parser.add_argument("--input", type=Path, action="append", required=True, help="events with CaloRegions")
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--accept-rate", default="400kHz",
                        help="each model decides at this rate of 40 MHz, calibrated on --calibration (default 400kHz: "
                             "FPR 1e-2, so that the exactness check sees many accepted events)")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="SM events with CaloRegions to calibrate on (default: the first --input)")
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def main() -> int:
    args = arguments()
    from replay.config import WorkingPoint
    from trigger.sample import default_model

    models = {"regions": args.model, "objects": args.object_model or default_model()}
    point = WorkingPoint(accept_rate=args.accept_rate, calibration=args.calibration or args.input[0])
    results: dict[str, Any] = {"models": {k: str(v) for k, v in models.items()}, "workers": args.workers,
                               "events": args.events, "accept_rate": args.accept_rate,
                               "calibration": str(point.calibration), "inputs": {}}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.input:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
            checks = {}
            for i in range(args.repeat):
                for name, model in models.items():  # interleaved: the machine's noise falls on both
                    out = Path(tmp) / f"{path.stem}-{name}-{i}"
                    runs[name].append(replay_once(model, path, args.events, args.workers, out, point))
                    if i == 0:
                        checks[name] = exact(path, out)
            rates = {name: median(r["events_per_second"] for r in runs[name]) for name in models}
            entry = results["inputs"][path.name] = {"runs": runs, "exact": checks, "median_events_per_second": rates,
                                                    "regions_over_objects": rates["regions"] / rates["objects"]}
            ok = ok and all(c["differ"] == 0 for c in checks.values())
            ok = ok and all(r["accounting_ok"] and r["quarantined"] == 0 for rs in runs.values() for r in rs)
            print(f"{path.name}: regions {rates['regions'] / 1e6:.2f} M ev/s, objects {rates['objects'] / 1e6:.2f} M "
                  f"ev/s (regions / objects {entry['regions_over_objects']:.2f}); accepted events differing from the "
                  f"firmware's: " + ", ".join(f"{k} {c['differ']} of {c['accepted']}" for k, c in checks.items()))
    if args.json:
        first = next(iter(results["inputs"].values()))
        checked = first["exact"]["regions"]
        write_result(args.json, results, headline={
            "region model replayed: accepted events differing from its firmware's":
                f"{checked['differ']} ({checked['accepted']} accepted of {checked['events']:,} events)",
            "replay events/s, region model / object model": f"{first['regions_over_objects']:.2f}"})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
