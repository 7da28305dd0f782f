"""A simple detector: turn generator-level particles into one ADC2021 event row block.

Pure numpy, no Pythia: the inputs are arrays of visible final-state particles and of
anti-kt jets. Objects follow the ADC2021 definitions (arXiv:2107.02157): isolated
electrons (|eta| < 3) and muons (|eta| < 2.1) above 3 GeV, anti-kt R = 0.4 jets above
15 GeV with |eta| < 4, MET from the visible particles; Gaussian smearing stands in for
the detector response. An event is kept when it passes a single-lepton trigger.

With pileup, the event's transverse-momentum density ``rho`` (:func:`rho_grid_median`, the
median over a grid of cells, as FastJet's grid-median estimator) can be subtracted: each jet
loses ``rho`` times its area (pi R^2) before its threshold, each lepton's isolation sum
``rho`` times the cone's area, and MET is summed over the grid's cells, each less ``rho``
times its area.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from trigger.schema import BLOCKS, CLASS, ETA, N_FEATURES, N_OBJECTS, PHI, PT

__all__ = ("RHO_CELL", "DetectorConfig", "Particles", "isolated", "reconstruct", "rho_grid_median")

#: the grid of the rho estimate: cells of 0.5 in eta by 2 pi / 12 in phi over the visible acceptance
RHO_CELL = (0.5, 2 * np.pi / 12)

F64 = NDArray[np.float64]


class Particles(NamedTuple):
    """Columns of a set of particles (or jets): PDG id, pT [GeV], eta, phi."""

    pid: NDArray[np.int64]
    pt: F64
    eta: F64
    phi: F64


@dataclass(frozen=True)
class DetectorConfig:
    """Every number of the stand-in detector; stored in each generated file."""

    electron_pt_min: float = 3.0
    electron_eta_max: float = 3.0
    muon_pt_min: float = 3.0
    muon_eta_max: float = 2.1
    isolation_cone: float = 0.3  # Delta R of the lepton isolation cone
    isolation_max: float = 0.25  # sum pT in the cone / lepton pT
    trigger_lepton_pt_min: float = 23.0  # single isolated e or mu
    jet_r: float = 0.4  # anti-kt
    jet_pt_min: float = 15.0
    jet_eta_max: float = 4.0
    jet_truth_pt_min: float = 10.0  # clustered above this, cut at jet_pt_min after smearing
    jet_lepton_overlap_dr: float = 0.4  # jets this close to a selected lepton are removed
    visible_eta_max: float = 4.9  # calorimeter acceptance for jets and MET
    electron_pt_resolution: float = 0.02  # sigma(pT)/pT, Gaussian
    muon_pt_resolution: float = 0.015
    lepton_angle_resolution: float = 0.002  # sigma of eta and phi
    jet_pt_stochastic: float = 1.0  # sigma(pT)/pT = stochastic/sqrt(pT) (+) constant
    jet_pt_constant: float = 0.05
    jet_angle_resolution: float = 0.02
    met_resolution: float = 0.6  # sigma(MET_x,y) = met_resolution * sqrt(sum E_T) [GeV]

    def as_attrs(self) -> dict[str, Any]:
        return asdict(self)


def _wrap_phi(phi: F64) -> F64:
    return (phi + np.pi) % (2 * np.pi) - np.pi


def _delta_r(eta1: F64, phi1: F64, eta2: F64, phi2: F64) -> F64:
    dphi = _wrap_phi(phi1 - phi2)
    return np.hypot(eta1 - eta2, dphi)


def _cells(final: Particles, cfg: DetectorConfig) -> tuple[NDArray[np.bool_], NDArray[np.int64], int, float]:
    """The grid of :data:`RHO_CELL` over |eta| < ``visible_eta_max``: which particles are inside it,
    their cells' indices, the number of cells and a cell's area."""
    d_eta, d_phi = RHO_CELL
    n_eta, n_phi = int(np.ceil(2 * cfg.visible_eta_max / d_eta)), round(2 * np.pi / d_phi)
    inside = np.abs(final.eta) < cfg.visible_eta_max
    i_eta = ((final.eta[inside] + cfg.visible_eta_max) * (n_eta / (2 * cfg.visible_eta_max))).astype(np.int64)
    i_phi = ((final.phi[inside] + np.pi) * (n_phi / (2 * np.pi))).astype(np.int64)
    cells = np.minimum(i_eta, n_eta - 1) * n_phi + np.clip(i_phi, 0, n_phi - 1)
    return inside, cells, n_eta * n_phi, (2 * cfg.visible_eta_max / n_eta) * (2 * np.pi / n_phi)


def rho_grid_median(final: Particles, cfg: DetectorConfig) -> float:
    """The event's pT density [GeV per unit of eta-phi area]: the median over the cells of
    :data:`RHO_CELL` within |eta| < ``visible_eta_max`` of each cell's scalar pT sum over its area."""
    inside, cells, n_cells, area = _cells(final, cfg)
    sums = np.bincount(cells, weights=final.pt[inside], minlength=n_cells)
    return float(np.median(sums) / area)


