"""Pythia8 settings of the stand-in processes: the SM cocktail pieces and the four signals.

The names of the signals follow the public ADC2021 files. Every setting a file was
made with is recorded in its attributes, so a sample says what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from trigger.errors import UsageError

__all__ = ("COCKTAIL", "COCKTAIL_FRACTIONS", "GENERATED", "MINBIAS_SETTINGS", "PILEUP_LIBRARY_CODE", "PROCESSES",
           "ZEROBIAS", "Process", "get_process")

_COMMON = (
    "Beams:eCM = 13000.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "Random:setSeed = on",
    "PartonLevel:MPI = on",
)

# A tau that decays hadronically almost never yields the isolated e/mu of pT > 23 GeV
# the trigger asks for, so the signals with taus force leptonic tau decays.
# "One tau leptonic": tau- (id 15) decays only to e/mu, tau+ decays inclusively,
# which keeps the l+tau_h and l+l channels and drops tau_h+tau_h, which cannot pass.
_ONE_TAU_LEPTONIC = ("15:onMode = 3", "15:onPosIfAny = 11 13")
_TAUS_LEPTONIC = ("15:onMode = off", "15:onIfAny = 11 13")


@dataclass(frozen=True)
class Process:
    """One process: a name, a stable integer code and its Pythia settings."""

    name: str
    code: int
    description: str
    settings: tuple[str, ...]
    signal: bool = False
    notes: str = ""
    fake_electron: bool = False  # see detector.reconstruct
    lepton_trigger: bool = True  # keep only events that pass the single-lepton trigger
    cached_mpi_init: bool = False  # load Pythia's MPI initialisation from a file made once (see pythia_source)

    @property
    def pythia_settings(self) -> tuple[str, ...]:
        return _COMMON + self.settings


PROCESSES: dict[str, Process] = {
    p.name: p
    for p in (
        Process(
            "w", 1, "W -> l nu (l = e, mu, tau)",
            ("WeakSingleBoson:ffbar2W = on", "24:onMode = off", "24:onIfAny = 11 13 15"),
        ),
        Process(
            "z", 2, "Z/gamma* -> l l (l = e, mu, tau), Z only",
            ("WeakSingleBoson:ffbar2gmZ = on", "WeakZ0:gmZmode = 2", "23:onMode = off",
             "23:onIfAny = 11 13 15"),
        ),
        Process(
            "ttbar", 3, "t tbar, all decays",
            ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
        ),
        Process(
            "qcd", 4, "QCD multijet (2 -> 2, pTHat > 20 GeV), lepton-enriched by a forced fake electron",
            ("HardQCD:all = on", "PhaseSpace:pTHatMin = 20."),
            fake_electron=True,
            notes=(
                "Inclusive QCD passes the isolated-lepton trigger about 1e-4 of the time, too "
                "rarely to generate. Events with a real triggering lepton are kept as they are; in "
                "every other event one jet with pT > 23 GeV and |eta| < 3, chosen at random, is "
                "reconstructed as an electron (a jet faking an electron, the main way QCD fires a "
                "single-electron trigger). Each event stands for that fake; no fake rate is applied, "
                "so this is a shape template, not a cross-section."
            ),
        ),
        Process(
            "ato4l", 11, "A(50 GeV) -> 4 leptons, via gg -> H(50) -> Z Z* -> 4 l (l = e, mu)",
            ("HiggsSM:gg2H = on", "25:m0 = 50.", "25:onMode = off", "25:onIfMatch = 23 23",
             "23:onMode = off", "23:onIfAny = 11 13"),
            signal=True,
        ),
        Process(
            "leptoquark", 12, "LQ(80 GeV) pair -> b tau",
            ("LeptoQuark:gg2LQLQbar = on", "LeptoQuark:qqbar2LQLQbar = on", "42:m0 = 80.",
             "42:0:products = 5 -15", *_ONE_TAU_LEPTONIC),
            signal=True,
            notes="tau- decays forced to e/mu, tau+ inclusive",
        ),
        Process(
            "htautau", 13, "h0(60 GeV) -> tau tau via gg fusion",
            ("HiggsSM:gg2H = on", "25:m0 = 60.", "25:onMode = off", "25:onIfMatch = 15 -15",
             *_ONE_TAU_LEPTONIC),
            signal=True,
            notes="tau- decays forced to e/mu, tau+ inclusive",
        ),
        Process(
            "htaunu", 14, "h+-(60 GeV) -> tau nu",
            ("Higgs:useBSM = on", "HiggsBSM:ffbar2H+- = on", "37:m0 = 60.", "37:onMode = off",
             "37:onIfAny = 15", *_TAUS_LEPTONIC),
            signal=True,
            notes="tau decays forced to e/mu (hadronic taus cannot pass the lepton trigger)",
        ),
    )
}

#: The SM training mix of the ADC2021 background sample.
COCKTAIL_FRACTIONS: dict[str, float] = {"w": 0.592, "qcd": 0.338, "z": 0.067, "ttbar": 0.003}
COCKTAIL = Process(
    "sm-cocktail", 0,
    "SM mix at the ADC2021 fractions: W 59.2%, QCD 33.8%, Z 6.7%, ttbar 0.3%",
    (),
)


#: Minimum bias: every inelastic pp interaction (non-, single-, double- and central-diffractive).
MINBIAS_SETTINGS = ("SoftQCD:inelastic = on",)
ZEROBIAS = Process(
    "zerobias", 20, "zero bias: one minimum-bias pp interaction (SoftQCD:inelastic), no trigger",
    MINBIAS_SETTINGS, lepton_trigger=False, cached_mpi_init=True,
    notes=("What reaches the Level-1 trigger at 40 MHz: every event is kept (no lepton trigger). With "
           "--pileup, Poisson(mu) more minimum-bias interactions from a pileup library are overlaid."),
)
#: the seed stream of the pileup library's interactions (apart from every process's)
PILEUP_LIBRARY_CODE = 21
#: every process one chunk generates, by name (the cocktail is a mix of some of them)
GENERATED: dict[str, Process] = {**PROCESSES, ZEROBIAS.name: ZEROBIAS}


def get_process(name: str) -> Process:
    """The process called ``name`` (the cocktail and zero bias included), or a :class:`UsageError`."""
    if name == COCKTAIL.name:
        return COCKTAIL
    try:
        return GENERATED[name]
    except KeyError:
        known = ", ".join([COCKTAIL.name, *GENERATED])
        msg = f"unknown process {name!r}; choose one of: {known}"
        raise UsageError(msg) from None
