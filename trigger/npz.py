"""Arrays plus a JSON description in one ``.npz``, written and read without pickle."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.errors import TriggerError

__all__ = ("load_arrays", "save_arrays")


def save_arrays(path: str | Path, kind: str, meta: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]) -> None:
    """Write ``arrays`` and ``meta`` (JSON, tagged with ``kind``) to ``path``."""
    described = json.dumps({"format": kind, **meta}).encode()
    np.savez(path, meta=np.frombuffer(described, np.uint8), **arrays)


def load_arrays(path: str | Path, kind: str) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """What :func:`save_arrays` wrote for ``kind``; anything else is a :class:`TriggerError`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes())
            arrays = {name: data[name] for name in data.files if name != "meta"}
    except (OSError, ValueError, KeyError) as e:
        msg = f"{path}: cannot read {kind} ({e})"
        raise TriggerError(msg) from None
    if not isinstance(meta, dict) or meta.get("format") != kind:
        found = meta.get("format") if isinstance(meta, dict) else None
        msg = f"{path}: not a {kind} file ({found!r})"
        raise TriggerError(msg)
    return meta, arrays