def isolated(final: Particles, candidates: NDArray[np.intp], cfg: DetectorConfig,
             rho: float = 0.0) -> NDArray[np.bool_]:
    """Whether each particle at ``candidates`` is isolated: the scalar pT sum of the other visible particles
    within Delta R < ``isolation_cone``, less ``rho`` times the cone's area, below ``isolation_max`` of its
    own pT."""
    keep = np.zeros(len(candidates), dtype=bool)
    pileup = rho * np.pi * cfg.isolation_cone**2
    for k, i in enumerate(candidates):
        dr = _delta_r(final.eta, final.phi, final.eta[i], final.phi[i])
        cone = (dr < cfg.isolation_cone) & (np.arange(len(dr)) != i)
        keep[k] = final.pt[cone].sum() - pileup < cfg.isolation_max * final.pt[i]  # x - 0.0 is x
    return keep


def _leptons(
    final: Particles, is_flavour: NDArray[np.bool_], resolution: float, pt_min: float, eta_max: float,
    rng: np.random.Generator, cfg: DetectorConfig, rho: float = 0.0,
) -> Particles:
    """Isolated, smeared leptons of one flavour (``is_flavour``) passing the acceptance, pT-ordered."""
    candidates = np.flatnonzero(is_flavour & (final.pt > pt_min) & (np.abs(final.eta) < eta_max + 0.1))
    if len(candidates) == 0:  # most generated events: nothing to smear, no random number drawn
        return Particles(final.pid[:0], final.pt[:0], final.eta[:0], final.phi[:0])
    idx = candidates[isolated(final, candidates, cfg, rho)]
    n = len(idx)
    pt = final.pt[idx] * (1.0 + resolution * rng.standard_normal(n))
    eta = final.eta[idx] + cfg.lepton_angle_resolution * rng.standard_normal(n)
    phi = _wrap_phi(final.phi[idx] + cfg.lepton_angle_resolution * rng.standard_normal(n))
    ok = (pt > pt_min) & (np.abs(eta) < eta_max)
    order = np.argsort(-pt[ok], kind="stable")
    return Particles(final.pid[idx][ok][order], pt[ok][order], eta[ok][order], phi[ok][order])


def _subtract_pileup(jets: Particles, rho: float, cfg: DetectorConfig) -> Particles:
    """Each jet less ``rho`` times its area (pi R^2), those still above ``jet_truth_pt_min`` kept."""
    pt = jets.pt - rho * np.pi * cfg.jet_r**2
    keep = pt > cfg.jet_truth_pt_min
    return Particles(jets.pid[keep], pt[keep], jets.eta[keep], jets.phi[keep])


