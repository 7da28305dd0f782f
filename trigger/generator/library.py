"""``trigger pileup-library``: minimum-bias interactions generated once, kept to be overlaid as pileup.

Each interaction is Pythia's ``SoftQCD:inelastic`` with MPI on (zero bias's settings); its
visible final-state particles within the detector's acceptance (|eta| < 4.9) are stored as flat
columns, one interaction after the other, and ``n_particles`` says how many each has:

==============  =========  ==============================================
dataset         dtype      content
==============  =========  ==============================================
``n_particles`` int32      particles of each interaction (L,)
``pt``          float32    transverse momentum [GeV] (M,)
``eta``         float16    pseudorapidity (M,), 0.004 at worst
``phi``         float16    azimuth (M,), 0.002 at worst
``pid``         int16      PDG id (M,): the detector picks e and mu by it, the jet finder its mass
==============  =========  ==============================================

gzip-compressed, about 10 bytes a particle in memory and 140 particles an interaction. Like
``trigger generate`` the interactions come in chunks seeded from (seed, chunk), so the file is
the same for any ``--jobs`` or Dask cluster, and an interrupted file resumes. A complete file
records the SHA-256 of its content (``content_sha256``: the datasets above, in that order), by
which every sample overlaid with it names it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from trigger.errors import InputFileError, UsageError
from trigger.generator import chunks
from trigger.generator.detector import DetectorConfig
from trigger.generator.processes import PILEUP_LIBRARY_CODE, ZEROBIAS
from trigger.generator.pythia_source import PythiaSource, mpi_init_attrs, pythia_seed, pythia_settings, pythia_version

__all__ = ("COLUMNS", "COUNTS", "FORMAT", "LibraryPlan", "LibraryResult", "build_library", "library_sha256",
           "open_library")

FORMAT = "trigger pileup library 1"
COUNTS = "n_particles"
COLUMNS: dict[str, type[np.generic]] = {"pt": np.float32, "eta": np.float16, "phi": np.float16, "pid": np.int16}
HASH_BATCH = 1 << 22
Columns = dict[str, NDArray[Any]]


def open_library(path: str | Path, mode: str = "r") -> h5py.File:
    """A library file opened with h5py; a missing or unreadable one is an :class:`InputFileError`."""
    path = Path(path)
    if not path.is_file() or not h5py.is_hdf5(path):
        raise InputFileError(path, "no such file" if not path.exists() else "not an HDF5 file")
    try:
        return h5py.File(path, mode)
    except OSError as err:
        raise InputFileError(path, f"damaged HDF5 file ({err})") from err


@dataclass(frozen=True)
class LibraryChunk:
    index: int
    seed: int
    interactions: int
    eta_max: float


@dataclass(frozen=True)
class LibraryPlan:
    """What to generate; everything the library's bytes depend on."""

    interactions: int
    seed: int
    chunk_size: int = 1000
    eta_max: float = DetectorConfig().visible_eta_max

    def __post_init__(self) -> None:
        chunks.check_plan(self.interactions, self.chunk_size, self.seed)

    @property
    def n_chunks(self) -> int:
        return chunks.check_plan(self.interactions, self.chunk_size, self.seed)

    def chunk(self, index: int) -> LibraryChunk:
        n = min(self.chunk_size, self.interactions - index * self.chunk_size)
        return LibraryChunk(index, self.seed, n, self.eta_max)

    def as_attrs(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LibraryResult:
    path: Path
    interactions: int
    particles: int
    seconds: float
    complete: bool
    sha256: str | None


def run_library_chunk(chunk: LibraryChunk, progress: Any = None) -> tuple[int, NDArray[np.int32], Columns]:
    """Generate one chunk: (index, particles per interaction, the particle columns)."""
    tick = chunks.worker_progress(progress)
    seeds = np.random.SeedSequence(chunk.seed, spawn_key=(PILEUP_LIBRARY_CODE, chunk.index))
    with chunks.stdout_silenced():
        source = PythiaSource(ZEROBIAS, pythia_seed(seeds), DetectorConfig())
    counts = np.zeros(chunk.interactions, np.int32)
    parts: dict[str, list[NDArray[Any]]] = {name: [] for name in COLUMNS}
    for k, final in zip(range(chunk.interactions), source.final_states(), strict=False):
        inside = np.abs(final.eta) < chunk.eta_max
        counts[k] = inside.sum()
        for name in COLUMNS:
            parts[name].append(getattr(final, name)[inside])
        tick(1, 1)
    tick.flush()
    columns = {name: np.concatenate(values).astype(COLUMNS[name]) for name, values in parts.items()}
    if not np.array_equal(columns["pid"], np.concatenate(parts["pid"])):
        msg = "a particle id does not fit the library's int16"
        raise OverflowError(msg)
    return chunk.index, counts, columns


def library_sha256(h5: h5py.File) -> str:
    """SHA-256 of a library's content: ``n_particles`` then each column, in :data:`COLUMNS` order."""
    digest = hashlib.sha256()
    for name in (COUNTS, *COLUMNS):
        data = h5[name]
        for lo in range(0, len(data), HASH_BATCH):
            digest.update(np.ascontiguousarray(data[lo:lo + HASH_BATCH]).tobytes())
    return digest.hexdigest()


class _LibrarySink(chunks.ChunkSink[tuple[int, NDArray[np.int32], Columns]]):
    """Appends chunks to the open file: the particles first, then their counts (what says they are there)."""

    def __init__(self, h5: h5py.File) -> None:
        self.h5 = h5
        self.sha256: str | None = None

    @property
    def n_written(self) -> int:
        return len(self.h5[COUNTS])

    def write(self, result: tuple[int, NDArray[np.int32], Columns]) -> tuple[int, int]:
        _, counts, columns = result
        for name, values in ((*columns.items(), (COUNTS, counts))):
            data = self.h5[name]
            lo = len(data)
            data.resize(lo + len(values), axis=0)
            data[lo:] = values
        self.h5.flush()
        return len(counts), len(counts)

    def finish(self, complete: bool) -> None:
        if complete:
            self.sha256 = library_sha256(self.h5)
            self.h5.attrs["content_sha256"] = self.sha256
        self.h5.attrs["complete"] = complete
        self.h5.close()


def _file_attrs(plan: LibraryPlan) -> dict[str, Any]:
    from trigger import __version__

    return {
        "format": FORMAT,
        "generator": f"trigger pileup-library {__version__} with Pythia8 (pythia8mc {pythia_version()})",
        "generation": json.dumps(plan.as_attrs(), sort_keys=True),
        "description": "visible final-state particles of minimum-bias pp interactions at 13 TeV, |eta| < eta_max",
        "pythia_settings": json.dumps(list(ZEROBIAS.pythia_settings)),
        "columns": json.dumps({name: np.dtype(kind).name for name, kind in COLUMNS.items()}),
        **{key: json.dumps(value, sort_keys=True) for key, value in mpi_init_attrs(ZEROBIAS).items()},
        "complete": False,
    }


def _open(plan: LibraryPlan, path: Path, resume: bool, overwrite: bool) -> h5py.File:
    if path.exists() and resume:
        h5 = open_library(path, "r+")
        recorded = h5.attrs.get("generation")
        if h5.attrs.get("format") != FORMAT or recorded != json.dumps(plan.as_attrs(), sort_keys=True):
            h5.close()
            msg = f"{path}: cannot resume, it was made with other settings: {recorded}"
            raise UsageError(msg)
        kept = int(h5[COUNTS][:].sum())
        for name in COLUMNS:  # particles of a chunk whose counts were never written
            h5[name].resize(kept, axis=0)
        return h5
    if path.exists() and not overwrite:
        msg = f"{path} exists; pass --resume to continue it or --overwrite to replace it"
        raise UsageError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    h5 = h5py.File(path, "w", track_order=True)
    for name, kind, chunk in ((COUNTS, np.int32, 4096), *((n, k, 1 << 16) for n, k in COLUMNS.items())):
        h5.create_dataset(name, shape=(0,), maxshape=(None,), dtype=kind, chunks=(chunk,), compression="gzip",
                          compression_opts=4, shuffle=True, track_times=False)
    h5.attrs.update(_file_attrs(plan))
    return h5


def build_library(plan: LibraryPlan, path: str | Path, jobs: int = 1, resume: bool = False, overwrite: bool = False,
                  show_progress: bool = True, scheduler: str | None = None) -> LibraryResult:
    """Generate ``plan`` into ``path`` (as ``trigger generate`` does events: resumable, on Dask too)."""
    path = Path(path)

    def build(client: Any) -> LibraryResult:
        if resume and path.exists():
            with open_library(path) as h5:
                if h5.attrs.get("complete") and h5.attrs.get("generation") == json.dumps(plan.as_attrs(), sort_keys=True) \
                        and len(h5[COUNTS]) == plan.interactions:  # finished: read, never rewritten
                    return LibraryResult(path, plan.interactions, len(h5["pt"]), 0.0, True,
                                         str(h5.attrs["content_sha256"]))
        pythia_settings(ZEROBIAS)  # its cached MPI initialisation, made here before the workers need it
        sink = _LibrarySink(_open(plan, path, resume, overwrite))
        try:
            todo = [plan.chunk(k) for k in chunks.remaining_chunks(sink.n_written, plan.chunk_size, plan.n_chunks,
                                                            plan.interactions, path)]
        except UsageError:
            sink.h5.close()
            raise
        bar = chunks.ProgressBar(plan.interactions, sink.n_written, "min-bias", show_progress, noun="interactions",
                          unit="int", passed=False)
        outcome = chunks.execute(todo, run_library_chunk, sink, bar, jobs, client, path)
        with open_library(path) as h5:
            particles = len(h5["pt"])
        return LibraryResult(path, outcome.written, particles, outcome.seconds, outcome.complete, sink.sha256)

    return chunks.on_scheduler(scheduler, jobs, build)
