"""The multiplicity prior: how improbable an event's lepton and jet counts are in the SM.

The inputs standardize each filled slot over the SM events that fill it and write an empty slot as
0, so a third lepton near its mean pT, eta and phi looks like no third lepton to an autoencoder's
reconstruction error. The counts are nonetheless where the SM cocktail is rarest (three or more
leptons in 2e-4 of its events), so a model may add to its score

    prior = weight * (-ln P(n_leptons) + ln P(most common n_leptons)
                      - ln P(n_jets) + ln P(most common n_jets))

with both frequencies counted on its own SM training events (half an event added to every count,
so a count never seen in training is finite and rare). The prior is >= 0 and 0 for the commonest
counts. A slot counts as filled when any of its three inputs on the firmware's grid is non-zero --
what the firmware can see, so software and firmware count alike (a filled slot whose three values
all project to 0 is counted empty by both). Each table value is a whole number of ``step`` (the
score's resolution in the software's units), so the firmware adds it exactly.

The jet count may carry its own weight (``jet_weight``). With ``accept`` > 0 a count above every
count the SM training events had is not weighed but accepted: its value is ``accept``, chosen above
every score the firmware can reach plus every other count's prior, so such an event passes any
threshold. Four or more leptons is such a count in the SM cocktail (1 in 10^5 events: below the
1 kHz budget alone), and a score that must also rank three-lepton and many-jet events need not
spend its budget ordering them (docs/decisions.md, "The leptoquark and the counts"). Counts below
the training's, such as no lepton in a lepton-triggered sample, are weighed as usual: they say what
the training sample selected, not what is anomalous in the stream.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import ArtifactError
from trigger.schema import N_OBJECTS

__all__ = ("JET_SLOTS", "LEPTON_SLOTS", "MultiplicityPrior", "slot_counts")

LEPTON_SLOTS = tuple(range(1, 9))  # 4 electrons, 4 muons
JET_SLOTS = tuple(range(9, 19))
FORMAT, VERSION = "trigger.multiplicity", 2  # 1: one weight, no accepted counts


def filled_slots(inputs: NDArray[np.floating[Any]]) -> NDArray[np.bool_]:
    """(N, 57) model inputs -> (N, 19): a slot is filled when any of its three inputs is non-zero."""
    x = np.asarray(inputs).reshape(len(inputs), N_OBJECTS, 3)
    filled: NDArray[np.bool_] = np.any(x != 0, axis=2)
    return filled


def slot_counts(inputs: NDArray[np.floating[Any]]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Per event: the lepton and jet slots filled (see :func:`filled_slots`)."""
    filled = filled_slots(inputs)
    return filled[:, list(LEPTON_SLOTS)].sum(axis=1), filled[:, list(JET_SLOTS)].sum(axis=1)


def _surprise(count: NDArray[np.intp], size: int, weight: float, step: float) -> NDArray[np.float64]:
    frequency = (np.bincount(count, minlength=size)[:size] + 0.5) / (len(count) + 0.5 * size)
    surprise = -np.log(frequency) + np.log(frequency.max())
    values: NDArray[np.float64] = np.round(weight * surprise / step) * step
    return values


def _beyond(count: NDArray[np.intp], size: int) -> NDArray[np.bool_]:
    """Which counts 0 .. size-1 are above every count in ``count``."""
    beyond: NDArray[np.bool_] = np.arange(size) > (count.max() if len(count) else -1)
    return beyond


@dataclass(frozen=True)
class MultiplicityPrior:
    """Tables of the prior by lepton count (0..8) and by jet count (0..10), in score units."""

    weight: float  # on the lepton count's surprise (and the jet count's, unless jet_weight is set)
    step: float  # every table value is a whole number of steps
    leptons: tuple[float, ...]
    jets: tuple[float, ...]
    n_fit: int
    jet_weight: float | None = None
    accept: float = 0.0  # the value of a count above the training's (0: weighed as the others)

    def __post_init__(self) -> None:
        if len(self.leptons) != len(LEPTON_SLOTS) + 1 or len(self.jets) != len(JET_SLOTS) + 1:
            msg = f"a multiplicity prior has {len(LEPTON_SLOTS) + 1} lepton and {len(JET_SLOTS) + 1} jet values"
            raise ArtifactError(msg)
        values = np.r_[self.leptons, self.jets]
        if not (self.step > 0 and np.all(values >= 0) and np.all(np.round(values / self.step) * self.step == values)):
            msg = "a multiplicity prior's values must be whole, non-negative numbers of its step"
            raise ArtifactError(msg)

    @classmethod
    def fit(cls, inputs: NDArray[np.floating[Any]], weight: float, step: float, jet_weight: float | None = None,
            ceiling: float | None = None) -> MultiplicityPrior:
        """The prior of SM training ``inputs`` (N, 57), scaled by ``weight`` (``jet_weight`` for the
        jets), on a grid of ``step``. With ``ceiling`` (the largest score the model can put out) a
        count above every count of the training events is accepted rather than weighed."""
        leptons, jets = slot_counts(inputs)
        sizes = (len(LEPTON_SLOTS) + 1, len(JET_SLOTS) + 1)
        weights = (weight, weight if jet_weight is None else jet_weight)
        tables = [_surprise(c, n, w, step) for c, n, w in zip((leptons, jets), sizes, weights, strict=True)]
        accept = 0.0
        if ceiling is not None:
            beyond = [_beyond(c, n) for c, n in zip((leptons, jets), sizes, strict=True)]
            largest = sum(float(t[~b].max(initial=0.0)) for t, b in zip(tables, beyond, strict=True))
            accept = (math.floor((ceiling + largest) / step) + 1) * step
            for table, b in zip(tables, beyond, strict=True):
                table[b] = accept
        return cls(weight, step, tuple(float(v) for v in tables[0]), tuple(float(v) for v in tables[1]),
                   len(inputs), jet_weight, accept)

    def accepted(self, inputs: NDArray[np.floating[Any]]) -> NDArray[np.bool_]:
        """Which events of (N, 57) model inputs have a count the prior accepts outright."""
        leptons, jets = slot_counts(inputs)
        if not self.accept:
            return np.zeros(len(leptons), bool)
        found: NDArray[np.bool_] = (np.asarray(self.leptons)[leptons] == self.accept) | (
            np.asarray(self.jets)[jets] == self.accept)
        return found

    def values(self, inputs: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """The prior of each event of (N, 57) model inputs."""
        leptons, jets = slot_counts(inputs)
        values: NDArray[np.float64] = np.asarray(self.leptons)[leptons] + np.asarray(self.jets)[jets]
        return values

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"format": FORMAT, "version": VERSION, **asdict(self)}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> MultiplicityPrior:
        try:
            data = json.loads(Path(path).read_text())
            if data.pop("format", None) != FORMAT or data.pop("version", None) not in (1, VERSION):
                msg = f"not a {FORMAT} file of version 1 or {VERSION}"
                raise ValueError(msg)
            jet_weight = data.get("jet_weight")
            return cls(float(data["weight"]), float(data["step"]), tuple(data["leptons"]), tuple(data["jets"]),
                       int(data["n_fit"]), None if jet_weight is None else float(jet_weight),
                       float(data.get("accept", 0.0)))
        except (OSError, ValueError, KeyError, TypeError) as e:
            msg = f"{path}: unusable multiplicity prior ({e})"
            raise ArtifactError(msg) from None
