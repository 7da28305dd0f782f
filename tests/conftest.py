"""Shared fixtures: small synthetic events in the ADC2021 layout, written to tmp_path; a tiny model
and its replay bundle; and a check, around every test, that it leaves no process or thread behind."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trigger.events import EventWriter
from trigger.schema import BLOCKS, CLASS, ETA, PHI, PT


def synthetic_events(n: int, seed: int = 0) -> np.ndarray:
    """Valid, pT-ordered, zero-padded events (float32) with random multiplicities."""
    rng = np.random.default_rng(seed)
    events = np.zeros((n, 19, 4), np.float32)
    for block in BLOCKS:
        counts = np.ones(n, int) if block.name == "met" else rng.integers(0, block.size + 1, n)
        if block.name == "electrons":
            counts = np.maximum(counts, 1)  # every event has a trigger electron
        for slot in range(block.size):
            on = counts > slot
            rows = np.flatnonzero(on)
            pt = rng.exponential(20.0, len(rows)) + 3.0
            events[rows, block.start + slot, PT] = pt
            eta = rng.uniform(-block.max_abs_eta, block.max_abs_eta, len(rows))  # MET: 0
            events[rows, block.start + slot, ETA] = eta
            events[rows, block.start + slot, PHI] = rng.uniform(-np.pi, np.pi, len(rows))
            events[rows, block.start + slot, CLASS] = block.class_code
        rows = events[:, block.rows]
        order = np.argsort(-rows[..., PT], axis=1, kind="stable")
        events[:, block.rows] = np.take_along_axis(rows, order[..., None], axis=1)
    events[:, 1, PT] += 25.0  # leading electron above the trigger threshold
    return events


@pytest.fixture
def events() -> np.ndarray:
    return synthetic_events(1000, seed=1)


@pytest.fixture
def event_file(tmp_path: Path, events: np.ndarray) -> Path:
    path = tmp_path / "events.h5"
    with EventWriter(path, attrs={"process": "synthetic"}) as writer:
        writer.append(events)
    return path


TINY_MODEL = ["model.encoder=[8]", "model.latent=2", "model.decoder=[8]", "training.epochs=2",
              "training.batch_size=128"]


def write_events(path: Path, events: np.ndarray, process: str, dtype: type = np.float32) -> Path:
    """``events`` in an event file as ``dtype`` (float64: as the public ADC2021 files hold them)."""
    with EventWriter(path, attrs={"process": process}, dtype=dtype) as writer:
        writer.append(events)
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small SM file and a signal with harder jets."""
    root = tmp_path_factory.mktemp("data")
    signal = synthetic_events(400, seed=9)
    signal[:, 9:, 0] *= 3.0
    return {"sm": write_events(root / "sm.h5", synthetic_events(1500, seed=8), "sm-cocktail"),
            "signal": write_events(root / "sig.h5", signal, "hardjets")}


def train_quietly(overrides: list[str], data: Path, out: Path) -> Path:
    """A model of the default configuration with ``overrides`` trained on ``data`` into ``out``, its log discarded."""
    from models.config import load_config
    from models.train import train

    with Path(os.devnull).open("w") as log:
        train(load_config(None, overrides), data, out, log=log)
    return out


def train_tiny(data: Path, out: Path, *settings: str) -> Path:
    """The tiny dense AE (``TINY_MODEL`` and ``settings``) trained on ``data`` through the command line."""
    from trigger.cli import main

    assert main(["train", "--data", str(data), "--out", str(out),
                 *[a for o in (*TINY_MODEL, *settings) for a in ("--set", o)]]) == 0
    return out


