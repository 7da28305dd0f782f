"""Events per second of the firmware emulator, hls4ml's C-simulation and QKeras, side by side.

The emulator in three forms: the native kernel (``firmware.native``: integer SIMD, one C++ pass
from raw events to the score; what the check, the report and the replay run where it applies),
the compiled steps it checks itself against (``firmware.compiled``: numba and BLAS) and plain
numpy (``Emulator.predict``, from inputs). One run,
one thread each (BLAS and TensorFlow limited to one), the same events, and both forms' scores and
decisions checked against the C-sim's on every event it scored. Ratios, not absolute numbers, are
what to compare across machines.

    python benchmarks/emulator.py [--model DIR] [--events N] [--batch 8192] [--json benchmarks/results/emulator.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from record import write_result
from threadpoolctl import threadpool_limits


def events_per_second(fn, x: np.ndarray, batch: int, repeat: int = 3) -> tuple[float, np.ndarray]:
    """The best of ``repeat`` runs of ``fn`` over ``x`` in batches, as events/s, and its outputs."""
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = np.concatenate([fn(x[i:i + batch]) for i in range(0, len(x), batch)])
        best = min(best, time.perf_counter() - start)
    return len(x) / best, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="artifact (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=None, help="events (default: the bundled SM sample)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--csim-events", type=int, default=20_000, help="the C-sim is slow: fewer events")
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from firmware.check import csim_outputs
    from firmware.convert import firmware_network, to_hls
    from firmware.emulator import Emulator
    from models.artifact import load_artifact
    from replay.bundle import load_emulated, write_bundle
    from replay.scoring import warm_up
    from trigger.events import open_events
    from trigger.sample import bundled_sample, default_model

    artifact = load_artifact(args.model or default_model())
    with open_events(args.data or bundled_sample().background) as events:
        particles = events.read(0, min(args.events, events.n_events))
    reps = -(-args.events // len(particles))
    particles = np.concatenate([particles] * reps)[: args.events]
    x = np.ascontiguousarray(artifact.inputs(particles), dtype=np.float64)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        hls_model = to_hls(artifact, Path(tmp) / "hls")
        emulator = Emulator.from_hls_model(hls_model)
        network, _ = firmware_network(artifact)
        write_bundle(artifact.path, Path(tmp) / "bundle")
        compiled = load_emulated(Path(tmp) / "bundle")
        warm_up(compiled)
        if compiled.native is None:
            msg = "the native scoring kernel is not available here (g++ missing, or the model declined)"
            raise SystemExit(msg)
        native_rate, native_scores = events_per_second(compiled.native, particles, args.batch)
        fast_rate, fast_scores = events_per_second(compiled.compiled_scores, particles, args.batch)
        emu_rate, emu_out = events_per_second(emulator.predict, x, args.batch)
        xc = x[: args.csim_events]
        csim_rate, csim_out = events_per_second(lambda b: csim_outputs(hls_model, b), xc, args.batch, repeat=1)
        qk_rate, _ = events_per_second(lambda b: np.column_stack(network(b.astype(np.float32), training=False)), x, args.batch)
    exact = int(np.all(emu_out[: len(xc)] == csim_out, axis=1).sum())
    csim_scores, csim_accept = emulator.scores(csim_out), csim_out[:, 1] == 1
    fast_exact, native_exact = (
        int(np.count_nonzero((s[: len(xc)] == csim_scores) & ((s[: len(xc)] > compiled.threshold) == csim_accept)))
        for s in (fast_scores, native_scores))
    result = {
        "model": str(artifact.path), "batch": args.batch, "events": len(x), "csim_events": len(xc),
        "native_events_per_s": native_rate, "native_ns_per_event": 1e9 / native_rate,
        "native_over_compiled": native_rate / fast_rate, "native_over_csim": native_rate / csim_rate,
        "native_exact_events": native_exact, "native_equal_compiled_events": int(np.sum(native_scores == fast_scores)),
        "compiled_events_per_s": fast_rate, "emulator_events_per_s": emu_rate, "csim_events_per_s": csim_rate,
        "qkeras_events_per_s": qk_rate, "compiled_over_csim": fast_rate / csim_rate,
        "emulator_over_csim": emu_rate / csim_rate, "emulator_over_qkeras": emu_rate / qk_rate,
        "emulator_exact_events": exact, "compiled_exact_events": fast_exact,
    }
    print(f"native kernel {native_rate:,.0f} ev/s ({1e9 / native_rate:.0f} ns/event) | "
          f"compiled steps {fast_rate:,.0f} ev/s | numpy emulator {emu_rate:,.0f} ev/s | C-sim "
          f"{csim_rate:,.0f} ev/s | QKeras {qk_rate:,.0f} ev/s (one thread, batch {args.batch})")
    print(f"compiled / C-sim = {fast_rate / csim_rate:.1f}x, numpy emulator / C-sim = {emu_rate / csim_rate:.1f}x, "
          f"numpy emulator / QKeras = {emu_rate / qk_rate:.1f}x; score and decision equal to the C-sim's on "
          f"{native_exact}/{len(xc)} (native), {fast_exact}/{len(xc)} (compiled) and {exact}/{len(xc)} (numpy) events; "
          f"native == compiled on {np.sum(native_scores == fast_scores):,}/{len(x):,}")
    if args.json:
        write_result(args.json, result, headline={
            "native emulator kernel, events/s (one thread)": f"{native_rate / 1e6:.2f} M",
            "native kernel / compiled steps": f"{native_rate / fast_rate:.1f}x",
            "hls4ml C-simulation, events/s (one thread)": f"{csim_rate / 1e3:.1f} k",
            "native emulator kernel / C-simulation": f"{native_rate / csim_rate:.0f}x",
            "emulator equal to the C-simulation (score and decision)": f"{native_exact:,} of {len(xc):,} events"})
    return 0 if exact == fast_exact == native_exact == len(xc) else 1


if __name__ == "__main__":
    sys.exit(main())
