"""CaloRegions: the region image of hand-built events, and generated files that carry it beside
objects that stay byte for byte what the generator made before regions existed."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger.cli import main as trigger_main
from trigger.errors import SchemaError, UsageError
from trigger.events import EventWriter, open_events
from trigger.generator import GenerationPlan, generate
from trigger.generator import run as generator_run
from trigger.generator.calo import CaloConfig, RegionMaker, region_index, regions
from trigger.generator.detector import Particles
from trigger.schema import REGION_LSB_GEV, REGION_MAX_COUNT, REGIONS_DATASET
from trigger.validate import validate_file

ROOT = Path(__file__).parents[1]
BUNDLED = ROOT / "data" / "sample" / "sm_cocktail.h5"
IDEAL = CaloConfig.ideal()
SMALL = {"process": "sm-cocktail", "events": 40, "seed": 3, "chunk_size": 20}


def _event(pid: list[int], pt: list[float], eta: list[float], phi: list[float]) -> Particles:
    return Particles(np.array(pid, np.int64), np.array(pt, float), np.array(eta, float), np.array(phi, float))


def _read(path: Path, name: str) -> bytes:
    with h5py.File(path) as h5:
        return h5[name][:].tobytes()


def test_a_50_gev_electron_lands_in_its_region() -> None:
    image = regions(_event([11], [50.0], [0.5], [0.5]), IDEAL)
    assert image.shape == (18, 14) and image.dtype == np.uint16
    # phi 0.5 rad = 28.6 deg: region 1 spans [10, 30) deg; eta 0.5 lies in [0.348, 0.696): region 8
    assert image[1, 8] == 50.0 / REGION_LSB_GEV and image.sum() == image[1, 8]
    smeared = regions(_event([11], [50.0], [0.5], [0.5]), CaloConfig(), np.random.default_rng(1))
    assert np.flatnonzero(smeared) == [1 * 14 + 8] and abs(smeared[1, 8] * REGION_LSB_GEV - 50.0) < 5.0


def test_the_sum_over_regions_is_conserved_below_saturation() -> None:
    rng = np.random.default_rng(4)
    n = 400
    final = _event(rng.choice([11, -11, 22, 211, -211, 130, 2112], n).tolist(),
                   (rng.integers(1, 20, n) * REGION_LSB_GEV).tolist(),  # whole counts: no rounding
                   rng.uniform(-2.99, 2.99, n).tolist(), rng.uniform(-np.pi, np.pi, n).tolist())
    image = regions(final, IDEAL)
    assert image.max() < REGION_MAX_COUNT
    assert image.sum() * REGION_LSB_GEV == pytest.approx(final.pt.sum(), abs=1e-9)
    # muons leave a MIP (2 GeV, at most their pT), neutrinos are not visible particles at all
    assert regions(_event([13, 13], [30.0, 1.0], [0.1, -1.0], [0.0, 2.0]), IDEAL).sum() == (2.0 + 1.0) / REGION_LSB_GEV
    # the default response keeps the sum close (hadron resolution) and leaves most regions empty
    smeared = regions(final, CaloConfig(), np.random.default_rng(5))
    assert abs(smeared.sum() * REGION_LSB_GEV / final.pt.sum() - 1) < 0.1


def test_region_energies_saturate_at_10_bits() -> None:
    assert regions(_event([11], [600.0], [0.0], [0.0]), IDEAL)[0, 7] == REGION_MAX_COUNT
    image = regions(_event([211, 211], [300.0, 300.0], [0.1, 0.2], [0.05, -0.05]), IDEAL)  # together > 511.5 GeV
    assert image[0, 7] == REGION_MAX_COUNT and image.sum() == REGION_MAX_COUNT
    apart = regions(_event([211, 211], [300.0, 300.0], [0.1, -0.1], [0.05, -0.05]), IDEAL)
    assert apart[0, 7] == apart[0, 6] == 600


def test_phi_wraps_around_and_eta_beyond_3_is_dropped() -> None:
    eps = 1e-9
    phi = np.array([np.pi - eps, -np.pi + eps, np.pi, -np.pi, np.radians(10) - eps, np.radians(-10) - eps])
    assert (region_index(np.zeros(6), phi) // 14).tolist() == [9, 9, 9, 9, 0, 17]
    eta = np.array([3.0, 3.5, -3.0, -4.0, 2.999, -2.999, 0.0, -1e-12])
    assert (region_index(eta, np.zeros(8)) % 14).tolist()[4:] == [13, 0, 7, 6]
    assert (region_index(eta, np.zeros(8))[:4] == -1).all()
    assert regions(_event([11, 22, 211], [40.0, 40.0, 40.0], [3.0, -3.2, 4.5], [0.0, 1.0, 2.0]), IDEAL).sum() == 0


def test_each_event_has_its_own_response_stream() -> None:
    final = _event([211] * 50, [5.0] * 50, np.linspace(-2.5, 2.5, 50).tolist(), np.linspace(-3, 3, 50).tolist())
    maker = RegionMaker(CaloConfig(), np.random.SeedSequence(1, spawn_key=(2, 3, 4)))
    again = RegionMaker(CaloConfig(), np.random.SeedSequence(1, spawn_key=(2, 3, 4)))
    assert np.array_equal(maker(final, 7), again(final, 7))  # whoever asks, in any order
    assert not np.array_equal(maker(final, 7), maker(final, 8))


@pytest.mark.slow
def test_the_bundled_recipe_gives_the_bundled_objects_with_regions(tmp_path: Path) -> None:
    """`make sample` (sm-cocktail, seed 1): chunk 0 of a 500-event run is chunk 0 of the 100,000-event run."""
    if not BUNDLED.is_file():
        pytest.skip(f"{BUNDLED.name} is not bundled here")
    path = tmp_path / "first.h5"
    assert generate(GenerationPlan("sm-cocktail", 500, seed=1), path, show_progress=False).complete
    with h5py.File(BUNDLED) as h5:
        assert _read(path, "Particles") == h5["Particles"][:500].tobytes()
        assert _read(path, "process_code") == h5["process_code"][:500].tobytes()
    report = validate_file(path)
    assert report.ok and report.regions is not None and report.regions.nonzero > 0
    with open_events(path) as events:
        image = events.read_regions()
        assert image.shape == (500, 18, 14) and image.dtype == np.uint16 and image.max() <= REGION_MAX_COUNT
        attrs = events.regions_attrs()
        assert attrs["lsb_gev"] == REGION_LSB_GEV and attrs["max_count"] == REGION_MAX_COUNT
        assert len(attrs["eta_edges"]) == 15 and attrs["response"] == CaloConfig().as_attrs()
        assert events.attrs["generation"]["calo_regions"] == CaloConfig().as_attrs()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calo") / "jobs1.h5"
    assert generate(GenerationPlan(**SMALL), path, jobs=1, show_progress=False).complete
    return path


@pytest.mark.slow
def test_regions_are_the_same_for_any_jobs_and_after_resuming(small: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert generate(GenerationPlan(**SMALL), tmp_path / "jobs2.h5", jobs=2, show_progress=False).complete
    for name in ("Particles", "process_code", REGIONS_DATASET):
        assert _read(tmp_path / "jobs2.h5", name) == _read(small, name), name
    real = generator_run.run_chunk

    def interrupted(chunk: generator_run.Chunk, progress: object = None) -> generator_run.ChunkResult:
        if chunk.index == 1:
            raise KeyboardInterrupt
        return real(chunk, progress)

    monkeypatch.setattr(generator_run, "run_chunk", interrupted)
    assert not generate(GenerationPlan(**SMALL), tmp_path / "part.h5", show_progress=False).complete
    monkeypatch.setattr(generator_run, "run_chunk", real)
    assert generate(GenerationPlan(**SMALL), tmp_path / "part.h5", resume=True, show_progress=False).complete
    assert _read(tmp_path / "part.h5", REGIONS_DATASET) == _read(small, REGIONS_DATASET)


@pytest.mark.slow
def test_no_regions_gives_the_same_objects_and_no_dataset(small: Path, tmp_path: Path) -> None:
    path = tmp_path / "none.h5"
    assert trigger_main(["generate", "--process", "sm-cocktail", "--events", "20", "--seed", "3", "--chunk-size",
                         "20", "--no-regions", "--quiet", "-o", str(path)]) == 0
    assert _read(path, "Particles") == _read(small, "Particles")[: len(_read(path, "Particles"))]
    with open_events(path) as events:
        assert not events.has_regions and "calo_regions" not in events.attrs["generation"]
    with pytest.raises(UsageError, match="without CaloRegions: resume it with --no-regions"):
        generate(GenerationPlan(**{**SMALL, "events": 20}), path, resume=True, show_progress=False)


def test_a_file_without_regions_reads_validates_and_inspects_as_before(
        event_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open_events(event_file) as events:
        assert not events.has_regions and events.regions_attrs() == {}
        with pytest.raises(SchemaError, match="no dataset 'CaloRegions'"):
            events.read_regions()
    report = validate_file(event_file)
    assert report.ok and report.regions is None and report.summary()["calo_regions"] is None
    assert trigger_main(["inspect", str(event_file)]) == 0
    out = capsys.readouterr().out
    assert "calorimeter regions" not in out and "region_range" not in out


def test_malformed_or_out_of_range_regions_fail_validation(tmp_path: Path, events: np.ndarray) -> None:
    wrong = tmp_path / "wrong.h5"
    with EventWriter(wrong, extras={REGIONS_DATASET: (np.float32, (14, 18))}) as writer:
        writer.append(events[:5], **{REGIONS_DATASET: np.zeros((5, 14, 18), np.float32)})
    assert "expected (5, 18, 14)" in (validate_file(wrong).schema_error or "")
    high = tmp_path / "high.h5"
    image = np.zeros((5, 18, 14), np.uint16)
    image[3, 2, 1] = 1024
    with EventWriter(high, extras={REGIONS_DATASET: (np.uint16, (18, 14))}) as writer:
        writer.append(events[:5], **{REGIONS_DATASET: image})
    report = validate_file(high)
    assert not report.ok and report.first_events[next(iter(report.violations))] == [3]
