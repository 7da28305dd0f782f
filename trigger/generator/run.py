"""Generate a sample: split it into seeded chunks, run them on worker processes, write in order.

Chunk ``k`` always holds events ``[k * chunk_size, (k + 1) * chunk_size)`` and its seeds
derive only from (seed, process, k), so the same seed gives byte-identical
``Particles`` (and ``CaloRegions``) whatever the number of jobs, and an interrupted file can be resumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from trigger.errors import UsageError
from trigger.events import EventWriter, open_events
from trigger.generator.calo import CaloConfig, RegionMaker, region_attrs
from trigger.generator.chunks import (
    ProgressBar,
    check_plan,
    execute,
    on_scheduler,
    remaining_chunks,
    stdout_silenced,
    worker_progress,
)
from trigger.generator.detector import DetectorConfig
from trigger.generator.pileup import Overlay, PileupLibrary, PileupSpec
from trigger.generator.processes import COCKTAIL, COCKTAIL_FRACTIONS, GENERATED, get_process
from trigger.generator.pythia_source import PythiaSource, mpi_init_attrs, pythia_seed, pythia_settings, pythia_version
from trigger.schema import REGION_N_ETA, REGION_N_PHI, REGIONS_DATASET

__all__ = ("ChunkResult", "GenerationPlan", "GenerationResult", "apportion", "generate")

_stdout_silenced = stdout_silenced  # where tests/test_final_state.py imports it from
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
    pileup: PileupSpec | None = None
    calo: CaloConfig | None = None  # None: no CaloRegions
    lepton_trigger: bool = True  # False: every event kept, as the Level-1 trigger sees them

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
    pileup: PileupSpec | None = None  # overlaid minimum-bias interactions
    calo: CaloConfig | None = field(default_factory=CaloConfig)  # None: no CaloRegions (--no-regions)
    lepton_trigger: bool = True  # False: keep every event (--no-lepton-trigger)

    def __post_init__(self) -> None:
        get_process(self.process)
        check_plan(self.events, self.chunk_size, self.seed)
        if not self.lepton_trigger and (self.process == COCKTAIL.name or get_process(self.process).fake_electron):
            msg = (f"{self.process} is defined by the single-lepton trigger (its mix, QCD's forced fake electron); "
                   "generate zerobias for what the Level-1 trigger sees")
            raise UsageError(msg)

    @property
    def triggered(self) -> bool:
        """Whether only events passing the single-lepton trigger are kept."""
        return self.lepton_trigger and get_process(self.process).lepton_trigger

    @property
    def n_chunks(self) -> int:
        return check_plan(self.events, self.chunk_size, self.seed)

    def _cumulative(self, n: int) -> dict[str, int]:
        if self.process == COCKTAIL.name:
            return apportion(COCKTAIL_FRACTIONS, n)
        return {self.process: n}

    def chunk(self, index: int) -> Chunk:
        lo = index * self.chunk_size
        hi = min(lo + self.chunk_size, self.events)
        before, after = self._cumulative(lo), self._cumulative(hi)
        counts = tuple((name, after[name] - before[name]) for name in after)
        return Chunk(index, self.seed, get_process(self.process).code, counts, self.detector, self.pileup, self.calo,
                     self.lepton_trigger)

    def as_attrs(self) -> dict[str, Any]:
        """What the output bytes depend on (a file without regions records no ``calo_regions``, as before them;
        ``lepton_trigger`` is recorded only when turned off)."""
        pileup = {} if self.pileup is None else {"pileup": self.pileup.as_attrs()}
        calo = {} if self.calo is None else {"calo_regions": self.calo.as_attrs()}
        untriggered = {} if self.lepton_trigger else {"lepton_trigger": False}
        return {"process": self.process, "events_requested": self.events, "seed": self.seed,
                "chunk_size": self.chunk_size, "detector": asdict(self.detector), **pileup, **calo, **untriggered}


@dataclass
class GenerationResult:
    path: Path
    events: int
    tried: dict[str, int]
    seconds: float
    complete: bool


class ChunkResult(NamedTuple):
    """One generated chunk, in output order."""

    chunk: int  # its index
    events: NDArray[np.float32]
    codes: NDArray[np.int8]  # process code of each event
    tried: dict[str, int]  # events generated per process
    regions: NDArray[np.uint16] | None  # (n, 18, 14) CaloRegions, or None without them


# ----------------------------------------------------------------------------- worker side
def run_chunk(chunk: Chunk, progress: Any = None) -> ChunkResult:
    """Generate one chunk: its events, process codes, events tried per process and regions."""
    tick = worker_progress(progress)
    parts, images, tried = {}, {}, {}
    for name, n in chunk.counts:
        if n == 0:
            continue
        process = GENERATED[name] if chunk.lepton_trigger else replace(GENERATED[name], lepton_trigger=False)
        seeds = chunk.seed_sequence(process.code)
        overlay = None if chunk.pileup is None else Overlay(chunk.pileup, seeds)
        calo = None if chunk.calo is None else RegionMaker(chunk.calo, seeds)
        with stdout_silenced():
            source = PythiaSource(process, pythia_seed(seeds), chunk.detector, overlay=overlay)
            rng = np.random.default_rng(seeds.spawn(1)[0])
            parts[name], images[name] = source.events(n, rng, tick, calo)
        tried[name] = source.tried
    tick.flush()
    codes = np.concatenate([np.full(n, GENERATED[name].code, np.int8) for name, n in chunk.counts])
    codes = np.random.default_rng(chunk.seed_sequence(0)).permutation(codes)
    events = np.empty((len(codes), 19, 4), np.float32)
    regions = None if chunk.calo is None else np.empty((len(codes), REGION_N_PHI, REGION_N_ETA), np.uint16)
    for name, part in parts.items():
        events[codes == GENERATED[name].code] = part
        if regions is not None:
            regions[codes == GENERATED[name].code] = images[name]
    return ChunkResult(chunk.index, events, codes, tried, regions)


# ----------------------------------------------------------------------------- parent side
def _file_attrs(plan: GenerationPlan) -> dict[str, Any]:
    from trigger import __version__

    process = get_process(plan.process)
    members = COCKTAIL_FRACTIONS if process is COCKTAIL else {plan.process: 1.0}
    note, pileup = DETECTOR_NOTE, {}
    if plan.pileup is not None:
        note = note.replace("no Delphes, no pileup", f"no Delphes; pileup: Poisson(mu = {plan.pileup.mu:g}) "
                                                      "minimum-bias interactions overlaid before it, see 'pileup'")
        pileup = {"pileup": plan.pileup.describe()}
    trigger = ("at least one isolated electron (|eta|<3) or muon (|eta|<2.1), pT > 23 GeV" if plan.triggered
               else "none: every generated event kept" if process.lepton_trigger
               else "none: zero bias, every generated event kept")
    return {
        "generator": f"trigger generate {__version__} with Pythia8 (pythia8mc {pythia_version()})",
        "trigger_version": __version__,
        "pythia_version": pythia_version(),
        "generation": plan.as_attrs(),
        "process": plan.process,
        "description": process.description,
        "signal": process.signal,
        "seed": plan.seed,
        "pythia_settings": {name: list(GENERATED[name].pythia_settings) for name in members},
        "process_notes": {name: GENERATED[name].notes for name in members if GENERATED[name].notes},
        "process_codes": {name: GENERATED[name].code for name in members},
        "mix_fractions": members,
        "detector": plan.detector.as_attrs(),
        "detector_note": note,
        "jets": "anti-kt R=0.4 (Pythia SlowJet/fjcore) on visible final-state particles, "
                "|eta| < 4.9; jets within Delta R 0.4 of a selected lepton removed",
        "trigger": trigger,
        **pileup,
        **({} if plan.calo is None else {"calo_regions": region_attrs(plan.calo)}),
        **mpi_init_attrs(process),
    }


def _open_output(plan: GenerationPlan, path: Path, resume: bool, overwrite: bool) -> EventWriter:
    extras: dict[str, Any] = {"process_code": np.int8}
    if plan.calo is not None:
        extras[REGIONS_DATASET] = (np.uint16, (REGION_N_PHI, REGION_N_ETA))
    if path.exists() and resume:
        writer = EventWriter(path, append=True)
        recorded = writer.attrs.get("generation")
        if _extended_by(recorded, plan):
            if (held := writer.n_events) % plan.chunk_size:  # its last chunk was cut short: not the larger sample's
                writer.close()
                msg = f"{path}: holds {held} events, not a whole number of chunks of {plan.chunk_size}; cannot extend it"
                raise UsageError(msg)
            writer.set_attrs({"generation": plan.as_attrs(), "complete": False})
        elif recorded != plan.as_attrs():
            writer.close()
            raise UsageError(_resume_mismatch(path, recorded, plan))
        return writer
    if path.exists() and not overwrite:
        msg = f"{path} exists; pass --resume to continue it or --overwrite to replace it"
        raise UsageError(msg)
    attrs = _file_attrs(plan) | {"complete": False, "events_tried": {}}
    writer = EventWriter(path, attrs=attrs, extras=extras)
    if plan.calo is not None:
        writer.set_dataset_attrs(REGIONS_DATASET, region_attrs(plan.calo))
    return writer


def _extended_by(recorded: Any, plan: GenerationPlan) -> bool:
    """Whether ``plan`` asks for more events of a file's settings: each chunk depends only on its position, so
    the file's events are the first ones of the larger sample and generation continues after them."""
    if not isinstance(recorded, dict) or not isinstance(requested := recorded.get("events_requested"), int):
        return False
    return requested < plan.events and recorded | {"events_requested": plan.events} == plan.as_attrs()