def _smear_jets(truth_jets: Particles, rng: np.random.Generator, cfg: DetectorConfig) -> Particles:
    """Jets after the detector response and acceptance, pT-ordered."""
    n = len(truth_jets.pt)
    sigma = np.hypot(cfg.jet_pt_stochastic / np.sqrt(np.maximum(truth_jets.pt, 1e-9)),
                     cfg.jet_pt_constant)
    pt = truth_jets.pt * (1.0 + sigma * rng.standard_normal(n))
    eta = truth_jets.eta + cfg.jet_angle_resolution * rng.standard_normal(n)
    phi = _wrap_phi(truth_jets.phi + cfg.jet_angle_resolution * rng.standard_normal(n))
    ok = (pt > cfg.jet_pt_min) & (np.abs(eta) < cfg.jet_eta_max)
    order = np.argsort(-pt[ok], kind="stable")
    return Particles(truth_jets.pid[ok][order], pt[ok][order], eta[ok][order], phi[ok][order])


def _take(objects: Particles, keep: NDArray[np.bool_] | NDArray[np.intp]) -> Particles:
    """The objects at ``keep`` (a mask or indices), columns kept apart."""
    return Particles(objects.pid[keep], objects.pt[keep], objects.eta[keep], objects.phi[keep])


def _remove_overlaps(jets: Particles, leptons: Particles, cfg: DetectorConfig) -> Particles:
    keep = np.ones(len(jets.pt), dtype=bool)
    for lep_eta, lep_phi in zip(leptons.eta, leptons.phi, strict=True):
        keep &= _delta_r(jets.eta, jets.phi, lep_eta, lep_phi) >= cfg.jet_lepton_overlap_dr
    return _take(jets, keep)


def _fake_electron(jets: Particles, electrons: Particles, rng: np.random.Generator,
                   cfg: DetectorConfig) -> tuple[Particles, Particles] | None:
    """Let one jet that could fire the trigger be reconstructed as an electron."""
    eligible = np.flatnonzero((jets.pt > cfg.trigger_lepton_pt_min)
                              & (np.abs(jets.eta) < cfg.electron_eta_max))
    if len(eligible) == 0:
        return None
    chosen = int(rng.choice(eligible))
    fake = Particles(np.array([11]), jets.pt[[chosen]], jets.eta[[chosen]], jets.phi[[chosen]])
    merged = Particles(np.concatenate([electrons.pid, fake.pid]), np.concatenate([electrons.pt, fake.pt]),
                       np.concatenate([electrons.eta, fake.eta]), np.concatenate([electrons.phi, fake.phi]))
    order = np.argsort(-merged.pt, kind="stable")
    not_chosen = np.arange(len(jets.pt)) != chosen
    return _take(merged, order), _take(jets, not_chosen)


def _met(final: Particles, rng: np.random.Generator, cfg: DetectorConfig,
         rho: float = 0.0) -> tuple[float, float]:
    """MET from the visible particles, smeared by ``met_resolution`` times the root of their scalar sum;
    with a positive ``rho``, from the cells of the rho grid, each cell's pT less ``rho`` times its area
    (cells below it count for nothing), as a pileup-subtracted calorimeter sum."""
    if rho > 0:
        return _met_less_pileup(final, rng, cfg, rho)
    inside = np.abs(final.eta) < cfg.visible_eta_max
    pt, phi = final.pt[inside], final.phi[inside]
    sigma = cfg.met_resolution * np.sqrt(pt.sum())
    mx = -np.sum(pt * np.cos(phi)) + sigma * rng.standard_normal()
    my = -np.sum(pt * np.sin(phi)) + sigma * rng.standard_normal()
    return float(np.hypot(mx, my)), float(np.arctan2(my, mx))


