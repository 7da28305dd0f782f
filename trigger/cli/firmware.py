"""``trigger firmware convert|check``: hls4ml conversion and the three-way exactness check."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    convert = verbs.add_parser("convert", help="write the HLS project and build the C-simulation",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    convert.add_argument("--model", type=Path, required=True, metavar="DIR", help="artifact directory")
    convert.add_argument("--out", type=Path, required=True, metavar="FW_DIR", help="HLS project directory")
    convert.add_argument("--part", default="xcvu9p-flga2104-2L-e", help="FPGA part")
    convert.add_argument("--clock-ns", type=float, default=5.0, help="clock period")
    check = verbs.add_parser("check", help="compare QKeras, hls4ml C-sim and the emulator event by event",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    check.add_argument("--model", type=Path, required=True, metavar="DIR", help="artifact directory")
    check.add_argument("--data", type=Path, required=True, help="events to score")
    check.add_argument("--events", type=int, default=10_000, help="how many events")
    check.add_argument("--fw-dir", type=Path, default=None, help="HLS project dir (default: temporary)")
    check.add_argument("--json", type=Path, default=None, help="write the comparison here")


def run(args: argparse.Namespace) -> int:
    from firmware.convert import to_hls
    from models.artifact import load_artifact

    artifact = load_artifact(args.model)
    if args.verb == "convert":
        model = to_hls(artifact, args.out, args.part, args.clock_ns)
        print(f"HLS project written to {args.out}; C-simulation built ({model.config.get_project_name()})")
        return 0
    from firmware.check import compare_paths
    from trigger.events import open_events

    with open_events(args.data) as events:
        particles = events.read(0, min(args.events, events.n_events))
    with tempfile.TemporaryDirectory() as tmp:
        model = to_hls(artifact, args.fw_dir or Path(tmp) / "hls")
        pairs, _ = compare_paths(artifact, model, particles)
    print(f"{len(particles)} events of {args.data.name}, threshold {artifact.threshold('quantized'):.6g}")
    print(f"{'pair':<22}{'scores differ':>15}{'decisions differ':>18}{'largest |diff|':>16}")
    for p in pairs:
        print(f"{p.first + ' vs ' + p.second:<22}{p.scores_differ:>15}{p.decisions_differ:>18}"
              f"{p.max_abs_difference:>16.3g}")
    if args.json:
        args.json.write_text(json.dumps([p.as_dict() for p in pairs], indent=1) + "\n")
    exact = next(p for p in pairs if {p.first, p.second} == {"csim", "emulator"})
    return 0 if exact.scores_differ == 0 else 1
