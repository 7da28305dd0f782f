"""Events packed for the wire (replay.packing): lossless for every bit pattern, strict on input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import synthetic_events

from replay.packing import PackingError, filled_bytes, pack_events, pack_regions, unpack_events, unpack_regions
from trigger.schema import N_FEATURES, N_OBJECTS


def odd_events(dtype: type) -> np.ndarray:
    """Events whose rows a value comparison would call empty or equal: -0.0, denormals, NaN."""
    events = np.zeros((5, N_OBJECTS, N_FEATURES), dtype)
    events[0, 0] = [12.5, 0.0, 0.3, 1.0]
    events[1, 3, 2] = -0.0  # a sign bit alone fills a slot
    events[2, 18, 1] = np.finfo(dtype).smallest_subnormal
    events[3, 7, 0] = np.nan
    events[4] = 1.0  # every slot filled
    return events


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packing_is_lossless_bit_for_bit(dtype: type) -> None:
    for events in (odd_events(dtype), synthetic_events(300, seed=3).astype(dtype),
                   np.zeros((0, N_OBJECTS, N_FEATURES), dtype)):
        bitmap, objects = pack_events(events)
        assert objects.dtype == dtype
        back = unpack_events(bitmap, objects, len(events))
        assert back.dtype == dtype
        assert back.tobytes() == events.tobytes()


def test_float64_native_values_survive_packing() -> None:
    """Values a float32 cast changes (the public files are float64) come back unchanged."""
    events = synthetic_events(200, seed=4).astype(np.float64)
    events = np.where(events != 0, np.nextafter(events, np.inf), 0.0)
    back = unpack_events(*pack_events(events), len(events))
    assert back.tobytes() == events.tobytes()


def test_bitmap_marks_the_rows_with_any_bit_set() -> None:
    events = odd_events(np.float32)
    bitmap, objects = pack_events(events)
    rows = events.reshape(-1, N_FEATURES)
    filled = (rows.view(np.uint32) != 0).any(axis=1)
    np.testing.assert_array_equal(bitmap, np.packbits(filled))
    assert objects.tobytes() == rows[filled].tobytes()
    assert filled[3 * N_OBJECTS + 7] and filled[N_OBJECTS + 3]  # NaN and -0.0 rows kept


def test_the_bundled_sm_events_pack_to_a_fraction_of_their_bytes() -> None:
    with h5py.File("data/sample/sm_cocktail.h5") as f:
        events = f["Particles"][:20_000]
    bitmap, objects = pack_events(events)
    assert (bitmap.nbytes + objects.nbytes) / events.nbytes < 0.25


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b, o: (b[:-1], o), "a bitmap of"),
    (lambda b, o: (b.astype(np.int16), o), "a bitmap of"),
    (lambda b, o: (b, o[:-1]), "marks 9 filled slots, 8 rows sent"),
    (lambda b, o: (b, np.concatenate([o, o[:1]])), "marks 9 filled slots, 10 rows sent"),
    (lambda b, o: (b, o[:, :3]), "objects of shape"),
    (lambda b, o: (b, o.astype(np.int32)), "objects of shape"),
])
def test_a_damaged_packing_is_refused(damage, message: str) -> None:
    events = synthetic_events(3, seed=5)
    events[:] = 0
    events[:, :3, 0] = 1.0  # 3 filled slots per event: 9 rows, 57 bits in 8 bytes
    bitmap, objects = pack_events(events)
    assert len(objects) == 9 and len(bitmap) == filled_bytes(3) == 8
    with pytest.raises(PackingError, match=message):
        unpack_events(*damage(bitmap, objects), 3)


def test_a_bit_past_the_last_slot_is_refused() -> None:
    events = np.zeros((3, N_OBJECTS, N_FEATURES), np.float32)  # 57 slots: bits 57-63 are padding
    bitmap, _ = pack_events(events)
    bitmap[-1] |= 1
    with pytest.raises(PackingError, match="past the 57"):
        unpack_events(bitmap, np.ones((1, N_FEATURES), np.float32), 3)


def test_region_counts_pack_losslessly_and_damage_is_refused() -> None:
    rng = np.random.default_rng(2)
    for n in (0, 1, 7, 300):
        counts = (rng.integers(1, 1024, (n, 18, 14)) * (rng.random((n, 18, 14)) < 0.16)).astype(np.uint16)
        bitmap, values = pack_regions(counts)
        assert len(values) == np.count_nonzero(counts) and bitmap.nbytes == (n * 252 + 7) // 8
        np.testing.assert_array_equal(unpack_regions(bitmap, values, n), counts)
    counts[0, 0, 0], counts[-1, -1, -1] = 5, 0
    bitmap, values = pack_regions(counts)
    with pytest.raises(PackingError, match="non-zero counts sent"):
        unpack_regions(bitmap, values[:-1], len(counts))  # a count lost
    with pytest.raises(PackingError, match="non-zero counts sent"):
        unpack_regions(bitmap, np.r_[values[:-1], 0].astype(np.uint16), len(counts))  # a zero sent as a count
    with pytest.raises(PackingError, match="expected"):
        unpack_regions(bitmap[:-1], values, len(counts))
    with pytest.raises(PackingError, match="uint16"):
        unpack_regions(bitmap, values.astype(np.int32), len(counts))
