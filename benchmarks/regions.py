"""The calorimeter view's teacher and student, trained on SM region images and measured per signal.

Trains CICADA's float conv-autoencoder teacher and its QKeras student (``models.region_distill``)
on the first 60 % of a generated SM file's ``CaloRegions`` (the next 20 % validate), then scores
its last 20 % -- SM events neither saw -- and each signal file with both: AUC and efficiency at
FPR 1e-3 and 1e-4 of those held-out SM events (68 % Clopper-Pearson intervals). The 1 kHz
working point (2.5e-5) needs the million-event calibration sample with regions; with 20,000
held-out events it is not resolved and is not reported. The student then goes through the
firmware path (its score and decision as hls4ml layers, C-simulation, the bit-exact emulator)
and both score the held-out events: every score and decision is compared.

    python benchmarks/regions.py --data SM.h5 --signal S.h5 [--signal ...] [--teacher-epochs 20]
                                 [--student-epochs 60] [--csim-events 4000] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from record import write_result
from tail import efficiency_cells, summarised_working_point

FPRS = (1e-3, 1e-4)


def read_regions(path: Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    from trigger.events import open_events

    with open_events(path) as events:
        return events.read_regions(start, stop)


def firmware_agreement(student: Any, images: np.ndarray, threshold_quantile: float = 0.99) -> dict[str, Any]:
    """The student with the firmware's score and decision, C-sim against the emulator on ``images``."""
    from firmware.check import csim_outputs
    from firmware.convert import convert_network
    from firmware.emulator import Emulator
    from firmware.head import HeadTypes, with_decision
    from models.regions import REGION_GRID
    from trigger.fixed import FixedType

    raw = student.predict(images, verbose=0)[:, 0]
    types = HeadTypes.declare("ap_fixed<12,9,AP_RND,AP_SAT_SYM>", "", 1)  # the output: -256 .. 256 by 1/8
    threshold = int(np.quantile(raw**2, threshold_quantile) * 2**types.score.fractional)
    model, precisions = with_decision(student, False, types, threshold)
    with tempfile.TemporaryDirectory() as tmp:
        hls_model = convert_network(model, FixedType.parse(REGION_GRID), Path(tmp) / "hls", "region_student",
                                    precisions, compile=True)
        x = images.astype(np.float64)
        csim, emulated = csim_outputs(hls_model, x), Emulator.from_hls_model(hls_model).predict(x)
    return {"events": len(images), "scores_differ": int(np.count_nonzero(csim[:, 0] != emulated[:, 0])),
            "decisions_differ": int(np.count_nonzero(csim[:, 1] != emulated[:, 1])),
            "accepted": int(csim[:, 1].sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="SM events with CaloRegions")
    parser.add_argument("--signal", type=Path, action="append", default=[], help="signal events with CaloRegions")
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--student-epochs", type=int, default=60)
    parser.add_argument("--csim-events", type=int, default=4000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from models.evaluate import signal_name
    from models.region_distill import RegionTraining, region_images, teacher_mse, train_region_models

    sm = read_regions(args.data)
    n = len(sm)
    train, validation, test = sm[: int(0.6 * n)], sm[int(0.6 * n): int(0.8 * n)], sm[int(0.8 * n):]
    settings = RegionTraining(teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs)
    models = train_region_models(train, validation, settings, log=sys.stdout)
    samples = {"SM": test} | {signal_name(p): read_regions(p) for p in args.signal}
    images = {k: region_images(v) for k, v in samples.items()}
    scores = {
        "teacher (float): MSE": {k: teacher_mse(models.teacher, v) for k, v in images.items()},
        "student (QKeras): output": {k: models.student.predict(v, batch_size=4096, verbose=0)[:, 0].astype(np.float64)
                                     for k, v in images.items()},
    }
    results: dict[str, Any] = {"sm_train": len(train), "sm_validation": len(validation), "sm_test": len(test),
                               "teacher_parameters": int(models.teacher.count_params()),
                               "student_parameters": int(models.student.count_params()), "scores": {}}
    signals = [k for k in samples if k != "SM"]
    for name, values in scores.items():
        results["scores"][name] = {}
        for fpr in FPRS:
            wp = results["scores"][name][f"{fpr:g}"] = summarised_working_point(values, fpr)
            print(f"  {name:<26} FPR {fpr:g}: mean {100 * wp['mean_eff']:5.2f} % AUC {wp['mean_auc']:.4f}  "
                  f"{efficiency_cells(wp, signals)}")
    results["firmware"] = firmware_agreement(models.student, images["SM"][: args.csim_events])
    print(f"  student firmware: C-sim vs emulator on {results['firmware']}")
    if args.json:
        write_result(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
