"""Shared fixtures: small synthetic events in the ADC2021 layout, written to tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trigger.events import EventWriter
from trigger.schema import BLOCKS, CLASS, ETA, PHI, PT


def synthetic_events(n: int, seed: int = 0) -> np.ndarray:
    """Valid, pT-ordered, zero-padded events (float32) with random multiplicities."""
    rng = np.random.default_rng(seed)
    events = np.zeros((n, 19, 4), np.float32)
    for block in BLOCKS:
        counts = np.ones(n, int) if block.name == "met" else rng.integers(0, block.size + 1, n)
        if block.name == "electrons":
            counts = np.maximum(counts, 1)  # every event has a trigger electron
        for slot in range(block.size):
            on = counts > slot
            rows = np.flatnonzero(on)
            pt = rng.exponential(20.0, len(rows)) + 3.0
            events[rows, block.start + slot, PT] = pt
            eta = rng.uniform(-block.max_abs_eta, block.max_abs_eta, len(rows))  # MET: 0
            events[rows, block.start + slot, ETA] = eta
            events[rows, block.start + slot, PHI] = rng.uniform(-np.pi, np.pi, len(rows))
            events[rows, block.start + slot, CLASS] = block.class_code
        rows = events[:, block.rows]
        order = np.argsort(-rows[..., PT], axis=1, kind="stable")
        events[:, block.rows] = np.take_along_axis(rows, order[..., None], axis=1)
    events[:, 1, PT] += 25.0  # leading electron above the trigger threshold
    return events


@pytest.fixture
def events() -> np.ndarray:
    return synthetic_events(1000, seed=1)


@pytest.fixture
def event_file(tmp_path: Path, events: np.ndarray) -> Path:
    path = tmp_path / "events.h5"
    with EventWriter(path, attrs={"process": "synthetic"}) as writer:
        writer.append(events)
    return path


TINY_MODEL = ["model.encoder=[8]", "model.latent=2", "model.decoder=[8]", "training.epochs=2",
              "training.batch_size=128"]


def write_events(path: Path, events: np.ndarray, process: str) -> Path:
    with EventWriter(path, attrs={"process": process}) as writer:
        writer.append(events)
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small SM file and a signal with harder jets."""
    root = tmp_path_factory.mktemp("data")
    signal = synthetic_events(400, seed=9)
    signal[:, 9:, 0] *= 3.0
    return {"sm": write_events(root / "sm.h5", synthetic_events(1500, seed=8), "sm-cocktail"),
            "signal": write_events(root / "sig.h5", signal, "hardjets")}


@pytest.fixture(scope="session")
def artifact_dir(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dense AE trained for two epochs through the command line."""
    from trigger.cli import main

    out = tmp_path_factory.mktemp("art") / "ae"
    assert main(["train", "--data", str(files["sm"]), "--out", str(out),
                 *[a for o in TINY_MODEL for a in ("--set", o)]]) == 0
    return out


def float64_native(events: np.ndarray, scaler, n_changed: int = 50, seed: int = 0) -> np.ndarray:
    """``events`` as float64 whose leading-electron eta lies just below a grid boundary in float64 and
    on or above it once rounded to float32 (the public ADC2021 files are float64): projecting the
    float64 values directly gives another grid point than the input rule does, in ``n_changed`` events."""
    out = events.astype(np.float64)
    k = 3 * 1 + 1  # input index of slot 1's eta (the leading electron, filled in every synthetic event)
    center, step = float(scaler.center[k]), float(scaler.mantissa_step[k])
    rng = np.random.default_rng(seed)
    found = 0
    for m in rng.permutation(np.arange(int(np.ceil((-2.5 - center) / step)), int((2.5 - center) / step))):
        boundary = center + m * step
        value = boundary - step * 1e-6
        rounded = float(np.float32(value))
        if np.floor((value - center) / step) == np.floor((rounded - center) / step):
            continue  # the float32 rounding does not cross this boundary
        out[found, 1, 1] = value
        found += 1
        if found == n_changed:
            return out
    msg = f"only {found} boundary-crossing values found"
    raise AssertionError(msg)


def decided_batches(run_dir: Path, worker: int | None = None) -> int:
    """Batches a replay's collector has journaled (decided and acknowledged) so far, by ``worker`` if given."""
    from replay.journal import JOURNAL, read_records

    return sum(r["k"] == "d" and worker in (None, r["worker"]) for r in read_records(run_dir / JOURNAL))


def expected_accepts(bundle: Path, data: Path, events: int) -> np.ndarray:
    """The stream positions the bundle's emulated path accepts among ``events`` events of ``data``, cycled."""
    from replay.paths import load_emulated
    from trigger.events import read_events

    particles = read_events(data)
    particles = np.concatenate([particles] * (events // len(particles) + 1))[:events]
    path = load_emulated(bundle)
    return np.flatnonzero(path.scores(particles) > path.threshold)
