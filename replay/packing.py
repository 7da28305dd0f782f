"""Events on the wire without their empty slots: a bitmap of filled slots plus the filled rows.

An ADC2021 event has 19 slots, but an SM event fills about 3 of them; the other rows are zeros.
A task sent over tcp (``ReplayConfig.pack_batches``) therefore carries, instead of the
(n, 19, 4) array, ``filled`` (one bit per slot, numpy's ``packbits`` order, the last byte's
unused bits zero) and ``objects`` (the filled rows, in order, dtype of the file). A slot counts
as filled when any of its four values has a bit set, so the packing is lossless for every bit
pattern (``-0.0``, NaN and denormals included): unpacking gives back the same bytes. Six times fewer bytes per SM event to send and, with ``--curve``, to
encrypt and decrypt; over ipc on one machine the bytes cost less than packing them.

A region model's counts, (n, 18, 14) uint16 of which an SM event fills about a sixth, are packed
the same way (:func:`pack_regions`): one bit per region, then the non-zero counts in order.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from trigger.schema import N_FEATURES, N_OBJECTS, REGION_N_ETA, REGION_N_PHI

__all__ = ("PackingError", "filled_bytes", "pack_events", "pack_regions", "unpack_events", "unpack_regions")

N_REGIONS = REGION_N_PHI * REGION_N_ETA

Events = NDArray[np.floating[Any]]


class PackingError(ValueError):
    """A bitmap and its rows that cannot be the packing of ``n`` events."""


def filled_bytes(n: int) -> int:
    """Bytes of the bitmap for ``n`` events."""
    return (n * N_OBJECTS + 7) // 8


def _words(rows: NDArray[Any]) -> NDArray[np.uint64]:
    """(slots, 4) float rows as (slots, 2 or 4) uint64 words: the same bytes, compared bitwise."""
    return rows.view(np.uint64).reshape(len(rows), rows.itemsize * N_FEATURES // 8)


@numba.njit(cache=True, nogil=True)
def _pack(words: NDArray[np.uint64], bitmap: NDArray[np.uint8],
          packed: NDArray[np.uint64]) -> int:  # pragma: no cover - compiled; tested through pack_events
    filled = 0
    for i in range(words.shape[0]):
        any_bit = np.uint64(0)
        for w in range(words.shape[1]):
            any_bit |= words[i, w]
        if any_bit:
            bitmap[i >> 3] |= np.uint8(0x80 >> (i & 7))
            for w in range(words.shape[1]):
                packed[filled, w] = words[i, w]
            filled += 1
    return filled


@numba.njit(cache=True, nogil=True)
def _unpack(bitmap: NDArray[np.uint8], packed: NDArray[np.uint64],
            words: NDArray[np.uint64]) -> int:  # pragma: no cover - compiled; tested through unpack_events
    """Fills the filled slots of ``words`` (zeros) from ``packed``; returns the number of set bits,
    -1 when they are more than the rows, -2 when a bit past the last slot is set."""
    used, slots = 0, words.shape[0]
    for i in range(bitmap.shape[0] * 8):
        if not (bitmap[i >> 3] >> (7 - (i & 7))) & 1:
            continue
        if i >= slots:
            return -2
        if used == packed.shape[0]:
            return -1
        for w in range(words.shape[1]):
            words[i, w] = packed[used, w]
        used += 1
    return used


def pack_events(particles: Events) -> tuple[NDArray[np.uint8], Events]:
    """(n, 19, 4) float events -> (bitmap of filled slots, the filled rows as (k, 4))."""
    particles = np.ascontiguousarray(particles)
    rows = particles.reshape(-1, N_FEATURES)
    bitmap = np.zeros(filled_bytes(len(particles)), np.uint8)
    packed = np.empty_like(rows)
    filled = _pack(_words(rows), bitmap, _words(packed))
    return bitmap, packed[:filled]


def unpack_events(bitmap: NDArray[np.uint8], objects: Events, n: int) -> Events:
    """The (n, 19, 4) events a bitmap and its rows stand for, the rows' dtype; raises
    :class:`PackingError` unless the bitmap has exactly one set bit per row and none past slot n·19."""
    if bitmap.dtype != np.uint8 or bitmap.shape != (filled_bytes(n),):
        msg = f"a bitmap of {bitmap.shape} {bitmap.dtype} for {n} events, expected ({filled_bytes(n)},) uint8"
        raise PackingError(msg)
    if objects.ndim != 2 or objects.shape[1] != N_FEATURES or objects.dtype.kind != "f":
        msg = f"objects of shape {objects.shape} {objects.dtype}, expected (k, {N_FEATURES}) floats"
        raise PackingError(msg)
    out = np.zeros((n * N_OBJECTS, N_FEATURES), objects.dtype)
    used = _unpack(bitmap, _words(np.ascontiguousarray(objects)), _words(out))
    if used == -2:
        msg = f"the bitmap marks a slot past the {n * N_OBJECTS} of {n} events"
        raise PackingError(msg)
    if used != len(objects):
        marked = int(np.unpackbits(bitmap).sum())
        msg = f"the bitmap marks {marked} filled slots, {len(objects)} rows sent"
        raise PackingError(msg)
    return out.reshape(n, N_OBJECTS, N_FEATURES)


@numba.njit(cache=True, nogil=True)
def _pack_counts(flat: NDArray[np.uint16], bitmap: NDArray[np.uint8],
                 values: NDArray[np.uint16]) -> int:  # pragma: no cover - compiled; tested through pack_regions
    filled = 0
    for i in range(flat.shape[0]):
        if flat[i]:
            bitmap[i >> 3] |= np.uint8(0x80 >> (i & 7))
            values[filled] = flat[i]
            filled += 1
    return filled


@numba.njit(cache=True, nogil=True)
def _unpack_counts(bitmap: NDArray[np.uint8], values: NDArray[np.uint16],
                   flat: NDArray[np.uint16]) -> int:  # pragma: no cover - compiled; tested through unpack_regions
    """Fills ``flat`` (zeros) from ``values``; the number of set bits, -1 when they are more than the
    values or one stands for a zero, -2 when a bit past the last region is set."""
    used, size = 0, flat.shape[0]
    for byte in range(bitmap.shape[0]):
        bits = bitmap[byte]
        if not bits:
            continue
        for k in range(8):
            if (bits >> (7 - k)) & 1:
                i = byte * 8 + k
                if i >= size:
                    return -2
                if used == values.shape[0] or values[used] == 0:
                    return -1
                flat[i] = values[used]
                used += 1
    return used


def pack_regions(counts: NDArray[np.uint16]) -> tuple[NDArray[np.uint8], NDArray[np.uint16]]:
    """(n, 18, 14) uint16 region counts -> (bitmap of the non-zero regions, their counts in order)."""
    flat = np.ascontiguousarray(counts, np.uint16).reshape(-1)
    bitmap = np.zeros((len(flat) + 7) // 8, np.uint8)
    values = np.empty_like(flat)
    return bitmap, values[:_pack_counts(flat, bitmap, values)]


def unpack_regions(bitmap: NDArray[np.uint8], values: NDArray[np.uint16], n: int) -> NDArray[np.uint16]:
    """The (n, 18, 14) counts a bitmap and its values stand for; raises :class:`PackingError`
    unless the bitmap has one set bit per value, none past the last region, and no value is 0."""
    size = n * N_REGIONS
    if bitmap.dtype != np.uint8 or bitmap.shape != ((size + 7) // 8,):
        msg = f"a region bitmap of {bitmap.shape} {bitmap.dtype} for {n} events, expected ({(size + 7) // 8},) uint8"
        raise PackingError(msg)
    if values.dtype != np.uint16 or values.ndim != 1:
        msg = f"region values of shape {values.shape} {values.dtype}, expected (k,) uint16"
        raise PackingError(msg)
    out = np.zeros(size, np.uint16)
    used = _unpack_counts(bitmap, np.ascontiguousarray(values), out)
    if used != len(values):
        marked = int(np.unpackbits(bitmap).sum())
        msg = f"the region bitmap marks {marked} regions of {n} events, {len(values)} non-zero counts sent"
        raise PackingError(msg)
    return out.reshape(n, REGION_N_PHI, REGION_N_ETA)
