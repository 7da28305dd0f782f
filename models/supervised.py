"""The supervised upper bound: a classifier trained on SM against one signal.

It is not an anomaly detector: it needs the signal it is for, and it says so wherever it
appears. Its efficiency at the trigger working point is what a trigger dedicated to that
signal would reach, the bound the anomaly scores are measured against.

Two classifiers are trained on the 57 inputs plus object multiplicities, jet HT, the lepton pT
sum and MET: scikit-learn's ``HistGradientBoostingClassifier`` and seed 000's DNN
(:mod:`models.seed_dnn`); the one that keeps more signal at FPR 10^-3 on the validation events
(the lowest FPR they resolve; then the higher AUC) is kept, and both candidates' numbers are
recorded. SM events follow the autoencoders' split rules (60 % train, 20 %
validation, 20 % held out); the signal file is split in order, the first
``signal_train_fraction`` trained on (its last quarter the signal's validation events), the
rest held out. Both classifiers stop early on the validation events. The stored threshold is
calibrated at the working point on the held-out SM events, or on a calibration sample.
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

from models.artifact import file_sha256, read_manifest_of_kind, update_manifest
from models.seed_dnn import STANDARDIZATION, WEIGHTS, SeedDNN
from models.train import split_events
from trigger.events import open_events
from trigger.schema import BLOCKS, DATASET, ETA, PHI, PT
from trigger.thresholds import ThresholdEstimate, threshold_for

__all__ = ("KIND", "SupervisedArtifact", "features", "load_supervised", "train_supervised")

KIND = "supervised"
_MODEL = "classifier.joblib"
GBDT, DNN = "gradient-boosted", "seed-000 dnn"  # the two candidates
SELECTION_FPR = 1e-3
SELECTION = "validation_tpr_at_fpr_1e-3"  # what decides which candidate is kept: the trigger's concern


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

    #: the event dataset the classifier reads
    reads = DATASET

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


def _balanced(sm: NDArray[np.floating[Any]], signal: NDArray[np.floating[Any]]) -> tuple[
        NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]]:
    """Features, labels and weights under which both classes weigh the same."""
    x = np.concatenate([features(sm), features(signal)])
    y = np.r_[np.zeros(len(sm)), np.ones(len(signal))]
    return x, y, np.where(y == 1, len(sm) / max(len(signal), 1), 1.0)


def _merits(scores: NDArray[np.float64], labels: NDArray[np.float64]) -> dict[str, float]:
    """A candidate's validation AUC and its signal efficiency at FPR 10^-3, the lowest FPR the
    validation SM events resolve (20 of 20,000 above the threshold on the bundled sample)."""
    from sklearn.metrics import roc_auc_score

    sm, signal = scores[labels == 0], scores[labels == 1]
    threshold = threshold_for(sm, SELECTION_FPR).threshold
    return {"validation_auc": round(float(roc_auc_score(labels, scores)), 5),
            SELECTION: round(float(np.mean(signal > threshold)), 5)}


def _fit_candidates(fit: tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]],
                    validation: tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64]],
                    seed: int, max_iter: int, dnn_epochs: int) -> dict[str, tuple[Any, float]]:
    """Each candidate classifier with its training seconds."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    candidates = {}
    start = time.monotonic()
    boosted = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.1, early_stopping=True,
                                             n_iter_no_change=20, random_state=seed)
    boosted.fit(*fit, X_val=validation[0], y_val=validation[1], sample_weight_val=validation[2])
    candidates[GBDT] = (boosted, time.monotonic() - start)
    start = time.monotonic()
    candidates[DNN] = (SeedDNN.fit(*fit, validation, seed=seed, max_epochs=dnn_epochs), time.monotonic() - start)
    return candidates