def _resume_mismatch(path: Path, recorded: Any, plan: GenerationPlan) -> str:
    """Why ``path`` cannot be resumed with ``plan`` (one line)."""
    def objects(attrs: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in attrs.items() if k != "calo_regions"}

    if not isinstance(recorded, dict) or objects(recorded) != objects(plan.as_attrs()):
        return f"{path}: cannot resume, it was made with other settings: {recorded}"
    if "calo_regions" not in recorded:
        return f"{path}: cannot resume, it was made without CaloRegions: resume it with --no-regions"
    if plan.calo is None:
        return f"{path}: cannot resume, it was made with CaloRegions: resume it without --no-regions"
    return f"{path}: cannot resume, it was made with another region response: {recorded['calo_regions']}"


def _recorded_tried(writer: EventWriter) -> dict[str, int]:
    value = writer.attrs.get("events_tried") or {}
    return {str(k): int(v) for k, v in value.items()}


def generate(plan: GenerationPlan, path: str | Path, jobs: int = 1, resume: bool = False,
             overwrite: bool = False, show_progress: bool = True, scheduler: str | None = None) -> GenerationResult:
    """Generate ``plan`` into ``path``; Ctrl-C (or SIGTERM) leaves a valid, resumable file.

    ``scheduler``: run the chunks on a Dask cluster (``"local"``: a LocalCluster of ``jobs``
    workers here; else a scheduler address such as ``tcp://host:8786``) instead of a process pool.
    An unreachable scheduler is an error before anything is written.
    """
    path = Path(path)
    return on_scheduler(scheduler, jobs, lambda client: _generate(plan, path, jobs, resume, overwrite,
                                                                   show_progress, client))


