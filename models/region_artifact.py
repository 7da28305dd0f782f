"""A calorimeter-region model as one self-describing directory: CICADA's student and its teacher.

Layout (the manifest is ``models.artifact``'s, with ``kind = "regions"``)::

    manifest.json         files with their sha256, the training file's hash and split, package versions
    region.json           RegionSpec: the student's shape and widths, the teacher's and student's training
    quantized.weights.h5  the QKeras student (``models.regions.cicada_student``)
    teacher.weights.h5    the float teacher (``models.region_distill.cicada_teacher``)
    thresholds.json       per variant: the calibrated threshold and its uncertainty
    firmware/             the student's firmware bundle, stored by ``trigger calibrate``

Two variants score events' ``CaloRegions`` counts: ``quantized``, the student in QKeras, whose
score is its output squared (the firmware's ``distilled`` score: ``firmware.region_convert``), and
``teacher``, the teacher's mean squared reconstruction error, the float reference the student
learned from. :func:`train_region_artifact` trains both on a file's first 60 % (the next 20 %
validate; the last 20 % are held out for thresholds and evaluation, as for the object models).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from models.artifact import (
    REGION_KIND,
    Artifact,
    load_artifact,
    read_manifest,
    read_manifest_of_kind,
    save_thresholds,
    update_manifest,
)
from models.region_distill import RegionTraining, region_images, teacher_mse, train_student, train_teacher
from trigger.contracts.record import Record
from trigger.errors import ArtifactError, TriggerError, UsageError
from trigger.events import open_events
from trigger.filehash import file_sha256
from trigger.schema import REGIONS_DATASET
from trigger.thresholds import ThresholdEstimate, threshold_for

__all__ = ("RegionArtifact", "RegionSpec", "TriggerModel", "load_model", "load_region_artifact", "train_region_artifact")

SPEC = "region.json"
STUDENT, TEACHER = "quantized", "teacher"
VARIANTS = (STUDENT, TEACHER)
SPLIT = (0.6, 0.8)  # train [0, 60 %), validation [60 %, 80 %), held out [80 %, 100 %)


@dataclass
class RegionSpec(Record):
    """The region student's shape and widths (CICADA v2's by default) and how both models train."""

    FORMAT = "trigger.region-model"
    VERSION = 1

    name: str = "cicada-student"
    filters: int = 4
    hidden: int = 16
    weight_bits: int = 8  # quantized_bits(bits, 1) of the dense layers
    conv_weight_bits: int = 0  # of the convolution; 0: weight_bits
    activation_bits: int = 10  # quantized_relu(bits, integer)
    activation_integer: int = 6
    sparsity: float = 0.0  # the dense layer's weights pruned to this fraction of zeros while training
    output_type: str = "ap_fixed<12,9,AP_RND,AP_SAT_SYM>"  # the student's output in firmware
    teacher_epochs: int = 20
    student_epochs: int = 60
    batch_size: int = 512
    learning_rate: float = 1e-3
    patience: int = 6
    seed: int = 1
    max_events: int = 0  # 0: every event of the training file
    notes: dict[str, Any] = field(default_factory=dict)

    def problem(self) -> str | None:
        if min(self.filters, self.hidden, self.weight_bits, self.activation_bits) < 1 or self.conv_weight_bits < 0:
            return "filters, hidden and the bit widths must be positive"
        if not 0.0 <= self.sparsity < 1.0:
            return f"sparsity must be in [0, 1), got {self.sparsity}"
        return None

    def training(self) -> RegionTraining:
        return RegionTraining(self.teacher_epochs, self.student_epochs, self.batch_size, self.learning_rate,
                              self.patience, self.seed, self.sparsity)

    def student(self) -> Any:
        """The untrained QKeras student of this shape."""
        from models.regions import cicada_student

        return cicada_student(self.filters, self.hidden, self.weight_bits,
                              (self.activation_bits, self.activation_integer),
                              conv_weight_bits=self.conv_weight_bits or None)


@dataclass
class RegionArtifact:
    """A loaded region model directory: scores batches of ``CaloRegions`` counts, (N, 18, 14)."""

    path: Path
    spec: RegionSpec
    student: Any  # keras.Model (QKeras): counts -> the estimate of 32 ln(teacher MSE)
    teacher: Any  # keras.Model: counts -> their reconstruction
    thresholds: dict[str, ThresholdEstimate] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    #: the event dataset the model reads
    reads = REGIONS_DATASET
    scaler = None  # the counts are the firmware's inputs as they are
    default_variant = STUDENT

    @property
    def variants(self) -> list[str]:
        return list(VARIANTS)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return REGION_KIND

    @property
    def score_name(self) -> str:
        """The firmware's score: the student's output squared."""
        return "distilled"

    def variant_score(self, variant: str) -> str:
        return "mse" if variant == TEACHER else "distilled"

    @property
    def parameters(self) -> dict[str, int]:
        """Each variant's number of parameters."""
        return {STUDENT: int(self.student.count_params()), TEACHER: int(self.teacher.count_params())}

    def inputs(self, counts: NDArray[Any]) -> NDArray[np.float32]:
        """The networks' (and the C-simulation's) inputs: (N, 18, 14, 1) counts."""
        return region_images(counts)

    def score(self, counts: NDArray[Any], variant: str | None = None, batch_size: int = 8192) -> NDArray[np.float64]:
        """Scores of a batch of events' region counts: the student's output squared (QKeras), or the
        teacher's reconstruction MSE."""
        variant = variant or STUDENT
        if variant not in VARIANTS:
            msg = f"{self.path}: no {variant!r} model; it has {', '.join(VARIANTS)}"
            raise TriggerError(msg)
        images = self.inputs(counts)
        if len(images) == 0:
            return np.zeros(0)
        if variant == TEACHER:
            return teacher_mse(self.teacher, images, batch_size)
        output = self.student.predict(images, batch_size=batch_size, verbose=0)[:, 0].astype(np.float64)
        scores: NDArray[np.float64] = output**2
        return scores

    def threshold(self, variant: str | None = None) -> float:
        variant = variant or STUDENT
        if variant not in self.thresholds:
            msg = f"{self.path}: no calibrated threshold for {variant!r}; run `trigger calibrate`"
            raise TriggerError(msg)
        return self.thresholds[variant].threshold


