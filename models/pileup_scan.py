"""How pileup moves an anomaly trigger: the Level-1 view at each pileup, each model at the same L1 rate.

At each ⟨μ⟩ a zero-bias sample and signals generated at that pileup (without the lepton trigger, as
the Level-1 trigger sees them) are scored by every model; ``models.evaluate.evaluate`` with the menu
and ``recalibrate`` gives, per signal, the menu's efficiency, the model's at the threshold that takes
the accept rate of *that* zero bias, and its pure efficiency (accepted by it and by no seed); per
model the threshold, its pure rate, and the rate its stored threshold (its own calibration, as
deployed) takes at that pileup. A file's ⟨μ⟩ is its ``pileup`` attribute (``trigger generate
--pileup``), or given as ``MU=FILE`` for files without one (the public ADC2021 files).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.evaluate import Scorer, evaluate
from models.region_artifact import TriggerModel
from trigger.contracts import PileupScan
from trigger.errors import InputFileError, UsageError
from trigger.events import open_events
from trigger.menu import Menu
from trigger.rates import BX_RATE_HZ

__all__ = ("file_pileup", "group_by_pileup", "scan_pileup")


def file_pileup(spec: str | Path) -> tuple[float, Path]:
    """``MU=FILE`` or ``FILE`` -> (⟨μ⟩, path); without ``MU=``, the file's ``pileup`` attribute's ``mu``."""
    text = str(spec)
    head, sep, tail = text.partition("=")
    if sep and tail:
        try:
            return float(head), Path(tail)
        except ValueError:
            pass  # a file name with '=' in it
    path = Path(text)
    with open_events(path) as events:
        pileup = events.attrs.get("pileup")
    if pileup is None:
        raise InputFileError(path, "has no 'pileup' attribute (not made by trigger generate --pileup): "
                                   "give it as MU=FILE")
    if not isinstance(pileup, dict) or not isinstance(pileup.get("mu"), (int, float)):
        raise InputFileError(path, f"its 'pileup' attribute names no mu: {str(pileup)[:80]!r}")
    return float(pileup["mu"]), path


def group_by_pileup(backgrounds: Sequence[str | Path],
                    signals: Sequence[str | Path]) -> dict[float, tuple[Path, list[Path]]]:
    """⟨μ⟩ -> (its zero-bias file, its signal files), sorted by ⟨μ⟩; one zero-bias file and at least one
    signal per ⟨μ⟩, every signal's ⟨μ⟩ with a zero-bias file."""
    zero_bias: dict[float, Path] = {}
    for spec in backgrounds:
        mu, path = file_pileup(spec)
        if mu in zero_bias:
            msg = f"two zero-bias files at <mu> = {mu:g}: {zero_bias[mu]} and {path}"
            raise UsageError(msg)
        zero_bias[mu] = path
    by_mu: dict[float, list[Path]] = {mu: [] for mu in zero_bias}
    for spec in signals:
        mu, path = file_pileup(spec)
        if mu not in by_mu:
            msg = (f"{path} is at <mu> = {mu:g}, where no zero-bias file was given "
                   f"(zero bias at {', '.join(f'{m:g}' for m in sorted(zero_bias))})")
            raise UsageError(msg)
        by_mu[mu].append(path)
    empty = [f"{mu:g}" for mu, paths in by_mu.items() if not paths]
    if empty:
        msg = f"no signal file at <mu> = {', '.join(empty)}"
        raise UsageError(msg)
    return {mu: (zero_bias[mu], by_mu[mu]) for mu in sorted(by_mu)}


def scan_pileup(models: Sequence[TriggerModel], groups: dict[float, tuple[Path, list[Path]]], fpr: float,
                menu: Menu, scorer: Scorer, bx_rate_hz: float = BX_RATE_HZ,
                max_events: int | None = None) -> PileupScan:
    """Each model's deciding variant (the quantized one, scored as ``scorer`` scores it, e.g. as the
    firmware does; the float variant for a float-only model; ``evaluate``'s ``deciding_only``) at
    each ⟨μ⟩ of ``groups``."""
    points = []
    for mu, (background, signals) in groups.items():
        here = evaluate(models, background, signals, fpr, max_events=max_events, scorer=scorer, menu=menu,
                        bx_rate_hz=bx_rate_hz, recalibrate=True, deciding_only=True)
        points.append({"mu": mu, "background": background.name, "signals": [p.name for p in signals],
                       "models": _per_model(here.models, bx_rate_hz)})
    return PileupScan(working_point_fpr=fpr, bx_rate_hz=bx_rate_hz, menu=menu.describe(), points=points)


def _per_model(models: dict[str, Any], bx_rate_hz: float) -> dict[str, Any]:
    """Per model (``evaluate``'s ``NAME/VARIANT`` labels, one variant each), its figures at one ⟨μ⟩."""
    out = {}
    for label, model in models.items():
        name = label.rsplit("/", 1)[0]
        working_point = next(iter(model["signals"].values()))["working_point"]
        stored = working_point.get("stored_threshold")
        out[name] = {
            "variant": model["variant"], "scored_by": model["scored_by"],
            "background_events": model["background_events"], "threshold": working_point["threshold"],
            "background": model["menu_background"],
            "signals": {signal: s["menu"] for signal, s in model["signals"].items()},
            "stored_threshold": stored,
            "stored_threshold_rate_hz": None if stored is None else stored["fpr"] * bx_rate_hz,
        }
    return out
