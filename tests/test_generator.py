from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from trigger.cli import main as trigger_main
from trigger.errors import UsageError
from trigger.events import open_events
from trigger.generator import GenerationPlan, generate, get_process
from trigger.generator import run as generator_run
from trigger.generator.detector import DetectorConfig, Particles, reconstruct
from trigger.generator.processes import COCKTAIL_FRACTIONS, PROCESSES
from trigger.generator.run import apportion
from trigger.schema import BLOCKS
from trigger.validate import validate_file

COCKTAIL_PLAN = GenerationPlan("sm-cocktail", events=30, seed=5, chunk_size=15)


@pytest.fixture(scope="module")
def cocktail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "cocktail.h5"
    result = generate(COCKTAIL_PLAN, path, jobs=1, show_progress=False)
    assert result.complete and result.events == 30
    return path


def _particles(path: Path) -> bytes:
    with h5py.File(path) as h5:
        return h5["Particles"][:].tobytes() + h5["process_code"][:].tobytes()


@pytest.mark.slow
def test_same_seed_gives_identical_bytes_for_any_number_of_jobs(cocktail: Path, tmp_path: Path) -> None:
    again = generate(COCKTAIL_PLAN, tmp_path / "again.h5", jobs=2, show_progress=False)
    assert again.complete
    assert _particles(tmp_path / "again.h5") == _particles(cocktail)


@pytest.mark.slow
def test_the_bundled_calibration_sample_is_reproduced_byte_for_byte() -> None:
    """Its first chunk, made before the final state was read in C++, comes out the same today."""
    path = Path(__file__).parents[1] / "data" / "calibration" / "sm_cocktail_calibration.h5"
    with h5py.File(path) as h5:
        plan = GenerationPlan(**{k: v for k, v in json.loads(h5.attrs["generation"]).items()
                                 if k in ("process", "seed", "chunk_size")}, events=500)
        _, events, codes, _, _ = generator_run.run_chunk(plan.chunk(0))
        assert events.tobytes() == h5["Particles"][:500].tobytes()
        assert codes.tobytes() == h5["process_code"][:500].tobytes()


def test_another_seed_gives_other_events(cocktail: Path, tmp_path: Path) -> None:
    plan = GenerationPlan("sm-cocktail", events=15, seed=6, chunk_size=15)
    generate(plan, tmp_path / "other.h5", show_progress=False)
    with open_events(tmp_path / "other.h5") as a, open_events(cocktail) as b:
        assert not np.array_equal(a.read(), b.read(0, 15))


def test_generated_events_follow_the_adc2021_conventions(cocktail: Path) -> None:
    report = validate_file(cocktail)
    assert report.ok, report.violations
    with open_events(cocktail) as f:
        x = f.read().astype(np.float64)
        attrs = f.attrs
    leptons = x[:, BLOCKS[1].start:BLOCKS[2].stop, 0]
    assert np.all(leptons.max(axis=1) > 23.0)  # single-lepton trigger
    jets = x[:, 9:, :]
    filled = jets[..., 0] > 0
    assert np.all(jets[..., 0][filled] > 15.0) and np.all(np.abs(jets[..., 1][filled]) < 4.0)
    assert np.all(x[:, 0, 0] > 0) and np.all(x[:, 0, 1] == 0) and np.all(x[:, 0, 3] == 1)
    assert attrs["process"] == "sm-cocktail" and attrs["seed"] == 5 and attrs["complete"] is True
    assert attrs["detector"] == DetectorConfig().as_attrs()
    assert set(attrs["pythia_settings"]) == set(COCKTAIL_FRACTIONS)
    assert "fake" in attrs["process_notes"]["qcd"]
    assert sum(attrs["events_tried"].values()) >= 30


def test_cocktail_counts_follow_the_adc2021_fractions() -> None:
    counts = apportion(COCKTAIL_FRACTIONS, 100_000)
    assert counts == {"w": 59_200, "qcd": 33_800, "z": 6_700, "ttbar": 300}
    plan = GenerationPlan("sm-cocktail", events=1_000, seed=1, chunk_size=300)
    per_process: dict[str, int] = {}
    for k in range(plan.n_chunks):
        for name, n in plan.chunk(k).counts:
            per_process[name] = per_process.get(name, 0) + n
    assert per_process == apportion(COCKTAIL_FRACTIONS, 1_000)


