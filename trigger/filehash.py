"""SHA-256 of files, remembered while a file keeps its size and modification time.

Artifacts record the hash of the SM file they were trained on; evaluation, calibration and the
replay compare it to tell held-out events from training events.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ("file_sha256",)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file; remembered while the file keeps its size and modification time."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # noqa: ARG001  (size, mtime: the cache key)
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
