"""Small C++ helpers compiled with g++ on first use and cached, loaded with ctypes.

The generator's final-state loop and pileup jet finder, and the firmware's whole scoring in integer
SIMD (``firmware.native``), are such helpers. Each is compiled once per source and flags into
:func:`cache_dir` (``$TRIGGER_CACHE_DIR``, else ``trigger-anomaly`` in ``$XDG_CACHE_HOME`` or
``~/.cache``); a helper built for this machine's CPU (``-march=native``) is keyed by the CPU too,
so a cache shared between hosts never hands one machine another's instructions. Callers keep a
Python or numpy path for when g++ is missing or the build fails (:func:`load_helper` says why).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ("FOR_THIS_CPU", "build_helper", "cache_dir", "cached", "cpu_signature", "load_helper")

DEFAULT_FLAGS = ("-O2",)
#: built for this machine's CPU, without fused multiply-adds (which would change a float result's last bit)
FOR_THIS_CPU = ("-O3", "-march=native", "-ffp-contract=off")


def cache_dir() -> Path:
    """Where compiled helpers and Pythia's cached initialisations are kept."""
    if configured := os.environ.get("TRIGGER_CACHE_DIR"):
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trigger-anomaly"


def cached(name: str, make: Callable[[Path], object]) -> Path:
    """The file ``name`` in :func:`cache_dir`, made once by ``make(path)``: into a temporary folder, then
    renamed, so concurrent makers (``--jobs``, Dask workers, replay workers) each leave a whole file."""
    target = cache_dir() / name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        made = Path(tmp) / name
        make(made)
        made.replace(target)
    return target


@cache
def cpu_signature() -> str:
    """The machine's architecture, CPU model and instruction-set flags (what ``-march=native`` reads)."""
    parts = [platform.machine()]
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features")):
                parts.append(line)
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        pass
    return "\n".join(parts)


def build_helper(source: Path, flags: Sequence[str] = DEFAULT_FLAGS) -> Path:
    """The shared library of ``source`` compiled with ``flags`` (C++17, position independent), once
    per source, flags and, for ``-march=native``, CPU."""
    key_text = source.read_bytes() + " ".join(flags).encode()
    if "-march=native" in flags:
        key_text += cpu_signature().encode()
    key = hashlib.sha256(key_text).hexdigest()[:16]
    return cached(f"{source.stem}-{key}.so", lambda built: subprocess.run(
        ["g++", *flags, "-std=c++17", "-shared", "-fPIC", "-o", str(built), str(source)],
        check=True, capture_output=True, text=True))


def load_helper(source: Path, flags: Sequence[str] = DEFAULT_FLAGS) -> Any:
    """The compiled helper of ``source`` loaded (a ``ctypes.CDLL``), or why it cannot be (a string)."""
    try:
        return ctypes.CDLL(str(build_helper(source, flags)))
    except FileNotFoundError:
        return "g++ is not installed"
    except subprocess.CalledProcessError as err:
        return f"g++ failed: {err.stderr.strip()[:500]}"
    except OSError as err:
        return str(err)
