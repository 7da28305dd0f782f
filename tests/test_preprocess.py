from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trigger.errors import ArtifactError, UsageError
from trigger.events import open_events
from trigger.fixed import Overflow, Rounding
from trigger.preprocess import Scaler, filled_mask, to_inputs


def test_inputs_are_pt_eta_phi_per_slot(events: np.ndarray) -> None:
    x = to_inputs(events)
    assert x.shape == (len(events), 57) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 3 * 9: 3 * 9 + 3], events[:, 9, :3])  # leading jet


@pytest.mark.parametrize("method", ["standard", "maxabs", "none"])
@pytest.mark.parametrize("log_pt", [False, True])
def test_padding_stays_zero_and_the_transform_inverts(events: np.ndarray, method: str,
                                                      log_pt: bool) -> None:
    scaler = Scaler(method, log_pt).fit(events)
    x = scaler.transform(events)
    mask = filled_mask(events)
    assert np.all(x[~mask] == 0.0)
    back = scaler.inverse_transform(x)
    np.testing.assert_allclose(back[mask], to_inputs(events)[mask], rtol=1e-5, atol=1e-4)


def test_standard_scaling_ignores_padding_in_its_statistics(events: np.ndarray) -> None:
    scaler = Scaler("standard").fit(events)
    x = scaler.transform(events)
    mask = filled_mask(events)
    column = 3 * 12  # pT of the 4th jet: often empty
    assert 0 < mask[:, column].mean() < 0.8
    assert abs(x[mask[:, column], column].mean()) < 1e-5
    assert abs(x[mask[:, column], column].std() - 1.0) < 1e-4


def test_fit_on_batches_equals_fit_on_the_whole(event_file: Path, events: np.ndarray) -> None:
    whole = Scaler("standard", log_pt=True).fit(events)
    with open_events(event_file) as f:
        streamed = Scaler("standard", log_pt=True).fit(b.particles for b in f.iter_batches(128))
    np.testing.assert_allclose(streamed.center, whole.center, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(streamed.scale, whole.scale, rtol=1e-9)


def test_inputs_land_on_the_firmware_grid(events: np.ndarray) -> None:
    scaler = Scaler("standard", input_type="ap_fixed<8,3>").fit(events)
    grid = scaler.input_type
    assert grid is not None and (grid.rounding, grid.overflow) == (Rounding.TRN, Overflow.SAT)
    x = scaler.transform(events).astype(np.float64)
    assert np.all(x * 2**5 == np.floor(x * 2**5))
    assert x.min() >= -4.0 and x.max() <= 4.0 - 2**-5
    exact = scaler.transform(events, quantize=False)
    assert np.all((exact - x >= 0) | (exact > 4.0 - 2**-5))  # truncation toward -inf, or clipped


def test_scaler_round_trips_through_json(tmp_path: Path, events: np.ndarray) -> None:
    scaler = Scaler("standard", log_pt=True, input_type="ap_fixed<16,6>").fit(events)
    scaler.save(tmp_path / "scaler.json")
    loaded = Scaler.load(tmp_path / "scaler.json")
    np.testing.assert_array_equal(loaded.transform(events), scaler.transform(events))
    assert loaded.input_type == scaler.input_type and loaded.n_fit == len(events)


def test_damaged_or_foreign_scaler_files_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "scaler.json"
    path.write_text('{"format": "trigger.Scaler", "version": 1, "method": "standard"')
    with pytest.raises(ArtifactError, match="not a JSON scaler file"):
        Scaler.load(path)
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ArtifactError, match="not a version-1 scaler"):
        Scaler.load(path)
    with pytest.raises(ArtifactError, match="no such scaler file"):
        Scaler.load(tmp_path / "absent.json")
    with pytest.raises(UsageError, match="unknown scaling"):
        Scaler("minmax")
