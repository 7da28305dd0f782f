"""The compiled final-state loop reads exactly what pythia8mc's bindings read, or steps aside."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from trigger.generator import final_state
from trigger.generator.detector import DetectorConfig, Particles
from trigger.generator.final_state import FinalStateReader, python_final_visible
from trigger.generator.processes import PROCESSES
from trigger.generator.pythia_source import PythiaSource
from trigger.generator.run import _stdout_silenced

NEUTRINOS = (12, 14, 16)


@pytest.fixture
def fresh_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The compiled loop built again, into an empty cache, and forgotten afterwards."""
    monkeypatch.setenv("TRIGGER_CACHE_DIR", str(tmp_path / "cache"))
    final_state._native.cache_clear()
    yield
    final_state._native.cache_clear()


def _events(name: str, n: int) -> Iterator[object]:
    with _stdout_silenced():
        source = PythiaSource(PROCESSES[name], 3, DetectorConfig(), native=False)
    for _ in range(n):
        source._next()
        yield source._pythia.event


def _same(a: Particles, b: Particles) -> bool:
    return all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", ["w", "qcd", "htaunu"])
def test_the_compiled_loop_reads_what_the_bindings_read(name: str) -> None:
    reader = FinalStateReader()
    assert reader.native
    for event in _events(name, 15):
        particles = reader(event)
        assert _same(particles, python_final_visible(event))
        assert len(particles.pt) > 20 and not np.isin(np.abs(particles.pid), NEUTRINOS).any()


def test_room_for_a_large_event_is_made_on_the_way(fresh_build: None) -> None:
    reader = FinalStateReader(capacity=8)
    for event in _events("qcd", 3):
        assert _same(reader(event), python_final_visible(event))
    assert reader.native


def test_without_gxx_the_python_loop_is_used_with_a_warning(fresh_build: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.warns(RuntimeWarning, match=r"in Python, 10x slower \(g\+\+ is not installed\)"):
        reader = FinalStateReader()
    assert not reader.native
    event = next(_events("w", 1))
    assert _same(reader(event), python_final_visible(event))


def test_a_loop_that_reads_other_values_is_caught_on_the_first_event(
        fresh_build: None, monkeypatch: pytest.MonkeyPatch) -> None:
    accessors = dict(final_state.ACCESSORS)
    accessors["eta"] = accessors["phi"]  # a wrong symbol: the loop would write phi as eta
    monkeypatch.setattr(final_state, "ACCESSORS", tuple(accessors.items()))
    reader = FinalStateReader()
    assert reader.native
    event = next(_events("w", 1))
    with pytest.warns(RuntimeWarning, match="read other values than the bindings"):
        first = reader(event)
    assert not reader.native and _same(first, python_final_visible(event))
