"""Transitional: the names this module had, from their new homes (replay.scoring, replay.backends,
replay.bundle); the bundle's manifest as a dict for callers not yet moved. Removed in this change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.compiled import in_chunks
from replay import bundle as _bundle
from replay.backends import BACKENDS, gpu_visible, resolve_backend
from replay.backends import reference_backend as _reference_backend
from replay.bundle import load_emulated, load_reference
from replay.config import WorkingPoint
from replay.scoring import EmulatedPath, ReferencePath, ScoringPath, grid_mantissas, rehearsal_events, warm_up
from trigger.contracts import ReplayManifest

__all__ = ("BACKENDS", "EmulatedPath", "ReferencePath", "ScoringPath", "apply_working_point", "gpu_visible",
           "grid_mantissas", "in_chunks", "load_emulated", "load_reference", "read_bundle", "reference_backend",
           "rehearsal_events", "resolve_backend", "warm_up", "write_bundle")


def write_bundle(artifact_dir: str | Path, out: str | Path, reference: str | Path | None = None) -> dict[str, Any]:
    return _bundle.write_bundle(artifact_dir, out, reference).as_dict()


def read_bundle(bundle: str | Path) -> dict[str, Any]:
    return _bundle.read_bundle(bundle).as_dict()


def apply_working_point(bundle: str | Path, point: WorkingPoint | None,
                        default_calibration: Callable[[], Path]) -> dict[str, Any]:
    return _bundle.apply_working_point(bundle, point, default_calibration).as_dict()


def reference_backend(requested: str, bundle: dict[str, Any]) -> str:
    return _reference_backend(requested, ReplayManifest.from_dict(bundle))
