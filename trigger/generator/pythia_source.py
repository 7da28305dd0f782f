"""Pythia8 event loop for one process: generate until enough events pass the trigger."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import TriggerError
from trigger.generator.detector import DetectorConfig, Particles, reconstruct, rho_grid_median
from trigger.generator.final_state import FinalStateReader, append_final
from trigger.generator.jets import PileupJets
from trigger.generator.processes import Process
from trigger.native import cached
from trigger.schema import REGION_N_ETA, REGION_N_PHI

if TYPE_CHECKING:
    from trigger.generator.calo import RegionMaker
    from trigger.generator.pileup import Overlay, Pileup

__all__ = ("MPI_INIT_SEED", "PYTHIA_SEED_MAX", "PythiaSource", "mpi_init_attrs", "mpi_init_file", "pythia_seed",
           "pythia_settings", "pythia_version")

PYTHIA_SEED_MAX = 900_000_000
MAX_PYTHIA_FAILURES = 100  # consecutive failed pythia.next() calls before giving up
#: the Random:seed of the one MPI initialisation a process with ``cached_mpi_init`` loads
MPI_INIT_SEED = 1
PID_OFFSET = 1 << 15  # particle ids as int16: the mass table's index is pid + PID_OFFSET


def _pythia() -> Any:
    try:
        import pythia8mc
    except ModuleNotFoundError as err:
        msg = "the event generator needs Pythia8's Python bindings: pip install 'pythia8mc==8.317.2'"
        raise ModuleNotFoundError(
            msg
        ) from err
    return pythia8mc


def pythia_version() -> str:
    from importlib.metadata import version

    return version("pythia8mc")


def pythia_seed(seeds: np.random.SeedSequence) -> int:
    """The ``Random:seed`` a seed sequence gives Pythia."""
    return int(seeds.generate_state(1)[0]) % PYTHIA_SEED_MAX + 1


def _configured(settings: tuple[str, ...], name: str) -> Any:
    pythia = _pythia().Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            msg = f"Pythia rejected the setting {line!r} of process {name}"
            raise TriggerError(msg)
    if not pythia.init():
        msg = f"Pythia failed to initialise process {name}"
        raise TriggerError(msg)
    return pythia


def mpi_init_file(settings: tuple[str, ...]) -> Path:
    """Pythia's multiparton-interaction initialisation for ``settings``, made once and cached.

    Minimum bias (``SoftQCD:inelastic``) spends about 8 s initialising MPI for its diffractive
    systems; loading the tables takes 0.5 s. A fresh initialisation draws random numbers, so its
    tables differ from seed to seed: this one is made with ``Random:seed = MPI_INIT_SEED`` and
    every chunk loads it (the first one too), so every chunk starts from the same tables whoever
    made them. Kept beside the compiled helpers, keyed by the settings and the Pythia version.
    """
    key = hashlib.sha256("\n".join((pythia_version(), *settings)).encode()).hexdigest()[:16]

    def make(path: Path) -> None:
        _configured((*settings, f"Random:seed = {MPI_INIT_SEED}", "MultipartonInteractions:reuseInit = 1",
                     f"MultipartonInteractions:initFile = {path}"), "MPI initialisation")

    return cached(f"mpi-init-{key}.dat", make)


def pythia_settings(process: Process) -> tuple[str, ...]:
    """Every setting a process's Pythia is made with, bar its seed."""
    if not process.cached_mpi_init:
        return process.pythia_settings
    return (*process.pythia_settings, "MultipartonInteractions:reuseInit = 2",
            f"MultipartonInteractions:initFile = {mpi_init_file(process.pythia_settings)}")


def mpi_init_attrs(process: Process) -> dict[str, Any]:
    """What a file records of the cached MPI initialisation its process loads (nothing without one)."""
    if not process.cached_mpi_init:
        return {}
    from trigger.filehash import file_sha256

    path = mpi_init_file(process.pythia_settings)
    return {"pythia_mpi_init": {
        "sha256": file_sha256(path), "made_with": f"Random:seed = {MPI_INIT_SEED}",
        "note": "MultipartonInteractions:reuseInit = 2: every chunk loads this one MPI initialisation "
                "(made once with the settings above) instead of spending ~8 s making its own"}}


