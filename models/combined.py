"""Two triggers on the same events and their OR at a shared rate: what each keeps, and what only one does.

CMS runs its two anomaly triggers side by side, AXOL1TL on the objects and CICADA on the
calorimeter regions, and what counts is their OR within the rate both share.
:func:`or_of_triggers` sets each at an equal share of ``fpr`` of the same SM events
(``trigger.thresholds.shared_rate``: their OR then takes at most ``fpr``) and gives per signal the
efficiency of each, of their OR, of both, and of each alone, with 68 % Clopper-Pearson intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.thresholds import clopper_pearson, shared_rate

__all__ = ("or_of_triggers",)

F = NDArray[np.float64]


def _fraction(taken: NDArray[np.bool_]) -> dict[str, Any]:
    k, n = int(np.count_nonzero(taken)), len(taken)
    low, high = clopper_pearson(k, n)
    return {"count": k, "eff": k / n if n else float("nan"), "low": float(low), "high": float(high)}


def or_of_triggers(sm: Sequence[F], signals: Mapping[str, Sequence[F]], fpr: float,
                   names: Sequence[str] = ("first", "second")) -> dict[str, Any]:
    """Two triggers' scores of the same SM events (``sm``: first's, second's) and of each signal's
    same events (``signals[name]``: first's, second's), each at an equal share of ``fpr`` of the SM
    events: the thresholds, the SM events each and either takes (``supported`` when at least 10 are
    expected), and per signal what each of the two ``names`` takes, ``either``, ``both``, and what
    each takes alone (``NAME_only``)."""
    first_sm, second_sm = sm
    if len(first_sm) != len(second_sm):
        msg = f"the two triggers scored {len(first_sm)} and {len(second_sm)} SM events, not the same ones"
        raise ValueError(msg)
    shared = shared_rate([first_sm, second_sm], fpr)
    out: dict[str, Any] = {"names": list(names), "fpr": fpr, "sm_events": len(first_sm), "sm_each": shared.each,
                           "sm_either": shared.either.accepted, "thresholds": [float(t) for t in shared.thresholds],
                           "supported": len(first_sm) * fpr >= 10, "signals": {}}
    for name, (first, second) in signals.items():
        a, b = first > shared.thresholds[0], second > shared.thresholds[1]
        taken = {names[0]: a, names[1]: b, "either": a | b, "both": a & b,
                 f"{names[0]}_only": a & ~b, f"{names[1]}_only": b & ~a}
        out["signals"][name] = {key: _fraction(mask) for key, mask in taken.items()}
    return out
