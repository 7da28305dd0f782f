"""``trigger train-regions``: CICADA's teacher and student on SM events' calorimeter regions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = ("The file needs CaloRegions (`trigger generate` writes them; `make regions-sample` makes the "
                     "bundled sample's events again with them). The first 60 % of its events train, the next "
                     "20 % validate, the last 20 % are held out. Then: trigger calibrate --model OUT "
                     "--background FILE (regions of events it never trained on), trigger evaluate, "
                     "trigger firmware check/estimate. The defaults are the bundled student's, within the chip budget "
                     "(2 % of a VU9P); CICADA v2's widths are --conv-weight-bits 8 --sparsity 0 (about 73,000 LUTs).")
    parser.add_argument("--data", type=Path, required=True, help="SM events with CaloRegions (HDF5)")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--teacher-epochs", type=int, default=20, help="at most this many epochs of the teacher")
    parser.add_argument("--student-epochs", type=int, default=60, help="at most this many epochs of the student")
    parser.add_argument("--weight-bits", type=int, default=8, help="the student's dense weights (QKeras bits)")
    parser.add_argument("--conv-weight-bits", type=int, default=4,
                        help="the student's convolution weights (QKeras bits; 0: --weight-bits)")
    parser.add_argument("--activation-bits", type=int, default=10, help="the student's ReLU outputs (QKeras bits)")
    parser.add_argument("--activation-integer", type=int, default=6, help="integer bits of the student's ReLU outputs")
    parser.add_argument("--hidden", type=int, default=16, help="the student's dense units")
    parser.add_argument("--sparsity", type=float, default=0.9,
                        help="prune this fraction of the dense layer's weights to zero while training (0: none)")
    parser.add_argument("--max-events", type=int, default=0, help="use the first N events (default: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--name", default="cicada-student", help="the model's name")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing directory")


def run(args: argparse.Namespace) -> int:
    from models.region_artifact import RegionSpec, train_region_artifact
    from trigger.errors import UsageError

    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        msg = f"{args.out} exists and is not empty; pass --overwrite to replace it"
        raise UsageError(msg)
    spec = RegionSpec(name=args.name, hidden=args.hidden, weight_bits=args.weight_bits,
                      conv_weight_bits=args.conv_weight_bits, activation_bits=args.activation_bits,
                      activation_integer=args.activation_integer, sparsity=args.sparsity,
                      teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs, seed=args.seed,
                      max_events=args.max_events)
    problem = spec.problem()
    if problem:
        raise UsageError(problem)
    artifact = train_region_artifact(args.data, args.out, spec, log=sys.stdout)
    print(f"region model written to {artifact.path} (student and teacher; thresholds at FPR 1e-3 of the held-out "
          f"split until `trigger calibrate`)")
    return 0