@pytest.mark.slow
def test_interrupted_generation_leaves_a_valid_file_that_resumes_identically(
        cocktail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "partial.h5"
    real_run_chunk = generator_run.run_chunk

    def interrupted(chunk, progress=None):
        if chunk.index == 1:
            raise KeyboardInterrupt
        return real_run_chunk(chunk, progress)

    monkeypatch.setattr(generator_run, "run_chunk", interrupted)
    partial = generate(COCKTAIL_PLAN, path, show_progress=False)
    assert not partial.complete and partial.events == 15
    assert validate_file(path).ok
    with open_events(path) as f:
        assert f.attrs["complete"] is False
    record = tmp_path / "record.json"
    assert trigger_main(["checksum", str(cocktail), "--write", str(record)]) == 0
    assert trigger_main(["checksum", str(path), "--check", str(record)]) == 2  # not complete: refused
    monkeypatch.setattr(generator_run, "run_chunk", real_run_chunk)
    with pytest.raises(UsageError, match="--resume"):
        generate(COCKTAIL_PLAN, path, show_progress=False)
    with pytest.raises(UsageError, match="other settings"):
        generate(GenerationPlan("sm-cocktail", 30, seed=9, chunk_size=15), path, resume=True,
                 show_progress=False)
    resumed = generate(COCKTAIL_PLAN, path, resume=True, show_progress=False)
    assert resumed.complete and resumed.events == 30
    assert _particles(path) == _particles(cocktail)
    assert trigger_main(["checksum", str(path), "--check", str(record)]) == 0  # the recorded sample
    before = path.read_bytes()
    again = generate(COCKTAIL_PLAN, path, resume=True, show_progress=False)
    assert again.complete and again.events == 30 and again.tried == resumed.tried
    assert path.read_bytes() == before  # a complete sample (a bundled one) is read, never rewritten


def test_a_complete_sample_extends_to_the_first_events_of_a_larger_one(cocktail: Path, tmp_path: Path) -> None:
    path = tmp_path / "smaller.h5"
    smaller = GenerationPlan("sm-cocktail", events=15, seed=5, chunk_size=15)
    assert generate(smaller, path, show_progress=False).complete
    with pytest.raises(UsageError, match="other settings"):  # another seed is not an extension
        generate(GenerationPlan("sm-cocktail", 30, seed=6, chunk_size=15), path, resume=True, show_progress=False)
    extended = generate(COCKTAIL_PLAN, path, resume=True, show_progress=False)
    assert extended.complete and extended.events == 30
    assert _particles(path) == _particles(cocktail)
    with open_events(path) as f, open_events(cocktail) as whole:
        assert f.attrs["generation"] == COCKTAIL_PLAN.as_attrs() and f.attrs["complete"] is True
        assert sum(f.attrs["events_tried"].values()) == sum(whole.attrs["events_tried"].values())
    with pytest.raises(UsageError, match="other settings"):  # fewer events than the file holds: not a resume
        generate(smaller, path, resume=True, show_progress=False)
    cut = tmp_path / "cut.h5"  # 20 events in chunks of 15: its second chunk is not the larger sample's
    assert generate(GenerationPlan("sm-cocktail", events=20, seed=5, chunk_size=15), cut, show_progress=False).complete
    before = cut.read_bytes()
    with pytest.raises(UsageError, match="not a whole number of chunks"):
        generate(COCKTAIL_PLAN, cut, resume=True, show_progress=False)
    assert cut.read_bytes() == before  # refused before anything is written


def test_a_sample_record_catches_one_changed_value(cocktail: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    record, changed = tmp_path / "record.json", tmp_path / "changed.h5"
    assert trigger_main(["checksum", str(cocktail), "--write", str(record)]) == 0
    assert json.loads(record.read_text())["seed"] == 5
    changed.write_bytes(cocktail.read_bytes())
    assert trigger_main(["checksum", str(changed), "--check", str(record)]) == 0
    with h5py.File(changed, "r+") as h5:
        h5["Particles"][7, 0, 0] += 1.0
    capsys.readouterr()
    assert trigger_main(["checksum", str(changed), "--check", str(record)]) == 1
    assert "events_sha256: recorded" in capsys.readouterr().err


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_same_bytes_and_resumes(cocktail: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``--scheduler local`` (2 Dask workers): byte-identical to ``--jobs 1``; a Ctrl-C after the first
    chunk leaves a valid file that a second Dask run resumes to the same bytes."""
    from trigger.events import EventWriter

    whole = generate(COCKTAIL_PLAN, tmp_path / "dask.h5", jobs=2, show_progress=False, scheduler="local")
    assert whole.complete and _particles(tmp_path / "dask.h5") == _particles(cocktail)
    real_append, calls = EventWriter.append, []

    def append_then_interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(EventWriter, "append", append_then_interrupt)
    partial = generate(COCKTAIL_PLAN, tmp_path / "part.h5", jobs=2, show_progress=False, scheduler="local")
    assert not partial.complete and partial.events == 15 and validate_file(tmp_path / "part.h5").ok
    monkeypatch.setattr(EventWriter, "append", real_append)
    resumed = generate(COCKTAIL_PLAN, tmp_path / "part.h5", jobs=2, resume=True, show_progress=False,
                       scheduler="local")
    assert resumed.complete and _particles(tmp_path / "part.h5") == _particles(cocktail)


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trigger.cli import main
    from trigger.generator import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(UsageError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9 within 1 s"):
        generate(COCKTAIL_PLAN, tmp_path / "x.h5", show_progress=False, scheduler="tcp://127.0.0.1:9")
    assert main(["generate", "--process", "w", "--events", "2", "--scheduler", "tcp://127.0.0.1:9",
                 "-o", str(tmp_path / "y.h5")]) == 2
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()  # nothing written


@pytest.mark.parametrize("name", ["ato4l", "htaunu"])
def test_signals_pass_the_lepton_trigger(tmp_path: Path, name: str) -> None:
    generate(GenerationPlan(name, events=4, seed=1, chunk_size=4), tmp_path / "s.h5", show_progress=False)
    report = validate_file(tmp_path / "s.h5")
    assert report.ok and report.triggered == 4
    assert report.attrs["signal"] is True and report.attrs["process"] == name


def test_a_signal_without_the_lepton_trigger_keeps_every_event_it_generates(tmp_path: Path) -> None:
    untriggered = tmp_path / "all.h5"
    assert trigger_main(["generate", "--process", "htaunu", "--events", "30", "--chunk-size", "30",
                         "--no-lepton-trigger", "--no-regions", "--quiet", "-o", str(untriggered)]) == 0
    report = validate_file(untriggered)
    assert report.ok and report.n_events == 30 and report.triggered < 30  # most leptons of tau decays are soft
    with h5py.File(untriggered) as h5:
        assert json.loads(h5.attrs["generation"])["lepton_trigger"] is False
        assert h5.attrs["trigger"] == "none: every generated event kept"
    triggered = tmp_path / "triggered.h5"
    generate(GenerationPlan("htaunu", events=2, seed=1, chunk_size=2, calo=None), triggered, show_progress=False)
    with h5py.File(triggered) as h5:
        assert "lepton_trigger" not in json.loads(h5.attrs["generation"])  # files made before the option match
    for process in ("sm-cocktail", "qcd"):
        with pytest.raises(UsageError, match="defined by the single-lepton trigger"):
            GenerationPlan(process, events=2, seed=1, lepton_trigger=False)


def test_unknown_process_and_bad_counts_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown process 'wprime'; choose one of: sm-cocktail"):
        get_process("wprime")
    with pytest.raises(UsageError, match="--events must be >= 1"):
        GenerationPlan("w", events=0, seed=1)
    assert {p.code for p in PROCESSES.values()} == set(range(1, 5)) | set(range(11, 15))


def _objects(rows: list[tuple[int, float, float, float]]) -> Particles:
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return Particles(table[:, 0].astype(np.int64), table[:, 1], table[:, 2], table[:, 3])


def test_detector_keeps_isolated_leptons_and_removes_overlapping_jets() -> None:
    final = _objects([(11, 40.0, 0.5, 1.0), (211, 30.0, -1.0, -2.0), (211, 2.0, 0.6, 1.05)])
    jets = _objects([(0, 41.0, 0.5, 1.0), (0, 60.0, -1.0, -2.0)])  # the first is the electron
    event = reconstruct(final, lambda: jets, np.random.default_rng(0), DetectorConfig())
    assert event is not None
    assert event[1, 0] == pytest.approx(40.0, rel=0.1) and event[1, 3] == 2  # the electron
    assert event[2, 0] == 0  # no second electron
    assert event[9, 0] == pytest.approx(60.0, rel=0.3) and event[10, 0] == 0  # one jet left
    assert event[0, 0] > 0 and event[0, 3] == 1 and event[0, 1] == 0  # MET


def test_detector_rejects_non_isolated_or_soft_leptons_unless_a_fake_is_asked_for() -> None:
    cfg = DetectorConfig()
    final = _objects([(13, 30.0, 0.0, 0.0), (211, 20.0, 0.1, 0.1), (211, 45.0, 2.0, 2.0)])
    jets = _objects([(0, 50.0, 0.05, 0.05), (0, 45.0, 2.0, 2.0)])
    assert reconstruct(final, lambda: jets, np.random.default_rng(0), cfg) is None
    event = reconstruct(final, lambda: jets, np.random.default_rng(0), cfg, fake_electron=True)
    assert event is not None and event[1, 0] > 23.0 and event[1, 3] == 2  # a jet faking an e
    assert event[5, 0] == 0  # the muon stays rejected (not isolated)
    assert (event[9:, 0] > 0).sum() == 1  # the other jet remains a jet
