"""Distillation: a student network learns its teacher's anomaly score on SM events.

The teacher (any artifact, usually a full-precision reference too large for the chip) scores the
training and validation events; the student regresses ``t = log(s - s0)``, ``s0`` one below the
lowest training score, so every target is >= 0 and the teacher's range (a flow's -log p(x) spans
-100 to 10^7) becomes a few units. The student's score is its output squared: for outputs >= 0 it
orders events as the targets do, and it is what the firmware's sum-of-squares head computes (as
for a VAE's mu). The student's threshold is calibrated on its own scores, like any model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.artifact import Artifact, file_sha256, load_artifact
from models.stream import CHUNK_EVENTS
from trigger.errors import UsageError
from trigger.events import open_events

__all__ = ("Distillation", "load_teacher", "teacher_scores")


def load_teacher(directory: str | Path) -> Artifact:
    """The artifact ``training.teacher`` names, with a clear error when there is none."""
    if not str(directory):
        msg = "a student needs a teacher: set training.teacher to a model artifact directory"
        raise UsageError(msg)
    return load_artifact(directory)


def teacher_scores(teacher: Artifact, path: Path, span: tuple[int, int]) -> NDArray[np.float64]:
    """The teacher's scores (its default variant) of the events ``[start, stop)`` of ``path``, read in chunks."""
    with open_events(path) as events:
        parts = [teacher.score(batch.particles) for batch in events.iter_batches(CHUNK_EVENTS, *span)]
    return np.concatenate(parts) if parts else np.zeros(0)


@dataclass(frozen=True)
class Distillation:
    """A teacher and the transform of its scores into a student's regression targets."""

    teacher: Artifact
    offset: float  # s0: targets are log(max(s - s0, 1))

    @classmethod
    def from_scores(cls, teacher: Artifact, training_scores: NDArray[np.float64]) -> Distillation:
        """``s0`` one below the teacher's lowest score on the student's training events."""
        return cls(teacher, float(np.min(training_scores)) - 1.0)

    def targets(self, scores: NDArray[np.float64]) -> NDArray[np.float32]:
        """(N, 1) regression targets, >= 0, increasing with the teacher's score."""
        targets: NDArray[np.float32] = np.log(np.maximum(scores - self.offset, 1.0)).astype(np.float32)
        return targets.reshape(-1, 1)

    def describe(self) -> dict[str, Any]:
        """What the artifact records of its teacher (metrics.json)."""
        return {"teacher": self.teacher.config.model.name, "teacher_path": str(self.teacher.path),
                "teacher_variant": self.teacher.default_variant, "teacher_score": self.teacher.config.model.score,
                "teacher_manifest_sha256": file_sha256(self.teacher.path / "manifest.json"),
                "offset": self.offset, "target": "log(max(s - offset, 1)), s the teacher's score"}
