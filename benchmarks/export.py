"""The exported emulator packages (``trigger firmware export``): build time and bit-exactness.

Exports the default model and the student, times ``make -C OUT`` for each (one job, from a clean
package), loads both libraries into one process with the C++ client (``firmware/export_client.cpp``,
through ``create_model``) and compares each event's score and accept bit with the Python emulator
on SM and ato4l events. The targets: each build <= 60 s, 0 differences.

    python benchmarks/export.py [--events 10000] [--json benchmarks/results/export.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
from record import write_result

MODELS = {"tiny_ae": "tiny-ae", "student": "student"}  # package name -> bundled artifact (student: the default)
SAMPLES = {"SM": ROOT / "data" / "sample" / "sm_cocktail.h5", "ato4l": ROOT / "data" / "sample" / "ato4l.h5"}
BUILD_TARGET_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="events of each sample")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()

    from firmware.export import export_package, grid_values
    from firmware.export_client import ExportClient, build_library
    from models.artifact import load_artifact
    from trigger.events import open_events

    samples = {}
    for label, path in SAMPLES.items():
        with open_events(path) as events:
            samples[label] = events.read(0, min(args.events, events.n_events))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        packages = []
        for name, model in MODELS.items():
            start = time.perf_counter()
            package = export_package(load_artifact(ROOT / "models" / "artifacts" / model), Path(tmp) / name, name, 1)
            exported = time.perf_counter() - start
            start = time.perf_counter()
            build_library(package.out, jobs=1)
            built = time.perf_counter() - start
            packages.append(package)
            results[name] = {"model": model, "library": package.names.library, "export_s": round(exported, 2),
                             "make_s": round(built, 2), "make_target_s": BUILD_TARGET_S,
                             "threshold": package.bundle.threshold}
            print(f"{name}: exported in {exported:.1f} s, `make -C OUT` (1 job) {built:.1f} s", flush=True)
        client = ExportClient([p.out for p in packages], Path(tmp) / "client")
        for label, particles in samples.items():
            inputs = [grid_values(p.bundle.particle_scaler, particles) for p in packages]
            start = time.perf_counter()
            outputs = client.score(inputs)  # both libraries in one process
            seconds = time.perf_counter() - start
            for package, x, out in zip(packages, inputs, outputs, strict=True):
                bundle = package.bundle
                reference = bundle.emulator.predict(x)
                row = {"events": len(x), "scores_differ": int(np.count_nonzero(out[:, 0] != reference[:, 0])),
                       "decisions_differ": int(np.count_nonzero(out[:, 1] != reference[:, 1])),
                       "software_scores_differ": int(np.count_nonzero(
                           out[:, 0] / bundle.emulator.head.divisor != bundle.scores(particles))),
                       "accepted": int(out[:, 1].sum()), "client_s_both_models": round(seconds, 3)}
                results[package.names.name][label] = row
                print(f"{package.names.name} on {len(x)} {label}: scores differ {row['scores_differ']}, decisions "
                      f"differ {row['decisions_differ']}, accepted {row['accepted']}")
    if args.json:
        write_result(args.json, results)
    exact = all(r[label]["scores_differ"] == r[label]["decisions_differ"] == 0
                for r in results.values() for label in SAMPLES)
    fast = all(r["make_s"] <= BUILD_TARGET_S for r in results.values())
    return 0 if exact and fast else 1


if __name__ == "__main__":
    sys.exit(main())
