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
"""

from __future__ import annotations

import json
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
FORMAT, VERSION = "trigger.multiplicity", 1


def filled_slots(inputs: NDArray[np.floating[Any]]) -> NDArray[np.bool_]:
    """(N, 57) model inputs -> (N, 19): a slot is filled when any of its three inputs is non-zero."""
    x = np.asarray(inputs).reshape(len(inputs), N_OBJECTS, 3)
    filled: NDArray[np.bool_] = np.any(x != 0, axis=2)
    return filled


def slot_counts(inputs: NDArray[np.floating[Any]]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Per event: the lepton and jet slots filled (see :func:`filled_slots`)."""
    filled = filled_slots(inputs)
    return filled[:, list(LEPTON_SLOTS)].sum(axis=1), filled[:, list(JET_SLOTS)].sum(axis=1)


def _surprise(count: NDArray[np.intp], size: int, weight: float, step: float) -> tuple[float, ...]:
    frequency = (np.bincount(count, minlength=size)[:size] + 0.5) / (len(count) + 0.5 * size)
    surprise = -np.log(frequency) + np.log(frequency.max())
    return tuple(float(v) for v in np.round(weight * surprise / step) * step)


@dataclass(frozen=True)
class MultiplicityPrior:
    """Tables of the prior by lepton count (0..8) and by jet count (0..10), in score units."""

    weight: float
    step: float  # every table value is a whole number of steps
    leptons: tuple[float, ...]
    jets: tuple[float, ...]
    n_fit: int

    def __post_init__(self) -> None:
        if len(self.leptons) != len(LEPTON_SLOTS) + 1 or len(self.jets) != len(JET_SLOTS) + 1:
            msg = f"a multiplicity prior has {len(LEPTON_SLOTS) + 1} lepton and {len(JET_SLOTS) + 1} jet values"
            raise ArtifactError(msg)
        values = np.r_[self.leptons, self.jets]
        if not (self.step > 0 and np.all(values >= 0) and np.all(np.round(values / self.step) * self.step == values)):
            msg = "a multiplicity prior's values must be whole, non-negative numbers of its step"
            raise ArtifactError(msg)

    @classmethod
    def fit(cls, inputs: NDArray[np.floating[Any]], weight: float, step: float) -> MultiplicityPrior:
        """The prior of SM training ``inputs`` (N, 57), scaled by ``weight``, on a grid of ``step``."""
        leptons, jets = slot_counts(inputs)
        return cls(weight, step, _surprise(leptons, len(LEPTON_SLOTS) + 1, weight, step),
                   _surprise(jets, len(JET_SLOTS) + 1, weight, step), len(inputs))

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
            if (data.pop("format", None), data.pop("version", None)) != (FORMAT, VERSION):
                msg = f"not a {FORMAT} file of version {VERSION}"
                raise ValueError(msg)
            return cls(float(data["weight"]), float(data["step"]), tuple(data["leptons"]), tuple(data["jets"]),
                       int(data["n_fit"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            msg = f"{path}: unusable multiplicity prior ({e})"
            raise ArtifactError(msg) from None
