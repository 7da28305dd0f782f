"""Generate a sample: split it into seeded chunks, run them on worker processes, write in order.

Chunk ``k`` always holds events ``[k * chunk_size, (k + 1) * chunk_size)`` and its seeds
derive only from (seed, process, k), so the same seed gives byte-identical
``Particles`` whatever the number of jobs, and an interrupted file can be resumed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from trigger.errors import UsageError
from trigger.events import EventWriter, open_events
from trigger.generator.detector import DetectorConfig
from trigger.generator.processes import COCKTAIL, COCKTAIL_FRACTIONS, PROCESSES, get_process
from trigger.generator.pythia_source import PythiaSource, pythia_version

__all__ = ("GenerationPlan", "GenerationResult", "apportion", "generate")

PYTHIA_SEED_MAX = 900_000_000
DETECTOR_NOTE = (
    "Stand-in detector: Gaussian smearing of generator-level objects (no Delphes, no pileup); "
    "MPI on. See the 'detector' attribute for every number."
)


def apportion(fractions: dict[str, float], total: int) -> dict[str, int]:
    """Split ``total`` into integer counts proportional to ``fractions`` (largest remainder)."""
    norm = sum(fractions.values())
    exact = {name: total * f / norm for name, f in fractions.items()}
    counts = {name: int(np.floor(x)) for name, x in exact.items()}
    by_remainder = sorted(fractions, key=lambda name: (counts[name] - exact[name], name))
    for name in by_remainder[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


@dataclass(frozen=True)
class Chunk:
    """One unit of work: ``counts`` events of each process, interleaved with a seeded order."""

    index: int
    seed: int
    process_code: int
    counts: tuple[tuple[str, int], ...]
    detector: DetectorConfig

    def seed_sequence(self, sub: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.seed, spawn_key=(self.process_code, self.index, sub))


@dataclass(frozen=True)
class GenerationPlan:
    """What to generate; everything that determines the output bytes."""

    process: str
    events: int
    seed: int
    chunk_size: int = 500
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        get_process(self.process)
        if self.events < 1:
            msg = f"--events must be >= 1, got {self.events}"
            raise UsageError(msg)
        if self.chunk_size < 1:
            msg = f"--chunk-size must be >= 1, got {self.chunk_size}"
            raise UsageError(msg)
        if not 0 <= self.seed < 2**63:
            msg = f"--seed must be a non-negative integer, got {self.seed}"
            raise UsageError(msg)

    @property
    def n_chunks(self) -> int:
        return -(-self.events // self.chunk_size)

    def _cumulative(self, n: int) -> dict[str, int]:
        if self.process == COCKTAIL.name:
            return apportion(COCKTAIL_FRACTIONS, n)
        return {self.process: n}

    def chunk(self, index: int) -> Chunk:
        lo = index * self.chunk_size
        hi = min(lo + self.chunk_size, self.events)
        before, after = self._cumulative(lo), self._cumulative(hi)
        counts = tuple((name, after[name] - before[name]) for name in after)
        return Chunk(index, self.seed, get_process(self.process).code, counts, self.detector)

    def as_attrs(self) -> dict[str, Any]:
        return {"process": self.process, "events_requested": self.events, "seed": self.seed,
                "chunk_size": self.chunk_size, "detector": asdict(self.detector)}


@dataclass
class GenerationResult:
    path: Path
    events: int
    tried: dict[str, int]
    seconds: float
    complete: bool


# ----------------------------------------------------------------------------- worker side
_progress_queue: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _progress_queue  # noqa: PLW0603  (a pool initializer hands the queue to its process)
    _progress_queue = progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and ends workers with SIGTERM


class _ProgressBatcher:
    """Collects (tried, kept) ticks and forwards them at most a few times a second."""

    def __init__(self, sink: Any) -> None:
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


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
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


def run_chunk(chunk: Chunk, progress: Any = None) -> tuple[int, NDArray[np.float32], NDArray[np.int8],
                                                          dict[str, int]]:
    """Generate one chunk: (index, particles, process codes, events tried per process)."""
    if progress is None and _progress_queue is not None:
        progress = lambda tried, kept: _progress_queue.put((tried, kept))
    tick = _ProgressBatcher(progress)
    parts, tried = {}, {}
    for name, n in chunk.counts:
        if n == 0:
            continue
        process = PROCESSES[name]
        seeds = chunk.seed_sequence(process.code)
        pythia_seed = int(seeds.generate_state(1)[0]) % PYTHIA_SEED_MAX + 1
        rng = np.random.default_rng(seeds.spawn(1)[0])
        with _stdout_silenced():
            source = PythiaSource(process, pythia_seed, chunk.detector)
            parts[name] = source.generate(n, rng, tick)
        tried[name] = source.tried
    tick.flush()
    codes = np.concatenate([np.full(n, PROCESSES[name].code, np.int8) for name, n in chunk.counts])
    codes = np.random.default_rng(chunk.seed_sequence(0)).permutation(codes)
    events = np.empty((len(codes), 19, 4), np.float32)
    for name, part in parts.items():
        events[codes == PROCESSES[name].code] = part
    return chunk.index, events, codes, tried


# ----------------------------------------------------------------------------- parent side
def _file_attrs(plan: GenerationPlan) -> dict[str, Any]:
    from trigger import __version__

    process = get_process(plan.process)
    members = COCKTAIL_FRACTIONS if process is COCKTAIL else {plan.process: 1.0}
    return {
        "generator": f"trigger generate {__version__} with Pythia8 (pythia8mc {pythia_version()})",
        "trigger_version": __version__,
        "pythia_version": pythia_version(),
        "generation": plan.as_attrs(),
        "process": plan.process,
        "description": process.description,
        "signal": process.signal,
        "seed": plan.seed,
        "pythia_settings": {name: list(PROCESSES[name].pythia_settings) for name in members},
        "process_notes": {name: PROCESSES[name].notes for name in members if PROCESSES[name].notes},
        "process_codes": {name: PROCESSES[name].code for name in members},
        "mix_fractions": members,
        "detector": plan.detector.as_attrs(),
        "detector_note": DETECTOR_NOTE,
        "jets": "anti-kt R=0.4 (Pythia SlowJet/fjcore) on visible final-state particles, "
                "|eta| < 4.9; jets within Delta R 0.4 of a selected lepton removed",
        "trigger": "at least one isolated electron (|eta|<3) or muon (|eta|<2.1), pT > 23 GeV",
    }


def _open_output(plan: GenerationPlan, path: Path, resume: bool, overwrite: bool) -> EventWriter:
    extras = {"process_code": np.int8}
    if path.exists() and resume:
        writer = EventWriter(path, append=True)
        recorded = writer.attrs.get("generation")
        if recorded != plan.as_attrs():
            writer.close()
            msg = f"{path}: cannot resume, it was made with other settings: {recorded}"
            raise UsageError(msg)
        return writer
    if path.exists() and not overwrite:
        msg = f"{path} exists; pass --resume to continue it or --overwrite to replace it"
        raise UsageError(msg)
    attrs = _file_attrs(plan) | {"complete": False, "events_tried": {}}
    return EventWriter(path, attrs=attrs, extras=extras)


def _recorded_tried(writer: EventWriter) -> dict[str, int]:
    value = writer.attrs.get("events_tried") or {}
    return {str(k): int(v) for k, v in value.items()}


def generate(plan: GenerationPlan, path: str | Path, jobs: int = 1, resume: bool = False,
             overwrite: bool = False, show_progress: bool = True, scheduler: str | None = None) -> GenerationResult:
    """Generate ``plan`` into ``path``; Ctrl-C (or SIGTERM) leaves a valid, resumable file.

    ``scheduler``: run the chunks on a Dask cluster (``"local"``: a LocalCluster of ``jobs``
    workers here; else a scheduler address such as ``tcp://host:8786``) instead of a process pool.
    """
    path = Path(path)
    if jobs < 1:
        msg = f"--jobs must be >= 1, got {jobs}"
        raise UsageError(msg)
    if scheduler is None:
        return _generate(plan, path, jobs, resume, overwrite, show_progress, None)
    from trigger.generator.cluster import connect

    with connect(scheduler, jobs) as client:  # before the file: an unreachable scheduler writes nothing
        return _generate(plan, path, jobs, resume, overwrite, show_progress, client)


def _finished(plan: GenerationPlan, path: Path) -> GenerationResult | None:
    """A resumed file that is already complete for ``plan``, read without opening it for writing
    (so a bundled or checksummed sample is left byte for byte as it is); else None."""
    with open_events(path) as events:
        attrs = events.attrs
        if not (attrs.get("complete") and events.n_events == plan.events and attrs.get("generation") == plan.as_attrs()):
            return None
        tried = {str(k): int(v) for k, v in (attrs.get("events_tried") or {}).items()}
        return GenerationResult(path, events.n_events, tried, 0.0, True)


def _generate(plan: GenerationPlan, path: Path, jobs: int, resume: bool, overwrite: bool, show_progress: bool,
              client: Any) -> GenerationResult:
    if resume and path.exists() and (finished := _finished(plan, path)) is not None:
        return finished
    writer = _open_output(plan, path, resume, overwrite)
    done = writer.n_events
    if done % plan.chunk_size and done != plan.events:
        writer.close()
        msg = f"{path}: holds {done} events, not a whole number of chunks; cannot resume"
        raise UsageError(msg)
    tried = _recorded_tried(writer)
    todo = [plan.chunk(k) for k in range(done // plan.chunk_size, plan.n_chunks)]
    bar = tqdm(total=plan.events, initial=done, unit="ev", disable=not show_progress,
               desc=plan.process, dynamic_ncols=True, mininterval=1.0, smoothing=0.05)
    seen = {"tried": 0, "kept": 0}

    def on_progress(n_tried: int, n_kept: int) -> None:
        seen["tried"] += n_tried
        seen["kept"] += n_kept
        bar.update(n_kept)
        bar.set_postfix(passed=f"{seen['kept'] / max(seen['tried'], 1):.1%}", refresh=False)

    def write(result: tuple[int, NDArray[np.float32], NDArray[np.int8], dict[str, int]]) -> None:
        _, events, codes, chunk_tried = result
        writer.append(events, process_code=codes)
        for name, n in chunk_tried.items():
            tried[name] = tried.get(name, 0) + n
        writer.set_attrs({"events_tried": tried})
        writer.flush()

    start = time.monotonic()
    previous_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
    complete = False
    try:
        if client is not None:
            from trigger.generator.cluster import run_on_dask

            def write_and_count(result: tuple[int, NDArray[np.float32], NDArray[np.int8], dict[str, int]]) -> None:
                write(result)
                on_progress(sum(result[3].values()), len(result[1]))

            run_on_dask(client, todo, run_chunk, write_and_count)
        elif jobs == 1 or len(todo) <= 1:
            for chunk in todo:
                write(run_chunk(chunk, on_progress))
        else:
            _run_parallel(todo, jobs, write, on_progress)
        complete = True
    except KeyboardInterrupt:
        bar.write(f"interrupted: {writer.n_events} events kept in {path}; "
                  "run the same command with --resume to continue")
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        bar.close()
        writer.set_attrs({"complete": complete})
        n_written = writer.n_events
        writer.close()
    return GenerationResult(path, n_written, tried, time.monotonic() - start, complete)


def _run_parallel(todo: list[Chunk], jobs: int, write: Any, on_progress: Any) -> None:
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


def _drain(ticks: Any, on_progress: Any, timeout: float) -> None:
    try:
        on_progress(*ticks.get(timeout=timeout) if timeout else ticks.get_nowait())
        while True:
            on_progress(*ticks.get_nowait())
    except queue.Empty:
        pass
