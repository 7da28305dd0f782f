"""The ADC2021 event layout (arXiv:2107.02157): constants only, no I/O.

Each event is a (19, 4) array of objects x features. Row 0 is the missing
transverse energy, rows 1-4 electrons, 5-8 muons and 9-18 jets; the features
are pT [GeV], eta, phi [rad] and a class code. Each block is ordered by
decreasing pT and empty slots are all zero (class code included).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = (
    "BLOCKS",
    "CLASS",
    "CLASS_NAMES",
    "DATASET",
    "ETA",
    "FEATURE_NAMES",
    "N_FEATURES",
    "N_INPUTS",
    "N_OBJECTS",
    "PHI",
    "PT",
    "Block",
)

DATASET = "Particles"
N_OBJECTS = 19
N_FEATURES = 4
N_INPUTS = N_OBJECTS * 3  # pT, eta, phi of every slot: the 57 model inputs

PT, ETA, PHI, CLASS = range(N_FEATURES)

#: Written beside ``Particles`` exactly as the public files have them.
FEATURE_NAMES = (b"Pt", b"Eta", b"Phi", b"Class")
CLASS_NAMES = (b"MET_class_1", b"Four_Ele_class_2", b"Four_Mu_class_3", b"Ten_Jet_class_4")


class Block(NamedTuple):
    """A run of rows holding one kind of object."""

    name: str
    start: int
    stop: int
    class_code: int
    max_abs_eta: float  # the acceptance of the public files

    @property
    def rows(self) -> slice:
        return slice(self.start, self.stop)

    @property
    def size(self) -> int:
        return self.stop - self.start


BLOCKS = (
    Block("met", 0, 1, 1, 0.0),
    Block("electrons", 1, 5, 2, 3.0),
    Block("muons", 5, 9, 3, 2.1),
    Block("jets", 9, 19, 4, 4.0),
)
