"""The visible final state of a Pythia8 event as numpy columns, copied in C++.

pythia8mc hands Python one particle at a time, and that copy was a quarter of a generated
event's time. ``final_state.cpp`` walks the event record instead, through the accessors
pythia8mc itself exports (``Event::size``, ``Event::at``, ``Particle::isFinal``, ...) called
at their addresses, so it reads the very values the Python loop reads, in the same order:
the generated files do not change by a byte. It is compiled with g++ on first use and cached
(``trigger.native``). Each reader checks itself against the Python loop on its first event; where g++ is missing, the build fails or the
check disagrees, it warns once and keeps the Python loop.

:func:`append_final` goes the other way, for pileup: it appends particles to an event record
through pythia8mc's own ``Event::append``, so that Pythia's jet finder sees them.
"""

from __future__ import annotations

import ctypes
import functools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trigger.generator.detector import Particles
from trigger.native import load_helper

__all__ = ("FinalStateReader", "append_final", "python_final_visible")

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
#: ``Event::append(id, status, col, acol, px, py, pz, e, m, scale, pol)``
APPEND = "_ZN7Pythia85Event6appendEiiiiddddddd"
#: a pybind11 object holds the address of its C++ value right after the PyObject header
_VALUE_OFFSET = 2 * ctypes.sizeof(ctypes.c_void_p)


class _Accessors(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name, _ in ACCESSORS]


def python_final_visible(event: Any) -> Particles:
    """The visible final-state particles of a ``pythia8mc.Event``, one binding call at a time."""
    rows = [(p.id(), p.pT(), p.eta(), p.phi()) for p in event if p.isFinal() and p.isVisible()]
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return Particles(table[:, 0].astype(np.int64), table[:, 1], table[:, 2], table[:, 3])


@functools.cache
def _native() -> tuple[Any, _Accessors] | str:
    """(the compiled loop, pythia8mc's accessors), or why they are not available."""
    import pythia8mc

    loop = load_helper(SOURCE)
    if isinstance(loop, str):
        return loop
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


@functools.cache
def _appender() -> tuple[Any, _Accessors, int] | str:
    """(the compiled loop, the accessors, the address of ``Event::append``), or why they are not available."""
    import pythia8mc

    library = _native()
    if isinstance(library, str):
        return library
    loop, accessors = library
    try:
        address = ctypes.cast(getattr(ctypes.CDLL(pythia8mc.__file__), APPEND), ctypes.c_void_p).value
    except AttributeError as err:
        return f"pythia8mc does not export Event::append ({err})"
    if address is None:
        return "pythia8mc's Event::append has no address"
    loop.append_final.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Accessors), ctypes.c_void_p, ctypes.c_int,
                                  *[ctypes.c_void_p] * 6]
    loop.append_final.restype = ctypes.c_int
    return loop, accessors, address


def append_final(event: Any, particles: Particles, mass: NDArray[np.float64]) -> None:
    """Append ``particles`` (of masses ``mass``) to a ``pythia8mc.Event`` as final-state particles
    (status 1), in C++ where it can, else one binding call at a time (the same ``Event::append``)."""
    pt = particles.pt
    columns = [np.ascontiguousarray(particles.pid, np.int64), pt * np.cos(particles.phi), pt * np.sin(particles.phi),
               pt * np.sinh(particles.eta)]
    energy = np.sqrt(pt**2 + columns[3] ** 2 + mass**2)
    columns += [energy, np.ascontiguousarray(mass, np.float64)]
    n, size = len(pt), event.size()
    native = _appender()
    if isinstance(native, str):
        warnings.warn(f"pileup is appended particle by particle in Python, 10x slower ({native})", RuntimeWarning,
                      stacklevel=2)
        for pid, px, py, pz, e, m in zip(*(column.tolist() for column in columns), strict=True):
            event.append(pid, 1, 0, 0, px, py, pz, e, m)
        return
    loop, accessors, address = native
    pointers = [ctypes.c_void_p(column.ctypes.data) for column in columns]
    if loop.append_final(address, accessors, FinalStateReader.address(event), n, *pointers) != size + n:
        msg = "appending pileup to the event record went wrong"
        raise RuntimeError(msg)


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
    def address(event: Any) -> ctypes.c_void_p:
        """Where the C++ ``Pythia8::Event`` behind a pybind11 object lives."""
        return ctypes.c_void_p(ctypes.c_void_p.from_address(id(event) + _VALUE_OFFSET).value)

    def _read(self, event: Any) -> Particles:
        address = self.address(event)
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
        if self._loop.event_size(self._accessors, self.address(event)) != event.size():
            self._fall_back("the event's C++ address is not where pybind11 keeps it")
        elif not all(np.array_equal(a, b) for a, b in zip(self._read(event), python, strict=True)):
            self._fall_back("the compiled loop read other values than the bindings")
        return python

    def __call__(self, event: Any) -> Particles:
        """The visible final-state particles of a ``pythia8mc.Event`` (ids, pT, eta, phi)."""
        if self._loop is None:
            return python_final_visible(event)
        return self._read(event) if self._checked else self._check(event)
