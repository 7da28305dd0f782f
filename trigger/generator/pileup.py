"""Pileup, premixed: Poisson(mu) minimum-bias interactions from a library overlaid on each event.

The library (:mod:`trigger.generator.library`) holds the visible final-state particles of
minimum-bias interactions generated once. For each generated event, :class:`Overlay` draws the
number of interactions from Poisson(mu), picks that many library interactions at random (with
replacement) and adds their particles to the event's own before the detector, so jets are
clustered, MET summed and lepton isolation computed over everything. Each overlaid interaction
is turned about the beam by a random angle and, with probability 1/2, by pi about an axis
across it (eta -> -eta, phi -> -phi): minimum bias is symmetric under both, and a library of
L interactions then serves far more events than L before two events share the same particles.

The draws come from the event's own seed: (sample seed, process, chunk, event index within
the chunk), so they do not depend on how many workers made the sample or on what was drawn
for other events.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from trigger.errors import TriggerError, UsageError
from trigger.generator.detector import Particles
from trigger.generator.library import COLUMNS, COUNTS, FORMAT, open_library

__all__ = ("OVERLAY_NOTE", "SUBTRACTION_NOTE", "Overlay", "Pileup", "PileupLibrary", "PileupSpec")

OVERLAY_NOTE = (
    "Pileup premixed: Poisson(mu) minimum-bias interactions drawn at random (with replacement) from the "
    "library, each turned about the beam by a random angle and, with probability 1/2, by pi about a "
    "transverse axis (eta -> -eta, phi -> -phi); their visible particles are added to the event's before "
    "the detector (jets, MET and lepton isolation see everything). Draws seeded by (seed, process, chunk, "
    "event index in the chunk)."
)


SUBTRACTION_NOTE = (
    "Pileup subtracted: the event's pT density rho (the median over cells of 0.5 in eta by 2 pi/12 in phi, "
    "|eta| < the visible acceptance, of each cell's scalar pT sum over its area) times the area is taken "
    "off each jet before its threshold (pi R^2), off each lepton's isolation sum (the cone's), and off "
    "each cell of that grid before MET is summed over them (cells below it count for nothing)."
)


@dataclass(frozen=True)
class PileupSpec:
    """The pileup of a sample: ``mu`` interactions per event on average, from the library at ``library``;
    with ``subtraction``, the detector takes the event's pT density off jets, isolation sums and the
    MET's cells."""

    mu: float
    library: str
    library_sha256: str
    interactions: int
    subtraction: bool = False

    @classmethod
    def of_library(cls, mu: float, path: str | Path, subtraction: bool = False) -> PileupSpec:
        """The pileup of ``mu`` from a complete library file; anything else is a :class:`UsageError`."""
        if not (np.isfinite(mu) and mu >= 0):
            msg = f"--pileup must be a mean number of interactions >= 0, got {mu}"
            raise UsageError(msg)
        if subtraction and mu == 0:
            msg = "--pileup-subtraction needs pileup to subtract: --pileup MU with MU > 0"
            raise UsageError(msg)
        with open_library(path) as h5:
            attrs = dict(h5.attrs)
            if attrs.get("format") != FORMAT:
                msg = f"{path}: not a pileup library (make one with `trigger pileup-library`)"
                raise UsageError(msg)
            if not attrs.get("complete") or "content_sha256" not in attrs:
                msg = f"{path}: the pileup library is not complete; finish it with `trigger pileup-library ... --resume`"
                raise UsageError(msg)
            interactions = len(h5[COUNTS])
        if interactions == 0:
            msg = f"{path}: the pileup library holds no interactions"
            raise UsageError(msg)
        return cls(float(mu), str(path), str(attrs["content_sha256"]), interactions, subtraction)

    def as_attrs(self) -> dict[str, Any]:
        """What the output bytes depend on (the library by its content, not by where it lies;
        ``subtraction`` only when on, so files made without it record what they always did)."""
        subtracted = {"subtraction": "rho_area"} if self.subtraction else {}
        return {"mu": self.mu, "library_sha256": self.library_sha256, "library_interactions": self.interactions,
                **subtracted}

    def describe(self) -> dict[str, Any]:
        """The file attribute ``pileup``: the settings, the library and its own settings, the method."""
        with open_library(self.library) as h5:
            made = json.loads(h5.attrs["generation"])
        method = OVERLAY_NOTE + (" " + SUBTRACTION_NOTE if self.subtraction else "")
        return {**self.as_attrs(), "library": self.library, "library_generation": made, "method": method}


class PileupLibrary:
    """A pileup library in memory: its particle columns and where each interaction's particles start."""

    def __init__(self, path: str | Path, sha256: str) -> None:
        with open_library(path) as h5:
            if h5.attrs.get("content_sha256") != sha256:
                msg = (f"{path}: the pileup library's content hash is {h5.attrs.get('content_sha256')}, not the "
                       f"{sha256} this sample was started with (another file at the same path?)")
                raise TriggerError(msg)
            self.counts = h5[COUNTS][:].astype(np.int64)
            self.columns = {name: h5[name][:] for name in COLUMNS}
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.counts)

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def load(path: str, sha256: str) -> PileupLibrary:
        """The library at ``path``, read once per process (forked workers share the parent's copy)."""
        return PileupLibrary(path, sha256)


class Pileup(NamedTuple):
    """The pileup drawn for one event: which library interactions, and their particles as overlaid."""

    indices: NDArray[np.int64]
    particles: Particles

    def merged(self, final: Particles) -> Particles:
        """The event's own visible particles followed by the pileup's."""
        return Particles(*(np.concatenate(pair) for pair in zip(final, self.particles, strict=True)))


class Overlay:
    """Draws each event's pileup from its own seed: ``SeedSequence(entropy, spawn_key=(*key, event))``."""

    def __init__(self, spec: PileupSpec, seeds: np.random.SeedSequence) -> None:
        self.mu, self.subtraction = spec.mu, spec.subtraction
        self.library = PileupLibrary.load(spec.library, spec.library_sha256)
        self._entropy, self._key = seeds.entropy, (*seeds.spawn_key, 1)  # child 0 smears the detector

    def rng(self, event: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self._entropy, spawn_key=(*self._key, event)))

    def draw(self, event: int) -> Pileup:
        """The pileup of the ``event``-th generated event of this chunk and process."""
        rng = self.rng(event)
        n = int(rng.poisson(self.mu))
        chosen = rng.integers(0, len(self.library), n)
        turn = rng.uniform(-np.pi, np.pi, n)
        flip = 1 - 2 * rng.integers(0, 2, n)  # +1, or -1: turned by pi about a transverse axis
        counts = self.library.counts[chosen]
        into = np.cumsum(counts) - counts
        flat = np.repeat(self.library.starts[chosen] - into, counts) + np.arange(counts.sum())
        lib = self.library.columns
        sign = np.repeat(flip, counts).astype(np.float64)
        phi = sign * lib["phi"][flat].astype(np.float64) + np.repeat(turn, counts)
        particles = Particles(lib["pid"][flat].astype(np.int64), lib["pt"][flat].astype(np.float64),
                              sign * lib["eta"][flat].astype(np.float64), (phi + np.pi) % (2 * np.pi) - np.pi)
        return Pileup(chosen.astype(np.int64), particles)
