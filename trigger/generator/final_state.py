"""The visible final state of a Pythia8 event as numpy columns, copied in C++.

pythia8mc hands Python one particle at a time, and that copy was a quarter of a generated
event's time. ``final_state.cpp`` walks the event record instead, through the accessors
pythia8mc itself exports (``Event::size``, ``Event::at``, ``Particle::isFinal``, ...) called
at their addresses, so it reads the very values the Python loop reads, in the same order:
the generated files do not change by a byte. It is compiled with g++ on first use and cached
(``$TRIGGER_CACHE_DIR``, else ``trigger-anomaly`` in ``$XDG_CACHE_HOME`` or ``~/.cache``). Each reader checks itself
against the Python loop on its first event; where g++ is missing, the build fails or the
check disagrees, it warns once and keeps the Python loop.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from trigger.generator.detector import Particles

__all__ = ("FinalStateReader", "python_final_visible")

SOURCE = Path(__file__).with_name("final_state.cpp")
#: the Itanium-mangled accessors of pythia8mc, in the order of ``Accessors`` in the C++ file
ACCESSORS = (
    ("size", "_ZNK7Pythia85Event4sizeEv"),
    ("at", "_ZN7Pythia85Event2atEi"),
    ("is_final", "_ZNK7Pythia88Particle7isFinalEv"),
    ("is_visible", "_ZNK7Pythia88Particle9isVisibleEv"),
    ("id", "_ZNK7Pythia88Particle2idEv"),
    ("pt", "_ZNK7Pythia88Particle2pTEv"),
    ("eta", "_ZNK7Pythia88Particle3etaEv"),
    ("phi", "_ZNK7Pythia88Particle3phiEv"),
)
#: a pybind11 object holds the address of its C++ value right after the PyObject header
_VALUE_OFFSET = 2 * ctypes.sizeof(ctypes.c_void_p)


class _Accessors(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name, _ in ACCESSORS]


def python_final_visible(event: Any) -> Particles:
    """The visible final-state particles of a ``pythia8mc.Event``, one binding call at a time."""
    rows = [(p.id(), p.pT(), p.eta(), p.phi()) for p in event if p.isFinal() and p.isVisible()]
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return Particles(table[:, 0].astype(np.int64), table[:, 1], table[:, 2], table[:, 3])


def _cache_dir() -> Path:
    if configured := os.environ.get("TRIGGER_CACHE_DIR"):
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trigger-anomaly"


def _build(source: Path) -> Path:
    """The compiled loop, built once per source (it includes nothing of Pythia's)."""
    key = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = _cache_dir() / f"final_state-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-o", str(built), str(source)],
                       check=True, capture_output=True, text=True)
        built.replace(target)  # atomic: concurrent builders (--jobs, Dask workers) each leave a whole file
    return target


@functools.cache
def _native() -> tuple[Any, _Accessors] | str:
    """(the compiled loop, pythia8mc's accessors), or why they are not available."""
    import pythia8mc

    try:
        loop = ctypes.CDLL(str(_build(SOURCE)))
    except FileNotFoundError:
        return "g++ is not installed"
    except subprocess.CalledProcessError as err:
        return f"g++ failed: {err.stderr.strip()}"
    except OSError as err:
        return str(err)
    bindings = ctypes.CDLL(pythia8mc.__file__)  # the module already loaded: the same handle
    try:
        addresses = [ctypes.cast(getattr(bindings, symbol), ctypes.c_void_p).value for _, symbol in ACCESSORS]
    except AttributeError as err:
        return f"pythia8mc does not export an accessor ({err})"
    loop.event_size.argtypes = [ctypes.POINTER(_Accessors), ctypes.c_void_p]
    loop.final_visible.argtypes = [ctypes.POINTER(_Accessors), *[ctypes.c_void_p] * 5, ctypes.c_int]
    for function in (loop.event_size, loop.final_visible):
        function.restype = ctypes.c_int
    return loop, _Accessors(*addresses)


class FinalStateReader:
    """Reads the visible final state of each event, in C++ where it can (checked once), else in Python."""

    def __init__(self, native: bool = True, capacity: int = 4096) -> None:
        self._loop: Any = None
        self._checked = False
        self._allocate(capacity)
        if native:
            library = _native()
            if isinstance(library, str):
                self._fall_back(library)
            else:
                self._loop, self._accessors = library

    @property
    def native(self) -> bool:
        """Whether events are read by the compiled loop."""
        return self._loop is not None

    def _allocate(self, capacity: int) -> None:
        """Room for ``capacity`` particles: the four columns and their addresses for the loop."""
        self._columns = Particles(np.empty(capacity, np.int64), np.empty(capacity), np.empty(capacity),
                                  np.empty(capacity))
        self._pointers = [ctypes.c_void_p(column.ctypes.data) for column in self._columns]

    @staticmethod
    def _address(event: Any) -> ctypes.c_void_p:
        """Where the C++ ``Pythia8::Event`` behind a pybind11 object lives."""
        return ctypes.c_void_p(ctypes.c_void_p.from_address(id(event) + _VALUE_OFFSET).value)

    def _read(self, event: Any) -> Particles:
        address = self._address(event)
        while True:
            capacity = len(self._columns.pt)
            n = self._loop.final_visible(self._accessors, address, *self._pointers, capacity)
            if n <= capacity:
                pid, pt, eta, phi = self._columns
                return Particles(pid[:n].copy(), pt[:n].copy(), eta[:n].copy(), phi[:n].copy())
            self._allocate(2 * n)

    def _fall_back(self, reason: str) -> None:
        warnings.warn(f"the final state is read particle by particle in Python, 10x slower ({reason})",
                      RuntimeWarning, stacklevel=3)
        self._loop = None

    def _check(self, event: Any) -> Particles:
        """The first event, read both ways: the compiled loop is kept only if it agrees."""
        self._checked = True
        python = python_final_visible(event)
        if self._loop.event_size(self._accessors, self._address(event)) != event.size():
            self._fall_back("the event's C++ address is not where pybind11 keeps it")
        elif not all(np.array_equal(a, b) for a, b in zip(self._read(event), python, strict=True)):
            self._fall_back("the compiled loop read other values than the bindings")
        return python

    def __call__(self, event: Any) -> Particles:
        """The visible final-state particles of a ``pythia8mc.Event`` (ids, pT, eta, phi)."""
        if self._loop is None:
            return python_final_visible(event)
        return self._read(event) if self._checked else self._check(event)
