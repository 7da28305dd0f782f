"""The collector's journal: each decision appended as one record before it is acknowledged.

zguide's Titanic pattern keeps messages safe across crashes by writing them to disk before
answering; the collector does the same with decisions. A record is its length, its CRC-32 and
a msgpack map, written with one ``write`` call: once the call returns the kernel holds it, so
the record survives the collector's death, SIGKILL included (a machine's crash would need
``fsync``, which this does not pay for on every batch). Reading stops at the first incomplete
or damaged record, which is all a process killed mid-write can leave, and reopening the
journal to append cuts that tail off.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from numpy.typing import NDArray

from replay.wire import ALLOWED_DTYPES

__all__ = ("JOURNAL", "Journal", "SeqSet", "pack_array", "read_records", "unpack_array")

JOURNAL = "decisions.journal"
_FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload
_MAX_RECORD = 1 << 31


def pack_array(a: NDArray[Any]) -> dict[str, Any]:
    """An array as a msgpack-ready map (dtype, shape, raw bytes)."""
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def unpack_array(d: dict[str, Any]) -> NDArray[Any]:
    if d["dtype"] not in ALLOWED_DTYPES:
        msg = f"journal array of dtype {d['dtype']!r}"
        raise ValueError(msg)
    return np.frombuffer(d["data"], dtype=d["dtype"]).reshape(d["shape"])


def _records(data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """(offset after the record, record) for each whole, undamaged record from the start."""
    offset = 0
    while offset + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, offset)
        start, stop = offset + _FRAME.size, offset + _FRAME.size + length
        if stop > len(data) or zlib.crc32(data[start:stop]) != crc:
            return
        record = msgpack.unpackb(data[start:stop], raw=False)
        if not isinstance(record, dict):
            return
        offset = stop
        yield offset, record


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The journal's records in the order they were written, up to the first incomplete one."""
    path = Path(path)
    if not path.exists():
        return
    for _, record in _records(path.read_bytes()):
        yield record


class Journal:
    """An append-only journal; an existing one is continued after its last whole record."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.truncated_bytes = 0
        if self.path.exists():
            data = self.path.read_bytes()
            end = 0
            for end, _ in _records(data):  # noqa: B007 - the last whole record's end is what counts
                pass
            self.truncated_bytes = len(data) - end
            if self.truncated_bytes:
                os.truncate(self.path, end)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record; when this returns it survives the process."""
        if self._fd is None:
            msg = f"{self.path}: journal is closed"
            raise ValueError(msg)
        payload = msgpack.packb(record, use_bin_type=True)
        if len(payload) >= _MAX_RECORD:
            msg = f"journal record of {len(payload)} bytes"
            raise ValueError(msg)
        frame = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        written = os.write(self._fd, frame)
        while written < len(frame):  # a regular file takes it in one call; a signal could split it
            written += os.write(self._fd, frame[written:])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class SeqSet:
    """Sequence numbers seen, in memory that stays bounded when they come nearly in order: every
    number below ``low``, plus the few above it."""

    def __init__(self) -> None:
        self.low = 0
        self.above: set[int] = set()

    def add(self, seq: int) -> None:
        if seq < self.low:
            return
        self.above.add(seq)
        while self.low in self.above:
            self.above.remove(self.low)
            self.low += 1

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and (0 <= seq < self.low or seq in self.above)

    def __len__(self) -> int:
        return self.low + len(self.above)

    def is_range(self, n: int) -> bool:
        """Whether the numbers seen are exactly 0 .. n-1."""
        return self.low == n and not self.above
