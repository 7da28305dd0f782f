"""Replay roles as separate commands against the single ``replay`` command, side by side in one run.

Configurations, all over tcp on this machine, the emulated path only (``--no-reference``), the
same bundle, batch size and number of workers:

1. ``single``: ``replay --transport tcp --reference-backend none``,
2. ``roles``: ``replay collector``, K x ``replay worker``, ``replay source`` as separate processes,
3. and 4.: the same two with CurveZMQ (``--curve``: the single command's per-run keys; for the
   roles, one key folder per role as ``replay keys`` makes them),
5. once: ``roles`` with the workers started ``--early`` seconds before the collector and source;
6. the raw cost of the encryption: one tcp PUSH -> PULL pair moving task-sized frames, with and
   without CurveZMQ (GB/s, CPU-ns per byte).

Throughput is each run's ``events_per_second`` from its summary: it counts from the moment
every role said READY, so start-up is not in it. Every configuration runs ``--repeat`` times,
interleaved, and the median is reported; compare the ratios on the last lines, not absolute
numbers, across machines.

    python benchmarks/roles.py [--events 4000000] [--workers 2] [--repeat 3] [--early 60] [--dtype float64] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from record import events_as, write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPLAY = [sys.executable, "-c", "import sys; from replay.cli import main; sys.exit(main())"]
ROLE_TIMEOUT_S = 900


def _keys(root: Path) -> dict[str, Path]:
    """One key folder per role, public keys copied as ``replay keys`` tells."""
    from replay.security import create_keys, share_public_keys

    folders = {role: root / role for role in ("source", "collector", "worker")}
    for role, folder in folders.items():
        create_keys(folder, role)
    share_public_keys(folders)
    return folders


def task_bytes_per_event(data: Path, n: int = 16384) -> float:
    """Bytes per event of a TASK's packed events (bitmap and filled rows, float64 narrowed as the
    source sends it) for the first ``n`` events."""
    import h5py

    from replay.narrowing import Narrowed, narrow
    from replay.packing import pack_events

    with h5py.File(data) as f:
        events = narrow(f["Particles"][:n])
    arrays = ([*pack_events(events.values), events.where, events.originals] if isinstance(events, Narrowed)
              else pack_events(events))
    return sum(a.nbytes for a in arrays) / len(events)


def raw_link(curve: bool, batches: int = 200) -> tuple[float, float]:
    """One tcp PUSH -> PULL pair in this process, task-sized frames (16384 events x 19 x 4 float32):
    GB/s, and CPU-ns per byte for both ends together (their I/O threads included)."""
    import threading

    import numpy as np
    import zmq

    frame = np.random.default_rng(0).random(16384 * 19 * 4).astype(np.float32)
    with zmq.Context() as ctx, ctx.socket(zmq.PULL) as pull, ctx.socket(zmq.PUSH) as push:
        if curve:
            (server_public, server_secret), (public, secret) = zmq.curve_keypair(), zmq.curve_keypair()
            pull.curve_secretkey, pull.curve_publickey, pull.curve_server = server_secret, server_public, True
            push.curve_serverkey, push.curve_publickey, push.curve_secretkey = server_public, public, secret
        push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
        sender = threading.Thread(target=lambda: [push.send(frame, copy=False) for _ in range(batches)])
        start, cpu = time.perf_counter(), time.process_time()
        sender.start()
        for _ in range(batches):
            pull.recv(copy=False)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        sender.join()
    total = batches * frame.nbytes
    return total / elapsed / 1e9, cpu / total * 1e9


def single(work: Path, data: Path, model: Path, events: int, workers: int, curve: bool) -> float:
    out = work / f"single-{time.monotonic_ns()}"
    subprocess.run([*REPLAY, "--transport", "tcp", "--reference-backend", "none", "--input", str(data), "--model",
                    str(model), "--events", str(events), "--workers", str(workers), "--out", str(out), "--quiet",
                    *(["--curve"] if curve else [])], check=True, capture_output=True, timeout=ROLE_TIMEOUT_S)
    rate = float(json.loads((out / "summary.json").read_text())["events_per_second"])
    shutil.rmtree(out)
    return rate


def roles(work: Path, data: Path, bundle: Path, events: int, workers: int, keys: dict[str, Path] | None,
          early_s: float = 0.0) -> float:
    from replay.pipeline import free_tcp_base

    base = free_tcp_base(8)
    source, collector = f"127.0.0.1:{base}", f"127.0.0.1:{base + 4}"
    out = work / f"roles-{time.monotonic_ns()}"

    def role(name: str, *args: str) -> list[str]:
        return [*REPLAY, name, *(["--curve", str(keys[name])] if keys else []), *args]

    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen(role("worker", "--bundle", str(bundle), "--source", source, "--collector", collector),
                              **quiet) for _ in range(workers)]
    time.sleep(early_s)
    procs.append(subprocess.Popen(role("collector", "--bundle", str(bundle), "--bind", collector, "--source", source,
                                       "--no-reference", "--out", str(out / "collector")), **quiet))
    try:
        subprocess.run(role("source", "--input", str(data), "--events", str(events), "--bind", source, "--collector",
                            collector, "--no-reference", "--out", str(out / "source")),
                       check=True, capture_output=True, timeout=ROLE_TIMEOUT_S)
        summary = json.loads((out / "source" / "summary.json").read_text())
        if not summary["accounting_ok"]:
            msg = f"separate roles lost events: {summary}"
            raise RuntimeError(msg)
        for proc in procs:
            proc.wait(timeout=60)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    shutil.rmtree(out)
    return float(summary["events_per_second"])


def _as_dtype(data: Path, dtype: str, path: Path) -> Path:
    """``data`` with its events stored as ``dtype`` (the same file when they already are)."""
    from trigger.events import read_events

    events = read_events(data)
    return data if events.dtype.name == dtype else events_as(path, events, dtype)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="artifact (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=None, help="events (default: the bundled SM sample)")
    parser.add_argument("--events", type=int, default=4_000_000, help="events per configuration and repeat")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--early", type=float, default=60.0, help="seconds the workers start early in run 5")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the input's values: float32 as the project's files, float64 as the public ones")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from replay.bundle import write_bundle
    from trigger.sample import bundled_sample, default_model

    model = args.model or default_model()
    data = args.data or bundled_sample().background
    rates: dict[str, list[float]] = {"single": [], "roles": [], "single --curve": [], "roles --curve": []}
    with tempfile.TemporaryDirectory(prefix="bench-roles-") as tmp:
        work = Path(tmp)
        data = _as_dtype(data, args.dtype, work / f"events_{args.dtype}.h5")
        bundle = work / "bundle"
        write_bundle(model, bundle)
        keys = _keys(work / "keys")
        links: dict[str, list[tuple[float, float]]] = {"plain": [], "curve": []}  # GB/s, CPU-ns per byte
        for k in range(args.repeat):
            links["plain"].append(raw_link(curve=False))
            links["curve"].append(raw_link(curve=True))
            rates["single"].append(single(work, data, model, args.events, args.workers, curve=False))
            rates["roles"].append(roles(work, data, bundle, args.events, args.workers, None))
            rates["single --curve"].append(single(work, data, model, args.events, args.workers, curve=True))
            rates["roles --curve"].append(roles(work, data, bundle, args.events, args.workers, keys))
            print(f"repeat {k + 1}: " + ", ".join(f"{name} {r[-1] / 1e6:.2f} M" for name, r in rates.items()),
                  flush=True)
        rates[f"roles, workers {args.early:.0f} s early"] = [
            roles(work, data, bundle, args.events, args.workers, None, early_s=args.early)]
        per_event = task_bytes_per_event(data)
    result = {name: median(r) for name, r in rates.items()}
    for name, rate in result.items():
        print(f"{name:32s} {rate / 1e6:6.2f} M events/s   (runs: {', '.join(f'{x / 1e6:.2f}' for x in rates[name])})")
    link = {name: (median(x[0] for x in v), median(x[1] for x in v)) for name, v in links.items()}
    for name, (gbs, ns) in link.items():
        print(f"raw tcp link, {name:5s}: {gbs:.2f} GB/s, {ns:.2f} CPU-ns per byte (both ends)")
    extra = (link["curve"][1] - link["plain"][1]) * per_event
    cores = os.cpu_count() or 1
    print(f"CurveZMQ's extra CPU per event's packed task ({per_event:.1f} bytes): {extra:.0f} ns; the plain roles take "
          f"{cores * 1e9 / result['roles']:.0f} CPU-ns per event if they keep all {cores} cores busy")
    ratios = {"roles/single": result["roles"] / result["single"],
              "roles --curve/single --curve": result["roles --curve"] / result["single --curve"],
              "curve/plain (roles)": result["roles --curve"] / result["roles"],
              "curve/plain (single)": result["single --curve"] / result["single"]}
    for name, ratio in ratios.items():
        print(f"{name} = {ratio:.3f}")
    if args.json:
        write_result(args.json, {"events": args.events, "workers": args.workers, "dtype": args.dtype, "runs": rates,
                                 "link": link,
                                 "task_bytes_per_event": per_event, "curve_extra_ns_per_event": extra,
                                 "median": result, "ratios": ratios}, headline={
            "separate roles / single command (tcp)": f"{ratios['roles/single']:.2f}",
            "CurveZMQ / plain (separate roles)": f"{ratios['curve/plain (roles)']:.2f}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
