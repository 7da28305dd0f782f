"""The supervised upper bound: a classifier trained on SM against one signal.

It is not an anomaly detector: it needs the signal it is for, and it says so wherever it
appears. Its efficiency at the trigger working point is what a trigger dedicated to that
signal would reach, the bound the anomaly scores are measured against.

The classifier is scikit-learn's ``HistGradientBoostingClassifier`` on the 57 inputs plus
object multiplicities, jet HT, the lepton pT sum and MET. SM events follow the autoencoders'
split rules (60 % train, 20 % validation for early stopping, 20 % held out); the signal file
is split in order, the first ``signal_train_fraction`` trained on, the rest held out. The
stored threshold is calibrated at the working point on the held-out SM events.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from numpy.typing import NDArray

from models.artifact import file_sha256, read_manifest, update_manifest
from models.train import split_events
from trigger.errors import ArtifactError
from trigger.events import open_events
from trigger.schema import BLOCKS, ETA, PHI, PT
from trigger.thresholds import ThresholdEstimate, threshold_for

__all__ = ("KIND", "SupervisedArtifact", "features", "load_supervised", "train_supervised")

KIND = "supervised"
_MODEL = "classifier.joblib"


def features(particles: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """(N, 63): pT, eta, phi of the 19 slots, then the numbers of electrons, muons and jets, jet HT,
    the lepton pT sum and MET."""
    p = np.asarray(particles, np.float32)
    pt = p[..., PT]
    blocks = {b.name: slice(b.start, b.stop) for b in BLOCKS}
    filled = pt > 0
    counts = [filled[:, blocks[name]].sum(axis=1) for name in ("electrons", "muons", "jets")]
    ht = pt[:, blocks["jets"]].sum(axis=1)
    leptons = pt[:, blocks["electrons"]].sum(axis=1) + pt[:, blocks["muons"]].sum(axis=1)
    met = pt[:, blocks["met"]].sum(axis=1)
    slots = p[..., [PT, ETA, PHI]].reshape(len(p), -1)
    return np.column_stack([slots, *counts, ht, leptons, met]).astype(np.float32)


@dataclass
class SupervisedArtifact:
    """A trained classifier for one signal; ``score`` is its log-odds of signal."""

    path: Path
    signal: str
    classifier: Any
    threshold: ThresholdEstimate
    manifest: dict[str, Any]

    def score(self, particles: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        return _log_odds(self.classifier, particles)

    def held_out_signal(self, path: str | Path, events: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
        """The events of signal file ``path`` it never trained on: past its training part when it
        is the training file, else all."""
        data = self.manifest["signal_data"]
        if file_sha256(path) == data["sha256"]:
            return events[data["train"][1]:]
        return events


def _log_odds(classifier: Any, particles: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    if len(particles) == 0:
        return np.zeros(0)
    return np.asarray(classifier.decision_function(features(particles)), np.float64)


def train_supervised(background: str | Path, signal: str | Path, out: str | Path, fpr: float, seed: int = 1,
                     signal_train_fraction: float = 0.6, max_iter: int = 500,
                     calibration: str | Path | None = None) -> SupervisedArtifact:
    """Train the classifier of ``signal`` against the SM events of ``background``; write ``out``.
    The threshold for ``fpr`` is calibrated on the held-out SM events of ``background``, or on
    every event of ``calibration`` (an SM file never trained on, e.g. the calibration sample)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    out = Path(out)
    with open_events(background) as sm_file, open_events(signal) as signal_file:
        split = split_events(sm_file.n_events, 0.2, 0.2)
        sm_train = sm_file.read(0, split.validation[1])  # the classifier holds out its own validation part
        sm_test = sm_file.read(*split.test)
        n_signal_train = round(signal_file.n_events * signal_train_fraction)
        signal_train = signal_file.read(0, n_signal_train)
        name = str(signal_file.attrs.get("process") or Path(signal).stem)
    x = np.concatenate([features(sm_train), features(signal_train)])
    y = np.r_[np.zeros(len(sm_train)), np.ones(len(signal_train))]
    weights = np.where(y == 1, len(sm_train) / max(len(signal_train), 1), 1.0)  # both classes weigh the same
    classifier = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.1, early_stopping=True,
                                                validation_fraction=0.25, n_iter_no_change=20, random_state=seed)
    start = time.monotonic()
    classifier.fit(x, y, sample_weight=weights)
    seconds = time.monotonic() - start
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(classifier, out / _MODEL)
    if calibration is None:
        threshold = threshold_for(_log_odds(classifier, sm_test), fpr, path=KIND, events=(
            f"held-out test split [{split.test[0]}, {split.test[1]}) of {Path(background).name}"))
    else:
        with open_events(calibration) as events:
            scores = np.concatenate([_log_odds(classifier, batch.particles) for batch in events.iter_batches(100_000)])
        threshold = threshold_for(scores, fpr, path=KIND, events=f"all {len(scores)} events of {Path(calibration).name}")
    (out / "threshold.json").write_text(json.dumps(threshold.as_dict(), indent=1) + "\n")
    update_manifest(out, kind=KIND, signal=name, note=(
        f"supervised classifier for {name}: the bound a trigger dedicated to this signal reaches, "
        "not an anomaly detector"),
        data={"file": Path(background).name, "sha256": file_sha256(background), "split": split.as_dict()},
        signal_data={"file": Path(signal).name, "sha256": file_sha256(signal), "train": [0, n_signal_train]},
        training={"iterations": int(classifier.n_iter_), "seconds": round(seconds, 1), "seed": seed,
                  "sm_events": len(sm_train), "signal_events": len(signal_train)})
    return load_supervised(out)


def load_supervised(path: str | Path) -> SupervisedArtifact:
    """A supervised artifact, its files checked against the manifest's hashes before unpickling."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("kind") != KIND:
        msg = f"{path}: not a supervised classifier (an anomaly model: use --model)"
        raise ArtifactError(msg)
    threshold = ThresholdEstimate.from_dict(json.loads((path / "threshold.json").read_text()))
    return SupervisedArtifact(path, manifest["signal"], joblib.load(path / _MODEL), threshold, manifest)
