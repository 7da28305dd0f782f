"""Conv2D and batch normalization in the emulator: a CICADA-shaped student on 18 x 14 calorimeter
regions (QConv2D 4 filters 2 x 2 stride 2, flatten, dense 16 with batch norm, ReLU, dense 1, the
firmware's score and decision), converted by hls4ml: C-simulation == emulator == da4ml trace."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models.regions import REGION_GRID
from trigger.fixed import FixedType

REGIONS = FixedType.parse(REGION_GRID)  # 10-bit region energies, as CICADA's inputs


def _student(seed: int) -> Any:
    """The CICADA-shaped student with its seed's random weights (Glorot's ranges) and batch-norm
    statistics, all drawn here: the same model whatever ran before in the process. Its dense layer
    is pruned as ``train-regions --sparsity 0.75`` leaves it: the smallest 3 in 4 weights are zero."""
    from models.regions import cicada_student

    rng = np.random.default_rng(seed)
    model = cicada_student()
    for name in ("conv", "dense", "output"):
        kernel, bias = model.get_layer(name).get_weights()
        limit = np.sqrt(6 / (np.prod(kernel.shape[:-1]) + kernel.shape[-1]))
        kernel = rng.uniform(-limit, limit, kernel.shape)
        if name == "dense":
            kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.75)] = 0.0
        model.get_layer(name).set_weights([kernel, rng.uniform(-0.1, 0.1, bias.shape)])
    model.get_layer("norm").set_weights([rng.uniform(0.5, 2.0, 16), rng.uniform(-1, 1, 16),
                                         rng.uniform(-20, 20, 16), rng.uniform(5, 400, 16)])
    return model


def _regions(n: int, seed: int) -> np.ndarray:
    """Sparse 10-bit region energies, a few saturated, as float64 (what hls4ml's predict takes)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 1024, (n, 18, 14, 1)) * (rng.random((n, 18, 14, 1)) < 0.15)
    x[:3] = 1023
    return x.astype(np.float64)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, np.ndarray]:
    from firmware.convert import convert_network
    from firmware.emulator import Emulator
    from firmware.head import HeadTypes, with_decision

    network = _student(seed=3)
    x = _regions(3000, seed=4)
    raw = network.predict(x, verbose=0)[:, 0]
    types = HeadTypes.declare("ap_fixed<12,6,AP_RND,AP_SAT_SYM>", "", 1)
    threshold = int(np.median(raw**2) * 2**types.score.fractional)  # about half the events accepted
    model, precisions = with_decision(network, False, types, threshold)
    hls_model = convert_network(model, REGIONS, tmp_path_factory.mktemp("cicada") / "hls", "cicada_student",
                                precisions, compile=True)
    return hls_model, Emulator.from_hls_model(hls_model), x


def test_conv2d_and_batch_norm_emulate_the_csim_bit_for_bit(converted: tuple[Any, Any, np.ndarray]) -> None:
    from firmware.check import csim_outputs

    hls_model, emulator, x = converted
    names = [kernel.name for kernel in emulator.kernels]
    assert names == ["conv", "dense", "norm", "output"]
    assert emulator.kernels[0].weight.shape == (252, 252) and emulator.kernels[2].weight.shape == (16, 16)
    csim = csim_outputs(hls_model, x)
    predicted = emulator.predict(x)
    np.testing.assert_array_equal(predicted, csim)
    assert 0.2 < predicted[:, 1].mean() < 0.8 and len(np.unique(predicted[:, 0])) > 100


def test_the_rtl_trace_of_a_conv_student_is_the_emulator(converted: tuple[Any, Any, np.ndarray]) -> None:
    from da4ml.trace import comb_trace

    from firmware.rtl import trace_network

    _, emulator, x = converted
    flat = x[:400].reshape(400, -1)
    np.testing.assert_array_equal(comb_trace(*trace_network(emulator)).predict(flat), emulator.predict(flat))


def test_padding_is_refused_with_the_layer_named() -> None:
    from firmware.kernel import as_dense
    from trigger.errors import TriggerError

    class Layer:
        name, class_name = "padded", "Conv2D"

        @staticmethod
        def get_attr(key: str) -> Any:
            return {"data_format": "channels_last", "pad_top": 1}.get(key, 0)

    with pytest.raises(TriggerError, match="layer padded: only channels-last Conv2D without padding"):
        as_dense(Layer())


def test_the_region_kernel_scores_as_the_csim(converted: tuple[Any, Any, np.ndarray]) -> None:
    from firmware.check import csim_outputs
    from firmware.region_scoring import RegionFirmware, check_counts

    hls_model, emulator, x = converted
    firmware = RegionFirmware(emulator)
    assert firmware.native is not None
    counts = x[..., 0].astype(np.uint16)  # what a file's CaloRegions holds
    csim = csim_outputs(hls_model, x)
    scores = firmware.scores(counts)
    np.testing.assert_array_equal(scores, emulator.scores(csim))
    np.testing.assert_array_equal(firmware.accept(counts), csim[:, 1] == 1)
    checks = check_counts(500, seed=9)
    np.testing.assert_array_equal(firmware.scores(checks), firmware.emulator_scores(checks))


def test_the_region_kernel_leaves_what_is_off_its_grid_to_the_emulator(
        converted: tuple[Any, Any, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    from firmware.native import DISABLE
    from firmware.region_scoring import RegionFirmware

    _, emulator, x = converted
    counts = x[:64, ..., 0].astype(np.int64)
    counts[0, 3, 4] = 1500  # above the 10-bit grid: wraps as the emulator's input type says
    counts[1, 0, 0] = -2
    halves = counts.astype(np.float64)
    halves[2, 5, 5] = 7.5  # not a whole count: the emulator's input rounding decides
    halves[3, 1, 1] = np.nan
    firmware = RegionFirmware(emulator)
    np.testing.assert_array_equal(firmware.scores(counts), firmware.emulator_scores(counts))
    got, want = firmware.scores(halves), firmware.emulator_scores(halves)
    np.testing.assert_array_equal(got[:3], want[:3])
    np.testing.assert_array_equal(got[4:], want[4:])
    monkeypatch.setenv(DISABLE, "0")
    assert RegionFirmware(emulator).native is None
    with pytest.raises(ValueError, match=r"region counts must be \(N, 18, 14\)"):
        firmware.scores(np.zeros((4, 14, 18)))


def test_an_object_models_firmware_is_not_a_region_firmware() -> None:
    from firmware.bundle import bundle_for
    from firmware.region_scoring import RegionFirmware
    from models.artifact import load_artifact
    from trigger.errors import TriggerError
    from trigger.sample import default_model

    objects = bundle_for(load_artifact(default_model())).emulator
    with pytest.raises(TriggerError, match="reads 57 inputs, not the 252 region counts"):
        RegionFirmware(objects)