def train_supervised(background: str | Path, signal: str | Path, out: str | Path, fpr: float, seed: int = 1,
                     signal_train_fraction: float = 0.6, max_iter: int = 500,
                     calibration: str | Path | None = None, dnn_epochs: int = 100) -> SupervisedArtifact:
    """Train both classifiers of ``signal`` against the SM events of ``background``, keep the stronger
    on the validation events; write ``out``. The threshold for ``fpr`` is calibrated on the held-out
    SM events of ``background``, or on every event of ``calibration`` (an SM file never trained on,
    e.g. the calibration sample)."""
    out = Path(out)
    with open_events(background) as sm_file, open_events(signal) as signal_file:
        split = split_events(sm_file.n_events, 0.2, 0.2)
        n_signal_train = round(signal_file.n_events * signal_train_fraction)
        n_signal_fit = round(n_signal_train * 0.75)
        fit = _balanced(sm_file.read(*split.train), signal_file.read(0, n_signal_fit))
        validation = _balanced(sm_file.read(*split.validation), signal_file.read(n_signal_fit, n_signal_train))
        sm_test = sm_file.read(*split.test)
        name = str(signal_file.attrs.get("process") or Path(signal).stem)
    candidates = _fit_candidates(fit, validation, seed, max_iter, dnn_epochs)
    merits = {kind: _merits(c.decision_function(validation[0]), validation[1]) for kind, (c, _) in candidates.items()}
    kept = max(merits, key=lambda kind: (merits[kind][SELECTION], merits[kind]["validation_auc"]))
    classifier, seconds = candidates[kept]
    out.mkdir(parents=True, exist_ok=True)
    for stale in (_MODEL, WEIGHTS, STANDARDIZATION):
        (out / stale).unlink(missing_ok=True)
    if kept == GBDT:
        joblib.dump(classifier, out / _MODEL)
    else:
        classifier.save(out)
    if calibration is None:
        threshold = threshold_for(_log_odds(classifier, sm_test), fpr, path=KIND, events=(
            f"held-out test split [{split.test[0]}, {split.test[1]}) of {Path(background).name}"))
    else:
        with open_events(calibration) as events:
            scores = np.concatenate([_log_odds(classifier, batch.particles) for batch in events.iter_batches(100_000)])
        threshold = threshold_for(scores, fpr, path=KIND, events=f"all {len(scores)} events of {Path(calibration).name}")
    (out / "threshold.json").write_text(json.dumps(threshold.as_dict(), indent=1) + "\n")
    update_manifest(out, kind=KIND, signal=name, classifier=kept, note=(
        f"supervised classifier for {name}: the bound a trigger dedicated to this signal reaches, "
        "not an anomaly detector"),
        data={"file": Path(background).name, "sha256": file_sha256(background), "split": split.as_dict()},
        signal_data={"file": Path(signal).name, "sha256": file_sha256(signal), "train": [0, n_signal_train],
                     "validation": [n_signal_fit, n_signal_train]},
        candidates={kind: {**merits[kind], "seconds": round(sec, 1),
                           "iterations": int(c.n_iter_) if kind == GBDT else c.epochs}
                    for kind, (c, sec) in candidates.items()},
        selection=f"the higher {SELECTION} (then validation_auc) on the validation events",
        training={"classifier": kept, "seconds": round(seconds, 1), "seed": seed,
                  "sm_events": int(np.sum(fit[1] == 0)), "signal_events": int(np.sum(fit[1] == 1))})
    return load_supervised(out)


def load_supervised(path: str | Path) -> SupervisedArtifact:
    """A supervised artifact, its files checked against the manifest's hashes before unpickling."""
    path = Path(path)
    manifest = read_manifest_of_kind(path, KIND, "not a supervised classifier (an anomaly model: use --model)")
    threshold = ThresholdEstimate.from_dict(json.loads((path / "threshold.json").read_text()))
    kept = manifest.get("classifier", GBDT)
    classifier = SeedDNN.load(path) if kept == DNN else joblib.load(path / _MODEL)
    return SupervisedArtifact(path, manifest["signal"], classifier, threshold, manifest)
