"""Run a sample's chunks, here or on Dask, and hand their results to one writer in chunk order.

What every chunked product of the generator shares (events with ``trigger generate``, minimum-bias
interactions with ``trigger pileup-library``): worker processes or a Dask cluster, progress ticks
from the workers to one bar, results written in chunk order (so the bytes do not depend on how
many workers made them), and Ctrl-C or SIGTERM leaving a valid file that ``--resume`` continues.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tqdm import tqdm

from trigger.errors import UsageError

__all__ = ("ChunkSink", "Outcome", "ProgressBar", "ProgressBatcher", "check_plan", "execute", "on_scheduler",
           "remaining_chunks",
           "stdout_silenced", "worker_progress")

C = TypeVar("C")
R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)
T = TypeVar("T")
#: progress(tried, kept): events generated and events kept since the last call
Progress = Callable[[int, int], None]


class ChunkSink(Protocol[R_contra]):
    """The one writer: takes the chunks' results in order and says how far it is."""

    @property
    def n_written(self) -> int: ...

    def write(self, result: R_contra) -> tuple[int, int]:
        """Store one chunk's result; return its (tried, kept) counts."""

    def finish(self, complete: bool) -> None:
        """Record whether the sample is complete and close the file."""


@dataclass
class Outcome:
    written: int
    seconds: float
    complete: bool


# ----------------------------------------------------------------------------- worker side
_progress_queue: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _progress_queue  # noqa: PLW0603  (a pool initializer hands the queue to its process)
    _progress_queue = progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and ends workers with SIGTERM


class ProgressBatcher:
    """Collects (tried, kept) ticks and forwards them at most a few times a second."""

    def __init__(self, sink: Progress | None) -> None:
        self.sink, self.tried, self.kept, self.last = sink, 0, 0, time.monotonic()

    def __call__(self, tried: int, kept: int) -> None:
        self.tried += tried
        self.kept += kept
        if time.monotonic() - self.last > 0.25:
            self.flush()

    def flush(self) -> None:
        if self.tried and self.sink is not None:
            self.sink(self.tried, self.kept)
        self.tried = self.kept = 0
        self.last = time.monotonic()


def worker_progress(progress: Progress | None) -> ProgressBatcher:
    """Where a chunk reports progress: ``progress`` if given, else the pool's queue (in a pool worker)."""
    if progress is None and _progress_queue is not None:
        queue_ = _progress_queue
        progress = lambda tried, kept: queue_.put((tried, kept))
    return ProgressBatcher(progress)


@contextlib.contextmanager
def stdout_silenced() -> Iterator[None]:
    """Pythia's bundled fjcore prints a banner on C++ stdout; keep it off ours."""
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    with Path(os.devnull).open("w") as devnull:
        os.dup2(devnull.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


# ----------------------------------------------------------------------------- parent side
class ProgressBar:
    """The one progress bar: ``bar(tried, kept)``; with ``passed``, the share kept is shown."""

    def __init__(self, total: int, initial: int, desc: str, show: bool, noun: str = "events", unit: str = "ev",
                 passed: bool = True) -> None:
        self.bar = tqdm(total=total, initial=initial, unit=unit, disable=not show, desc=desc, dynamic_ncols=True,
                        mininterval=1.0, smoothing=0.05)
        self.noun, self.passed, self.tried, self.kept = noun, passed, 0, 0

    def __call__(self, tried: int, kept: int) -> None:
        self.tried += tried
        self.kept += kept
        self.bar.update(kept)
        if self.passed:
            self.bar.set_postfix(passed=f"{self.kept / max(self.tried, 1):.1%}", refresh=False)


def on_scheduler(scheduler: str | None, jobs: int, run: Callable[[Any], T]) -> T:
    """``run(client)``: a Dask client for ``scheduler`` (see :func:`trigger.generator.cluster.connect`),
    or None without one. The client connects before ``run`` writes anything."""
    if jobs < 1:
        msg = f"--jobs must be >= 1, got {jobs}"
        raise UsageError(msg)
    if scheduler is None:
        return run(None)
    from trigger.generator.cluster import connect

    with connect(scheduler, jobs) as client:
        return run(client)


def check_plan(count: int, chunk_size: int, seed: int) -> int:
    """The number of chunks of ``count`` items (``--events``) in chunks of ``chunk_size`` for ``seed``;
    a value that cannot be used is a :class:`UsageError`."""
    for flag, value in (("--events", count), ("--chunk-size", chunk_size)):
        if value < 1:
            msg = f"{flag} must be >= 1, got {value}"
            raise UsageError(msg)
    if not 0 <= seed < 2**63:
        msg = f"--seed must be a non-negative integer, got {seed}"
        raise UsageError(msg)
    return -(-count // chunk_size)


def remaining_chunks(done: int, chunk_size: int, n_chunks: int, total: int, path: Path) -> range:
    """The chunks still to make in a file that holds ``done`` items."""
    if done % chunk_size and done != total:
        msg = f"{path}: holds {done}, not a whole number of chunks of {chunk_size}; cannot resume"
        raise UsageError(msg)
    return range(done // chunk_size, n_chunks)


def execute(todo: Sequence[C], run_chunk: Callable[[C, Any], R], sink: ChunkSink[R], bar: ProgressBar,
            jobs: int, client: Any, path: Path) -> Outcome:
    """Run ``todo`` (serially, on ``jobs`` processes or on the Dask ``client``) into ``sink``.

    ``run_chunk(chunk, progress)`` must be a module-level function (it travels to the workers).
    Ctrl-C or SIGTERM stops the run; what was written stays and the sink records it as incomplete.
    """
    start = time.monotonic()
    previous_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    complete = False
    try:
        if client is not None:
            from trigger.generator.cluster import run_on_dask

            run_on_dask(client, todo, run_chunk, lambda result: bar(*sink.write(result)))
        elif jobs == 1 or len(todo) <= 1:
            for chunk in todo:
                sink.write(run_chunk(chunk, bar))
        else:
            _run_parallel(todo, run_chunk, jobs, sink.write, bar)
        complete = True
    except KeyboardInterrupt:
        bar.bar.write(f"interrupted: {sink.n_written} {bar.noun} kept in {path}; "
                      "run the same command with --resume to continue")
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        bar.bar.close()
        written = sink.n_written
        sink.finish(complete)
    return Outcome(written, time.monotonic() - start, complete)


def _run_parallel(todo: Sequence[C], run_chunk: Callable[[C, Any], R], jobs: int, write: Callable[[R], Any],
                  on_progress: Progress) -> None:
    ctx = mp.get_context("fork")
    ticks = ctx.Queue()
    pool = ctx.Pool(jobs, initializer=_init_worker, initargs=(ticks,))
    try:
        pending = [pool.apply_async(run_chunk, (chunk,)) for chunk in todo]
        for handle in pending:  # results are written in chunk order
            while not handle.ready():
                _drain(ticks, on_progress, timeout=0.2)
            write(handle.get())
        pool.close()
        pool.join()
        _drain(ticks, on_progress, timeout=0.0)
    except BaseException:
        pool.terminate()
        pool.join()
        raise


def _drain(ticks: Any, on_progress: Progress, timeout: float) -> None:
    try:
        on_progress(*ticks.get(timeout=timeout) if timeout else ticks.get_nowait())
        while True:
            on_progress(*ticks.get_nowait())
    except queue.Empty:
        pass
