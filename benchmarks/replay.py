"""Replay throughput, side by side in one run: the raw ZeroMQ ceiling and the full pipeline.

1. raw ceiling: a source process pushes the same batches as TASK messages (msgpack header + the
   events' float32 array frame, zero-copy, ipc: unpacked, as the pipeline sends them over ipc) to
   a sink process that only receives them; no model, no decisions.
2. the full pipeline (``replay``) with the emulated firmware path only, on the events as float32,
3. the same on the same events stored as float64, as the public ADC2021 files hold them,
4. the full pipeline with the float reference path too (numpy on CPU), float32.

For the pipeline it also reports the CPU time its roles (collector, workers, reference) use per
event, start-up taken off with a one-batch run: the machine's cores bound the rate by it; for the
raw run, the CPU time receiving alone costs; and a worker's scoring stages, one thread, each
compiled stage (the first step: grid projection and first product; the later products; the
rest of the network) timed side by side with its numpy form, and the whole scoring on the
compiled steps against the native kernel (``firmware.native``: integer SIMD, one C++ pass).

Every configuration runs ``--repeat`` times, interleaved, and the median is reported, since
these machines are shared and noisy. Compare ratios, not absolute numbers, across machines.

    python benchmarks/replay.py [--events 8000000] [--loop-events 20000] [--workers 2] [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message=".*keras.constraints.serialize", category=UserWarning)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import zmq
from record import events_as, write_result


def _push(endpoint: str, batches: list[np.ndarray], repeat: int) -> None:
    from replay.wire import encode_task

    with zmq.Context() as ctx, ctx.socket(zmq.PUSH) as push:
        push.sndhwm = 32
        push.connect(endpoint)
        seq = 0
        for _ in range(repeat):
            for batch in batches:
                push.send_multipart(encode_task({"seq": seq, "bx0": 0, "n": len(batch), "t_sent": 0}, batch,
                                                packed=False), copy=False)
                seq += 1
        push.send(b"E")


def raw_ceiling(batches: list[np.ndarray], events: int) -> tuple[float, float]:
    """Events/s through one PUSH -> PULL pair between two processes, receiver doing nothing else,
    and the receiving process's CPU-ns per event (its ZeroMQ I/O thread included)."""
    from replay.wire import decode_arrays, decode_header

    repeat = max(1, events // sum(len(b) for b in batches))
    with tempfile.TemporaryDirectory() as tmp, zmq.Context() as ctx, ctx.socket(zmq.PULL) as pull:
        endpoint = f"ipc://{tmp}/raw.sock"
        pull.bind(endpoint)
        sender = multiprocessing.get_context("spawn").Process(target=_push, args=(endpoint, batches, repeat))
        sender.start()
        received, start = 0, None
        while True:
            frames = pull.recv_multipart(copy=False)
            if start is None:
                start, cpu = time.perf_counter(), time.process_time()
            if len(frames) == 1:
                break
            (particles,) = decode_arrays(frames, decode_header(frames, {}), 1 << 30)
            received += len(particles)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        sender.join()
    counted = received - len(batches[0])  # the clocks start when the first batch is in
    return counted / elapsed, cpu / counted * 1e9


def pipeline(data: Path, model: Path, events: int, workers: int, backend: str, batch: int) -> dict:
    from replay.config import ReplayConfig
    from replay.pipeline import ReplayRun, run_replay

    out = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    try:
        run = ReplayRun((data,), model, out, ReplayConfig(batch_size=batch), events=events, workers=workers,
                        reference_backend=backend)
        before = _children_cpu_s()
        summary = run_replay(run, progress=None).as_dict()
        summary["roles_cpu_s"] = _children_cpu_s() - before
        return summary
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _children_cpu_s() -> float:
    """CPU seconds of this process's ended children: the collector, workers and reference of a run."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def worker_cost(model: Path, particles: np.ndarray, chunk: int = 2048, repeat: int = 5) -> dict[str, float]:
    """Nanoseconds per event of a worker's scoring stages (one thread, chunks in cache, best of ``repeat``).

    Each compiled stage is timed side by side with its numpy form: the first step (grid
    projection and first product: ``grid_mantissas``, then BLAS, vs ``FirstProduct``), the
    later layers' products alone (numpy's matmul vs SciPy's GEMM, same inputs) and the rest of
    the network (the numpy emulator's kernels vs ``CompiledNetwork``); then the whole scoring
    (score included) on those compiled steps and on the native kernel, each over every chunk in
    turn, as a worker runs it.
    """
    from threadpoolctl import threadpool_limits

    from replay.bundle import load_emulated, write_bundle
    from replay.scoring import grid_mantissas, warm_up

    with tempfile.TemporaryDirectory() as tmp:
        write_bundle(model, tmp)
        path = load_emulated(tmp)
        warm_up(path)
        if path.native is None:
            msg = "the native scoring kernel is not available here (g++ missing, or the model declined)"
            raise SystemExit(msg)
        emulator, work, steps = path.emulator, path.workspace, path.network.steps
        first = emulator.kernels[0]
        chunks = [particles[i:i + chunk] for i in range(0, len(particles), chunk)]
        stages = ("first step, numpy", "first step, compiled", "later products, numpy matmul",
                  "later products, SciPy GEMM", "rest of the network, numpy", "rest of the network, compiled")
        best = dict.fromkeys(stages, np.inf)
        with threadpool_limits(1):  # numpy's and SciPy's BLAS alike, as in the workers
            for _ in range(repeat):
                spent = dict.fromkeys(stages, 0.0)
                for c in chunks:
                    t0 = time.perf_counter()
                    grid_mantissas(path.scaler, c).astype(first.weight.dtype) @ first.weight
                    t1 = time.perf_counter()
                    _, product = path.first_product(c, work)
                    t2 = time.perf_counter()
                    inputs = _numpy_rest(emulator, product)
                    t3 = time.perf_counter()
                    for x, step in zip(inputs, steps[1:], strict=True):
                        x @ step.kernel.weight
                    t4 = time.perf_counter()
                    for i, (x, step) in enumerate(zip(inputs, steps[1:], strict=True)):
                        step.product(x, work.rows(("bench", i), len(x), step.kernel.weight.shape[1], x.dtype))
                    t5 = time.perf_counter()
                    path.network.outputs(product, work)
                    t6 = time.perf_counter()
                    times = (t1 - t0, t2 - t1, t4 - t3, t5 - t4, t3 - t2, t6 - t5)
                    for stage, seconds in zip(stages, times, strict=True):
                        spent[stage] += seconds
                best = {k: min(best[k], v) for k, v in spent.items()}
            # the whole scoring, each form over all chunks on its own (as a worker runs it: its tables warm)
            for stage, score in (("whole scoring, compiled steps", path.compiled_scores),
                                 ("whole scoring, native kernel", path.native)):
                best[stage] = min(_timed(score, chunks) for _ in range(repeat))
    return {k: v / len(particles) * 1e9 for k, v in best.items()}


def _timed(score: Any, chunks: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for c in chunks:
        score(c)
    return time.perf_counter() - start


def _numpy_rest(emulator: Any, first_product: np.ndarray) -> list[np.ndarray]:
    """The numpy emulator's kernels after the first product (the timed numpy form of the rest
    of the network); returns each later kernel's input, as the product stages use them."""
    x, inputs = emulator.kernels[0].finish(first_product.copy()), []
    for kernel in emulator.kernels[1:]:
        x = x.astype(kernel.weight.dtype, copy=False)
        inputs.append(x)
        x = kernel(x)
    return inputs


def _first_events(path: Path, n: int) -> np.ndarray:
    from trigger.events import open_events

    with open_events(path) as events:
        return events.read(0, min(n, events.n_events))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="artifact (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=None, help="events (default: the bundled SM sample)")
    parser.add_argument("--events", type=int, default=8_000_000, help="events per configuration and repeat")
    parser.add_argument("--loop-events", type=int, default=20_000,
                        help="events of the input file, looped (kept in memory: the pipeline is measured, not gzip)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None, help="events per batch (default: the replay's)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from replay.config import ReplayConfig

    args.batch = args.batch or ReplayConfig.batch_size

    from trigger.sample import bundled_sample, default_model

    source = args.data or bundled_sample().background
    model = args.model or default_model()
    particles = _first_events(source, args.loop_events)
    work = Path(tempfile.mkdtemp(prefix="replay-bench-data-"))
    inputs = {dtype: events_as(work / f"events_{dtype}.h5", particles, dtype) for dtype in ("float32", "float64")}
    batches = [np.ascontiguousarray(particles[i:i + args.batch], np.float32)
               for i in range(0, len(particles), args.batch)]
    results: dict[str, list[float]] = {"raw_zeromq": [], "emulated": [], "emulated, float64 input": [],
                                       "emulated+reference": []}
    configurations = (("emulated", "none", "float32"), ("emulated, float64 input", "none", "float64"),
                      ("emulated+reference", "numpy", "float32"))
    # the roles' start-up (imports, loading the model), from a one-batch run, is not per-event work
    # (the smaller of two such runs: the first may also compile numba's kernels into its cache)
    start_up = {name: min(pipeline(inputs[dtype], model, args.batch, args.workers, backend, args.batch)["roles_cpu_s"]
                          for _ in range(2))
                for name, backend, dtype in configurations}
    roles_cpu: dict[str, list[float]] = {name: [] for name, _, _ in configurations}
    checks, raw_receive_ns = [], []
    for r in range(args.repeat):
        rate, receive_ns = raw_ceiling(batches, args.events)
        results["raw_zeromq"].append(rate)
        raw_receive_ns.append(receive_ns)
        for name, backend, dtype in configurations:
            summary = pipeline(inputs[dtype], model, args.events, args.workers, backend, args.batch)
            results[name].append(summary["events_per_second"])
            roles_cpu[name].append((summary["roles_cpu_s"] - start_up[name]) / (args.events - args.batch) * 1e9)
            checks.append(summary["accounting_ok"] and summary["events_in"] == args.events)
        print(f"repeat {r + 1}/{args.repeat}: " + ", ".join(f"{k} {v[-1] / 1e6:.2f} M/s" for k, v in results.items()),
              file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    median = {k: float(np.median(v)) for k, v in results.items()}
    ceiling = median["raw_zeromq"]
    print(f"\n{args.events:,} events per run, batch {args.batch}, {args.workers} workers, "
          f"{os.cpu_count()} CPUs, median of {args.repeat} interleaved runs")
    print(f"{'configuration':<26}{'events/s':>14}{'of raw ceiling':>16}{'real-time factor':>18}")
    for name, rate in median.items():
        print(f"{name:<26}{rate:>14,.0f}{rate / ceiling:>16.1%}{rate / 40e6:>18.4f}")
    wide = median["emulated, float64 input"] / median["emulated"]
    print(f"float64 input / float32 input: {wide:.2f}")
    print(f"accounting invariant held in {sum(checks)} of {len(checks)} pipeline runs")
    print(f"raw ZeroMQ: receiving alone used {np.median(raw_receive_ns):.0f} CPU-ns per event "
          f"({batches[0][0].nbytes} bytes per event)")
    cpus = os.cpu_count() or 1
    for name, spent in roles_cpu.items():
        ns = float(np.median(spent))
        print(f"{name}: collector, workers and reference used {ns:.0f} CPU-ns per event, "
              f"a ceiling of {cpus / ns * 1e3:.2f} M events/s on {cpus} cores before the source's own time")
    cost = worker_cost(model, particles.astype(np.float32))
    print("worker scoring, one thread: " + ", ".join(f"{k} {v:.0f} ns/event" for k, v in cost.items()))
    if args.json:
        write_result(args.json, {"events": args.events, "loop_events": len(particles), "batch": args.batch,
                                 "workers": args.workers,
                                 "cpus": os.cpu_count(), "runs": results, "median": median,
                                 "roles_cpu_ns_per_event": roles_cpu,
                                 "worker_ns_per_event": cost,
                                 "raw_receive_cpu_ns_per_event": raw_receive_ns,
                                 "accounting_ok": all(checks)}, headline={
            "replay, emulated path, events/s": f"{median['emulated'] / 1e6:.2f} M",
            "replay of float64 input / float32 input": f"{wide:.2f}",
            "replay of float64 input / raw ZeroMQ ceiling": f"{median['emulated, float64 input'] / ceiling:.2f}",
            "whole scoring of the default, native kernel": f"{cost['whole scoring, native kernel']:.0f} ns/event",
            "replay with the numpy reference (the default), events/s": f"{median['emulated+reference'] / 1e6:.2f} M",
            "replay default / emulated path alone": f"{median['emulated+reference'] / median['emulated']:.2f}",
            "raw ZeroMQ ceiling, events/s": f"{ceiling / 1e6:.2f} M"})
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
