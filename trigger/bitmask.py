"""Boolean masks as short text for JSON files: numpy's ``packbits``, base64-encoded."""

from __future__ import annotations

import base64

import numpy as np
from numpy.typing import NDArray

__all__ = ("decode_mask", "encode_mask")


def encode_mask(mask: NDArray[np.bool_]) -> str:
    """A 1-D boolean mask as base64 text (one bit per entry)."""
    return base64.b64encode(np.packbits(np.asarray(mask, bool)).tobytes()).decode("ascii")


def decode_mask(text: str, n: int) -> NDArray[np.bool_]:
    """The ``n``-entry mask :func:`encode_mask` wrote."""
    bits = np.frombuffer(base64.b64decode(text, validate=True), np.uint8)
    if len(bits) != (n + 7) // 8:
        msg = f"a mask of {len(bits) * 8} bits for {n} entries"
        raise ValueError(msg)
    return np.unpackbits(bits, count=n).astype(bool)
