"""CICADA's teacher and student on region images (``models.region_distill``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from models.pruning import kernel_sparsity, pruned_fit
from models.region_distill import RegionTraining, region_images, student_targets, teacher_mse, train_region_models
from models.regions import cicada_student
from trigger.schema import REGION_MAX_COUNT


def _sm_like(n: int, seed: int) -> np.ndarray:
    """Sparse low region counts, a few regions hit per event: a stand-in for SM images."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.3, (n, 18, 14)) + (rng.random((n, 18, 14)) < 0.02) * rng.integers(5, 40, (n, 18, 14))
    return counts.astype(np.uint16)


def test_student_targets_are_cicadas_quantized_log() -> None:
    targets = student_targets(np.array([0.0, 0.5, 1.0, np.e, np.exp(3.0), np.exp(1 / 64), np.exp(20.0)]))
    assert targets.shape == (7, 1) and targets.dtype == np.float32
    # below MSE 1 the log is negative: clipped to 0; then 32 ln(MSE) in steps of 1/256, saturating under 256
    np.testing.assert_array_equal(targets[:, 0], [0.0, 0.0, 0.0, 32.0, 96.0, 0.5, 256.0 - 1 / 256])


def test_region_images_refuse_a_wrong_shape_with_the_shape_named() -> None:
    assert region_images(np.zeros((2, 18, 14), np.uint16)).shape == (2, 18, 14, 1)
    with pytest.raises(ValueError, match=r"\(3, 14, 18\)"):
        region_images(np.zeros((3, 14, 18), np.uint16))


def test_the_teacher_learns_sm_and_the_student_follows_it() -> None:
    train, validation = _sm_like(3000, 1), _sm_like(600, 2)
    models = train_region_models(train, validation, RegionTraining(teacher_epochs=8, student_epochs=12, batch_size=128))
    sm = region_images(_sm_like(500, 3))
    hot = sm.copy()
    hot[:, 9, 7, 0] = REGION_MAX_COUNT  # one saturated region in the barrel: nothing SM-like does that
    sm_mse, hot_mse = teacher_mse(models.teacher, sm), teacher_mse(models.teacher, hot)
    assert np.median(hot_mse) > 10 * np.median(sm_mse)
    student_sm = models.student.predict(sm, verbose=0)[:, 0]
    student_hot = models.student.predict(hot, verbose=0)[:, 0]
    assert spearmanr(student_sm, sm_mse).statistic > 0.5  # on SM it orders events as its teacher does
    labels = np.r_[np.zeros(len(sm)), np.ones(len(hot))]
    assert roc_auc_score(labels, np.r_[student_sm, student_hot]) > 0.9  # and it never saw a hot region


def test_a_pruned_student_zeroes_its_dense_layer_and_still_follows_its_teacher() -> None:
    train, validation = _sm_like(3000, 1), _sm_like(600, 2)
    settings = RegionTraining(teacher_epochs=8, student_epochs=12, batch_size=128, sparsity=0.8)
    models = train_region_models(train, validation, settings)
    zeros = kernel_sparsity(models.student)
    assert zeros["dense"] >= 0.8  # 252 x 16: pruned (quantization may zero a few more)
    assert zeros["conv"] < 0.5  # 16 weights, each in 63 products: left whole
    assert [layer.name for layer in models.student.layers] == [layer.name for layer in cicada_student().layers]
    sm = region_images(_sm_like(500, 3))
    predicted = models.student.predict(sm, verbose=0)[:, 0]
    assert spearmanr(predicted, teacher_mse(models.teacher, sm)).statistic > 0.5


def test_pruning_refuses_a_sparsity_outside_0_to_1() -> None:
    with pytest.raises(ValueError, match="sparsity must be in"):
        pruned_fit(cicada_student(), 1.0, lambda *_: None)
