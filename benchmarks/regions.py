"""The calorimeter view beside the object view: CICADA's teacher and student on region images, the
object default's firmware, and the OR of the two triggers at a shared rate, per signal.

Trains CICADA's float conv-autoencoder teacher and its QKeras student (``models.region_distill``)
on the first 60 % of a generated SM file's ``CaloRegions`` (the next 20 % validate). The SM events
neither saw -- that file's last 20 % and every ``--heldout`` file (e.g. the calibration sample's
first events with regions, another seed) -- and each signal file are then scored by:

- the teacher (its MSE) and the student in QKeras;
- the student's firmware: its score and decision as hls4ml layers, scored by
  ``firmware.region_scoring.RegionFirmware`` (the native kernel, checked against the emulator);
- the object trigger's firmware (``--object-model``, default the bundled default; its stored
  firmware bundle) on the same events' ``Particles`` -- the default never trained on these events
  (it trained on the bundled sample's first 60 %, which are the same events as here);
- the OR of the two firmwares, each at an equal share of the rate, the OR at the working point
  (``trigger.thresholds.shared_rate``): per signal the OR's efficiency, what both take and what
  the region trigger alone adds.

Efficiencies carry 68 % Clopper-Pearson intervals, at FPR 1e-3 and 1e-4 of the held-out SM events
(the 1 kHz working point, 2.5e-5, needs the million-event calibration sample with regions). The
student firmware's C-simulation is compared with the emulator and the native kernel on the first
``--csim-events`` held-out SM events and 1,000 events of each signal, score and decision; with
``--estimate DIR`` its da4ml RTL is simulated on the same events (Verilator) and synthesized
(Yosys): the open-source estimate of its latency and resources.

    python benchmarks/regions.py --data SM.h5 --signal S.h5 [--signal ...] [--heldout SM2.h5]
                                 [--object-model DIR] [--teacher-epochs 20] [--student-epochs 60]
                                 [--csim-events 10000] [--estimate DIR] [--json out.json]
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


def read_events(path: Path, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A file's (CaloRegions, Particles) of events [start, stop)."""
    from trigger.events import open_events

    with open_events(path) as events:
        return events.read_regions(start, stop), events.read(start, stop)