def _met_less_pileup(final: Particles, rng: np.random.Generator, cfg: DetectorConfig,
                     rho: float) -> tuple[float, float]:
    inside, cells, n_cells, area = _cells(final, cfg)
    pt, phi = final.pt[inside], final.phi[inside]
    scalar = np.bincount(cells, weights=pt, minlength=n_cells)
    kept = np.clip(1.0 - rho * area / np.where(scalar > 0, scalar, 1.0), 0.0, 1.0)  # each cell's share left
    sx = np.bincount(cells, weights=pt * np.cos(phi), minlength=n_cells) @ kept
    sy = np.bincount(cells, weights=pt * np.sin(phi), minlength=n_cells) @ kept
    sigma = cfg.met_resolution * np.sqrt(scalar @ kept)
    mx, my = -sx + sigma * rng.standard_normal(), -sy + sigma * rng.standard_normal()
    return float(np.hypot(mx, my)), float(np.arctan2(my, mx))


def _select_leptons(final: Particles, rng: np.random.Generator,
                    cfg: DetectorConfig, rho: float = 0.0) -> tuple[Particles, Particles]:
    abs_pid = np.abs(final.pid)
    electrons = _leptons(final, abs_pid == 11, cfg.electron_pt_resolution, cfg.electron_pt_min,
                         cfg.electron_eta_max, rng, cfg, rho)
    muons = _leptons(final, abs_pid == 13, cfg.muon_pt_resolution, cfg.muon_pt_min, cfg.muon_eta_max, rng, cfg,
                     rho)
    return electrons, muons


def _passes_trigger(electrons: Particles, muons: Particles, cfg: DetectorConfig) -> bool:
    lead = max(electrons.pt[:1].tolist() + muons.pt[:1].tolist(), default=0.0)
    return lead > cfg.trigger_lepton_pt_min


def reconstruct(final: Particles, truth_jets: Callable[[], Particles], rng: np.random.Generator,
                cfg: DetectorConfig, fake_electron: bool = False, lepton_trigger: bool = True,
                rho: float = 0.0) -> NDArray[np.float32] | None:
    """The (19, 4) ADC2021 row block of an event, or None if it fails the lepton trigger.

    ``truth_jets`` is called only for events that can still pass, as clustering is costly.
    With ``fake_electron`` an event without a triggering lepton has one of its jets
    above the trigger threshold reconstructed as an electron (a lepton-enriched QCD template).
    Without ``lepton_trigger`` (zero bias) every event is kept. A positive ``rho`` is subtracted
    from the jets, the isolation sums and the MET's cells (see the module's note); 0 leaves them as
    they are.
    """
    electrons, muons = _select_leptons(final, rng, cfg, rho)
    triggered = _passes_trigger(electrons, muons, cfg) or not lepton_trigger
    if not triggered and not fake_electron:
        return None
    jets = truth_jets() if rho <= 0 else _subtract_pileup(truth_jets(), rho, cfg)
    jets = _smear_jets(jets, rng, cfg)
    if not triggered:
        faked = _fake_electron(jets, electrons, rng, cfg)
        if faked is None:
            return None
        electrons, jets = faked
    leptons = Particles(*(np.concatenate(pair) for pair in zip(electrons, muons, strict=True)))
    jets = _remove_overlaps(jets, leptons, cfg)
    met_pt, met_phi = _met(final, rng, cfg, rho)
    met = Particles(np.zeros(1, np.int64), np.array([met_pt]), np.zeros(1), np.array([met_phi]))
    if np.float32(met_pt) == 0:  # nothing visible (a diffractive zero-bias event): an empty row, as ADC2021's
        met = _take(met, np.zeros(1, dtype=bool))
    event = np.zeros((N_OBJECTS, N_FEATURES), dtype=np.float32)
    for block, objects in zip(BLOCKS, (met, electrons, muons, jets), strict=True):
        n = min(block.size, len(objects.pt))
        rows = slice(block.start, block.start + n)
        event[rows, PT] = objects.pt[:n]
        event[rows, ETA] = objects.eta[:n]
        event[rows, PHI] = objects.phi[:n]
        event[rows, CLASS] = block.class_code
    return event