@pytest.fixture(scope="session")
def artifact_dir(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dense AE trained for two epochs through the command line."""
    return train_tiny(files["sm"], tmp_path_factory.mktemp("art") / "ae")


def float64_native(events: np.ndarray, scaler, n_changed: int = 50, seed: int = 0) -> np.ndarray:
    """``events`` as float64 whose leading-electron eta lies just below a grid boundary in float64 and
    on or above it once rounded to float32 (the public ADC2021 files are float64): projecting the
    float64 values directly gives another grid point than the input rule does, in ``n_changed`` events."""
    out = events.astype(np.float64)
    k = 3 * 1 + 1  # input index of slot 1's eta (the leading electron, filled in every synthetic event)
    center, step = float(scaler.center[k]), float(scaler.mantissa_step[k])
    rng = np.random.default_rng(seed)
    found = 0
    for m in rng.permutation(np.arange(int(np.ceil((-2.5 - center) / step)), int((2.5 - center) / step))):
        boundary = center + m * step
        value = boundary - step * 1e-6
        rounded = float(np.float32(value))
        if np.floor((value - center) / step) == np.floor((rounded - center) / step):
            continue  # the float32 rounding does not cross this boundary
        out[found, 1, 1] = value
        found += 1
        if found == n_changed:
            return out
    msg = f"only {found} boundary-crossing values found"
    raise AssertionError(msg)


def decided_batches(run_dir: Path, worker: int | None = None) -> int:
    """Batches a replay's collector has journaled (decided and acknowledged) so far, by ``worker`` if given."""
    from replay.journal import JOURNAL, read_records

    return sum(r["k"] == "d" and worker in (None, r["worker"]) for r in read_records(run_dir / JOURNAL))


def expected_accepts(bundle: Path, data: Path, events: int) -> np.ndarray:
    """The stream positions the bundle's emulated path accepts among ``events`` events of ``data``, cycled."""
    from replay.bundle import load_emulated
    from trigger.events import read_events

    particles = read_events(data)
    particles = np.concatenate([particles] * (events // len(particles) + 1))[:events]
    path = load_emulated(bundle)
    return np.flatnonzero(path.scores(particles) > path.threshold)


@pytest.fixture(scope="session")
def bundle(artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's replay bundle (``replay bundle``): what the replay roles load, with numpy only."""
    from replay.bundle import write_bundle

    out = tmp_path_factory.mktemp("bundle")
    write_bundle(artifact_dir, out)
    return out


def children(pid: int) -> dict[int, str]:
    """pid -> command line of the processes whose parent is ``pid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    return found


# -- nothing left behind ---------------------------------------------------------------------
#: Python threads a library starts once, at its first use (which may be in any test), and keeps
#: until the process exits: not a test's leak. (TensorFlow's and numba's pools are native threads,
#: not in ``threading.enumerate()``; ZeroMQ's are checked apart, see ``_zmq_threads``.)
LIBRARY_THREADS = {
    ("zmq.utils.garbage", "GarbageCollectorThread"),  # pyzmq frees zero-copy (copy=False) sends in it
    ("tqdm._monitor", "TMonitor"),  # tqdm's monitor of slow progress bars
}
#: how long a test's threads and processes may take to end after it returns
GRACE_S = 2.0


def _library_thread(thread: threading.Thread) -> bool:
    """One of ``LIBRARY_THREADS``, or the worker of Dask's module-wide offload executor
    (``distributed.utils._offload_executor``, "Dask-Offload_0")."""
    offload = getattr(sys.modules.get("distributed.utils"), "_offload_executor", None)
    return ((type(thread).__module__, type(thread).__name__) in LIBRARY_THREADS
            or thread in getattr(offload, "_threads", ()))


def _library_processes() -> set[int]:
    """multiprocessing's resource tracker: started by the first "spawn" child, kept until exit."""
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    pid = getattr(getattr(tracker, "_resource_tracker", None), "_pid", None)
    return set() if pid is None else {pid}


def _zmq_threads() -> set[int]:
    """Thread ids of ZeroMQ's native background threads (I/O and reaper) in this process."""
    found = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            if (task / "comm").read_text().startswith("ZMQbg/"):
                found.add(int(task.name))
        except (OSError, ValueError):
            continue  # ended meanwhile
    return found


def _lasting_zmq_contexts() -> dict[int, int]:
    """id -> number of background threads of the contexts that live until the process exits:
    ``zmq.Context.instance()`` (the roles' default) and pyzmq's garbage collector's."""
    zmq = sys.modules.get("zmq")
    if zmq is None:
        return {}
    garbage = sys.modules.get("zmq.utils.garbage")
    contexts = [zmq.Context._instance, getattr(getattr(garbage, "gc", None), "_context", None)]
    return {id(c): c.get(zmq.IO_THREADS) + 1 for c in contexts if c is not None and not c.closed}


def _describe_thread(thread: threading.Thread) -> str:
    target = getattr(thread, "_target", None)
    where = f"{type(thread).__module__}.{type(thread).__qualname__}"
    if target is not None:
        where += f", target {getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
    return f"thread {thread.name!r} ({where}, daemon={thread.daemon})"


def _end_processes(pids: set[int]) -> None:
    """Kill and reap the child processes a test left behind, so that it alone fails for them."""
    processes = {p.pid: p for p in multiprocessing.active_children()}
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        if pid in processes:
            processes[pid].join(5)
            continue
        deadline = time.monotonic() + 5
        try:
            while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                time.sleep(0.01)
        except ChildProcessError:
            pass  # reaped by its owner meanwhile


@pytest.fixture(autouse=True)
def leaves_no_process_or_thread() -> Iterator[None]:
    """Fails the test that leaves a child process, a thread or a ZeroMQ context's threads running
    after it returns (its fixtures' teardown included), and kills the processes."""
    threads, zmq_threads, contexts = set(threading.enumerate()), _zmq_threads(), _lasting_zmq_contexts()
    multiprocessing.active_children()  # reaps the multiprocessing children that have ended
    processes = set(children(os.getpid()))
    yield
    deadline = time.monotonic() + GRACE_S
    while True:
        multiprocessing.active_children()
        left_processes = {pid: line for pid, line in children(os.getpid()).items()
                          if pid not in processes and pid not in _library_processes()}
        left_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive() and not _library_thread(t)]
        lasting = sum(n for c, n in _lasting_zmq_contexts().items() if c not in contexts)  # started by this test
        left_zmq = max(0, len(_zmq_threads() - zmq_threads) - lasting)
        if not (left_processes or left_threads or left_zmq) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left_processes or left_threads or left_zmq:
        _end_processes(set(left_processes))
        left = [*(f"process {pid}: {line or '(exited, never waited for)'}" for pid, line in left_processes.items()),
                *map(_describe_thread, left_threads),
                *([f"{left_zmq} ZeroMQ background threads (a zmq.Context never terminated)"] if left_zmq else [])]
        pytest.fail(f"left behind {GRACE_S:g} s after the test:\n  " + "\n  ".join(left), pytrace=False)
