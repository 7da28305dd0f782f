"""A trained model as one self-describing directory, and :func:`load_artifact` to score with it.

Layout::

    manifest.json          format, version, files with their sha256, data hashes, package versions
    config.json            the model and training configuration (models.config)
    scaler.json            the preprocessing fitted on SM training events
    prior.json             the multiplicity prior added to the score (models.multiplicity), if any
    quantized.weights.h5   the QKeras model (absent for float-only baselines)
    float.weights.h5       its float twin
    thresholds.json        per variant: the calibrated threshold and its uncertainty
    history.json           per variant: loss per epoch
    metrics.json           evaluation numbers written at training time

Networks are rebuilt from ``config.json`` and get their weights from the files, so no
custom-object deserialisation is involved. ``Artifact.score`` is always the model's own network
(QKeras for the quantized variant, float arithmetic on its quantized weights); the firmware's
scores and decisions are the firmware bundle's (``firmware.bundle``), which ``trigger calibrate``
stores in a ``firmware/`` folder here that this module never reads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from models.config import Config
from models.hgq import RANGES_SUFFIX, load_ranges, save_ranges
from models.multiplicity import MultiplicityPrior
from models.networks import Networks, build_networks
from models.scores import anomaly_score
from trigger.errors import ArtifactError, TriggerError
from trigger.filehash import file_sha256
from trigger.preprocess import Scaler, filled_mask
from trigger.schema import DATASET
from trigger.thresholds import ThresholdEstimate
from trigger.versions import package_versions

__all__ = ("REGION_KIND", "Artifact", "file_sha256", "load_artifact", "read_manifest", "read_manifest_of_kind",
           "save_artifact",
           "update_manifest")

PRIOR = "prior.json"
FORMAT = "trigger.artifact"
VERSION = 1
#: the manifest's ``kind`` of a calorimeter-region model (``models.region_artifact``)
REGION_KIND = "regions"
PACKAGES = ("trigger-anomaly", "numpy", "tensorflow", "keras", "qkeras", "hgq", "hls4ml", "h5py", "scikit-learn")


@dataclass
class Artifact:
    """A loaded model directory: scores batches of raw ``Particles`` events."""

    path: Path
    config: Config
    scaler: Scaler
    networks: dict[str, Networks]
    thresholds: dict[str, ThresholdEstimate] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    prior: MultiplicityPrior | None = None  # added to every variant's score

    #: the event dataset the model reads
    reads = DATASET

    @property
    def name(self) -> str:
        return self.config.model.name

    @property
    def kind(self) -> str:
        return self.config.model.kind

    @property
    def score_name(self) -> str:
        """What the firmware's score is: mse, mu2, distilled, ..."""
        return self.config.model.score

    def variant_score(self, variant: str) -> str:  # noqa: ARG002  # the same for every variant
        """What ``variant``'s score is: the same for the model and its float twin."""
        return self.config.model.score

    @property
    def parameters(self) -> dict[str, int]:
        """Each variant's number of parameters."""
        return {v: int(n.trainable.count_params()) for v, n in self.networks.items()}

    @property
    def variants(self) -> list[str]:
        """``["quantized", "float"]``, or ``["float"]`` for a float-only baseline."""
        return list(self.networks)

    @property
    def default_variant(self) -> str:
        return self.variants[0]

    def inputs(self, particles: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
        return self.scaler.transform(particles)

    def score(self, particles: NDArray[np.floating[Any]], variant: str | None = None,
              batch_size: int = 8192) -> NDArray[np.float64]:
        """Anomaly scores of a batch of (N, 19, 4) events by the variant's network (for the quantized
        variant QKeras: float arithmetic on the quantized weights, not the firmware's fixed point)."""
        variant = variant or self.default_variant
        if variant not in self.networks:
            msg = f"{self.path}: no {variant!r} model; it has {', '.join(self.variants)}"
            raise TriggerError(msg)
        x = self.inputs(particles)
        if len(x) == 0:
            return np.zeros(0)
        outputs = self.networks[variant].scorer.predict(x, batch_size=batch_size, verbose=0)
        scores = anomaly_score(self.config.model.score, x, outputs, filled_mask(particles))
        return scores if self.prior is None else scores + self.prior.values(x)

    def threshold(self, variant: str | None = None) -> float:
        variant = variant or self.default_variant
        if variant not in self.thresholds:
            msg = (
                f"{self.path}: no calibrated threshold for {variant!r}; "
                "run `trigger calibrate`"
            )
            raise TriggerError(msg)
        return self.thresholds[variant].threshold

    def accept(self, particles: NDArray[np.floating[Any]], variant: str | None = None) -> NDArray[np.bool_]:
        """The trigger decision: score above the calibrated threshold."""
        return self.score(particles, variant) > self.threshold(variant)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def _is_hgq(config: Config, variant: str) -> bool:
    return variant == "quantized" and config.model.quantizer == "hgq"


def save_artifact(path: str | Path, config: Config, scaler: Scaler, networks: dict[str, Networks],
                  thresholds: dict[str, ThresholdEstimate], history: dict[str, Any],
                  metrics: dict[str, Any], data: dict[str, Any], prior: MultiplicityPrior | None = None) -> Path:
    """Write a complete artifact directory (weights files may already be there from checkpoints)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for variant, nets in networks.items():
        nets.trainable.save_weights(path / f"{variant}.weights.h5")
        if _is_hgq(config, variant):
            save_ranges(nets.trainable, path / f"{variant}{RANGES_SUFFIX}")
    _write_json(path / "config.json", config.as_dict())
    scaler.save(path / "scaler.json")
    if prior is not None:
        prior.save(path / PRIOR)
    _write_json(path / "thresholds.json", {v: t.as_dict() for v, t in thresholds.items()})
    _write_json(path / "history.json", history)
    _write_json(path / "metrics.json", metrics)
    update_manifest(path, variants=list(networks), data=data)
    return path


def update_manifest(path: Path, **fields_: Any) -> None:
    """(Re)write manifest.json with fresh hashes of every file, keeping earlier fields."""
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    files = sorted(p.name for p in path.iterdir() if p.is_file() and p.name != "manifest.json")
    manifest.update(fields_)
    manifest.update({
        "format": FORMAT,
        "version": VERSION,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "packages": package_versions(PACKAGES),
        "files": {name: file_sha256(path / name) for name in files},
    })
    _write_json(manifest_path, manifest)


class Thresholded(Protocol):
    """A model directory with thresholds: an :class:`Artifact` or a region model."""

    path: Path
    thresholds: dict[str, ThresholdEstimate]


def save_thresholds(artifact: Thresholded, thresholds: dict[str, ThresholdEstimate]) -> None:
    artifact.thresholds = thresholds
    _write_json(artifact.path / "thresholds.json", {v: t.as_dict() for v, t in thresholds.items()})
    update_manifest(artifact.path)


def read_manifest(path: Path) -> dict[str, Any]:
    """An artifact's manifest, every file it lists checked against its hash."""
    if not path.is_dir():
        msg = f"{path}: not a model artifact directory"
        raise ArtifactError(msg)
    try:
        manifest: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        msg = f"{path}: no manifest.json, not a model artifact"
        raise ArtifactError(msg) from None
    except ValueError as err:
        msg = f"{path}/manifest.json: damaged ({err})"
        raise ArtifactError(msg) from err
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        msg = (
            f"{path}: artifact format {manifest.get('format')!r} version "
            f"{manifest.get('version')!r}; this trigger reads {FORMAT!r} version {VERSION}"
        )
        raise ArtifactError(msg)
    for name, digest in manifest.get("files", {}).items():
        if not (path / name).is_file():
            msg = f"{path}: {name} is missing"
            raise ArtifactError(msg)
        if file_sha256(path / name) != digest:
            msg = f"{path}: {name} is damaged or was changed (sha256 mismatch)"
            raise ArtifactError(msg)
    return manifest


def read_manifest_of_kind(path: Path, kind: str, otherwise: str) -> dict[str, Any]:
    """:func:`read_manifest` of a directory of one ``kind`` (supervised, regions); ``otherwise`` says
    what the directory is not when its kind differs."""
    manifest = read_manifest(path)
    if manifest.get("kind") != kind:
        msg = f"{path}: {otherwise}"
        raise ArtifactError(msg)
    return manifest


def load_artifact(path: str | Path) -> Artifact:
    """Load an artifact directory; any damage or incompatibility is an :class:`ArtifactError`."""
    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("kind") == REGION_KIND:
        msg = (f"{path}: a calorimeter-region model (it reads CaloRegions, not Particles): `trigger calibrate`, "
               "`trigger evaluate` and `trigger firmware check` / `estimate` take it, this command does not")
        raise ArtifactError(msg)
    if manifest.get("kind") == "supervised":
        msg = (f"{path}: a {manifest.get('note', 'supervised classifier')}; it is not an anomaly score and "
               f"cannot be a trigger's model: compare it with `trigger evaluate --supervised {path}`")
        raise ArtifactError(msg)
    try:
        config = Config.from_dict(json.loads((path / "config.json").read_text()))
        thresholds = {v: ThresholdEstimate.from_dict(t)
                      for v, t in json.loads((path / "thresholds.json").read_text()).items()}
    except (ValueError, KeyError, TypeError, TriggerError) as err:
        msg = f"{path}: unusable configuration or thresholds ({err})"
        raise ArtifactError(msg) from err
    scaler = Scaler.load(path / "scaler.json")
    networks = {}
    for variant in manifest.get("variants", []):
        nets = build_networks(config.model, quantized=variant == "quantized")
        try:
            nets.trainable.load_weights(path / f"{variant}.weights.h5")
        except (OSError, ValueError) as err:
            msg = f"{path}: cannot load {variant}.weights.h5 ({err})"
            raise ArtifactError(msg) from err
        if _is_hgq(config, variant):
            load_ranges(nets.trainable, path / f"{variant}{RANGES_SUFFIX}")
        networks[variant] = nets
    if not networks:
        msg = f"{path}: the manifest lists no models"
        raise ArtifactError(msg)
    prior = MultiplicityPrior.load(path / PRIOR) if (path / PRIOR).exists() else None
    return Artifact(path, config, scaler, networks, thresholds, manifest, prior)
