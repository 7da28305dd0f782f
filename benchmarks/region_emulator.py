"""Events per second of the region firmware's scorers against hls4ml's C-simulation on region images.

The network is a region model's firmware (``--model DIR``, a calibrated ``trigger train-regions``
directory: its stored bundle, converted again for the C-simulation) or, without it, the CICADA-shaped
student (``models.regions.cicada_student``: QConv2D 4 filters 2 x 2 stride 2 on the 18 x 14 regions,
dense 16 with batch norm, dense 1) with random weights and batch-norm statistics, ending in the
firmware's score and decision. The events are ``--data``'s ``CaloRegions`` (repeated up to
``--events``) or random sparse 10-bit images. Three scorers read the same events, one thread each:
the numpy emulator, ``firmware.region_scoring.RegionFirmware`` (its native integer kernel) and
hls4ml's C-simulation. Every event the C-simulation scored is compared with both, score and decision.

    python benchmarks/region_emulator.py [--model DIR] [--data REGIONS.h5] [--events 50000]
                                         [--csim-events 5000] [--json out.json]
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
from emulator import events_per_second
from record import write_result
from regions import student_firmware
from threadpoolctl import threadpool_limits


def regions(n: int, seed: int, occupancy: float = 0.15) -> np.ndarray:
    """Sparse 10-bit region counts (N, 18, 14, 1), as float64."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 1024, (n, 18, 14, 1)) * (rng.random((n, 18, 14, 1)) < occupancy)).astype(np.float64)


def read_regions(path: Path, n: int) -> np.ndarray:
    """The first ``n`` events' CaloRegions of ``path`` (repeated when it has fewer), (N, 18, 14, 1) float64."""
    from trigger.events import open_events

    with open_events(path) as events:
        counts = events.read_regions(0, min(n, events.n_events))
    return np.resize(counts, (n, *counts.shape[1:])).astype(np.float64)[..., None]


def model_firmware(path: Path, hls_dir: Path) -> tuple[Any, Any, str]:
    """A region model's C-simulation and firmware, deciding at its stored threshold, and its name."""
    from firmware.check import csim_and_bundle
    from firmware.region_scoring import RegionFirmware
    from models.region_artifact import load_region_artifact

    artifact = load_region_artifact(path)
    hls_model, bundle = csim_and_bundle(artifact, hls_dir)
    return hls_model, RegionFirmware(bundle.emulator), f"{artifact.name} ({path.name})"


def random_firmware(x: np.ndarray, hls_dir: Path) -> tuple[Any, Any, str]:
    """The CICADA-shaped student with random weights, accepting about 1 % of ``x``: C-simulation, firmware, name."""
    import tensorflow as tf

    from models.regions import cicada_student

    tf.random.set_seed(3)
    network = cicada_student()
    rng = np.random.default_rng(3)
    network.get_layer("norm").set_weights([rng.uniform(0.5, 2.0, 16), rng.uniform(-1, 1, 16),
                                           rng.uniform(-20, 20, 16), rng.uniform(5, 400, 16)])
    raw = network.predict(x[:5000], verbose=0)[:, 0].astype(np.float64)
    hls_model, firmware = student_firmware(network, raw, 0.01, hls_dir)
    return hls_model, firmware, "cicada_student (random weights)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a calibrated region model (default: random weights)")
    parser.add_argument("--data", type=Path, default=None, help="events with CaloRegions (default: random images)")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--csim-events", type=int, default=5_000, help="the C-sim is slow: fewer events")
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from firmware.check import csim_outputs

    x = read_regions(args.data, args.events) if args.data else regions(args.events, seed=4)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        hls_model, firmware, name = (model_firmware(args.model, Path(tmp) / "hls") if args.model
                                     else random_firmware(x, Path(tmp) / "hls"))
        emulator = firmware.emulator
        if firmware.native is None:
            print("the native region kernel is not available here (no g++?)", file=sys.stderr)
            return 1
        emu_rate, emu_out = events_per_second(emulator.predict, x, args.batch, repeat=3)
        native_rate, native_scores = events_per_second(firmware.scores, x[..., 0].astype(np.uint16), args.batch,
                                                       repeat=3)
        xc = x[: args.csim_events]
        csim_rate, csim_out = events_per_second(lambda b: csim_outputs(hls_model, b), xc, args.batch, repeat=1)
    exact = int(np.all(emu_out[: len(xc)] == csim_out, axis=1).sum())
    native = native_scores[: len(xc)]
    native_exact = int(np.sum((native == emulator.scores(csim_out)) & ((native > firmware.threshold) == csim_out[:, 1])))
    source = args.data.name if args.data else "random sparse images"
    result = {"network": name, "data": source, "events": len(x), "csim_events": len(xc),
              "batch": args.batch, "emulator_events_per_s": emu_rate, "native_events_per_s": native_rate,
              "csim_events_per_s": csim_rate, "emulator_over_csim": emu_rate / csim_rate,
              "native_over_csim": native_rate / csim_rate, "emulator_exact_events": exact,
              "native_exact_events": native_exact, "accepted_csim": int(csim_out[:, 1].sum())}
    print(f"numpy emulator {emu_rate:,.0f} ev/s | native kernel {native_rate:,.0f} ev/s | C-sim {csim_rate:,.0f} ev/s "
          f"(one thread, batch {args.batch}): {emu_rate / csim_rate:.0f}x and {native_rate / csim_rate:.0f}x; "
          f"score and decision equal on {exact:,} and {native_exact:,} of {len(xc):,} events "
          f"({result['accepted_csim']} accepted)")
    if args.json:
        label = "region student" if args.model else "region student (random weights)"
        write_result(args.json, result, headline={
            f"{label}: numpy emulator / C-simulation": f"{emu_rate / csim_rate:.0f}x",
            f"{label}: native kernel / C-simulation": f"{native_rate / csim_rate:.0f}x"})
    return 0 if exact == native_exact == len(xc) else 1


if __name__ == "__main__":
    sys.exit(main())
