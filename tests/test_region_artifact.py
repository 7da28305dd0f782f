"""A region model as an artifact: trained, calibrated, evaluated and checked by the same commands as
an object model, reading the files' ``CaloRegions`` (``models.region_artifact``)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import synthetic_events

from firmware.bundle import FirmwareBundle, bundle_for, stored_bundle
from models.artifact import load_artifact
from models.region_artifact import RegionSpec, load_model, load_region_artifact
from trigger.cli import main as trigger_main
from trigger.errors import ArtifactError, TriggerError
from trigger.events import EventWriter, open_events
from trigger.schema import REGION_MAX_COUNT, REGIONS_DATASET


def _sm_like(n: int, seed: int) -> np.ndarray:
    """Sparse low region counts, a few regions hit per event: a stand-in for SM images."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.3, (n, 18, 14)) + (rng.random((n, 18, 14)) < 0.02) * rng.integers(5, 40, (n, 18, 14))
    return counts.astype(np.uint16)


def _write(path: Path, counts: np.ndarray, process: str) -> Path:
    with EventWriter(path, attrs={"process": process}, extras={REGIONS_DATASET: (np.uint16, (18, 14))}) as writer:
        writer.append(synthetic_events(len(counts), seed=len(counts)), **{REGIONS_DATASET: counts})
    return path


@pytest.fixture(scope="module")
def region_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("regions")
    hot = _sm_like(600, 5)
    hot[:, 9, 7] = REGION_MAX_COUNT  # one saturated barrel region: nothing SM-like does that
    return {"sm": _write(root / "sm.h5", _sm_like(3000, 1), "sm-cocktail"),
            "calibration": _write(root / "calibration.h5", _sm_like(2000, 2), "sm-cocktail"),
            "signal": _write(root / "hot.h5", hot, "hot-region")}


