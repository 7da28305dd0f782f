"""``trigger firmware convert|check|synth``: hls4ml conversion, exactness check, vendor synthesis."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ("add_arguments", "run")


_VERBS = {
    "convert": "write the HLS project and build the C-simulation",
    "synth": "write the HLS/Vivado project and run it if the vendor tools exist",
    "check": "compare QKeras, hls4ml C-sim and the emulator event by event",
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from firmware.convert import DEFAULT_CLOCK_NS, DEFAULT_PART

    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    sub = {verb: verbs.add_parser(verb, help=text, description=text,
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
           for verb, text in _VERBS.items()}
    for verb in _VERBS:
        sub[verb].add_argument("--model", type=Path, required=True, metavar="DIR", help="artifact directory")
    for verb in ("convert", "synth"):
        sub[verb].add_argument("--out", type=Path, required=True, metavar="FW_DIR", help="project directory")
        sub[verb].add_argument("--part", default=DEFAULT_PART, help="FPGA part")
        sub[verb].add_argument("--clock-ns", type=float, default=DEFAULT_CLOCK_NS, help="clock period")
    check = sub["check"]
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
    if args.verb == "synth":
        return _synth(artifact, args)
    from firmware.check import check_firmware, csim_vs_emulator
    from trigger.events import open_events

    with open_events(args.data) as events:
        particles = events.read(0, min(args.events, events.n_events))
    pairs = check_firmware(artifact, particles, args.fw_dir)
    print(f"{len(particles)} events of {args.data.name}, threshold {artifact.threshold('quantized'):.6g}")
    print(f"{'pair':<22}{'scores differ':>15}{'decisions differ':>18}{'largest |diff|':>16}")
    for p in pairs:
        print(f"{p.first + ' vs ' + p.second:<22}{p.scores_differ:>15}{p.decisions_differ:>18}"
              f"{p.max_abs_difference:>16.3g}")
    if args.json:
        args.json.write_text(json.dumps([p.as_dict() for p in pairs], indent=1) + "\n")
    return 0 if csim_vs_emulator(pairs).scores_differ == 0 else 1


def _synth(artifact: object, args: argparse.Namespace) -> int:
    from firmware.convert import to_hls
    from firmware.synth import BUILD_COMMAND, synthesize

    to_hls(artifact, args.out, args.part, args.clock_ns, compile=False)
    result = synthesize(args.out)
    if not result.ran:
        print(f"HLS/Vivado project written to {args.out}, not synthesized: {BUILD_COMMAND[0]} (AMD Vitis) "
              f"is not on PATH. On a machine with Vitis, run:\n  {result.command}\n"
              f"then `trigger firmware synth` parses the reports it leaves in {args.out}.")
        return 3
    hls = result.reports.get("hls")
    if hls is None:
        print(f"the build ran but left no csynth report in {args.out}; see {args.out / 'build.log'}")
        return 1
    print(f"latency {hls.latency_worst} cycles = {hls.latency_ns:.1f} ns at {hls.target_clock_ns} ns, "
          f"II {hls.interval_max}")
    for name in ("LUT", "FF", "DSP", "BRAM_18K"):
        print(f"  {name:<9}{hls.resources.get(name, 0):>9}  {hls.fraction(name):7.2%} of {args.part}")
    return 0
