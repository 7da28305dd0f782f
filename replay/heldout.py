"""Which replayed events the model was trained on, and the accept rate on the others.

Event ``bx`` of a run is event ``bx % N`` of the inputs laid end to end (N events in all,
cycled). When an input is the model's training file (same SHA-256 as the artifact records),
its train and validation splits are events the model has seen: an accept rate measured on
them is not a trigger rate. The held-out accept rate counts only the other events.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.events import open_events
from trigger.filehash import file_sha256
from trigger.rates import BX_RATE_HZ

__all__ = ("held_out_summary", "seen_mask")


def seen_mask(inputs: Sequence[Path], training: dict[str, Any] | None) -> NDArray[np.bool_]:
    """Per event of the inputs laid end to end: True where the model trained or validated on it."""
    parts = []
    for path in inputs:
        with open_events(path) as events:
            seen = np.zeros(events.n_events, bool)
        if training and training.get("sha256") == file_sha256(path):
            for name in ("train", "validation"):
                start, stop = training["split"][name]
                seen[start:stop] = True
        parts.append(seen)
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def held_out_summary(inputs: Sequence[Path], training: dict[str, Any] | None, events_in: int,
                     accepted_bx: NDArray[np.int64]) -> dict[str, Any]:
    """The share of replayed events the model trained on and the accept rate on the held-out rest."""
    seen = seen_mask(inputs, training)
    total = len(seen)
    if total == 0 or events_in == 0:
        return {"trained_on_events": 0, "held_out_events": events_in, "held_out_accepted": len(accepted_bx),
                "held_out_accept_rate_hz_at_bx": None}
    cycles, rest = divmod(events_in, total)
    trained_on = int(cycles * seen.sum() + seen[:rest].sum())
    held_out = events_in - trained_on
    accepted = int(np.count_nonzero(~seen[np.asarray(accepted_bx, np.int64) % total]))
    return {
        "trained_on_events": trained_on, "held_out_events": held_out, "held_out_accepted": accepted,
        "held_out_accept_rate_hz_at_bx": accepted / held_out * BX_RATE_HZ if held_out else None,
    }
