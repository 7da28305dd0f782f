"""Where the reference path runs: TensorFlow (on a GPU when one is visible) or numpy on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

from trigger.contracts import ReplayManifest
from trigger.errors import TriggerError

__all__ = ("BACKENDS", "gpu_visible", "reference_backend", "resolve_backend")

BACKENDS = ("auto", "tensorflow", "numpy", "none")


def gpu_visible() -> bool:
    """Whether TensorFlow could use a GPU; checked without importing TensorFlow when there is none."""
    if not (Path("/proc/driver/nvidia").exists() or os.environ.get("CUDA_VISIBLE_DEVICES")):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_backend(requested: str) -> str:
    """``auto`` -> tensorflow when a GPU is visible, numpy otherwise."""
    if requested not in BACKENDS:
        msg = f"unknown reference backend {requested!r}; expected one of {', '.join(BACKENDS)}"
        raise TriggerError(msg)
    if requested == "auto":
        return "tensorflow" if gpu_visible() else "numpy"
    return requested


def reference_backend(requested: str, bundle: ReplayManifest) -> str:
    """The backend the bundle's reference runs on: ``auto`` is TensorFlow when a GPU is visible or
    the reference has no numpy form, else numpy."""
    if requested == "auto" and not bundle.reference_numpy:
        return "tensorflow"
    return resolve_backend(requested)
