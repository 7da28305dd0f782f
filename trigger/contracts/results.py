"""What the evaluation, the pileup scan, the open-source estimate and the architecture search leave on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trigger.contracts.record import Record

__all__ = ("Estimate", "Evaluation", "PileupScan", "Sweep")

#: what each trial of a sweep holds (``firmware.sweep.TrialResult``)
TRIAL_KEYS = ("number", "params", "efficiency", "cost", "latency_ns")


@dataclass
class Evaluation(Record):
    """``trigger evaluate --json``: per model variant and signal, AUC and efficiencies at fixed FPR.

    ``models`` maps ``NAME/VARIANT`` to its path, kind, score, ``scored_by`` (``qkeras``, ``float``,
    ``firmware emulator``), the background events used and per signal ``models.evaluate.summarise_signal``'s
    figures; ``signals`` holds the first model's AUC and TPRs per signal. With ``--menu``, ``menu``
    names the emulated L1 menu, each signal entry gains ``menu`` (:func:`trigger.menu.pure_efficiency`)
    and each model ``menu_background`` (the same on the SM events, with the pure rate).
    """

    FORMAT = "trigger.evaluation"
    VERSION = 1

    background_file: str
    working_point_fpr: float
    signals: dict[str, Any]
    models: dict[str, Any]
    working_point: dict[str, Any] = field(default_factory=dict)  # the accept and bunch-crossing rates
    menu: dict[str, Any] | None = None  # ``--menu``: the emulated L1 menu; pure figures are in each entry


@dataclass
class PileupScan(Record):
    """``trigger pileup-scan --json``: the Level-1 view at each pileup (``models.pileup_scan``).

    ``points`` holds, per ⟨μ⟩ in increasing order, its zero-bias and signal file names and per model
    its deciding variant's threshold at the accept rate of that zero bias, ``background`` (the menu's,
    the trigger's and the pure rate), per signal the menu's, the trigger's and the pure efficiency
    (:func:`trigger.menu.pure_efficiency`), and the rate its stored threshold takes there.
    """

    FORMAT = "trigger.pileup_scan"
    VERSION = 1

    working_point_fpr: float
    bx_rate_hz: float
    menu: dict[str, Any]
    points: list[dict[str, Any]]

    def problem(self) -> str | None:
        for point in self.points:
            missing = [key for key in ("mu", "background", "signals", "models") if key not in point]
            if missing:
                return f"a point lacks {', '.join(missing)}"
        mus = [point["mu"] for point in self.points]
        if mus != sorted(set(mus)):
            return "the points are not in increasing, distinct <mu>"
        return None


@dataclass
class Estimate(Record):
    """``estimate.json``: the open-source resource and latency estimate of one model's firmware."""

    FORMAT = "trigger.estimate"
    VERSION = 1

    label: str
    part: str
    clock_ns: float
    latency_cycles: int
    latency_ns: float
    resources: dict[str, int]
    available: dict[str, int]
    fractions: dict[str, float]
    rtl_check: dict[str, Any]  # RTL simulated against the emulator: events, differences, accepted
    targets: list[dict[str, Any]]
    tools: dict[str, str]
    includes_decision: bool = False  # the score datapath and the comparator are in the RTL
    latency_cutoff: float = 0.0
    da4ml_cost: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    adder_depth_slack: int = -1  # da4ml's hard_dc: adder levels allowed beyond the fewest (-1: unbounded)


@dataclass
class Sweep(Record):
    """``sweep.json`` of ``trigger sweep``: every trial, the Pareto front and the checked points."""

    FORMAT = "trigger.sweep"
    VERSION = 1

    base: str
    epochs: int
    working_point_fpr: float
    objectives: list[Any]
    trials: list[dict[str, Any]]
    pareto: list[int]
    checked: list[dict[str, Any]]
    background: str = ""  # the SM events the thresholds were set on
    signals: list[str] = field(default_factory=list)
    space: dict[str, Any] = field(default_factory=dict)

    def problem(self) -> str | None:
        for trial in self.trials:
            missing = [key for key in TRIAL_KEYS if key not in trial]
            if missing:
                return f"a trial lacks {', '.join(missing)}"
        if not set(self.pareto) <= {t["number"] for t in self.trials}:
            return "the Pareto front names trials the file does not have"
        return None

