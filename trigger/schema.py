"""The ADC2021 event layout (arXiv:2107.02157): constants only, no I/O.

Each event is a (19, 4) array of objects x features. Row 0 is the missing
transverse energy, rows 1-4 electrons, 5-8 muons and 9-18 jets; the features
are pT [GeV], eta, phi [rad] and a class code. Each block is ordered by
decreasing pT and empty slots are all zero (class code included).

Generated files may also hold ``CaloRegions``: an (18, 14) image per event of the
calorimeter's region transverse energies (CMS's Level-1 regions, the input of CICADA),
18 phi regions of 20 degrees by 14 eta regions over |eta| < 3, unsigned 10-bit counts
of ``REGION_LSB_GEV``. Files without it (the public ones) are complete without it.
"""

from __future__ import annotations

import math
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
    "REGIONS_DATASET",
    "REGION_ETA_EDGES",
    "REGION_LSB_GEV",
    "REGION_MAX_COUNT",
    "REGION_N_ETA",
    "REGION_N_PHI",
    "REGION_PHI_WIDTH",
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


REGIONS_DATASET = "CaloRegions"
REGION_N_PHI, REGION_N_ETA = 18, 14  # the dataset is (N, REGION_N_PHI, REGION_N_ETA), phi first
#: eta edges of the 14 regions: each is 4 trigger towers of CMS's HCAL/ECAL trigger-tower map (towers
#: 1-20 are 0.087 wide, to |eta| = 1.74; towers 21-28 widen to |eta| = 3.0), so the seven regions per
#: side end at 0.348, 0.696, 1.044, 1.392, 1.740, 2.172 and 3.0, as the RCT/Layer-1 regions CICADA reads.
REGION_ETA_EDGES = (-3.0, -2.172, -1.740, -1.392, -1.044, -0.696, -0.348, 0.0,
                    0.348, 0.696, 1.044, 1.392, 1.740, 2.172, 3.0)
#: phi regions are 20 degrees wide; region k spans [20k - 10, 20k + 10) degrees (region 0 is centred on
#: phi = 0, region 9 holds both phi = +pi and -pi)
REGION_PHI_WIDTH = 2 * math.pi / REGION_N_PHI
REGION_LSB_GEV = 0.5  # one count of region E_T, as CMS's Layer-1 (caloScaleFactor = 0.5 in L1TCaloSummary)
REGION_MAX_COUNT = 1023  # 10 bits (CICADA's input is ap_uint<10>); larger sums saturate here


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
