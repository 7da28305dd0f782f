"""Wire format: a msgpack header frame plus raw array frames; signals are one-byte constants.

Every message is a list of frames. The first is a one-byte kind (``TASK``, ``RESULT``...),
the second a small msgpack map, the rest raw array buffers sent without copying. Nothing
from the wire is trusted: the header is decoded with size limits, its fields are checked
against an allow-list, and each array frame must have exactly the byte count its declared
dtype and shape imply. Failures raise :class:`FrameError` with a :class:`Reject` reason,
which the receiving role counts and quarantines; it never unpickles anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import msgpack
import numpy as np
from numpy.typing import NDArray

from replay.narrowing import Narrowed
from replay.packing import pack_events, pack_regions
from replay.stream import Events, RegionEvents
from trigger.schema import N_FEATURES, N_OBJECTS

__all__ = (
    "ACK", "END", "FINAL", "HEARTBEAT", "KINDS", "READY", "REFERENCE", "REJECTED", "RESULT", "STATS", "STOP",
    "TASK", "VERSION", "FrameError", "Reject", "check_events", "decode_arrays", "decode_header", "encode", "encode_task",
    "message_kind",
)

VERSION = 3  # 2: a TASK's events are packed (replay.packing); 3: float64 events narrowed (replay.narrowing)
# Message kinds (first frame). Worker -> source: READY (with credits), HEARTBEAT.
# Source -> worker: TASK, STOP. Worker -> collector: RESULT, REJECTED. Reference -> collector:
# REFERENCE. Source -> collector: END. Collector -> source: ACK, STATS, FINAL.
READY, HEARTBEAT, TASK, STOP, RESULT, REJECTED, REFERENCE, END, ACK, STATS, FINAL = (
    bytes([c]) for c in b"RHTSXJFEAPZ")
KINDS = {READY: "READY", HEARTBEAT: "HEARTBEAT", TASK: "TASK", STOP: "STOP", RESULT: "RESULT",
         REJECTED: "REJECTED", REFERENCE: "REFERENCE", END: "END", ACK: "ACK", STATS: "STATS", FINAL: "FINAL"}

#: dtypes an array frame may declare
ALLOWED_DTYPES = frozenset({"<f4", "<f8", "<i8", "<u8", "<i4", "<u2", "|u1", "|b1"})
MAX_HEADER_BYTES = 64 * 1024


class Reject(str, Enum):
    """Why a frame or an event went to quarantine."""

    BAD_HEADER = "bad_header"  # not msgpack, not a map, missing or mistyped fields
    UNKNOWN_KIND = "unknown_kind"  # first frame is not a known kind
    BAD_DTYPE = "bad_dtype"  # dtype outside the allow-list or not what the kind needs
    BAD_SHAPE = "bad_shape"  # shape not (n, 19, 4) (regions: (n, 18, 14)), or buffer size differs from shape
    OVERSIZE = "oversize"  # more bytes or events than the configured limit
    NON_FINITE = "non_finite"  # an event with NaN or inf
    VERSION = "version"  # a header from another wire version
    NO_REGIONS = "no_regions"  # a region model's event whose file holds no CaloRegions


class FrameError(ValueError):
    """A message that cannot be used, with the reason it is rejected."""

    def __init__(self, reason: Reject, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.header: dict[str, Any] | None = None  # set when the header was readable


def encode(kind: bytes, header: Mapping[str, Any], arrays: Sequence[NDArray[Any]] = ()) -> list[Any]:
    """Frames for one message; array shapes and dtypes go into the header under ``arrays``."""
    arrays = [np.ascontiguousarray(a) for a in arrays]
    meta = dict(header, v=VERSION, arrays=[[a.dtype.str, list(a.shape)] for a in arrays])
    return [kind, msgpack.packb(meta), *arrays]


def encode_task(header: Mapping[str, Any], particles: Events, packed: bool = True) -> list[Any]:
    """A TASK message: the header, then the events, packed without their empty slots
    (:func:`replay.packing.pack_events`: bitmap, objects) or as they are (one array); narrowed
    float64 events (:mod:`replay.narrowing`) as their float32 values, then the positions and
    originals of the values float32 changes (``narrowed`` in the header). A region model's batch
    (:class:`replay.stream.RegionEvents`) adds its (n, 18, 14) counts as uint16 last, packed
    (:func:`replay.packing.pack_regions`: bitmap, non-zero counts) when the events are, with
    ``regions`` in the header (false for a file without them: the worker quarantines the batch)."""
    header, regions = dict(header), list[NDArray[Any]]()
    if isinstance(particles, RegionEvents):
        header["regions"] = particles.regions is not None
        if particles.regions is not None:
            counts = np.ascontiguousarray(particles.regions, np.uint16)
            regions = list(pack_regions(counts)) if packed else [counts]
        particles = particles.particles
    if isinstance(particles, Narrowed):
        values = pack_events(particles.values) if packed else [particles.values]
        return encode(TASK, dict(header, narrowed=True), [*values, particles.where, particles.originals, *regions])
    return encode(TASK, header, [*(pack_events(particles) if packed else [particles]), *regions])


def message_kind(frames: Sequence[Any]) -> bytes:
    """The kind frame, checked."""
    if not frames:
        raise FrameError(Reject.BAD_HEADER, "empty message")
    kind = bytes(frames[0])
    if kind not in KINDS:
        raise FrameError(Reject.UNKNOWN_KIND, f"kind {kind[:8]!r}")
    return kind


def decode_header(frames: Sequence[Any], required: Mapping[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The msgpack header (second frame), with ``required`` fields present and typed."""
    if len(frames) < 2:
        raise FrameError(Reject.BAD_HEADER, "no header frame")
    raw = bytes(frames[1])
    if len(raw) > MAX_HEADER_BYTES:
        raise FrameError(Reject.OVERSIZE, f"header of {len(raw)} bytes")
    try:
        header = msgpack.unpackb(raw, strict_map_key=True,
                                 max_str_len=4096, max_bin_len=4096, max_array_len=4096, max_map_len=256)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as e:
        raise FrameError(Reject.BAD_HEADER, f"not msgpack ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise FrameError(Reject.BAD_HEADER, "header is not a map")
    if header.get("v") != VERSION:
        raise FrameError(Reject.VERSION, f"wire version {header.get('v')!r}, expected {VERSION}")
    for name, types in required.items():
        value = header.get(name)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
            raise FrameError(Reject.BAD_HEADER, f"field {name!r} is {type(value).__name__}")
    return header


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def decode_arrays(frames: Sequence[Any], header: Mapping[str, Any], max_bytes: int) -> list[NDArray[Any]]:
    """The array frames after the header as read-only views (no copy), sizes checked."""
    specs = header.get("arrays")
    buffers = frames[2:]
    if not isinstance(specs, list) or len(specs) != len(buffers):
        raise FrameError(Reject.BAD_HEADER, f"{len(buffers)} array frames, header describes "
                         f"{len(specs) if isinstance(specs, list) else 'none'}")
    out = []
    for spec, buffer in zip(specs, buffers, strict=False):
        if (not isinstance(spec, list) or len(spec) != 2 or not isinstance(spec[0], str)
                or not isinstance(spec[1], list) or len(spec[1]) > 4
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec[1])):
            raise FrameError(Reject.BAD_HEADER, f"array description {spec!r:.80}")
        dtype, shape = spec
        if dtype not in ALLOWED_DTYPES:
            raise FrameError(Reject.BAD_DTYPE, f"dtype {dtype!r:.20}")
        memory = memoryview(buffer)
        expected = math.prod(shape) * np.dtype(dtype).itemsize  # Python ints: no overflow
        if expected > max_bytes or memory.nbytes > max_bytes:
            raise FrameError(Reject.OVERSIZE, f"{max(expected, memory.nbytes)} bytes, limit {max_bytes}")
        if memory.nbytes != expected:
            raise FrameError(Reject.BAD_SHAPE, f"{memory.nbytes} bytes for {dtype}{tuple(shape)}")
        out.append(np.frombuffer(memory, dtype=dtype).reshape(shape))
    return out


def check_events(particles: NDArray[Any], max_events: int) -> None:
    """An events array must be float32 or float64 (n, 19, 4) with n within the limit."""
    if particles.dtype.kind != "f":
        raise FrameError(Reject.BAD_DTYPE, f"events of dtype {particles.dtype}")
    if particles.ndim != 3 or particles.shape[1:] != (N_OBJECTS, N_FEATURES):
        raise FrameError(Reject.BAD_SHAPE, f"events of shape {particles.shape}, expected (n, {N_OBJECTS}, "
                         f"{N_FEATURES})")
    if len(particles) > max_events:
        raise FrameError(Reject.OVERSIZE, f"{len(particles)} events, limit {max_events}")