class PythiaSource:
    """A seeded Pythia8 instance of one process plus the stand-in detector.

    ``native=False`` reads the final state in Python, as a reference for the compiled loop.
    ``overlay`` adds pileup to each generated event's visible final state before the detector.
    """

    def __init__(self, process: Process, seed: int, detector: DetectorConfig, native: bool = True,
                 overlay: Overlay | None = None) -> None:
        p8 = _pythia()
        self.process = process
        self.detector = detector
        self.overlay = overlay
        self._pythia = _configured((*pythia_settings(process), f"Random:seed = {seed}"), process.name)
        # anti-kt (power -1) on all visible final-state particles (select = 2), with their own masses (2)
        self._jets = p8.SlowJet(-1, detector.jet_r, detector.jet_truth_pt_min,
                                detector.visible_eta_max, 2, 2)
        self._final_state = FinalStateReader(native)
        self._pileup_jets = PileupJets(detector) if overlay is not None else None
        self._mass_table = np.full(2 * PID_OFFSET, np.nan)
        self.tried = 0

    def _truth_jets(self, pileup: Pileup | None = None) -> Particles:
        if pileup is not None:  # the jet finder sees the overlaid particles beside the event's own
            append_final(self._pythia.event, pileup.particles, self.masses(pileup.particles.pid))
        self._jets.analyze(self._pythia.event)
        n = self._jets.sizeJet()
        pt = np.array([self._jets.pT(i) for i in range(n)])
        eta = np.array([self._jets.y(i) for i in range(n)])  # the jet's rapidity stands for its eta
        phi = np.array([self._jets.phi(i) for i in range(n)])
        return Particles(np.zeros(n, np.int64), pt.reshape(-1), eta.reshape(-1), phi.reshape(-1))

    def _jets_with_pileup(self, merged: Particles, pileup: Pileup) -> Particles:
        """The jets of an event's particles and its pileup (``merged``): the compiled finder's, else SlowJet's."""
        assert self._pileup_jets is not None
        return self._pileup_jets(merged, self.masses(merged.pid), functools.partial(self._truth_jets, pileup))

    def _next(self) -> None:
        failures = 0
        while not self._pythia.next():
            failures += 1
            if failures >= MAX_PYTHIA_FAILURES:
                msg = f"Pythia failed {failures} times in a row for {self.process.name}"
                raise TriggerError(msg)
        self.tried += 1

    def final_states(self) -> Iterator[Particles]:
        """The visible final state of each next generated event (``tried`` counts them)."""
        while True:
            self._next()
            yield self._final_state(self._pythia.event)

    def masses(self, pid: NDArray[np.int64]) -> NDArray[np.float64]:
        """Pythia's nominal mass of each particle id."""
        if len(pid) and np.abs(pid).max() >= PID_OFFSET:  # beyond the table (not a visible particle of the SM)
            return np.array([self._pythia.particleData.m0(p) for p in pid.tolist()], dtype=np.float64)
        mass: NDArray[np.float64] = self._mass_table[pid + PID_OFFSET]
        missing = np.isnan(mass)
        if missing.any():
            for new in np.unique(pid[missing]).tolist():
                self._mass_table[new + PID_OFFSET] = self._pythia.particleData.m0(new)
            mass = self._mass_table[pid + PID_OFFSET]
        return mass

    def generate(self, n: int, rng: np.random.Generator,
                 progress: Callable[[int, int], None] | None = None) -> NDArray[np.float32]:
        """``n`` triggered events as an (n, 19, 4) array; ``progress(tried, kept)`` is told."""
        return self.events(n, rng, progress)[0]

    def events(self, n: int, rng: np.random.Generator, progress: Callable[[int, int], None] | None = None,
               calo: RegionMaker | None = None) -> tuple[NDArray[np.float32], NDArray[np.uint16] | None]:
        """``n`` triggered events and, with ``calo``, their (n, 18, 14) calorimeter regions (else None).

        The regions are made from each kept event's visible particles (its pileup included) after the
        detector, from their own random stream: the objects are the same bytes with or without them.
        """
        out = np.zeros((n, 19, 4), dtype=np.float32)
        images = None if calo is None else np.zeros((n, REGION_N_PHI, REGION_N_ETA), dtype=np.uint16)
        kept = 0
        finals = self.final_states()
        while kept < n:
            final, truth_jets, rho = next(finals), self._truth_jets, 0.0
            if self.overlay is not None:
                pileup = self.overlay.draw(self.tried - 1)
                if len(pileup.indices):
                    final = pileup.merged(final)  # nothing overlaid: exactly the event without pileup
                    truth_jets = functools.partial(self._jets_with_pileup, final, pileup)
                if self.overlay.subtraction:  # measured on every event, as a detector would
                    rho = rho_grid_median(final, self.detector)
            event = reconstruct(final, truth_jets, rng, self.detector, fake_electron=self.process.fake_electron,
                                lepton_trigger=self.process.lepton_trigger, rho=rho)
            if event is not None:
                out[kept] = event
                if images is not None and calo is not None:
                    images[kept] = calo(final, self.tried - 1)
                kept += 1
            if progress is not None:
                progress(1, int(event is not None))
        return out, images
