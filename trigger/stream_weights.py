"""Weights that make per-process SM samples one stream: each event counts for its process's share.

The rates at the working point are set by the far tail of the SM scores, and most of that tail
comes from the rarest process (tt̄ is 0.3 % of the lepton-triggered stream, so 3,000 of a million
cocktail events). A background can therefore be a set of files: the cocktail (every SM process at
its share) plus per-process samples that oversample the rare ones (``trigger generate --process
ttbar``). Every event's ``process_code`` says which process it is; weighting each process to its
share of the stream, ``w = share / (its events) x (all events)``, gives the stream's rates with
each process's tail measured on all of its events. Thresholds and rates then come from the weighted
set (``trigger.thresholds.weighted_threshold_for``), their errors from the effective counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import UsageError
from trigger.generator.processes import COCKTAIL_FRACTIONS, GENERATED

__all__ = ("stream_weights",)


def stream_weights(process_codes: NDArray[np.integer[Any]],
                   shares: Mapping[str, float] = COCKTAIL_FRACTIONS) -> NDArray[np.float64]:
    """One weight per event (mean 1) that gives each process of ``shares`` (default: the ADC2021
    cocktail's) its share of the total; a :class:`UsageError` for an event of another process or a
    process with no events."""
    codes = np.asarray(process_codes)
    names = {GENERATED[name].code: name for name in shares}
    unknown = sorted(set(np.unique(codes).tolist()) - set(names))
    if unknown:
        msg = (f"process codes {unknown} are not among the stream's processes "
               f"({', '.join(f'{n} = {GENERATED[n].code}' for n in shares)}); weight SM samples only")
        raise UsageError(msg)
    weights = np.zeros(len(codes))
    missing = []
    for code, name in names.items():
        mask = codes == code
        n = int(np.count_nonzero(mask))
        if n == 0:
            missing.append(name)
        weights[mask] = shares[name] / n if n else 0.0
    if missing:
        msg = (f"the background has no {', '.join(missing)} events: its weighted rates would leave them out; "
               "add a sample of each (e.g. the cocktail)")
        raise UsageError(msg)
    scaled: NDArray[np.float64] = weights * (len(codes) / weights.sum())
    return scaled
