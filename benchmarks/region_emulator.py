"""Events per second of the region firmware's scorers against hls4ml's C-simulation on region images.

The network is the CICADA-shaped student (``models.regions.cicada_student``: QConv2D 4 filters
2 x 2 stride 2 on the 18 x 14 regions, dense 16 with batch norm, dense 1) with random weights and
batch-norm statistics -- no trained region model is bundled yet -- ending in the firmware's score
and decision. Three scorers read the same sparse 10-bit region images, one thread each: the numpy
emulator, ``firmware.region_scoring.RegionFirmware`` (its native integer kernel) and hls4ml's
C-simulation. Every event the C-simulation scored is compared with both, score and decision.

    python benchmarks/region_emulator.py [--events 50000] [--csim-events 5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from emulator import events_per_second
from record import write_result
from threadpoolctl import threadpool_limits


def regions(n: int, seed: int, occupancy: float = 0.15) -> np.ndarray:
    """Sparse 10-bit region counts (N, 18, 14, 1), as float64."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 1024, (n, 18, 14, 1)) * (rng.random((n, 18, 14, 1)) < occupancy)).astype(np.float64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--csim-events", type=int, default=5_000, help="the C-sim is slow: fewer events")
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import tensorflow as tf

    from firmware.check import csim_outputs
    from firmware.convert import convert_network
    from firmware.emulator import Emulator
    from firmware.head import HeadTypes, with_decision
    from firmware.region_scoring import RegionFirmware
    from models.regions import REGION_GRID, cicada_student
    from trigger.fixed import FixedType

    tf.random.set_seed(3)
    network = cicada_student()
    rng = np.random.default_rng(3)
    network.get_layer("norm").set_weights([rng.uniform(0.5, 2.0, 16), rng.uniform(-1, 1, 16),
                                           rng.uniform(-20, 20, 16), rng.uniform(5, 400, 16)])
    x = regions(args.events, seed=4)
    types = HeadTypes.declare("ap_fixed<12,6,AP_RND,AP_SAT_SYM>", "", 1)
    raw = network.predict(x[:5000], verbose=0)[:, 0]
    model, precisions = with_decision(network, False, types, int(np.quantile(raw**2, 0.99) * 2**types.score.fractional))
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        hls_model = convert_network(model, FixedType.parse(REGION_GRID), Path(tmp) / "hls", "cicada_student", precisions,
                                    compile=True)
        emulator = Emulator.from_hls_model(hls_model)
        firmware = RegionFirmware(emulator)
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
    result = {"network": "cicada_student (random weights)", "events": len(x), "csim_events": len(xc),
              "batch": args.batch, "emulator_events_per_s": emu_rate, "native_events_per_s": native_rate,
              "csim_events_per_s": csim_rate, "emulator_over_csim": emu_rate / csim_rate,
              "native_over_csim": native_rate / csim_rate, "emulator_exact_events": exact,
              "native_exact_events": native_exact, "accepted_csim": int(csim_out[:, 1].sum())}
    print(f"numpy emulator {emu_rate:,.0f} ev/s | native kernel {native_rate:,.0f} ev/s | C-sim {csim_rate:,.0f} ev/s "
          f"(one thread, batch {args.batch}): {emu_rate / csim_rate:.0f}x and {native_rate / csim_rate:.0f}x; "
          f"score and decision equal on {exact:,} and {native_exact:,} of {len(xc):,} events "
          f"({result['accepted_csim']} accepted)")
    if args.json:
        write_result(args.json, result, headline={
            "region student (random weights): numpy emulator / C-simulation": f"{emu_rate / csim_rate:.0f}x",
            "region student (random weights): native kernel / C-simulation": f"{native_rate / csim_rate:.0f}x"})
    return 0 if exact == native_exact == len(xc) else 1


if __name__ == "__main__":
    sys.exit(main())
