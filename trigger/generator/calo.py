"""Calorimeter regions: an event's visible particles summed into CMS's 18 x 14 Level-1 regions.

The image CICADA reads: region transverse energies over |eta| < 3 in 18 phi by 14 eta regions
(edges in :data:`trigger.schema.REGION_ETA_EDGES`), each an unsigned 10-bit count of 0.5 GeV.
The response is deliberately simple and stated in :class:`CaloConfig`:

- e and photons (|pid| 11, 22) go to an electromagnetic sum, every other visible particle
  but muons to a hadronic sum; each region's sums are smeared as one calorimeter deposit,
  sigma(E)/E = stochastic / sqrt(E) (+) constant (E = sum of pT cosh(eta)), so the stochastic
  term is what smearing each particle would give. A negative result reads 0.
- Muons leave a minimum-ionising deposit, ``muon_mip_et`` of E_T (at most their pT), unsmeared.
  Neutrinos are not among the visible particles: they leave nothing. No magnetic field: soft
  charged particles reach the calorimeter.
- Every region gets Gaussian electronic noise; a region below ``threshold_gev`` reads 0.
- Counts are E_T / LSB rounded to the nearest integer and saturate at 1023.

The response draws from its own generator, seeded by (sample seed, process, chunk, process in
the chunk, :data:`CALO_STREAM`, generated event index), never from the detector's stream: the
objects stay byte for byte what they were without regions, and the regions are the same for any
``--jobs``, chunk order, Dask cluster or resumption.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.generator.detector import Particles
from trigger.schema import (
    REGION_ETA_EDGES,
    REGION_LSB_GEV,
    REGION_MAX_COUNT,
    REGION_N_ETA,
    REGION_N_PHI,
    REGION_PHI_WIDTH,
    REGIONS_DATASET,
)

__all__ = ("CALO_STREAM", "RESPONSE_NOTE", "CaloConfig", "RegionMaker", "region_attrs", "region_index", "regions")

#: the spawn-key tag of the response's random stream (beside the detector's 0 and the pileup's 1)
CALO_STREAM = 0xCA10
_N_REGIONS = REGION_N_PHI * REGION_N_ETA
_EDGES = np.asarray(REGION_ETA_EDGES)
_EM_PIDS = (11, 22)
_MUON_PID = 13
RESPONSE_NOTE = (
    "Region E_T from the visible final-state particles (pileup included) with |eta| < 3: e and photons summed "
    "as electromagnetic, other particles but muons as hadronic, each region's two sums smeared as one deposit "
    "(sigma(E)/E = stochastic/sqrt(E) (+) constant, negative results read 0); muons leave a MIP of "
    "min(pT, muon_mip_et) unsmeared, neutrinos nothing; no magnetic field; Gaussian noise per region, regions "
    "below threshold_gev read 0; counts of lsb_gev rounded to nearest, saturating at max_count. Own random "
    "stream per event: (seed, process, chunk, process in chunk, stream, generated event index)."
)


@dataclass(frozen=True)
class CaloConfig:
    """Every number of the region response; stored in each generated file (attribute ``calo_regions``)."""

    em_stochastic: float = 0.03  # sigma(E)/E = stochastic/sqrt(E [GeV]) (+) constant, e and photons
    em_constant: float = 0.01
    had_stochastic: float = 1.0  # hadrons, as the stand-in jets' response
    had_constant: float = 0.05
    muon_mip_et: float = 2.0  # GeV of E_T a muon leaves (at most its pT), unsmeared
    noise_gev: float = 0.25  # Gaussian noise of each region's E_T
    threshold_gev: float = 1.0  # regions below this (after response and noise) read 0

    @classmethod
    def ideal(cls) -> CaloConfig:
        """No smearing, noise or threshold: regions hold the particles' E_T (muons' MIP included), quantised."""
        return cls(0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0)

    @property
    def smeared(self) -> bool:
        return any((self.em_stochastic, self.em_constant, self.had_stochastic, self.had_constant, self.noise_gev))

    def as_attrs(self) -> dict[str, Any]:
        return asdict(self)


def region_attrs(cfg: CaloConfig) -> dict[str, Any]:
    """The ``calo_regions`` file attribute: the layout and the response."""
    return {"dataset": REGIONS_DATASET, "shape": ["N", REGION_N_PHI, REGION_N_ETA], "axes": ["event", "phi", "eta"],
            "eta_edges": list(REGION_ETA_EDGES),
            "phi_edges_deg": [-10.0 + 20.0 * k for k in range(REGION_N_PHI + 1)],
            "lsb_gev": REGION_LSB_GEV, "max_count": REGION_MAX_COUNT, "dtype": "uint16",
            "response": cfg.as_attrs(), "stream": CALO_STREAM,
            "note": RESPONSE_NOTE}


def region_index(eta: NDArray[np.float64], phi: NDArray[np.float64]) -> NDArray[np.intp]:
    """The flat region (phi * 14 + eta) of each particle; -1 outside |eta| < 3."""
    ieta = np.searchsorted(_EDGES, eta, side="right") - 1
    iphi = np.floor((phi + REGION_PHI_WIDTH / 2) / REGION_PHI_WIDTH).astype(np.intp) % REGION_N_PHI
    inside = (ieta >= 0) & (ieta < REGION_N_ETA) & (np.abs(eta) < REGION_ETA_EDGES[-1])
    return np.where(inside, iphi * REGION_N_ETA + ieta, -1)


def regions(final: Particles, cfg: CaloConfig, rng: np.random.Generator | None = None) -> NDArray[np.uint16]:
    """The (18, 14) uint16 region counts of one event's visible particles; ``rng`` smears (unused when
    ``cfg`` smears nothing)."""
    where = region_index(final.eta, final.phi)
    inside = np.flatnonzero(where >= 0)
    pid, pt = np.abs(final.pid[inside]), final.pt[inside]
    muon = pid == _MUON_PID
    kind = np.where(muon, 2, np.where((pid == _EM_PIDS[0]) | (pid == _EM_PIDS[1]), 0, 1))  # em, hadron, muon
    flat = kind * _N_REGIONS + where[inside]
    deposit = np.where(muon, np.minimum(pt, cfg.muon_mip_et), pt)
    et = np.bincount(flat, weights=deposit, minlength=3 * _N_REGIONS).reshape(3, _N_REGIONS)
    if rng is not None and cfg.smeared:
        energy = np.bincount(flat, weights=pt * np.cosh(final.eta[inside]), minlength=3 * _N_REGIONS)[:2 * _N_REGIONS]
        stochastic = np.repeat([cfg.em_stochastic, cfg.had_stochastic], _N_REGIONS) ** 2
        constant = np.repeat([cfg.em_constant, cfg.had_constant], _N_REGIONS) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(energy > 0, np.sqrt(stochastic / energy + constant), 0.0)
        calo = et[:2].reshape(-1)
        et[:2] = np.maximum(calo * (1.0 + rel * rng.standard_normal(2 * _N_REGIONS)), 0.0).reshape(2, _N_REGIONS)
    total = et.sum(axis=0)
    if rng is not None and cfg.noise_gev:
        total += cfg.noise_gev * rng.standard_normal(_N_REGIONS)
    total[total < cfg.threshold_gev] = 0.0
    counts: NDArray[np.float64] = np.minimum(np.rint(np.maximum(total, 0.0) / REGION_LSB_GEV), REGION_MAX_COUNT)
    image: NDArray[np.uint16] = counts.astype(np.uint16).reshape(REGION_N_PHI, REGION_N_ETA)
    return image


class RegionMaker:
    """The regions of each generated event of one chunk and process, from the event's own random stream."""

    def __init__(self, cfg: CaloConfig, seeds: np.random.SeedSequence) -> None:
        self.cfg = cfg
        self._entropy, self._key = seeds.entropy, (*seeds.spawn_key, CALO_STREAM)

    def rng(self, event: int) -> np.random.Generator:
        """The response's generator for the ``event``-th generated event (tried, not kept) of the chunk."""
        return np.random.default_rng(np.random.SeedSequence(self._entropy, spawn_key=(*self._key, event)))

    def __call__(self, final: Particles, event: int) -> NDArray[np.uint16]:
        return regions(final, self.cfg, self.rng(event) if self.cfg.smeared else None)

