"""Training that streams: peak memory on a file of the public background's size, and epoch time
against the in-memory fit on the same events, side by side in one run.

1. Writes a float64 file of ``--events`` SM events (the bundled sample tiled, uncompressed, as
   ``background_for_training.h5`` is float64) and runs ``trigger train`` on it for one epoch in a
   child process; reports the child's peak resident memory and its epoch times.
2. On the first ``--compare-events`` of that file, one epoch of the float network fitted from
   arrays in memory (the earlier way) and one streamed from the prepared inputs (as ``train``
   streams), alternately ``--repeat`` times; the one-off scaling of each is not timed.

    python benchmarks/training.py [--events 13500000] [--compare-events 1000000] [--repeat 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import h5py
import numpy as np
from record import write_result


def write_big_file(path: Path, events: int) -> None:
    """``events`` float64 events: the bundled SM sample, tiled."""
    from trigger.events import read_events
    from trigger.sample import bundled_sample

    sample = read_events(bundled_sample().background).astype(np.float64)
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("Particles", (events, 19, 4), np.float64, chunks=(32768, 19, 4))
        for lo in range(0, events, len(sample)):
            hi = min(lo + len(sample), events)
            ds[lo:hi] = sample[: hi - lo]
        h5.attrs["process"] = "sm-cocktail"


def train_child(data: Path, out: Path) -> tuple[float, list[float], float]:
    """Peak RSS (GB) of ``trigger train`` for one epoch, its epoch times (s) and wall time."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "trigger.cli", "train", "--config",
                           str(ROOT / "models/configs/dense_ae.toml"), "--data", str(data), "--out", str(out),
                           "--set", "training.epochs=1"], capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    epochs = [float(s) for s in re.findall(r"epoch\s+1/\s*1 .*\(([\d.]+) s\)", done.stdout)]
    return peak_kb / 2**20, epochs, wall


def compare_epochs(data: Path, events: int, repeat: int) -> tuple[list[float], list[float]]:
    """One epoch of the float network from arrays in memory and streamed, alternately."""
    import tensorflow as tf

    from models.config import load_config
    from models.networks import build_networks
    from models.stream import EventBatches, training_targets
    from trigger.events import open_events
    from trigger.preprocess import Scaler, filled_mask

    config = load_config(ROOT / "models/configs/dense_ae.toml")
    mc, tc = config.model, config.training
    with open_events(data) as f:
        particles = f.read(0, events)
    scaler = Scaler(mc.scaling, mc.log_pt, mc.input_type).fit(particles)  # type: ignore[arg-type]
    x = scaler.transform(particles)
    y = training_targets(mc.loss, x, filled_mask(particles))
    stream = EventBatches(data, (0, events), scaler, mc.loss, tc.batch_size, seed=1, cache=data.parent / "cache")
    stream.prepare()  # as train() does once, like the in-memory transform above (neither is timed)
    in_memory, streamed = [], []
    for _ in range(repeat):
        for kind, times in (("memory", in_memory), ("stream", streamed)):
            tf.keras.utils.set_random_seed(1)
            nets = build_networks(mc, quantized=False)
            nets.trainable.compile(optimizer=tf.keras.optimizers.Adam(tc.learning_rate), loss="mse")
            start = time.perf_counter()
            if kind == "memory":
                nets.trainable.fit(x, y, batch_size=tc.batch_size, epochs=1, shuffle=True, verbose=0)
            else:
                nets.trainable.fit(stream.dataset(), epochs=1, verbose=0)
            times.append(time.perf_counter() - start)
    return in_memory, streamed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=13_500_000, help="events of the big float64 file")
    parser.add_argument("--compare-events", type=int, default=1_000_000, help="events of the epoch comparison")
    parser.add_argument("--repeat", type=int, default=2, help="alternating repeats of the comparison")
    parser.add_argument("--workdir", type=Path, default=None, help="where the big file goes (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers, commit, machine and command here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        big = Path(tmp) / "background_float64.h5"
        start = time.monotonic()
        write_big_file(big, args.events)
        size = big.stat().st_size / 1e9
        print(f"wrote {args.events:,} float64 events ({size:.1f} GB) in {time.monotonic() - start:.0f} s", flush=True)
        peak, epochs, wall = train_child(big, Path(tmp) / "model")
        print(f"trigger train, 1 epoch, streamed: peak resident memory {peak:.2f} GB; epoch times "
              f"{', '.join(f'{e:.0f} s' for e in epochs)} (float, quantized); {wall:.0f} s in all", flush=True)
        memory, streamed = compare_epochs(big, args.compare_events, args.repeat)
        print(f"one epoch of the float network on {args.compare_events:,} events: in memory "
              f"{', '.join(f'{t:.1f}' for t in memory)} s, streamed {', '.join(f'{t:.1f}' for t in streamed)} s")
        ratio = float(np.median(streamed) / np.median(memory))
        print(f"streamed/in-memory = {ratio:.3f}")
    if args.json:
        write_result(args.json, {"events": args.events, "file_gb": size, "peak_rss_gb": peak, "epoch_s": epochs,
                                 "train_wall_s": wall, "compare_events": args.compare_events,
                                 "in_memory_epoch_s": memory, "streamed_epoch_s": streamed,
                                 "streamed_over_in_memory": ratio},
                     headline={"training, peak resident memory on the big file": f"{peak:.2f} GB",
                               "training epoch, streamed / in memory": f"{ratio:.3f}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