def _networks(spec: RegionSpec) -> tuple[Any, Any]:
    from models.region_distill import cicada_teacher

    return spec.student(), cicada_teacher()


def load_region_artifact(path: str | Path) -> RegionArtifact:
    """Load a region model directory; damage or incompatibility is an :class:`ArtifactError`."""
    path = Path(path)
    manifest = read_manifest_of_kind(path, REGION_KIND, "not a calorimeter-region model (trigger train-regions)")
    try:
        spec = RegionSpec.load(path / SPEC)
        thresholds = {v: ThresholdEstimate.from_dict(t)
                      for v, t in json.loads((path / "thresholds.json").read_text()).items()}
    except (ValueError, KeyError, TypeError, TriggerError) as err:
        msg = f"{path}: unusable region.json or thresholds ({err})"
        raise ArtifactError(msg) from err
    student, teacher = _networks(spec)
    for variant, network in ((STUDENT, student), (TEACHER, teacher)):
        try:
            network.load_weights(path / f"{variant}.weights.h5")
        except (OSError, ValueError) as err:
            msg = f"{path}: cannot load {variant}.weights.h5 ({err})"
            raise ArtifactError(msg) from err
    return RegionArtifact(path, spec, student, teacher, thresholds, manifest)


#: any trigger model directory, loaded
TriggerModel = Artifact | RegionArtifact


def load_model(path: str | Path) -> TriggerModel:
    """Any trigger model directory: an object model (``models.artifact``) or a region model."""
    if read_manifest(Path(path)).get("kind") == REGION_KIND:
        return load_region_artifact(path)
    return load_artifact(path)


def _split(n: int) -> dict[str, list[int]]:
    a, b = round(n * SPLIT[0]), round(n * SPLIT[1])
    if min(a, b - a, n - b) < 1:
        msg = f"{n} events are too few to split into train/validation/held-out"
        raise UsageError(msg)
    return {"train": [0, a], "validation": [a, b], "test": [b, n]}


def train_region_artifact(data: str | Path, out: str | Path, spec: RegionSpec | None = None,
                          log: TextIO | None = None) -> RegionArtifact:
    """Train the teacher, then the student on its targets, on ``data``'s SM ``CaloRegions``; store both
    with thresholds at FPR 1e-3 of the held-out split (``trigger calibrate`` sets the working point's)."""
    spec = spec or RegionSpec()
    data, out = Path(data), Path(out)
    with open_events(data) as events:
        n = min(events.n_events, spec.max_events or events.n_events)
        counts = events.read_regions(0, n)
        source = events.attrs
    split = _split(n)
    (a, b), (c, d) = split["validation"], split["test"]
    settings = spec.training()
    start = time.monotonic()
    teacher = train_teacher(counts[:a], counts[a:b], settings, log)
    student = train_student(teacher, counts[:a], counts[a:b], settings, spec.student(), log)
    out.mkdir(parents=True, exist_ok=True)
    student.save_weights(out / f"{STUDENT}.weights.h5")
    teacher.save_weights(out / f"{TEACHER}.weights.h5")
    spec.save(out / SPEC)
    artifact = RegionArtifact(out, spec, student, teacher)
    held_out = f"held-out split [{c}, {d}) of {data.name}"
    thresholds = {v: threshold_for(artifact.score(counts[c:d], v), 1e-3, path="qkeras" if v == STUDENT else v,
                                   events=held_out) for v in VARIANTS}
    (out / "thresholds.json").write_text("{}\n")
    update_manifest(out, kind=REGION_KIND, reads=REGIONS_DATASET, variants=list(VARIANTS),
                    note="a calorimeter-region trigger: CICADA's student, distilled from its conv-autoencoder teacher",
                    train_seconds=round(time.monotonic() - start, 1),
                    data={"file": data.name, "sha256": file_sha256(data), "events_used": n, "split": split,
                          "source_process": source.get("process"), "source_seed": source.get("seed")},
                    parameters={STUDENT: int(student.count_params()), TEACHER: int(teacher.count_params())})
    save_thresholds(artifact, thresholds)
    return load_region_artifact(out)
