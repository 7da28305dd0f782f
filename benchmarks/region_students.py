"""The calorimeter student's precision against the chip budget: one teacher, students of several widths.

In CICADA's student shape (``models.regions.cicada_student``) the bit widths of the weights and
ReLUs, and the dense layer's width, set the logic. This trains CICADA's teacher once on the region
sample's first 60 % (as ``benchmarks/regions.py``), then one student per ``--precision
WEIGHT_BITS,RELU_BITS,RELU_INTEGER[,HIDDEN[,CONV_WEIGHT_BITS[,SPARSITY]]]`` (HIDDEN: the dense layer's
width, CICADA's 16 by default; CONV_WEIGHT_BITS: the convolution's weights, WEIGHT_BITS by default;
SPARSITY: per cent of the dense layer's weights pruned while training, ``models.pruning``) on its targets, and for each: the firmware's efficiency per signal at FPR 1e-3 and 1e-4 of the
held-out SM events (``RegionFirmware``, the native kernel), its OR with the object default at the
same rate (``trigger.thresholds.shared_rate``), and its logic by da4ml's cost (adder bits, which
track the open-source estimate's LUTs) and latency at 200 MHz -- the budget is 23,640 LUTs and 50 ns.

    python benchmarks/region_students.py --data SM.h5 --signal S.h5 [--signal ...] [--heldout SM2.h5]
                                         [--precision 8,10,6 --precision 6,8,4,8 ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from record import write_result
from regions import FPRS, or_of_triggers, region_samples, student_firmware
from tail import efficiency_cells, summarised_working_point

PRECISIONS = ("8,10,6", "6,8,4", "4,8,4", "4,6,3")
CLOCK_NS, LATENCY_CUTOFF = 5.0, 5.0  # firmware.convert's default clock; firmware.estimate's default cutoff


def logic(emulator: Any) -> dict[str, float]:
    """da4ml's cost of the firmware (network, score, decision) and its pipelined latency, at the adder depth the
    estimate picks (``firmware.rtl.pipelined``)."""
    from firmware.rtl import pipelined

    design = pipelined(emulator, LATENCY_CUTOFF, CLOCK_NS)
    return {"da4ml_cost": float(design.comb.cost), "latency_ns": design.latency_cycles * CLOCK_NS,
            "adder_depth_slack": design.depth_slack}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="SM events with CaloRegions (trained on)")
    parser.add_argument("--signal", type=Path, action="append", default=[], help="signal events with CaloRegions")
    parser.add_argument("--heldout", type=Path, action="append", default=[], help="more SM events nothing trained on")
    parser.add_argument("--precision", action="append", default=None, metavar="W,A,I[,H[,C[,S]]]",
                        help="weight bits, ReLU bits, ReLU integer bits of a student, and optionally the dense layer's "
                             "width (default 16), the convolution's weight bits (default: the weight bits) and the per cent of "
                             "the dense layer's weights pruned (default 0); "
                             f"default students: {' '.join(PRECISIONS)}")
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--student-epochs", type=int, default=60)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from firmware.bundle import bundle_for
    from models.artifact import load_artifact
    from models.pruning import kernel_sparsity
    from models.region_distill import RegionTraining, region_images, train_student, train_teacher
    from models.regions import cicada_student
    from trigger.sample import default_model

    objects_firmware = bundle_for(load_artifact(default_model()))
    train, validation, samples = region_samples(args.data, args.heldout, args.signal)
    signals = [k for k in samples if k != "SM"]
    objects = {k: objects_firmware.scores(p) for k, (_, p) in samples.items()}
    settings = RegionTraining(teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs)
    teacher = train_teacher(train, validation, settings, log=sys.stdout)
    results: dict[str, Any] = {"sm_train": len(train), "sm_heldout": len(samples["SM"][0]), "students": {}}
    for text in args.precision or PRECISIONS:
        values = [int(v) for v in text.split(",")]
        weight_bits, relu_bits, relu_integer = values[:3]
        hidden = values[3] if len(values) > 3 else 16
        conv_bits = values[4] if len(values) > 4 else weight_bits
        sparsity = values[5] / 100 if len(values) > 5 else 0.0
        shape = cicada_student(hidden=hidden, weight_bits=weight_bits, activation=(relu_bits, relu_integer),
                               conv_weight_bits=conv_bits)
        student = train_student(teacher, train, validation, replace(settings, sparsity=sparsity), shape, log=sys.stdout)
        sm_qkeras = student.predict(region_images(samples["SM"][0]), batch_size=4096, verbose=0)[:, 0].astype(np.float64)
        with tempfile.TemporaryDirectory() as tmp:
            _, firmware = student_firmware(student, sm_qkeras, FPRS[0], Path(tmp) / "hls")
        scores = {k: firmware.scores(r) for k, (r, _) in samples.items()}
        entry = results["students"][text] = {"weight_bits": weight_bits, "relu_bits": relu_bits,
                                             "relu_integer": relu_integer, "hidden": hidden,
                                             "conv_weight_bits": conv_bits, "sparsity": sparsity,
                                             "zero_weights": kernel_sparsity(student),
                                             "parameters": int(student.count_params()), **logic(firmware.emulator),
                                             "native_kernel": firmware.native is not None, "points": {}, "or": {}}
        for fpr in FPRS:
            wp = entry["points"][f"{fpr:g}"] = summarised_working_point(scores, fpr)
            entry["or"][f"{fpr:g}"] = or_of_triggers(scores, objects, fpr)
            print(f"  student {text}: cost {entry['da4ml_cost']:,.0f}, {entry['latency_ns']:.0f} ns; FPR {fpr:g}: "
                  f"mean {100 * wp['mean_eff']:.2f} %  {efficiency_cells(wp, signals)}")
    if args.json:
        write_result(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
