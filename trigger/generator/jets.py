"""Anti-kt jets of events with pileup, found in C++ (``antikt.cpp``, compiled with g++ on first use).

Pythia's SlowJet (FastJet's core) spends 20-30 ms on the ten thousand particles of an event at
<mu> = 60, three quarters of a zero-bias event's time. ``antikt.cpp`` finds the same jets (E-scheme,
distances in rapidity and azimuth, the particles' own masses; see its header for how) from the
particles' columns, without copying them into Pythia's event record. Each :class:`PileupJets`
checks itself against SlowJet on its first event with pileup and steps aside, with a warning, where
the two disagree or g++ is missing. Events without pileup keep SlowJet: their bytes do not change.
"""

from __future__ import annotations

import ctypes
import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.generator.detector import DetectorConfig, Particles
from trigger.native import FOR_THIS_CPU, load_helper

__all__ = ("PileupJets", "antikt")

SOURCE = Path(__file__).with_name("antikt.cpp")
#: how closely the compiled jets must match SlowJet's on the first event (rounding apart)
AGREEMENT = 1e-7


@functools.cache
def _compiled() -> Any:
    """The compiled jet finder, or why it is not available."""
    library = load_helper(SOURCE, FOR_THIS_CPU)
    if isinstance(library, str):
        return library
    library.antikt.argtypes = [ctypes.c_int, *[ctypes.c_void_p] * 4, ctypes.c_double, ctypes.c_double, ctypes.c_int,
                               *[ctypes.c_void_p] * 3]
    library.antikt.restype = ctypes.c_int
    return library


def antikt(particles: Particles, mass: NDArray[np.float64], cfg: DetectorConfig) -> Particles:
    """The anti-kt jets (radius ``jet_r``) above ``jet_truth_pt_min`` of the particles with |eta| <=
    ``visible_eta_max``, pT-ordered, as SlowJet gives them: (0, pT, rapidity, azimuth in (-pi, pi])."""
    library = _compiled()
    if isinstance(library, str):
        raise RuntimeError(library)  # noqa: TRY004  (not a type error: the finder could not be built)
    inside = np.abs(particles.eta) <= cfg.visible_eta_max
    pt, eta, phi, m = particles.pt[inside], particles.eta[inside], particles.phi[inside], mass[inside]
    pz = pt * np.sinh(eta)
    columns = [pt * np.cos(phi), pt * np.sin(phi), pz, np.sqrt(pt**2 + pz**2 + m**2)]
    n = len(pt)
    out = [np.empty(n) for _ in range(3)]
    count = library.antikt(n, *(ctypes.c_void_p(c.ctypes.data) for c in columns), cfg.jet_r, cfg.jet_truth_pt_min, n,
                           *(ctypes.c_void_p(c.ctypes.data) for c in out))
    return Particles(np.zeros(count, np.int64), *(c[:count] for c in out))


def same_jets(a: Particles, b: Particles) -> bool:
    """Whether two lists of jets agree to rounding."""
    if len(a.pt) != len(b.pt):
        return False
    dphi = (a.phi - b.phi + np.pi) % (2 * np.pi) - np.pi
    return bool(np.all(np.abs(a.pt - b.pt) <= AGREEMENT * b.pt) and np.all(np.abs(a.eta - b.eta) <= AGREEMENT)
                and np.all(np.abs(dphi) <= AGREEMENT))


class PileupJets:
    """The jets of events with pileup: compiled where it can (checked once against SlowJet), else SlowJet."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self.compiled = not isinstance(_compiled(), str)
        self._checked = False
        if not self.compiled:
            self._fall_back(str(_compiled()))

    def _fall_back(self, reason: str) -> None:
        warnings.warn(f"jets of events with pileup are found by Pythia's SlowJet, 4x slower ({reason})",
                      RuntimeWarning, stacklevel=3)
        self.compiled = False

    def __call__(self, particles: Particles, mass: NDArray[np.float64], slowjet: Callable[[], Particles]) -> Particles:
        """The jets of ``particles`` (of masses ``mass``); ``slowjet()`` finds them with SlowJet instead."""
        if not self.compiled:
            return slowjet()
        jets = antikt(particles, mass, self.cfg)
        if not self._checked:
            self._checked = True
            reference = slowjet()
            if not same_jets(jets, reference):
                self._fall_back("the compiled jet finder found other jets than SlowJet")
                return reference
        return jets
