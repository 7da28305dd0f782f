"""Scores and decisions of every path that decides, on the same events, compared event by event.

The paths: the software (the artifact's stored firmware bundle, ``firmware.bundle.stored_bundle``,
its ``scores`` / ``accept``), the replay's compiled emulated path, hls4ml's C-simulation and the da4ml RTL in
Verilator. Each file is read as it is (float32) and as float64 values that a float32 cast changes
(the next float64 above each value, as public float64 files hold values between float32 ones),
so the input rule is exercised on every value.

    python benchmarks/agreement.py [--model DIR] [--events 20000] [--rtl-events 2000] FILE.h5 ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from record import write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, nargs="+", help="event files (ADC2021 format)")
    parser.add_argument("--model", type=Path, default=None, help="artifact (default: the bundled model)")
    parser.add_argument("--events", type=int, default=20_000, help="events per file")
    parser.add_argument("--rtl-events", type=int, default=2_000, help="of those, simulated in the RTL")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from firmware.bundle import stored_bundle
    from firmware.check import csim_outputs
    from firmware.convert import project_name, to_hls
    from firmware.rtl import simulate, write_verilog
    from models.artifact import load_artifact
    from replay.bundle import load_emulated, write_bundle
    from trigger.events import open_events
    from trigger.sample import default_model

    model = args.model or default_model()
    artifact = load_artifact(model)
    firmware = stored_bundle(artifact)
    if firmware is None:
        print(f"{model}: no firmware bundle; run `trigger calibrate` first", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        hls_model = to_hls(artifact, Path(tmp) / "hls", threshold=firmware.threshold)
        design = write_verilog(firmware.emulator, project_name(artifact), Path(tmp) / "rtl",
                               "xcvu9p-flga2104-2L-e", 5.0, 5.0)
        write_bundle(model, Path(tmp) / "bundle")
        replay = load_emulated(Path(tmp) / "bundle")
        for path in args.files:
            with open_events(path) as events:
                particles = events.read(0, min(args.events, events.n_events))
            native = np.nextafter(particles.astype(np.float64), np.inf)  # a float32 cast changes every value
            for form, events_ in (("float32", particles), ("float64-native", native)):
                software = firmware.scores(events_)
                accept = firmware.accept(events_)
                x = artifact.inputs(events_).astype(np.float64)
                csim = csim_outputs(hls_model, x)
                emulated = replay.scores(events_)
                rtl = simulate(design, x[: args.rtl_events])
                paths = {"replay": (emulated, emulated > replay.threshold),
                         "C-sim": (firmware.emulator.scores(csim), csim[:, 1] == 1)}
                row = {"file": path.name, "form": form, "events": len(x), "accepted": int(accept.sum()),
                       "rtl_events": len(rtl)}
                for name, (scores, decisions) in paths.items():
                    row[f"{name} scores differ"] = int(np.count_nonzero(scores != software))
                    row[f"{name} decisions differ"] = int(np.count_nonzero(decisions != accept))
                row["RTL scores differ"] = int(np.count_nonzero(firmware.emulator.scores(rtl) != software[: len(rtl)]))
                row["RTL decisions differ"] = int(np.count_nonzero((rtl[:, 1] == 1) != accept[: len(rtl)]))
                rows.append(row)
                print(json.dumps(row), flush=True)
    differ = sum(v for r in rows for k, v in r.items() if k.endswith("differ"))
    if args.json:
        write_result(args.json, rows, headline={
            "scores and decisions that differ between software, replay, C-simulation and RTL":
                f"{differ} in {sum(r['events'] for r in rows):,} events"})
    print(f"{'all paths agree on every score and decision' if differ == 0 else f'{differ} differences'} "
          f"({artifact.config.model.name})")
    return 0 if differ == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