@pytest.fixture(scope="module")
def trained(region_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "cicada"
    assert trigger_main(["train-regions", "--data", str(region_files["sm"]), "--out", str(out), "--teacher-epochs",
                         "6", "--student-epochs", "10", "--weight-bits", "6", "--hidden", "8", "--conv-weight-bits", "0",
                         "--sparsity", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def calibrated(trained: Path, region_files: dict[str, Path]) -> Path:
    """The trained model calibrated at FPR 1e-2 of the calibration file: 20 of its 2,000 events."""
    assert trigger_main(["calibrate", "--model", str(trained), "--background", str(region_files["calibration"]),
                         "--accept-rate", "400kHz"]) == 0
    return trained


def test_training_writes_a_region_model_that_loads_as_one(trained: Path) -> None:
    model = load_region_artifact(trained)
    assert model.reads == REGIONS_DATASET and model.variants == ["quantized", "teacher"]
    assert model.spec == RegionSpec.load(trained / "region.json") and model.spec.hidden == 8
    split = model.manifest["data"]["split"]
    assert split == {"train": [0, 1800], "validation": [1800, 2400], "test": [2400, 3000]}
    assert set(model.thresholds) == {"quantized", "teacher"}
    assert isinstance(load_model(trained), type(model))
    # what reads Particles refuses it in one line, saying which commands take it
    with pytest.raises(ArtifactError, match=r"calorimeter-region model.*trigger calibrate"):
        load_artifact(trained)


def test_calibrate_stores_the_students_firmware_reading_regions(trained: Path, region_files: dict[str, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert trigger_main(["calibrate", "--model", str(trained), "--background", str(region_files["calibration"]),
                         "--accept-rate", "400kHz"]) == 0  # FPR 1e-2: 20 of the 2,000 events
    model = load_region_artifact(trained)
    firmware = stored_bundle(model)
    assert isinstance(firmware, FirmwareBundle) and firmware.reads == REGIONS_DATASET and firmware.scaler is None
    assert firmware.threshold == model.threshold("quantized")
    with open_events(region_files["calibration"]) as events:
        counts = events.read_regions()
    accepted = int(np.count_nonzero(firmware.accept(counts)))
    assert 10 <= accepted <= 20  # the threshold sits at 1 % of the firmware's own scores of these events
    assert FirmwareBundle.load(trained / "firmware").scores(counts).tolist() == firmware.scores(counts).tolist()
    with pytest.raises(TriggerError, match="reads CaloRegions, not Particles"):
        _ = firmware.particle_scaler
    assert "on emulator scores" in capsys.readouterr().out


def test_evaluate_scores_regions_beside_an_object_model(calibrated: Path, region_files: dict[str, Path],
                                                         tmp_path: Path) -> None:
    out = tmp_path / "evaluation.json"
    assert trigger_main(["evaluate", "--model", str(calibrated), "--background", str(region_files["calibration"]),
                         "--signal", str(region_files["signal"]), "--accept-rate", "400kHz", "--menu", "run3",
                         "--json", str(out)]) == 0
    models = json.loads(out.read_text())["models"]
    student, teacher = models["cicada-student/quantized"], models["cicada-student/teacher"]
    assert student["reads"] == REGIONS_DATASET and student["scored_by"] == "firmware emulator"
    assert student["score"] == "distilled" and teacher["score"] == "mse"
    for model in (student, teacher):  # a saturated region is what neither saw on SM events
        assert model["signals"]["hot-region"]["auc"] > 0.9
        assert model["signals"]["hot-region"]["working_point"]["tpr"] > 10 * 1e-2  # ten times the SM's 1 %
        assert "menu" in model["signals"]["hot-region"]  # the seeds fire on the same events' objects


@pytest.mark.slow
def test_firmware_check_compares_the_csim_on_region_events(calibrated: Path, region_files: dict[str, Path],
                                                             tmp_path: Path) -> None:
    report = tmp_path / "check.json"
    assert trigger_main(["firmware", "check", "--model", str(calibrated), "--data", str(region_files["signal"]),
                         "--events", "300", "--json", str(report)]) == 0
    pairs = {f"{p['first']}-{p['second']}": p for p in json.loads(report.read_text())}
    assert pairs["csim-emulator"]["scores_differ"] == pairs["csim-emulator"]["decisions_differ"] == 0
    # the export takes object models only: a usage error, exit status 2, nothing written
    assert trigger_main(["firmware", "export", "--model", str(calibrated), "--name", "x", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_the_vendor_scripts_pipeline_the_convolution_at_ii_1(calibrated: Path, tmp_path: Path) -> None:
    # hls4ml puts a partitioned convolution under DATAFLOW; fully parallel, the top pipelines as a dense one's
    out = tmp_path / "synth"
    assert trigger_main(["firmware", "synth", "--model", str(calibrated), "--out", str(out), "--dry-run"]) == 0
    top = (out / "firmware" / "cicada_student.cpp").read_text()
    assert "#pragma HLS PIPELINE II=1" in top and "DATAFLOW" not in top


@pytest.mark.slow
def test_a_region_file_replays_deciding_every_event_as_the_firmware(calibrated: Path, region_files: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    from replay_helpers import FAST

    from replay.config import ReplayConfig
    from replay.pipeline import ReplayRun, run_replay

    signal, no_regions = region_files["signal"], tmp_path / "objects_only.h5"
    with open_events(signal) as events:
        counts, particles = events.read_regions(), events.read()
    with EventWriter(no_regions, attrs={"process": "hot-region"}) as writer:  # as the public files: no regions
        writer.append(particles[:100])
    run = ReplayRun((signal, no_regions), calibrated, tmp_path / "run", ReplayConfig(batch_size=256, **FAST), workers=2,
                    reference_backend="auto")
    summary = run_replay(run, progress=None)
    assert summary.accounting_ok and summary.events_in == len(counts) + 100
    assert summary.reference_backend == "none"  # a region model has no float reference path
    assert summary.quarantine_reasons == {"no_regions": 100}  # every event of the file without regions, no other
    expected = np.flatnonzero(stored_bundle(load_region_artifact(calibrated)).accept(counts))
    with h5py.File(tmp_path / "run" / "accepted.h5") as accepted:
        np.testing.assert_array_equal(np.sort(accepted["bx"][:]), expected)  # the same events, bit for bit
        np.testing.assert_array_equal(accepted["Particles"][:][np.argsort(accepted["bx"][:])], particles[expected])
    assert len(expected) > 0


def test_a_worker_scores_region_tasks_packed_or_not_and_refuses_damaged_counts(calibrated: Path,
                                                                               tmp_path: Path) -> None:
    from replay_helpers import LIMITS

    from replay.bundle import load_emulated, write_bundle
    from replay.scoring import RegionPath
    from replay.stream import RegionEvents
    from replay.wire import RESULT, decode_arrays, decode_header, encode_task, message_kind
    from replay.worker import handle_task

    write_bundle(calibrated, tmp_path / "model")
    path = load_emulated(tmp_path / "model")
    assert isinstance(path, RegionPath)
    counts = _sm_like(300, 7)
    counts[::3, 9, 7] = REGION_MAX_COUNT  # as the signal file's events
    batch = RegionEvents(synthetic_events(300, seed=7), counts)
    header = {"seq": 0, "bx0": 0, "n": 300, "t_sent": 0}
    results = []
    for packed in (False, True):
        out = handle_task(path, encode_task(header, batch, packed), LIMITS)
        assert message_kind(out) == RESULT
        results.append(decode_arrays(out, decode_header(out, {}), 1 << 30))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][0], path.firmware.emulator_scores(counts))  # the reference emulator
    assert 0 < len(results[0][1]) < 300
    frames = encode_task(header, batch, packed=True)
    frames[-1] = np.asarray(frames[-1])[:-1]  # a count lost on the way
    out = handle_task(path, frames, LIMITS)
    assert message_kind(out) != RESULT and decode_header(out, {})["reason"] == "bad_shape"


@pytest.mark.slow
def test_the_report_puts_the_region_model_beside_the_object_model_and_their_or(
        calibrated: Path, artifact_dir: Path, region_files: dict[str, Path], tmp_path: Path) -> None:
    from models.combined import or_of_triggers
    from trigger.report import build_report

    page = build_report(tmp_path / "report", [artifact_dir, calibrated], region_files["calibration"],
                        [region_files["signal"]], check_events=300, accept_rate="400kHz", menu="run3",
                        progress=lambda _: None)
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    region = data["models"]["cicada-student"]
    assert region["reads"] == REGIONS_DATASET and region["exactness"]["csim_vs_emulator_exact"]
    assert "menu" in region["variants"]["emulator"]["signals"]["hot-region"]  # seeds on the same events' objects
    (view,) = data["combined"]
    assert view["objects"] == "dense-ae" and view["regions"] == "cicada-student" and view["sm_span"] == [0, 2000]
    # the same figures as the OR computed here from both firmwares' scores of the same events
    objects, regions = bundle_for(load_artifact(artifact_dir)), bundle_for(load_region_artifact(calibrated))
    with open_events(region_files["calibration"]) as sm, open_events(region_files["signal"]) as signal:
        expected = or_of_triggers((objects.scores(sm.read()), regions.scores(sm.read_regions())),
                                  {"hot-region": (objects.scores(signal.read()), regions.scores(signal.read_regions()))},
                                  1e-2, names=("objects", "regions"))
    assert view["signals"] == json.loads(json.dumps(expected["signals"]))
    assert view["sm_either"] <= 20  # the OR within the shared budget: 1 % of 2,000 events
    cells = view["signals"]["hot-region"]
    assert cells["either"]["count"] == cells["objects"]["count"] + cells["regions_only"]["count"]
    assert "Objects and calorimeter regions" in page.read_text()


def test_train_regions_refuses_a_sparsity_outside_0_to_1_in_one_line(region_files: dict[str, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train-regions", "--data", str(region_files["sm"]), "--out", str(tmp_path / "m"), "--sparsity", "1"]
    assert trigger_main(args) == 2
    assert "sparsity must be in [0, 1), got 1.0" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