def region_samples(data: Path, heldout: list[Path], signals: list[Path]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The SM file's first 60 % (training) and next 20 % (validation) region counts, and by name the
    (regions, particles) of the held-out SM events (its last 20 % and every ``heldout`` file) and of
    each signal."""
    from models.evaluate import signal_name

    regions, particles = read_events(data)
    n = len(regions)
    train, validation = regions[: int(0.6 * n)], regions[int(0.6 * n): int(0.8 * n)]
    sm = [(regions[int(0.8 * n):], particles[int(0.8 * n):])] + [read_events(p) for p in heldout]
    samples = {"SM": (np.concatenate([r for r, _ in sm]), np.concatenate([p for _, p in sm]))}
    return train, validation, samples | {signal_name(p): read_events(p) for p in signals}


def student_firmware(student: Any, threshold_scores: np.ndarray, fpr: float, hls_dir: Path) -> tuple[Any, Any]:
    """The student with the firmware's score and decision (threshold at ``fpr`` of the QKeras
    scores ``threshold_scores``), converted with C-simulation: (hls model, RegionFirmware)."""
    from firmware.convert import convert_network
    from firmware.emulator import Emulator
    from firmware.head import HeadTypes, with_decision
    from firmware.region_scoring import RegionFirmware
    from models.region_artifact import RegionSpec
    from models.regions import REGION_GRID
    from trigger.fixed import FixedType

    types = HeadTypes.declare(RegionSpec().output_type, "", 1)  # the bundled region model's output type
    threshold = int(np.quantile(threshold_scores**2, 1 - fpr) * 2**types.score.fractional)
    model, precisions = with_decision(student, False, types, threshold)
    hls_model = convert_network(model, FixedType.parse(REGION_GRID), hls_dir, "region_student", precisions,
                                compile=True)
    return hls_model, RegionFirmware(Emulator.from_hls_model(hls_model))


def firmware_agreement(hls_model: Any, firmware: Any, counts: np.ndarray) -> dict[str, Any]:
    """The C-simulation against the emulator and the native kernel: events whose score or decision differ."""
    from firmware.check import csim_outputs

    x = counts.astype(np.float64)[..., None]
    csim, emulated = csim_outputs(hls_model, x), firmware.emulator.predict(x)
    native = firmware.scores(counts)
    native_differ = (native != firmware.emulator.scores(csim)) | ((native > firmware.threshold) != (csim[:, 1] == 1))
    return {"events": len(counts), "accepted": int(csim[:, 1].sum()),
            "emulator_differs": int(np.count_nonzero(np.any(csim != emulated, axis=1))),
            "native_kernel_differs": int(np.count_nonzero(native_differ)),
            "native_kernel": firmware.native is not None}


def or_of_triggers(region: dict[str, np.ndarray], objects: dict[str, np.ndarray], fpr: float) -> dict[str, Any]:
    """Both firmwares at an equal share of ``fpr`` of the SM events, their OR at ``fpr``
    (``models.combined``): per signal what each, either and both take, and what each takes alone."""
    from models.combined import or_of_triggers as combined

    signals = {name: (scores, objects[name]) for name, scores in region.items() if name != "SM"}
    return combined((region["SM"], objects["SM"]), signals, fpr, names=("region", "objects"))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="SM events with CaloRegions (trained on)")
    parser.add_argument("--signal", type=Path, action="append", default=[], help="signal events with CaloRegions")
    parser.add_argument("--heldout", type=Path, action="append", default=[],
                        help="more SM events with CaloRegions that nothing trained on (all of each file)")
    parser.add_argument("--object-model", type=Path, default=None, help="object trigger (default: the bundled default)")
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--student-epochs", type=int, default=60)
    parser.add_argument("--csim-events", type=int, default=10_000)
    parser.add_argument("--estimate", type=Path, default=None,
                        help="also write the student's RTL here, simulate it on the C-sim's events, synthesize it")
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args()


def main() -> int:
    args = arguments()
    from firmware.bundle import bundle_for
    from models.artifact import load_artifact
    from models.region_distill import RegionTraining, region_images, teacher_mse, train_region_models
    from trigger.sample import default_model

    object_model = args.object_model or default_model()
    objects_firmware = bundle_for(load_artifact(object_model))
    train, validation, samples = region_samples(args.data, args.heldout, args.signal)
    settings = RegionTraining(teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs)
    models = train_region_models(train, validation, settings, log=sys.stdout)
    images = {k: region_images(r) for k, (r, _) in samples.items()}
    qkeras = {k: models.student.predict(v, batch_size=4096, verbose=0)[:, 0].astype(np.float64)
              for k, v in images.items()}
    with tempfile.TemporaryDirectory() as tmp:
        hls_model, region_firmware = student_firmware(models.student, qkeras["SM"], FPRS[0], Path(tmp) / "hls")
        csim_counts = np.concatenate([samples["SM"][0][: args.csim_events]]
                                     + [r[:1000] for k, (r, _) in samples.items() if k != "SM"])
        agreement = firmware_agreement(hls_model, region_firmware, csim_counts)
    if args.estimate:
        from firmware.estimate import estimate_emulator

        estimate = estimate_emulator(region_firmware.emulator, "region_student", args.estimate, csim_counts).as_dict()
        agreement["rtl"] = estimate["rtl_check"]
        agreement["estimate"] = {k: estimate[k] for k in ("label", "latency_ns", "resources", "fractions", "targets")}
    scores = {
        "teacher (float): MSE": {k: teacher_mse(models.teacher, v) for k, v in images.items()},
        "student (QKeras): output": qkeras,
        "student (firmware): output squared": {k: region_firmware.scores(r) for k, (r, _) in samples.items()},
        f"objects: {object_model.name} (firmware)": {k: objects_firmware.scores(p) for k, (_, p) in samples.items()},
    }
    results: dict[str, Any] = {"sm_train": len(train), "sm_validation": len(validation), "sm_heldout": len(images["SM"]),
                               "heldout_files": [str(p) for p in args.heldout], "object_model": str(object_model),
                               "teacher_parameters": int(models.teacher.count_params()),
                               "student_parameters": int(models.student.count_params()), "scores": {}, "or": {}}
    signals = [k for k in samples if k != "SM"]
    for name, values in scores.items():
        results["scores"][name] = {}
        for fpr in FPRS:
            wp = results["scores"][name][f"{fpr:g}"] = summarised_working_point(values, fpr)
            print(f"  {name:<34} FPR {fpr:g}: mean {100 * wp['mean_eff']:5.2f} % AUC {wp['mean_auc']:.4f}  "
                  f"{efficiency_cells(wp, signals)}")
    region, objects = list(scores.values())[2:]
    for fpr in FPRS:
        both = results["or"][f"{fpr:g}"] = or_of_triggers(region, objects, fpr)
        print(f"  OR at FPR {fpr:g} ({both['sm_either']} SM events, {both['sm_each']} each): " + "  ".join(
            f"{s} {100 * both['signals'][s]['either']['eff']:.2f} % "
            f"(regions alone add {100 * both['signals'][s]['region_only']['eff']:.2f})"
            for s in signals))
    results["firmware"] = agreement
    print(f"  student firmware, C-sim against the emulator and the native kernel: {agreement}")
    if args.json:
        write_result(args.json, results)
    exact = agreement["emulator_differs"] == agreement["native_kernel_differs"] == 0
    exact = exact and agreement.get("rtl", {}).get("mismatches", 0) == 0
    return 0 if exact and agreement["native_kernel"] else 1


if __name__ == "__main__":
    sys.exit(main())
