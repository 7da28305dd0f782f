"""An emulated Level-1 menu: simple seeds on the event's objects, read from a TOML file.

Each seed is one rule on the ADC2021 objects (row 0 MET, 1-4 electrons, 5-8 muons, 9-18 jets) and
fires per event, vectorised in numpy. Every cut is strictly greater (``pT > X``, ``HT > X``,
``|eta| < Y``), on the values rounded to float32 first (:func:`trigger.preprocess.event_values`),
so a float64 file decides exactly as its float32 twin. These are CMS-Run-3-*like* seeds emulated on
this project's stand-in objects (no isolation, no calorimeter towers, no L1 resolution), not CMS's.

A rate is a fraction of the sample's bunch crossings times a crossing rate. The default is the
project's :data:`trigger.rates.BX_RATE_HZ` (40 MHz, the rate the anomaly trigger's 1 kHz working
point is set at, so the two rates add up on one scale); :data:`FILLED_BX_RATE_HZ`, 40 MHz x
2544/3564 filled bunches (about 28.6 MHz), is what a CMS L1 rate is quoted at.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import UsageError
from trigger.preprocess import event_values
from trigger.rates import BX_RATE_HZ
from trigger.schema import BLOCKS, ETA, PT
from trigger.thresholds import clopper_pearson

__all__ = ("FILLED_BX_RATE_HZ", "KINDS", "Menu", "Seed", "SeedRate", "load_menu", "pure_efficiency",
           "rate_table")

#: 40 MHz x 2544 / 3564: the crossing rate of the filled bunches of a full LHC fill (CMS's L1 rates)
FILLED_BX_RATE_HZ = BX_RATE_HZ * 2544 / 3564

#: seed kind -> (block, how many objects must pass)
KINDS = {
    "single_mu": ("muons", 1), "double_mu": ("muons", 2),
    "single_eg": ("electrons", 1), "double_eg": ("electrons", 2),
    "single_jet": ("jets", 1), "ht": ("jets", 0), "met": ("met", 1),
}
_BLOCK = {block.name: block for block in BLOCKS}
_DEFAULT_ETA = {"muons": 2.4, "electrons": 2.5, "jets": 2.4, "met": float("inf")}
BUNDLED = {"run3": "run3_like.toml"}
TAG_BITS = 32  # seeds a per-event tag (Menu.tags) can name


@dataclass(frozen=True)
class Seed:
    """One rule: ``pt`` thresholds per leading object (``pt[i]`` on the i-th), or for ``ht`` the sum
    of jet pT above ``jet_pt`` (each jet ``|eta| < max_eta``) above ``pt[0]``."""

    name: str
    kind: str
    pt: tuple[float, ...]
    max_eta: float
    jet_pt: float = 0.0

    def fire(self, values: NDArray[np.float32]) -> NDArray[np.bool_]:
        """(N,) True where the seed fires on float32 events ``values``."""
        block = _BLOCK[KINDS[self.kind][0]]
        pt = values[:, block.rows, PT]
        inside = np.abs(values[:, block.rows, ETA]) < np.float32(self.max_eta)
        if self.kind == "ht":
            jets = np.where(inside & (pt > np.float32(self.jet_pt)), pt, np.float32(0))
            return np.asarray(jets.sum(axis=1, dtype=np.float64) > self.pt[0])
        # objects in acceptance, pT-ordered: the k-th passing object is the k-th largest in-acceptance pT
        ordered = -np.sort(-np.where(inside, pt, np.float32(0)), axis=1)
        fired = np.ones(len(values), bool)
        for k, threshold in enumerate(self.pt):
            fired &= ordered[:, k] > np.float32(threshold)
        return fired


@dataclass(frozen=True)
class SeedRate:
    """How many of ``total`` events a seed (or the menu) fires on, and the rate it means."""

    name: str
    fired: int
    total: int
    rate_hz: float
    rate_low_hz: float
    rate_high_hz: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fired": self.fired, "total": self.total, "rate_hz": self.rate_hz,
                "rate_low_hz": self.rate_low_hz, "rate_high_hz": self.rate_high_hz}


@dataclass(frozen=True)
class Menu:
    """The seeds of one menu file; an event is accepted by the menu when any seed fires."""

    name: str
    source: str
    seeds: tuple[Seed, ...]

    def fire(self, particles: NDArray[np.floating[Any]]) -> dict[str, NDArray[np.bool_]]:
        """Each seed's per-event bits on (N, 19, 4) events, float32 or float64."""
        values = event_values(particles)
        return {seed.name: seed.fire(values) for seed in self.seeds}

    def tags(self, particles: NDArray[np.floating[Any]]) -> NDArray[np.uint32]:
        """Per event, bit ``i`` set where seed ``i`` fires (at most :data:`TAG_BITS` seeds)."""
        if len(self.seeds) > TAG_BITS:
            msg = f"menu {self.source} has {len(self.seeds)} seeds; per-event tags hold at most {TAG_BITS}"
            raise UsageError(msg)
        tags = np.zeros(len(particles), np.uint32)
        for i, fired in enumerate(self.fire(particles).values()):
            tags |= fired.astype(np.uint32) << np.uint32(i)
        return tags

    def describe(self) -> dict[str, Any]:
        """The menu as JSON-ready data: its name, its file and each seed's rule."""
        return {"name": self.name, "source": self.source,
                "seeds": {seed.name: {"kind": seed.kind, "pt": list(seed.pt), "max_eta": seed.max_eta,
                                      "jet_pt": seed.jet_pt} for seed in self.seeds}}

    def any(self, particles: NDArray[np.floating[Any]]) -> NDArray[np.bool_]:
        """(N,) True where at least one seed fires."""
        return _union(self.fire(particles), len(particles))

    def rates(self, particles: NDArray[np.floating[Any]], bx_rate_hz: float = BX_RATE_HZ) -> list[SeedRate]:
        """Each seed's rate and the menu's total (last, named ``total``) on ``particles``."""
        bits = self.fire(particles)
        return rate_table({**bits, "total": _union(bits, len(particles))}, bx_rate_hz)


