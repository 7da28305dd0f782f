"""Pythia8 event loop for one process: generate until enough events pass the trigger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import TriggerError
from trigger.generator.detector import DetectorConfig, Particles, reconstruct
from trigger.generator.final_state import FinalStateReader
from trigger.generator.processes import Process

__all__ = ("PythiaSource", "pythia_version")

MAX_PYTHIA_FAILURES = 100  # consecutive failed pythia.next() calls before giving up


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


class PythiaSource:
    """A seeded Pythia8 instance of one process plus the stand-in detector.

    ``native=False`` reads the final state in Python, as a reference for the compiled loop.
    """

    def __init__(self, process: Process, seed: int, detector: DetectorConfig, native: bool = True) -> None:
        p8 = _pythia()
        self.process = process
        self.detector = detector
        self._pythia = p8.Pythia("", False)
        for line in (*process.pythia_settings, f"Random:seed = {seed}"):
            if not self._pythia.readString(line):
                msg = f"Pythia rejected the setting {line!r} of process {process.name}"
                raise TriggerError(msg)
        if not self._pythia.init():
            msg = f"Pythia failed to initialise process {process.name}"
            raise TriggerError(msg)
        # anti-kt (power -1) on all visible final-state particles (select = 2), massless (2)
        self._jets = p8.SlowJet(-1, detector.jet_r, detector.jet_truth_pt_min,
                                detector.visible_eta_max, 2, 2)
        self._final_state = FinalStateReader(native)
        self.tried = 0

    def _truth_jets(self) -> Particles:
        self._jets.analyze(self._pythia.event)
        n = self._jets.sizeJet()
        pt = np.array([self._jets.pT(i) for i in range(n)])
        eta = np.array([self._jets.y(i) for i in range(n)])  # massless jets: y == eta
        phi = np.array([self._jets.phi(i) for i in range(n)])
        return Particles(np.zeros(n, np.int64), pt.reshape(-1), eta.reshape(-1), phi.reshape(-1))

    def _next(self) -> None:
        failures = 0
        while not self._pythia.next():
            failures += 1
            if failures >= MAX_PYTHIA_FAILURES:
                msg = f"Pythia failed {failures} times in a row for {self.process.name}"
                raise TriggerError(msg)
        self.tried += 1

    def generate(self, n: int, rng: np.random.Generator,
                 progress: Callable[[int, int], None] | None = None) -> NDArray[np.float32]:
        """``n`` triggered events as an (n, 19, 4) array; ``progress(tried, kept)`` is told."""
        out = np.zeros((n, 19, 4), dtype=np.float32)
        kept = 0
        while kept < n:
            self._next()
            event = reconstruct(self._final_state(self._pythia.event), self._truth_jets, rng, self.detector,
                                fake_electron=self.process.fake_electron)
            if event is not None:
                out[kept] = event
                kept += 1
            if progress is not None:
                progress(1, int(event is not None))
        return out
