"""Teacher and student on the calorimeter's region images, CICADA's recipe.

The teacher (:func:`cicada_teacher`) is a float convolutional autoencoder on the 18 x 14 region
energies in counts of ``REGION_LSB_GEV``, as CICADA's teacher reads them: conv 20 -> average pool
-> conv 30 -> dense latent 80 -> the mirror; its anomaly score is the image's mean squared
reconstruction error. The student (``models.regions.cicada_student``, on the same counts, which
are what the firmware receives) regresses CICADA's target ``32 ln(teacher MSE)`` on an unsigned
16-bit grid with 8 integer bits (steps of 1/256, clipped to ``[0, 256)``), with a mean absolute error: one output that orders events as the
teacher does in its tail, in a few hundred multiplications. Both train on SM events only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
from numpy.typing import NDArray

from models.seeding import seed_training
from trigger.schema import REGION_N_ETA, REGION_N_PHI

__all__ = ("RegionModels", "RegionTraining", "cicada_teacher", "region_images", "student_targets", "teacher_mse",
           "train_region_models", "train_student", "train_teacher")

TARGET_SCALE = 32.0  # CICADA: targets are 32 ln(MSE) ...
TARGET_STEP, TARGET_MAX = 1.0 / 256, 256.0  # ... on ap_ufixed<16,8>


@dataclass(frozen=True)
class RegionTraining:
    """Training settings of the teacher and of the student."""

    teacher_epochs: int = 20
    student_epochs: int = 60
    batch_size: int = 512
    learning_rate: float = 1e-3
    patience: int = 6  # epochs without a better validation loss before stopping
    seed: int = 1
    sparsity: float = 0.0  # the student's large layers pruned to this fraction of zeros (models.pruning)


@dataclass(frozen=True)
class RegionModels:
    teacher: Any  # keras.Model: (18, 14, 1) counts -> their reconstruction
    student: Any  # keras.Model (QKeras): (18, 14, 1) counts -> the target estimate


def region_images(counts: NDArray[np.integer[Any]]) -> NDArray[np.float32]:
    """(N, 18, 14) region counts (a file's ``CaloRegions``) -> (N, 18, 14, 1) float32 network inputs."""
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[1:] != (REGION_N_PHI, REGION_N_ETA):
        msg = f"region images must be (N, {REGION_N_PHI}, {REGION_N_ETA}), got {counts.shape}"
        raise ValueError(msg)
    return counts.astype(np.float32)[..., None]


def cicada_teacher(name: str = "cicada_teacher") -> Any:
    """The float teacher: conv 20 (3 x 3) -> average pool 2 x 2 -> conv 30 -> dense 80 -> dense to
    9 x 7 x 30 -> conv 30 -> upsample 2 x 2 -> conv 20 -> conv 1 (ReLU: energies are >= 0)."""
    import tensorflow as tf

    layers = tf.keras.layers
    x = inputs = tf.keras.Input((REGION_N_PHI, REGION_N_ETA, 1), name="regions")
    x = layers.Conv2D(20, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.AveragePooling2D(2, name="pool")(x)
    x = layers.Conv2D(30, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.Dense(80, activation="relu", name="latent")(layers.Flatten(name="flat")(x))
    x = layers.Reshape((REGION_N_PHI // 2, REGION_N_ETA // 2, 30), name="unflat")(
        layers.Dense((REGION_N_PHI // 2) * (REGION_N_ETA // 2) * 30, activation="relu", name="expand")(x))
    x = layers.Conv2D(30, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.UpSampling2D(2, name="upsample")(x)
    x = layers.Conv2D(20, 3, padding="same", activation="relu", name="conv4")(x)
    outputs = layers.Conv2D(1, 3, padding="same", activation="relu", name="reconstruction")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def teacher_mse(teacher: Any, images: NDArray[np.float32], batch_size: int = 4096) -> NDArray[np.float64]:
    """Each image's mean squared reconstruction error by ``teacher``: its anomaly score."""
    if len(images) == 0:
        return np.zeros(0)
    reconstruction = teacher.predict(images, batch_size=batch_size, verbose=0)
    diff = images.astype(np.float64) - reconstruction
    mse: NDArray[np.float64] = np.mean(diff.reshape(len(diff), -1) ** 2, axis=1)
    return mse


def student_targets(mse: NDArray[np.floating[Any]]) -> NDArray[np.float32]:
    """CICADA's regression targets of teacher scores, (N, 1): ``32 ln(mse)`` rounded to steps of
    1/256 and clipped to [0, 256 - 1/256] (an MSE below 1 is 0)."""
    with np.errstate(divide="ignore"):
        log = np.log(np.asarray(mse, np.float64))
    target = np.clip(np.round(TARGET_SCALE * log / TARGET_STEP) * TARGET_STEP, 0.0, TARGET_MAX - TARGET_STEP)
    targets: NDArray[np.float32] = target.astype(np.float32).reshape(-1, 1)
    return targets


def _fit(model: Any, x: Any, y: Any, validation: tuple[Any, Any], epochs: int, settings: RegionTraining,
         loss: str, log: TextIO | None, callbacks: tuple[Any, ...] = ()) -> None:
    import tensorflow as tf

    model.compile(optimizer=tf.keras.optimizers.Adam(settings.learning_rate), loss=loss)
    stop = tf.keras.callbacks.EarlyStopping(patience=settings.patience, restore_best_weights=True)
    history = model.fit(x, y, validation_data=validation, epochs=epochs, batch_size=settings.batch_size,
                        callbacks=[stop, *callbacks], verbose=0, shuffle=True)
    if log is not None:
        losses = history.history["val_loss"]
        print(f"  {model.name}: {len(losses)} epochs, best validation {loss} {min(losses):.5g}", file=log)


def train_teacher(train: NDArray[np.integer[Any]], validation: NDArray[np.integer[Any]],
                  settings: RegionTraining | None = None, log: TextIO | None = None) -> Any:
    """The teacher trained on SM ``train`` region counts (validated on ``validation``)."""
    settings = settings or RegionTraining()
    seed_training(settings.seed)
    x, x_val = region_images(train), region_images(validation)
    teacher = cicada_teacher()
    _fit(teacher, x, x, (x_val, x_val), settings.teacher_epochs, settings, "mse", log)
    return teacher


def train_student(teacher: Any, train: NDArray[np.integer[Any]], validation: NDArray[np.integer[Any]],
                  settings: RegionTraining | None = None, student: Any = None, log: TextIO | None = None) -> Any:
    """A student (default: ``cicada_student`` with 8-bit weights and 10-bit ReLUs of 6 integer bits,
    CICADA v2's) trained on the teacher's targets of the same SM events, its large layers pruned to
    ``settings.sparsity`` when that is above 0."""
    from models.pruning import pruned_fit
    from models.regions import cicada_student

    settings = settings or RegionTraining()
    seed_training(settings.seed)
    x, x_val = region_images(train), region_images(validation)
    y, y_val = student_targets(teacher_mse(teacher, x)), student_targets(teacher_mse(teacher, x_val))
    student = student if student is not None else cicada_student(weight_bits=8, activation=(10, 6))
    if settings.sparsity > 0:
        return pruned_fit(student, settings.sparsity, lambda network, callbacks: _fit(
            network, x, y, (x_val, y_val), settings.student_epochs, settings, "mae", log, tuple(callbacks)))
    _fit(student, x, y, (x_val, y_val), settings.student_epochs, settings, "mae", log)
    return student


def train_region_models(train: NDArray[np.integer[Any]], validation: NDArray[np.integer[Any]],
                        settings: RegionTraining | None = None, student: Any = None,
                        log: TextIO | None = None) -> RegionModels:
    """:func:`train_teacher`, then :func:`train_student` on its targets."""
    teacher = train_teacher(train, validation, settings, log)
    return RegionModels(teacher, train_student(teacher, train, validation, settings, student, log))
