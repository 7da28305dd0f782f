"""Score and decide the same events three ways (QKeras, hls4ml C-simulation, emulator) and count differences."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from firmware.bundle import FirmwareBundle, converted_with_bundle
from models.artifact import Artifact
from models.region_artifact import TriggerModel

__all__ = ("PairComparison", "check_firmware", "compare_paths", "csim_and_bundle", "csim_outputs", "csim_vs_emulator")


def csim_outputs(hls_model: Any, x: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """The C-simulation's (score, accept) per event, as one array like ``Emulator.predict``'s."""
    outputs = hls_model.predict(np.ascontiguousarray(x, np.float64))
    return np.column_stack([np.asarray(o, np.float64).reshape(len(x), -1) for o in outputs])


@dataclass(frozen=True)
class PairComparison:
    first: str
    second: str
    events: int
    scores_differ: int
    decisions_differ: int
    max_abs_difference: float

    @property
    def exact(self) -> bool:
        """Identical scores and identical decisions on every event."""
        return self.scores_differ == 0 and self.decisions_differ == 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def compare_paths(artifact: TriggerModel, hls_model: Any, events: NDArray[Any], firmware: FirmwareBundle,
                  batch_size: int = 8192) -> tuple[list[PairComparison], dict[str, NDArray[np.float64]]]:
    """Scores and accept bits of QKeras, the C-sim and the firmware bundle's (compiled) emulator on
    ``events`` (raw, of the dataset the model reads), pairwise compared; ``hls_model`` must be converted at the bundle's threshold.
    The C-sim decides in firmware (its accept output), the emulator exactly where its score is above
    ``threshold_value``; QKeras is the quantized model's own score (``Artifact.score``: its layers
    in float on the quantized weights, errors not cast, a multiplicity prior added), deciding where
    it is above the threshold."""
    emulator = firmware.emulator
    x64 = artifact.inputs(events).astype(np.float64)
    keras = artifact.score(events, "quantized", batch_size=batch_size)
    csim = csim_outputs(hls_model, x64)
    compiled = firmware.scores(events)
    name = "hgq" if isinstance(artifact, Artifact) and artifact.config.model.quantizer == "hgq" else "qkeras"
    scores = {name: keras, "csim": emulator.scores(csim), "emulator": compiled}
    decisions = {name: keras > firmware.threshold, "csim": csim[:, 1] == 1,
                 "emulator": compiled > emulator.threshold_value}
    pairs = []
    for a, b in combinations(scores, 2):
        diff = np.abs(scores[a] - scores[b])
        pairs.append(PairComparison(
            a, b, len(x64), int(np.count_nonzero(diff)),
            int(np.count_nonzero(decisions[a] != decisions[b])), float(diff.max(initial=0.0))))
    return pairs, scores


def check_firmware(artifact: TriggerModel, events: NDArray[Any],
                   fw_dir: str | Path | None = None) -> list[PairComparison]:
    """Compare QKeras, a fresh C-simulation (in a temporary directory unless ``fw_dir``) and the
    artifact's firmware bundle (the one ``trigger calibrate`` stored, else one built now)."""
    with tempfile.TemporaryDirectory() as tmp:
        model, firmware = csim_and_bundle(artifact, fw_dir or Path(tmp) / "hls")
        pairs, _ = compare_paths(artifact, model, events, firmware)
    return pairs


def csim_and_bundle(artifact: TriggerModel, out_dir: str | Path) -> tuple[Any, FirmwareBundle]:
    """A compiled C-simulation of the artifact in ``out_dir`` and its firmware bundle, deciding at the
    same threshold: the bundle ``trigger calibrate`` stored, else the one this conversion gives."""
    from firmware.convert import to_hls

    return converted_with_bundle(artifact, lambda threshold: to_hls(artifact, out_dir, threshold=threshold))


def csim_vs_emulator(pairs: list[PairComparison]) -> PairComparison:
    """The comparison that must be exact."""
    return next(p for p in pairs if {p.first, p.second} == {"csim", "emulator"})
