"""Score the same events three ways (QKeras, hls4ml C-simulation, emulator) and count differences."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.emulator import Emulator
from models.artifact import Artifact
from models.scores import firmware_score
from trigger.preprocess import filled_mask

__all__ = ("PairComparison", "check_firmware", "compare_paths", "csim_vs_emulator", "emulator_scores", "firmware_scores")


def emulator_scores(artifact: Artifact, particles: NDArray[np.floating[Any]],
                    emulator: Emulator | None = None) -> NDArray[np.float64]:
    """Scores of the bit-exact emulator (the path that decides) on raw events."""
    from firmware.convert import emulator_for

    x = artifact.inputs(particles).astype(np.float64)
    return firmware_scores(artifact, (emulator or emulator_for(artifact)).predict(x), x, particles)


def firmware_scores(artifact: Artifact, outputs: NDArray[np.floating[Any]], inputs: NDArray[np.floating[Any]],
                    particles: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """The anomaly score from the firmware network's outputs (reconstruction, or VAE mu)."""
    return firmware_score(artifact.config.model.score, outputs, inputs, filled_mask(particles))


@dataclass(frozen=True)
class PairComparison:
    first: str
    second: str
    events: int
    scores_differ: int
    decisions_differ: int
    max_abs_difference: float

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def compare_paths(artifact: Artifact, hls_model: Any, particles: NDArray[np.floating[Any]],
                  batch_size: int = 8192) -> tuple[list[PairComparison], dict[str, NDArray[np.float64]]]:
    """Scores of QKeras, C-sim and emulator on ``particles`` and their pairwise differences."""
    from firmware.convert import firmware_network

    network = firmware_network(artifact)
    emulator = Emulator.from_hls_model(hls_model)
    x = artifact.inputs(particles)
    x64 = x.astype(np.float64)
    outputs = {
        "qkeras": network.predict(x, batch_size=batch_size, verbose=0),
        "csim": hls_model.predict(np.ascontiguousarray(x64)).reshape(len(x), -1),
        "emulator": emulator.predict(x64),
    }
    scores = {name: firmware_scores(artifact, out, x64, particles) for name, out in outputs.items()}
    threshold = artifact.threshold("quantized")
    pairs = []
    for a, b in combinations(scores, 2):
        diff = np.abs(scores[a] - scores[b])
        pairs.append(PairComparison(
            a, b, len(x), int(np.count_nonzero(diff)),
            int(np.count_nonzero((scores[a] > threshold) != (scores[b] > threshold))),
            float(diff.max(initial=0.0))))
    return pairs, scores


def check_firmware(artifact: Artifact, particles: NDArray[np.floating[Any]],
                   fw_dir: str | Path | None = None) -> list[PairComparison]:
    """Convert the artifact (in a temporary directory unless ``fw_dir``) and compare the paths."""
    from firmware.convert import to_hls

    with tempfile.TemporaryDirectory() as tmp:
        model = to_hls(artifact, fw_dir or Path(tmp) / "hls")
        pairs, _ = compare_paths(artifact, model, particles)
    return pairs


def csim_vs_emulator(pairs: list[PairComparison]) -> PairComparison:
    """The comparison that must be exact."""
    return next(p for p in pairs if {p.first, p.second} == {"csim", "emulator"})