def _union(bits: dict[str, NDArray[np.bool_]], n: int) -> NDArray[np.bool_]:
    """(n,) True where any of the seeds' ``bits`` is."""
    fired = np.zeros(n, bool)
    for seed_bits in bits.values():
        fired |= seed_bits
    return fired


def rate_table(bits: dict[str, NDArray[np.bool_]], bx_rate_hz: float = BX_RATE_HZ) -> list[SeedRate]:
    """Rate = fraction of crossings fired x ``bx_rate_hz``, with its 68 % Clopper-Pearson interval."""
    table = []
    for name, fired in bits.items():
        k, n = int(np.count_nonzero(fired)), len(fired)
        low, high = clopper_pearson(k, n)
        table.append(SeedRate(name, k, n, k / n * bx_rate_hz, low * bx_rate_hz, high * bx_rate_hz))
    return table


def pure_efficiency(anomaly_accept: NDArray[np.bool_], menu_fires: NDArray[np.bool_]) -> dict[str, Any]:
    """Events the anomaly trigger accepts and no seed does: count, fraction and 68 % interval; also
    the menu's and the anomaly trigger's own fractions on the same events."""
    accept, menu = np.asarray(anomaly_accept, bool), np.asarray(menu_fires, bool)
    if accept.shape != menu.shape:
        msg = f"{accept.shape} accept bits against {menu.shape} menu bits"
        raise ValueError(msg)
    n = len(accept)
    out: dict[str, Any] = {"events": n}
    for key, mask in (("menu", menu), ("anomaly", accept), ("pure", accept & ~menu)):
        k = int(np.count_nonzero(mask))
        low, high = clopper_pearson(k, n)
        out[key] = {"count": k, "fraction": k / n, "low": low, "high": high}
    return out


def _seed(path: str, name: str, spec: dict[str, Any]) -> Seed:
    kind = spec.get("kind")
    if kind not in KINDS:
        msg = f"{path}: seed {name!r} has unknown kind {kind!r}; known: {', '.join(KINDS)}"
        raise UsageError(msg)
    unknown = set(spec) - {"kind", "pt", "max_eta", "jet_pt", "comment"}
    if unknown:
        msg = f"{path}: seed {name!r} has unknown keys {', '.join(sorted(unknown))}"
        raise UsageError(msg)
    pt = spec.get("pt")
    pts = tuple(float(p) for p in (pt if isinstance(pt, list) else [pt])) if pt is not None else ()
    wanted = max(KINDS[kind][1], 1)
    if len(pts) != wanted or any(p < 0 for p in pts):
        msg = f"{path}: seed {name!r} ({kind}) needs pt = {wanted} non-negative threshold(s), got {pt!r}"
        raise UsageError(msg)
    max_eta = float(spec.get("max_eta", _DEFAULT_ETA[KINDS[kind][0]]))
    return Seed(name, kind, pts, max_eta, float(spec.get("jet_pt", 0.0)))


def load_menu(source: str | Path) -> Menu:
    """A menu from a TOML file, or a bundled one by name (``run3``); a bad file is a UsageError."""
    if str(source) in BUNDLED:
        ref = resources.files("trigger") / "menus" / BUNDLED[str(source)]
        text, label = ref.read_text(), f"{source} ({BUNDLED[str(source)]})"
    else:
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as err:
            msg = f"cannot read menu {path}: {err.strerror}; bundled menus: {', '.join(BUNDLED)}"
            raise UsageError(msg) from err
        label = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = f"{label}: not valid TOML: {err}"
        raise UsageError(msg) from err
    seeds = data.get("seeds")
    if not isinstance(seeds, dict) or not seeds:
        msg = f"{label}: no [seeds.NAME] tables"
        raise UsageError(msg)
    return Menu(str(data.get("name", Path(str(source)).stem)), label,
                tuple(_seed(label, name, spec) for name, spec in seeds.items()))