def _finished(plan: GenerationPlan, path: Path) -> GenerationResult | None:
    """A resumed file that is already complete for ``plan``, read without opening it for writing
    (so a bundled or checksummed sample is left byte for byte as it is); else None."""
    with open_events(path) as events:
        attrs = events.attrs
        if not (attrs.get("complete") and events.n_events == plan.events and attrs.get("generation") == plan.as_attrs()):
            return None
        tried = {str(k): int(v) for k, v in (attrs.get("events_tried") or {}).items()}
        return GenerationResult(path, events.n_events, tried, 0.0, True)


class _EventSink:
    """Appends each chunk's events and process codes, and keeps the count of events tried per process."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer, self.tried = writer, _recorded_tried(writer)

    @property
    def n_written(self) -> int:
        return self.writer.n_events

    def write(self, result: ChunkResult) -> tuple[int, int]:
        _, events, codes, chunk_tried, regions = result
        extras = {"process_code": codes} | ({} if regions is None else {REGIONS_DATASET: regions})
        self.writer.append(events, **extras)
        for name, n in chunk_tried.items():
            self.tried[name] = self.tried.get(name, 0) + n
        self.writer.set_attrs({"events_tried": self.tried})
        self.writer.flush()
        return sum(chunk_tried.values()), len(events)

    def finish(self, complete: bool) -> None:
        self.writer.set_attrs({"complete": complete})
        self.writer.close()


def _prepare(plan: GenerationPlan, client: Any) -> None:
    """What the workers share, made here first: a cached MPI initialisation (else each worker makes its own at
    once) and, for workers forked from here, the pileup library (read once, shared with them)."""
    for name, _ in plan.chunk(0).counts:
        pythia_settings(GENERATED[name])
    if plan.pileup is not None and client is None:
        PileupLibrary.load(plan.pileup.library, plan.pileup.library_sha256)


def _generate(plan: GenerationPlan, path: Path, jobs: int, resume: bool, overwrite: bool, show_progress: bool,
              client: Any) -> GenerationResult:
    if resume and path.exists() and (finished := _finished(plan, path)) is not None:
        return finished
    sink = _EventSink(_open_output(plan, path, resume, overwrite))
    try:
        todo = [plan.chunk(k) for k in remaining_chunks(sink.n_written, plan.chunk_size, plan.n_chunks,
                                                        plan.events, path)]
    except BaseException:
        sink.writer.close()
        raise
    _prepare(plan, client)
    bar = ProgressBar(plan.events, sink.n_written, plan.process, show_progress)
    outcome = execute(todo, run_chunk, sink, bar, jobs, client, path)
    return GenerationResult(path, outcome.written, sink.tried, outcome.seconds, outcome.complete)
